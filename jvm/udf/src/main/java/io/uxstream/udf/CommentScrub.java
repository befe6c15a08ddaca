package io.uxstream.udf;

import java.nio.charset.StandardCharsets;
import java.util.regex.Pattern;

/**
 * PII scrubbing of feedback comments (issue 22 item 6; README "Feedback"), the same two patterns as
 * {@code jobs.common.contract.scrub_comment}: every e-mail address becomes {@code [email]}, then every run of
 * at least 4 ASCII digits (consecutive digits separated by at most two of space ( ) . / -, optionally led by
 * + or () becomes {@code [number]}. The patterns use only ASCII classes, so java.util.regex and Python's re
 * find the same leftmost greedy matches (a parity test runs both over a fixed set of tricky strings).
 *
 * <p>Applied by {@link EventDecoder} to every valid event's {@code feedback_comment}, so no raw comment
 * reaches a job's state, a topic the jobs write or a table.
 */
final class CommentScrub {
  static final String FIELD = "feedback_comment";
  static final Pattern EMAIL = Pattern.compile("[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)+");
  static final Pattern NUMBER = Pattern.compile("[+(]?[0-9](?:[ ().\\/-]{0,2}[0-9]){3,}");
  static final String EMAIL_MASK = "[email]";
  static final String NUMBER_MASK = "[number]";

  private CommentScrub() {}

  /** The scrubbed text. */
  static String scrub(String text) {
    // Each pattern only where it can match (same result, less work); masks hold no '$' or '\\'.
    String noEmails = text.indexOf('@') >= 0 ? EMAIL.matcher(text).replaceAll(EMAIL_MASK) : text;
    return NUMBER.matcher(noEmails).replaceAll(NUMBER_MASK);
  }

  /** The scrubbed UTF-8 bytes (the decoder's string representation); the same array when nothing changes. */
  static byte[] scrub(byte[] utf8) {
    boolean candidate = false;
    for (byte b : utf8) {
      if (b == '@' || (b >= '0' && b <= '9')) {
        candidate = true;
        break;
      }
    }
    if (!candidate) {
      return utf8;
    }
    String text = new String(utf8, StandardCharsets.UTF_8);
    String scrubbed = scrub(text);
    return scrubbed.equals(text) ? utf8 : scrubbed.getBytes(StandardCharsets.UTF_8);
  }
}
