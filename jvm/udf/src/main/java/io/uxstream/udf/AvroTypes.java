package io.uxstream.udf;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.avro.Schema;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.data.GenericMapData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.types.DataType;

/**
 * SQL types of the reader schema's fields, and conversion of decoded values to Flink's internal data.
 * string → STRING, bytes → BYTES, int → INT, long (also timestamp-millis: epoch ms) → BIGINT, float →
 * FLOAT, double → DOUBLE, boolean → BOOLEAN, map → MAP&lt;STRING, …&gt;, ["null", T] → nullable T. Every
 * column is nullable (an invalid record has none of them).
 */
final class AvroTypes {
  private AvroTypes() {}

  /** Converts one decoded value (see {@link DecodeResult}) to Flink's internal representation. */
  interface Converter {
    Object convert(Object value);
  }

  private static final Converter IDENTITY = value -> value;
  private static final Converter STRING = value -> value == null ? null : StringData.fromBytes((byte[]) value);

  static Schema nonNull(Schema schema) {
    if (schema.getType() != Schema.Type.UNION) {
      return schema;
    }
    List<Schema> branches = new ArrayList<>();
    for (Schema branch : schema.getTypes()) {
      if (branch.getType() != Schema.Type.NULL) {
        branches.add(branch);
      }
    }
    if (branches.size() != 1) {
      throw new UnsupportedOperationException(
          "uxstream-udf maps only [\"null\", T] unions to SQL, not " + schema);
    }
    return branches.get(0);
  }

  static DataType dataType(Schema schema) {
    Schema type = nonNull(schema);
    switch (type.getType()) {
      case STRING:
        return DataTypes.STRING();
      case BYTES:
        return DataTypes.BYTES();
      case INT:
        return DataTypes.INT();
      case LONG:
        return DataTypes.BIGINT();
      case FLOAT:
        return DataTypes.FLOAT();
      case DOUBLE:
        return DataTypes.DOUBLE();
      case BOOLEAN:
        return DataTypes.BOOLEAN();
      case MAP:
        return DataTypes.MAP(DataTypes.STRING(), dataType(type.getValueType()));
      default:
        throw new UnsupportedOperationException(
            "uxstream-udf has no SQL mapping for Avro " + type.getType() + " (" + schema + ")");
    }
  }

  static Converter converter(Schema schema) {
    Schema type = nonNull(schema);
    switch (type.getType()) {
      case STRING:
        return STRING;
      case MAP: {
        Converter values = converter(type.getValueType());
        return value -> {
          if (value == null) {
            return null;
          }
          Utf8Map map = (Utf8Map) value;
          Map<Object, Object> converted = new HashMap<>(Math.max(4, map.size() * 2));
          for (int i = 0; i < map.size(); i++) {
            converted.put(StringData.fromBytes(map.key(i)), values.convert(map.value(i)));
          }
          return new GenericMapData(converted);
        };
      }
      default:
        dataType(type); // fails for unsupported types
        return IDENTITY;
    }
  }

  /** ROW fields: reason, detail, schema_id, then every reader field in schema order. */
  static List<DataTypes.Field> rowFields(Schema reader) {
    List<DataTypes.Field> fields = new ArrayList<>();
    fields.add(DataTypes.FIELD("reason", DataTypes.STRING()));
    fields.add(DataTypes.FIELD("detail", DataTypes.STRING()));
    fields.add(DataTypes.FIELD("schema_id", DataTypes.INT()));
    for (Schema.Field field : reader.getFields()) {
      String name = field.name();
      if (name.equals("reason") || name.equals("detail") || name.equals("schema_id")) {
        throw new IllegalStateException("ux_event field '" + name + "' clashes with a decode_ux_event column");
      }
      fields.add(DataTypes.FIELD(name, dataType(field.schema())));
    }
    return fields;
  }
}
