package io.uxstream.udf;

import java.util.Arrays;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code pack_session_event(ts, event_id, event_type, event_name, page_path, referrer, utm_source,
 * utm_medium, utm_campaign, device_type, browser, country, engagement_time_ms, survey_id, feedback_scale,
 * feedback_score, feedback_comment, user_id) -> STRING}: one event of a gap-session as the JSON array of
 * those fields (jobs.sessionize.logic.SESSION_EVENT_FIELDS order: BIGINT, eleven STRINGs, BIGINT, two
 * STRINGs, INT, two STRINGs; NULL as {@code null}), what {@code JSON_ARRAY(... NULL ON NULL)} gives and
 * {@link SessionRows} and jobs.sessionize.logic.unpack_session read.
 *
 * <p>Written from the strings' UTF-8 bytes into one buffer: {@code JSON_ARRAY} turned every field into a
 * Java string, built a Jackson tree and serialized it, ~16 % of the dedup vertex's time (issue 17). Escapes
 * as Jackson does: {@code "} and {@code \} with a backslash, control characters below U+0020 as {@code
 * \n}, {@code \t} … or {@code \\u00XX}; every other character as its UTF-8 bytes.
 */
public class PackSessionEvent extends ScalarFunction {
  private static final long serialVersionUID = 1L;

  private static final byte[] NULL = {'n', 'u', 'l', 'l'};
  private static final byte[] HEX = "0123456789ABCDEF".getBytes(java.nio.charset.StandardCharsets.US_ASCII);

  private transient byte[] buffer;
  private transient int at;

  @DataTypeHint(value = "STRING", bridgedTo = StringData.class)
  public StringData eval(
      Long ts,
      @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData eventId,
      @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData eventType,
      @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData eventName,
      @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData pagePath,
      @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData referrer,
      @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData utmSource,
      @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData utmMedium,
      @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData utmCampaign,
      @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData deviceType,
      @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData browser,
      @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData country,
      Long engagementTimeMs,
      @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData surveyId,
      @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData feedbackScale,
      Integer feedbackScore,
      @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData feedbackComment,
      @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData userId) {
    if (buffer == null) {
      buffer = new byte[512];
    }
    at = 0;
    put((byte) '[');
    number(ts);
    text(eventId);
    text(eventType);
    text(eventName);
    text(pagePath);
    text(referrer);
    text(utmSource);
    text(utmMedium);
    text(utmCampaign);
    text(deviceType);
    text(browser);
    text(country);
    number(engagementTimeMs);
    text(surveyId);
    text(feedbackScale);
    number(feedbackScore == null ? null : feedbackScore.longValue());
    text(feedbackComment);
    text(userId);
    put((byte) ']');
    return StringData.fromBytes(Arrays.copyOf(buffer, at));
  }

  private void put(byte b) {
    if (at == buffer.length) {
      buffer = Arrays.copyOf(buffer, buffer.length * 2);
    }
    buffer[at++] = b;
  }

  private void separator() {
    if (at > 1) {
      put((byte) ',');
    }
  }

  private void bytes(byte[] bytes) {
    for (byte b : bytes) {
      put(b);
    }
  }

  private void number(Long value) {
    separator();
    if (value == null) {
      bytes(NULL);
      return;
    }
    String digits = Long.toString(value);
    for (int i = 0; i < digits.length(); i++) {
      put((byte) digits.charAt(i));
    }
  }

  private void text(StringData value) {
    separator();
    if (value == null) {
      bytes(NULL);
      return;
    }
    put((byte) '"');
    for (byte b : value.toBytes()) {
      if (b == '"' || b == '\\') {
        put((byte) '\\');
        put(b);
      } else if (b >= 0 && b < 0x20) {
        put((byte) '\\');
        switch (b) {
          case '\n' -> put((byte) 'n');
          case '\t' -> put((byte) 't');
          case '\r' -> put((byte) 'r');
          case '\b' -> put((byte) 'b');
          case '\f' -> put((byte) 'f');
          default -> {
            put((byte) 'u');
            put((byte) '0');
            put((byte) '0');
            put(HEX[b >> 4]);
            put(HEX[b & 0xf]);
          }
        }
      } else {
        put(b);
      }
    }
    put((byte) '"');
  }
}
