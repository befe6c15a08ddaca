package io.uxstream.udf;

import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * Rule 5 of {@code jobs.common.contract.validate} (issue 22 item 6): what a {@code feedback} event needs, in
 * the same order with the same reason codes and detail texts. {@code missing_field} when survey_id is
 * missing or empty, then feedback_scale, then feedback_score missing; {@code impossible_value} when the scale
 * is not one of {@link #SCALES}, then when the score lies outside it. Called by {@link EventRules} after
 * every other rule has passed, for feedback events only.
 */
final class FeedbackRules {
  static final byte[] FEEDBACK = "feedback".getBytes(StandardCharsets.UTF_8);
  /** In the order of Python's FEEDBACK_SCALES (messages list them so). */
  static final List<String> SCALES = List.of("0-10", "1-5");
  static final int[][] BOUNDS = {{0, 10}, {1, 5}};
  private static final String KNOWN_SCALES = String.join(", ", SCALES);

  private final int surveyId;
  private final int scale;
  private final int score;

  FeedbackRules(List<String> fieldNames) {
    surveyId = fieldNames.indexOf("survey_id");
    scale = fieldNames.indexOf("feedback_scale");
    score = fieldNames.indexOf("feedback_score");
  }

  private static Object get(Object[] values, int index) {
    return index < 0 ? null : values[index];
  }

  private static boolean empty(Object value) {
    return value == null || (value instanceof byte[] && ((byte[]) value).length == 0);
  }

  /** Null when the feedback event is valid, else {reason, detail}. */
  String[] validate(Object[] values) {
    if (empty(get(values, surveyId))) {
      return missing("survey_id");
    }
    Object scaleValue = get(values, scale);
    if (empty(scaleValue)) {
      return missing("feedback_scale");
    }
    Object scoreValue = get(values, score);
    if (scoreValue == null) {
      return new String[] {
        EventRules.MISSING_FIELD, "field 'feedback_score' is missing (required for feedback)"
      };
    }
    String scaleText = new String((byte[]) scaleValue, StandardCharsets.UTF_8);
    int which = SCALES.indexOf(scaleText);
    if (which < 0) {
      return new String[] {
        EventRules.IMPOSSIBLE_VALUE,
        "field 'feedback_scale' is " + PyText.repr(scaleValue) + ", not one of " + KNOWN_SCALES
      };
    }
    long given = ((Number) scoreValue).longValue();
    if (given < BOUNDS[which][0] || given > BOUNDS[which][1]) {
      return new String[] {
        EventRules.IMPOSSIBLE_VALUE,
        "field 'feedback_score' is " + given + ", outside the " + scaleText + " scale"
      };
    }
    return null;
  }

  private static String[] missing(String name) {
    return new String[] {
      EventRules.MISSING_FIELD, "field '" + name + "' is missing or empty (required for feedback)"
    };
  }
}
