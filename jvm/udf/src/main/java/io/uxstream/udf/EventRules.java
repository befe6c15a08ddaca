package io.uxstream.udf;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;

/**
 * The validity rules of {@code jobs.common.contract.validate}, in the same order with the same reason codes
 * and detail texts (SEMANTICS.md, "Validity and duplicates"). The first failing rule decides:
 *
 * <ol>
 *   <li>{@code missing_field}: event_id, event_type or event_name missing or empty; no user key (user_id
 *       and anonymous_id both missing or empty); ts or received_at missing.
 *   <li>{@code impossible_value}: event_type not one of {@link #EVENT_TYPES}.
 *   <li>{@code missing_field}: page_view without page_path, error without error_type, web_vital without
 *       any of lcp_ms, inp_ms, cls.
 *   <li>{@code impossible_value}: ts or received_at before 2000-01-01 or after 9999-12-31; lcp_ms, inp_ms,
 *       cls, page_load_ms or engagement_time_ms negative, NaN or infinite; ip present but not an IPv4/IPv6
 *       address (parsed literally, never resolved).
 *   <li>feedback events ({@link FeedbackRules}): {@code missing_field} without survey_id, feedback_scale or
 *       feedback_score; {@code impossible_value} for an unknown scale or a score outside it.
 * </ol>
 *
 * {@link EventLimits} runs before these rules (rule 0 of the Python module: size and content limits).
 *
 * <p>The constants are duplicated from the Python module on purpose (the JVM cannot import it); the parity
 * tests compare them ({@code DecodeCli --constants}) and every verdict on generated and fuzzed payloads.
 */
final class EventRules {
  static final String MISSING_FIELD = "missing_field";
  static final String IMPOSSIBLE_VALUE = "impossible_value";

  /** Sorted, as Python's {@code ", ".join(sorted(EVENT_TYPES))} lists them. */
  static final List<String> EVENT_TYPES =
      List.of("click", "custom", "error", "feedback", "heartbeat", "page_view", "web_vital");

  static final long MIN_TS_MS = 946_684_800_000L;
  static final long MAX_TS_MS = 253_402_300_799_999L;
  static final List<String> REQUIRED_STRINGS = List.of("event_id", "event_type", "event_name");
  static final List<String> NON_NEGATIVE_NUMBERS =
      List.of("lcp_ms", "inp_ms", "cls", "page_load_ms", "engagement_time_ms");
  static final List<String> WEB_VITALS = List.of("lcp_ms", "inp_ms", "cls");

  private static final byte[][] EVENT_TYPE_BYTES = EVENT_TYPES.stream()
      .map(s -> s.getBytes(StandardCharsets.UTF_8))
      .toArray(byte[][]::new);
  private static final byte[] PAGE_VIEW = "page_view".getBytes(StandardCharsets.UTF_8);
  private static final byte[] ERROR = "error".getBytes(StandardCharsets.UTF_8);
  private static final byte[] WEB_VITAL = "web_vital".getBytes(StandardCharsets.UTF_8);
  private static final String KNOWN_TYPES = String.join(", ", EVENT_TYPES);

  private final int[] required;
  private final int userId;
  private final int anonymousId;
  private final int ts;
  private final int receivedAt;
  private final int eventType;
  private final int pagePath;
  private final int errorType;
  private final int[] webVitals;
  private final int[] nonNegative;
  private final int ip;
  private final FeedbackRules feedback;

  /** Rules over records in the reader schema whose field names are {@code fieldNames}, in order. */
  EventRules(List<String> fieldNames) {
    required = REQUIRED_STRINGS.stream().mapToInt(fieldNames::indexOf).toArray();
    userId = fieldNames.indexOf("user_id");
    anonymousId = fieldNames.indexOf("anonymous_id");
    ts = fieldNames.indexOf("ts");
    receivedAt = fieldNames.indexOf("received_at");
    eventType = fieldNames.indexOf("event_type");
    pagePath = fieldNames.indexOf("page_path");
    errorType = fieldNames.indexOf("error_type");
    webVitals = WEB_VITALS.stream().mapToInt(fieldNames::indexOf).toArray();
    nonNegative = NON_NEGATIVE_NUMBERS.stream().mapToInt(fieldNames::indexOf).toArray();
    ip = fieldNames.indexOf("ip");
    feedback = new FeedbackRules(fieldNames);
  }

  private static Object get(Object[] values, int index) {
    return index < 0 ? null : values[index]; // event.get(name): absent fields are None
  }

