package io.uxstream.udf;

import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * Line protocol over the pure decoder, for the JVM/Python parity tests (no Flink needed):
 *
 * <pre>
 *   java -cp uxstream-udf.jar io.uxstream.udf.DecodeCli             # payloads in, verdicts out
 *   java -cp uxstream-udf.jar io.uxstream.udf.DecodeCli --constants # the validity constants as JSON
 *   java -cp uxstream-udf.jar io.uxstream.udf.DecodeCli --scrub       # hex UTF-8 lines in, scrubbed out
 *   java -cp uxstream-udf.jar io.uxstream.udf.DecodeCli --bench FILE ROUNDS  # decode speed, one core
 *   java -cp uxstream-udf.jar:flink-dist.jar:flink-table-*.jar io.uxstream.udf.DecodeCli --event-time  # ux_event_time
 * </pre>
 *
 * Each input line is a payload in hex ({@code -} for a null value); each output line is one JSON object:
 * {@code {"reason":…,"detail":…,"schema_id":…,"event":{…}|null}}, flushed per line. Event values: strings
 * as JSON strings, ints/longs as numbers, floats/doubles as strings holding Python's repr(),
 * maps as objects.
 */
public final class DecodeCli {
  private DecodeCli() {}

  public static void main(String[] args) throws IOException {
    BufferedWriter out = new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8));
    if (args.length == 1 && args[0].equals("--constants")) {
      StringBuilder json = new StringBuilder("{");
      json.append("\"EVENT_TYPES\":");
      strings(json, EventRules.EVENT_TYPES);
      json.append(",\"MIN_TS_MS\":").append(EventRules.MIN_TS_MS);
      json.append(",\"MAX_TS_MS\":").append(EventRules.MAX_TS_MS);
      json.append(",\"REQUIRED_STRINGS\":");
      strings(json, EventRules.REQUIRED_STRINGS);
      json.append(",\"NON_NEGATIVE_NUMBERS\":");
      strings(json, EventRules.NON_NEGATIVE_NUMBERS);
      json.append(",\"WEB_VITALS\":");
      strings(json, EventRules.WEB_VITALS);
      json.append(",\"REASONS\":");
      strings(json, EventDecoder.REASONS);
      json.append(",\"READER_FIELDS\":");
      strings(json, new EventDecoder().fieldNames());
      json.append(",\"DEAD_LETTER_SCHEMA_ID\":").append(new DeadLetterEncoder().schemaId());
      json.append(",\"MAX_RECORD_BYTES\":").append(EventLimits.MAX_RECORD_BYTES);
      json.append(",\"DEFAULT_STRING_LIMIT\":").append(EventLimits.DEFAULT_STRING_LIMIT);
      json.append(",\"MAX_PROPERTIES\":").append(EventLimits.MAX_PROPERTIES);
      json.append(",\"MAX_PROPERTY_KEY\":").append(EventLimits.MAX_PROPERTY_KEY);
      json.append(",\"MAX_PROPERTY_VALUE\":").append(EventLimits.MAX_PROPERTY_VALUE);
      json.append(",\"PROPERTIES_FIELD\":");
      string(json, EventLimits.PROPERTIES_FIELD);
      json.append(",\"STRING_LIMITS\":");
      ints(json, EventLimits.STRING_LIMITS);
      json.append(",\"FEEDBACK_SCALES\":");
      strings(json, FeedbackRules.SCALES);
      json.append(",\"FEEDBACK_BOUNDS\":[");
      for (int i = 0; i < FeedbackRules.BOUNDS.length; i++) {
        json.append(i > 0 ? "," : "").append('[').append(FeedbackRules.BOUNDS[i][0]).append(',')
            .append(FeedbackRules.BOUNDS[i][1]).append(']');
      }
      json.append("],\"EMAIL_PATTERN\":");
      string(json, CommentScrub.EMAIL.pattern());
      json.append(",\"NUMBER_PATTERN\":");
      string(json, CommentScrub.NUMBER.pattern());
      json.append(",\"APPLIED_LIMITS\":");
      ints(json, new EventDecoder().appliedLimits());
      out.write(json.append('}').toString());
      out.newLine();
      out.flush();
      return;
    }
    if (args.length == 1 && args[0].equals("--scrub")) {
      BufferedReader lines = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
      String line;
      while ((line = lines.readLine()) != null) {
        byte[] scrubbed = CommentScrub.scrub(hex(line.trim()));
        StringBuilder text = new StringBuilder(scrubbed.length * 2);
        for (byte b : scrubbed) {
          text.append(Character.forDigit((b >> 4) & 0xf, 16)).append(Character.forDigit(b & 0xf, 16));
        }
        out.write(text.toString());
        out.newLine();
        out.flush();
      }
      return;
    }
    if (args.length == 1 && args[0].equals("--event-time")) {
      eventTimes(out);
      return;
    }
    if (args.length == 3 && args[0].equals("--bench")) {
      bench(out, java.nio.file.Path.of(args[1]), Integer.parseInt(args[2]));
      return;
    }
    EventDecoder decoder = new EventDecoder();
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
    String line;
    StringBuilder json = new StringBuilder(1024);
    while ((line = in.readLine()) != null) {
      line = line.trim();
      byte[] payload = line.equals("-") ? null : hex(line);
      DecodeResult result = decoder.decode(payload);
      json.setLength(0);
      json.append("{\"reason\":");
      string(json, result.reason);
      json.append(",\"detail\":");
      string(json, result.detail);
      json.append(",\"schema_id\":").append(result.schemaId);
      json.append(",\"event\":");
      if (result.values == null) {
        json.append("null");
      } else {
        json.append('{');
        List<String> names = decoder.fieldNames();
        for (int i = 0; i < names.size(); i++) {
          if (i > 0) {
            json.append(',');
          }
          string(json, names.get(i));
          json.append(':');
          value(json, result.values[i]);
        }
        json.append('}');
      }
      json.append('}');
      out.write(json.toString());
      out.newLine();
      out.flush();
    }
  }

  /** Decode every payload of a hex-lines file `rounds` times; print {"events", "seconds"} of the last half. */
  private static void bench(BufferedWriter out, java.nio.file.Path file, int rounds) throws IOException {
    List<byte[]> payloads = new java.util.ArrayList<>();
    for (String line : java.nio.file.Files.readAllLines(file, StandardCharsets.US_ASCII)) {
      if (!line.isBlank()) {
        payloads.add(hex(line.trim()));
      }
    }
    EventDecoder decoder = new EventDecoder();
    long valid = 0;
    long started = 0;
    long events = 0;
    for (int round = 0; round < rounds; round++) {
      if (round == rounds / 2) { // the first half warms the JIT up
        started = System.nanoTime();
        events = 0;
      }
      for (byte[] payload : payloads) {
        valid += decoder.decode(payload).isValid() ? 1 : 0;
        events++;
      }
    }
    double seconds = (System.nanoTime() - started) / 1e9;
    out.write("{\"events\":" + events + ",\"seconds\":" + seconds + ",\"valid\":" + valid + "}");
    out.newLine();
    out.flush();
  }

  /**
   * The Flink function {@code ux_event_time(payload)} (no Flink runtime: the function opened without a
   * context) over payload lines: one {@code {"event_time": ms|null}} line each.
   */
  private static void eventTimes(BufferedWriter out) throws IOException {
    UxEventTime function = new UxEventTime();
    function.open(null);
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
    String line;
    while ((line = in.readLine()) != null) {
      line = line.trim();
      Long time = function.eval(line.equals("-") ? null : hex(line));
      out.write("{\"event_time\":" + time + "}");
      out.newLine();
      out.flush();
    }
  }

  private static void ints(StringBuilder json, java.util.Map<String, Integer> values) {
    json.append('{');
    boolean first = true;
    for (java.util.Map.Entry<String, Integer> entry : values.entrySet()) {
      if (!first) {
        json.append(',');
      }
      first = false;
      string(json, entry.getKey());
      json.append(':').append(entry.getValue());
    }
    json.append('}');
  }

  private static byte[] hex(String text) {
    byte[] bytes = new byte[text.length() / 2];
    for (int i = 0; i < bytes.length; i++) {
      bytes[i] = (byte) Integer.parseInt(text.substring(2 * i, 2 * i + 2), 16);
    }
    return bytes;
  }

  private static void strings(StringBuilder json, List<String> values) {
    json.append('[');
    for (int i = 0; i < values.size(); i++) {
      if (i > 0) {
        json.append(',');
      }
      string(json, values.get(i));
    }
    json.append(']');
  }

  private static void value(StringBuilder json, Object value) {
    if (value == null) {
      json.append("null");
    } else if (value instanceof byte[]) {
      string(json, new String((byte[]) value, StandardCharsets.UTF_8));
    } else if (value instanceof Double || value instanceof Float) {
      string(json, PyText.repr(value));
    } else if (value instanceof Utf8Map) {
      Utf8Map map = (Utf8Map) value;
      json.append('{');
      for (int i = 0; i < map.size(); i++) {
        if (i > 0) {
          json.append(',');
        }
        string(json, new String(map.key(i), StandardCharsets.UTF_8));
        json.append(':');
        value(json, map.value(i));
      }
      json.append('}');
    } else {
      json.append(value); // Integer, Long, Boolean
    }
  }

  private static void string(StringBuilder json, String value) {
    if (value == null) {
      json.append("null");
      return;
    }
    json.append('"');
    for (int i = 0; i < value.length(); i++) {
      char c = value.charAt(i);
      if (c == '"' || c == '\\') {
        json.append('\\').append(c);
      } else if (c < 0x20 || c > 0x7e) {
        json.append(String.format("\\u%04x", (int) c)); // surrogate pairs stay pairs: valid JSON
      } else {
        json.append(c);
      }
    }
    json.append('"');
  }
}
