package io.uxstream.udf;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Map;
import org.apache.avro.Schema;

/**
 * The size and content limits of {@code jobs/common/limits.py} (the one definition), applied as
 * {@code jobs.common.contract.limits_problem} and {@code record_size_problem} apply them: same order, same
 * reason ({@code impossible_value}), same detail text. The constants are a copy: the JVM cannot import the
 * Python module, so {@code DecodeCli --constants} prints them and {@code tests/decode/test_decode_parity.py}
 * fails when they differ from the module.
 *
 * <p>Order (the first failing rule decides):
 *
 * <ol>
 *   <li>the record (Kafka value, header included) is at most {@link #MAX_RECORD_BYTES} bytes: checked by
 *       {@link EventDecoder} before the header is read;
 *   <li>every field of the reader schema in schema order: a string field at most its limit in code points
 *       ({@link #STRING_LIMITS}, else {@link #DEFAULT_STRING_LIMIT}), then no NUL; {@code properties} at
 *       most {@link #MAX_PROPERTIES} entries, then per entry in map order key length, key NUL, value length,
 *       value NUL;
 *   <li>then {@link EventRules}.
 * </ol>
 *
 * Strings arrive as UTF-8 bytes that {@link Input#readUtf8} validated as CPython does (no surrogates, no
 * overlong forms), so the Python rule against lone surrogates can never fire here: a surrogate on the wire
 * is {@code undecodable_avro} in both decoders. Code points are counted as the UTF-8 bytes that are not
 * continuation bytes; only strings with more bytes than their limit need counting.
 */
final class EventLimits {
  static final int MAX_RECORD_BYTES = 32_768;
  static final int DEFAULT_STRING_LIMIT = 1_024;
  static final int MAX_PROPERTIES = 64;
  static final int MAX_PROPERTY_KEY = 128;
  static final int MAX_PROPERTY_VALUE = 256;
  static final String PROPERTIES_FIELD = "properties";

  /** In the order of jobs/common/limits.py (schema order). */
  static final Map<String, Integer> STRING_LIMITS = orderedLimits(
      "event_id", 128,
      "event_type", 32,
      "event_name", 128,
      "user_id", 256,
      "anonymous_id", 128,
      "page_url", 2_048,
      "page_path", 512,
      "page_title", 1_024,
      "referrer", 2_048,
      "utm_source", 256,
      "utm_medium", 256,
      "utm_campaign", 256,
      "device_type", 32,
      "os", 64,
      "browser", 64,
      "user_agent", 1_024,
      "country", 16,
      "app_version", 64,
      "error_type", 128,
      "error_message", 4_096,
      "session_hint", 128,
      "consent", 32,
      "ip", 64,
      "survey_id", 128,
      "feedback_scale", 8,
      "feedback_comment", 1_000);