  /** Python truthiness: None, empty strings/bytes/maps, zero and False are false. */
  private static boolean falsy(Object value) {
    if (value == null) {
      return true;
    }
    if (value instanceof byte[]) {
      return ((byte[]) value).length == 0;
    }
    if (value instanceof Number) {
      return ((Number) value).doubleValue() == 0;
    }
    if (value instanceof Boolean) {
      return !((Boolean) value);
    }
    if (value instanceof Utf8Map) {
      return ((Utf8Map) value).isEmpty();
    }
    return false;
  }

  private static boolean isInteger(Object value) {
    return value instanceof Long || value instanceof Integer || value instanceof Boolean;
  }

  private static long asLong(Object value) {
    if (value instanceof Boolean) {
      return ((Boolean) value) ? 1 : 0;
    }
    return ((Number) value).longValue();
  }

  private static boolean sameBytes(Object value, byte[] expected) {
    return value instanceof byte[] && Arrays.equals((byte[]) value, expected);
  }

  private static String[] missing(String name) {
    return new String[] {MISSING_FIELD, "field '" + name + "' is missing or empty"};
  }

  /** Null when valid, else {reason, detail}. */
  String[] validate(Object[] values) {
    for (int i = 0; i < required.length; i++) {
      if (falsy(get(values, required[i]))) {
        return missing(REQUIRED_STRINGS.get(i));
      }
    }
    if (falsy(get(values, userId)) && falsy(get(values, anonymousId))) {
      return new String[] {
        MISSING_FIELD, "field 'anonymous_id' is missing or empty and 'user_id' is null: no user key"
      };
    }
    Object tsValue = get(values, ts);
    Object receivedValue = get(values, receivedAt);
    if (!isInteger(tsValue)) {
      return missing("ts");
    }
    if (!isInteger(receivedValue)) {
      return missing("received_at");
    }
    Object type = get(values, eventType);
    boolean known = false;
    for (byte[] candidate : EVENT_TYPE_BYTES) {
      known |= sameBytes(type, candidate);
    }
    if (!known) {
      return new String[] {
        IMPOSSIBLE_VALUE, "field 'event_type' is " + PyText.repr(type) + ", not one of " + KNOWN_TYPES
      };
    }
    if (sameBytes(type, PAGE_VIEW)) {
      if (falsy(get(values, pagePath))) {
        return new String[] {MISSING_FIELD, "field 'page_path' is missing or empty (required for page_view)"};
      }
    } else if (sameBytes(type, ERROR)) {
      if (falsy(get(values, errorType))) {
        return new String[] {MISSING_FIELD, "field 'error_type' is missing or empty (required for error)"};
      }
    } else if (sameBytes(type, WEB_VITAL)) {
      boolean none = true;
      for (int index : webVitals) {
        none &= get(values, index) == null;
      }
      if (none) {
        return new String[] {
          MISSING_FIELD, "field 'lcp_ms' is missing: a web_vital event carries none of lcp_ms, inp_ms, cls"
        };
      }
    }
    String[] names = {"ts", "received_at"};
    long[] moments = {asLong(tsValue), asLong(receivedValue)};
    for (int i = 0; i < 2; i++) {
      if (moments[i] < MIN_TS_MS) {
        return new String[] {
          IMPOSSIBLE_VALUE, "field '" + names[i] + "' is " + PyText.isoMs(moments[i]) + ", before 2000-01-01"
        };
      }
      if (moments[i] > MAX_TS_MS) {
        return new String[] {
          IMPOSSIBLE_VALUE, "field '" + names[i] + "' is " + moments[i] + ", after 9999-12-31"
        };
      }
    }
    for (int i = 0; i < nonNegative.length; i++) {
      Object value = get(values, nonNegative[i]);
      if (value != null && !finiteNonNegative(value)) {
        return new String[] {
          IMPOSSIBLE_VALUE,
          "field '" + NON_NEGATIVE_NUMBERS.get(i) + "' is " + PyText.repr(value)
              + ", must be a finite number >= 0"
        };
      }
    }
    Object address = get(values, ip);
    if (address != null) {
      String text = address instanceof byte[]
          ? new String((byte[]) address, StandardCharsets.UTF_8)
          : String.valueOf(address);
      if (!IpLiteral.isIpAddress(text)) {
        return new String[] {
          IMPOSSIBLE_VALUE, "field 'ip' is " + PyText.repr(address) + ", not an IPv4 or IPv6 address"
        };
      }
    }
    if (sameBytes(type, FeedbackRules.FEEDBACK)) {
      return feedback.validate(values);
    }
    return null;
  }

  private static boolean finiteNonNegative(Object value) {
    if (value instanceof Double || value instanceof Float) {
      double d = ((Number) value).doubleValue();
      return 0 <= d && d < Double.POSITIVE_INFINITY;
    }
    return asLong(value) >= 0;
  }
}
