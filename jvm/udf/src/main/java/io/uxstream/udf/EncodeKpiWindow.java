package io.uxstream.udf;

import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.nio.charset.StandardCharsets;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.HexFormat;
import java.util.List;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.InputGroup;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code encode_kpi_window(window_kind STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3),
 * dimension STRING, dimension_value STRING, v1, v2, ...) -> BYTES}: the Confluent-framed Avro record of
 * the latest ux.kpi-value schema (kpi_window.v2) for the ux.kpi sink ({@code value.format = raw}). The
 * window bounds are UTC wall-clock timestamps ({@code to_utc(...)}); the values after the five key fields
 * are the schema's remaining fields in the schema's order ({@code job.kpi_topic_insert} renders them from
 * {@code jobs.sessionize.logic.kpi_window_record}): a BIGINT for a long field, a DOUBLE for a double
 * field, an INT for {@code revision}; NULL for a metric the window kind does not carry (a null revision
 * is 0). The JVM twin of {@code contract.frame(id, contract.encode_body(kpi_window_record(...), entry))}
 * (issue 17: no Python worker in sessionize); called once per final window row.
 */
public class EncodeKpiWindow extends ScalarFunction {
  private static final long serialVersionUID = 1L;
  static final String KPI_SUBJECT = "ux.kpi-value";
  private static final int KEY_FIELDS = 5;

  private transient Encoder encoder;

  /** The encoder of the bundled catalog's latest kpi_window schema. Not thread-safe: one per task. */
  static final class Encoder {
    private final FramedAvro framed;
    private final List<Schema.Field> fields;
    private final Schema.Type[] types;
    private final boolean[] nullable;

    Encoder(Catalog catalog) {
      framed = new FramedAvro(catalog.latest(KPI_SUBJECT));
      fields = framed.schema.getFields();
      types = new Schema.Type[fields.size()];
      nullable = new boolean[fields.size()];
      for (int i = 0; i < fields.size(); i++) {
        Schema schema = fields.get(i).schema();
        if (schema.isUnion()) {
          nullable[i] = true;
          for (Schema branch : schema.getTypes()) {
            if (branch.getType() != Schema.Type.NULL) {
              schema = branch;
            }
          }
        }
        types[i] = schema.getType();
      }
    }

    byte[] encode(
        String kind, long startMs, long endMs, String dimension, String dimensionValue, Object[] values) {
      if (values.length != fields.size() - KEY_FIELDS) {
        throw new IllegalArgumentException(
            "encode_kpi_window: " + values.length + " values after the key fields, but "
                + framed.entry.file + " (schema id " + framed.schemaId + ") has "
                + (fields.size() - KEY_FIELDS) + " fields after them");
      }
      GenericData.Record record = new GenericData.Record(framed.schema);
      record.put(0, kind);
      record.put(1, startMs);
      record.put(2, endMs);
      record.put(3, dimension);
      record.put(4, dimensionValue);
      for (int i = 0; i < values.length; i++) {
        int field = KEY_FIELDS + i;
        record.put(field, convert(field, values[i]));
      }
      return framed.write(record);
    }

    private Object convert(int field, Object value) {
      if (value == null) {
        if (nullable[field]) {
          return null;
        }
        if (types[field] == Schema.Type.INT) {
          return 0; // revision: as the Python encoder's int(revision or 0)
        }
        throw new IllegalArgumentException(
            "encode_kpi_window: " + fields.get(field).name() + " must not be NULL");
      }
      if (!(value instanceof Number)) {
        throw new IllegalArgumentException(
            "encode_kpi_window: " + fields.get(field).name() + " must be a number, got "
                + value.getClass().getSimpleName());
      }
      Number number = (Number) value;
      switch (types[field]) {
        case LONG:
          return number.longValue();
        case INT:
          return number.intValue();
        case DOUBLE:
          return number.doubleValue();
        default:
          throw new IllegalStateException(
              "encode_kpi_window: unsupported field type " + types[field] + " of "
                  + fields.get(field).name());
      }
    }
  }

  @Override
  public void open(FunctionContext context) {
    encoder = new Encoder(Catalog.bundled());
  }

  public byte[] eval(
      String windowKind,
      @DataTypeHint("TIMESTAMP(3)") LocalDateTime windowStart,
      @DataTypeHint("TIMESTAMP(3)") LocalDateTime windowEnd,
      String dimension,
      String dimensionValue,
      @DataTypeHint(inputGroup = InputGroup.ANY) Object... values) {
    if (encoder == null) {
      open(null);
    }
    return encoder.encode(
        windowKind, epochMs(windowStart), epochMs(windowEnd), dimension, dimensionValue, values);
  }

  private static long epochMs(LocalDateTime utcWallClock) {
    return utcWallClock.toInstant(ZoneOffset.UTC).toEpochMilli();
  }

  /**
   * Parity CLI (tests/sessionize/test_kpi_encoder_parity.py): one JSON array per stdin line, {@code
   * [kind, start_ms, end_ms, dimension, dimension_value, values...]} (integers for long and int fields,
   * numbers or NaN/Infinity for double fields, null); one line of hex per record on stdout.
   */
  public static void main(String[] args) throws IOException {
    ObjectMapper mapper =
        JsonMapper.builder().enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS).build();
    Encoder encoder = new Encoder(Catalog.bundled());
    HexFormat hex = HexFormat.of();
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    BufferedWriter out = new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8));
    String line;
    while ((line = in.readLine()) != null) {
      JsonNode row = mapper.readTree(line);
      Object[] values = new Object[row.size() - KEY_FIELDS];
      for (int i = 0; i < values.length; i++) {
        JsonNode value = row.get(KEY_FIELDS + i);
        if (value.isIntegralNumber()) {
          values[i] = Long.valueOf(value.longValue()); // not a ?: with doubles: that would widen it
        } else if (!value.isNull()) {
          values[i] = Double.valueOf(value.doubleValue());
        }
      }
      byte[] framed =
          encoder.encode(
              row.get(0).asText(), row.get(1).asLong(), row.get(2).asLong(), row.get(3).asText(),
              row.get(4).asText(), values);
      out.write(hex.formatHex(framed));
      out.newLine();
    }
    out.flush();
  }
}