  private static final int MAP = -1;
  private static final VarHandle LONGS =
      MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);

  private final int[] fields; // reader positions checked, in schema order
  private final int[] limits; // character limit per checked field; MAP for properties
  private final String[] labels; // "field 'name'"

  /** Limits over records in {@code reader}'s field order. */
  EventLimits(Schema reader) {
    List<Schema.Field> all = reader.getFields();
    int[] positions = new int[all.size()];
    int[] bounds = new int[all.size()];
    String[] names = new String[all.size()];
    int count = 0;
    for (Schema.Field field : all) {
      int limit;
      if (field.name().equals(PROPERTIES_FIELD)) {
        limit = MAP;
      } else if (isString(field.schema())) {
        limit = STRING_LIMITS.getOrDefault(field.name(), DEFAULT_STRING_LIMIT);
      } else {
        continue;
      }
      positions[count] = field.pos();
      bounds[count] = limit;
      names[count] = "field '" + field.name() + "'";
      count++;
    }
    fields = java.util.Arrays.copyOf(positions, count);
    limits = java.util.Arrays.copyOf(bounds, count);
    labels = java.util.Arrays.copyOf(names, count);
  }

  private static boolean isString(Schema schema) {
    if (schema.getType() == Schema.Type.UNION) {
      for (Schema branch : schema.getTypes()) {
        if (branch.getType() == Schema.Type.STRING) {
          return true;
        }
      }
      return false;
    }
    return schema.getType() == Schema.Type.STRING;
  }

  /** The character limit applied to each checked reader field, in order ({@code -1}: the properties map). */
  Map<String, Integer> applied(List<String> fieldNames) {
    Map<String, Integer> out = new java.util.LinkedHashMap<>();
    for (int i = 0; i < fields.length; i++) {
      out.put(fieldNames.get(fields[i]), limits[i]);
    }
    return out;
  }

  /** {reason, detail} when the record value is larger than the limit, else null. */
  static String[] recordSize(int size) {
    if (size > MAX_RECORD_BYTES) {
      return new String[] {
        EventRules.IMPOSSIBLE_VALUE, "record: " + size + " bytes, limit " + MAX_RECORD_BYTES
      };
    }
    return null;
  }

  /** Null when every field is within its limits, else {reason, detail} of the first that is not. */
  String[] validate(Object[] values) {
    for (int i = 0; i < fields.length; i++) {
      Object value = values[fields[i]];
      if (value == null) {
        continue;
      }
      String problem;
      if (limits[i] != MAP) {
        String measure = value instanceof byte[] ? text((byte[]) value, limits[i]) : null;
        problem = measure == null ? null : labels[i] + ": " + measure;
      } else {
        problem = value instanceof Utf8Map ? map(labels[i], (Utf8Map) value) : null;
      }
      if (problem != null) {
        return new String[] {EventRules.IMPOSSIBLE_VALUE, problem};
      }
    }
    return null;
  }

  private static String map(String label, Utf8Map map) {
    int size = map.size();
    if (size > MAX_PROPERTIES) {
      return label + ": " + size + " entries, limit " + MAX_PROPERTIES;
    }
    for (int i = 0; i < size; i++) {
      String measure = text(map.key(i), MAX_PROPERTY_KEY);
      if (measure != null) {
        return label + ": key #" + i + ": " + measure;
      }
      Object item = map.value(i);
      measure = item instanceof byte[] ? text((byte[]) item, MAX_PROPERTY_VALUE) : null;
      if (measure != null) {
        return label + ": value #" + i + ": " + measure;
      }
    }
    return null;
  }

  /**
   * Null when the UTF-8 string has at most {@code limit} code points and no NUL; else the measure part of
   * the detail (the caller prefixes where: nothing is concatenated for a string within its limits).
   */
  private static String text(byte[] utf8, int limit) {
    int length = utf8.length;
    if (length > limit) {
      int chars = 0;
      for (byte b : utf8) {
        chars += (b & 0xc0) != 0x80 ? 1 : 0;
      }
      if (chars > limit) {
        return chars + " characters, limit " + limit;
      }
    }
    int i = 0;
    for (; i + 8 <= length; i += 8) { // eight bytes at a time: any zero byte sets a high bit
      long v = (long) LONGS.get(utf8, i);
      if (((v - 0x0101010101010101L) & ~v & 0x8080808080808080L) != 0) {
        break;
      }
    }
    for (; i < length; i++) {
      if (utf8[i] == 0) {
        int position = 0;
        for (int j = 0; j < i; j++) {
          position += (utf8[j] & 0xc0) != 0x80 ? 1 : 0;
        }
        return "NUL (U+0000) at position " + position + ", not allowed";
      }
    }
    return null;
  }

  private static Map<String, Integer> orderedLimits(Object... pairs) {
    Map<String, Integer> map = new java.util.LinkedHashMap<>();
    for (int i = 0; i < pairs.length; i += 2) {
      map.put((String) pairs[i], (Integer) pairs[i + 1]);
    }
    return java.util.Collections.unmodifiableMap(map);
  }
}
