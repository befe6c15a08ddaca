package io.uxstream.udf;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.avro.JsonProperties;
import org.apache.avro.Schema;

/**
 * Compiles (writer schema, reader schema) pairs into readers with fastavro's schema-resolution rules, so a
 * record written with any catalog version is read into the latest one exactly as the Python decoder reads
 * it (fields matched by name, then alias; writer-only fields skipped; reader-only fields take their
 * default; numeric promotions; unions resolved branch by branch with Python's negative-index wraparound).
 *
 * <p>Why not Avro's GenericDatumReader/ResolvingDecoder: on malformed input they disagree with fastavro
 * (negative union indexes, over-long varints, invalid UTF-8 decoded leniently, int ranges, map block
 * counts), and the Python module is the spec: both decoders must give every input the same reason code.
 * Avro's Java library still parses the schemas and supplies their defaults, and writes the dead letters.
 */
final class Plans {
  private Plans() {}

  /** Reads one value. */
  abstract static class Reader {
    abstract Object read(Input in) throws DecodeError;
  }

  /** Skips one value of a writer-only field. */
  abstract static class Skipper {
    abstract void skip(Input in) throws DecodeError;
  }

  /** A writer/reader pair fastavro cannot resolve fails when the value is reached, as in Python. */
  private static final class Mismatch extends Reader {
    private final String message;

    Mismatch(String message) {
      this.message = message;
    }

    @Override
    Object read(Input in) throws DecodeError {
      throw new DecodeError("SchemaResolutionError", message);
    }
  }

  private static final Reader NULL = new Reader() {
    @Override
    Object read(Input in) {
      return null;
    }
  };

  private static final Reader BOOLEAN = new Reader() {
    @Override
    Object read(Input in) throws DecodeError {
      return in.readBoolean();
    }
  };

  /**
   * Avro int. fastavro reads it as a 64-bit varint and keeps any value; a SQL INT cannot hold more than 32
   * bits, so the JVM rejects such a body as undecodable (the one deliberate difference from Python, where
   * the record decodes: see NOTES.md).
   */
  private static final Reader INT = new Reader() {
    @Override
    Object read(Input in) throws DecodeError {
      long value = in.readLong();
      if (value != (int) value) {
        throw new DecodeError("OverflowError", "int value " + value + " does not fit in 32 bits");
      }
      return (int) value;
    }
  };

  private static final Reader LONG = new Reader() {
    @Override
    Object read(Input in) throws DecodeError {
      return in.readLong();
    }
  };

  private static final Reader LONG_AS_DOUBLE = new Reader() {
    @Override
    Object read(Input in) throws DecodeError {
      return (double) in.readLong();
    }
  };

  private static final Reader LONG_AS_FLOAT = new Reader() {
    @Override
    Object read(Input in) throws DecodeError {
      return (float) (double) in.readLong();
    }
  };

  private static final Reader FLOAT = new Reader() {
    @Override
    Object read(Input in) throws DecodeError {
      return in.readFloat();
    }
  };

  private static final Reader FLOAT_AS_DOUBLE = new Reader() {
    @Override
    Object read(Input in) throws DecodeError {
      return (double) in.readFloat();
    }
  };

  private static final Reader DOUBLE = new Reader() {
    @Override
    Object read(Input in) throws DecodeError {
      return in.readDouble();
    }
  };

  private static final Reader BYTES = new Reader() {
    @Override
    Object read(Input in) throws DecodeError {
      return in.readBytes();
    }
  };

  private static final Reader UTF8 = new Reader() {
    @Override
    Object read(Input in) throws DecodeError {
      return in.readUtf8();
    }
  };

  private static final class MapReader extends Reader {
    private final Reader values;

    MapReader(Reader values) {
      this.values = values;
    }

    @Override
    Object read(Input in) throws DecodeError {
      Utf8Map map = new Utf8Map();
      long count = in.readLong();
      while (count != 0) {
        if (count < 0) {
          in.readLong(); // block size in bytes, unused (as fastavro)
          count = -count; // Long.MIN_VALUE stays negative: an empty block, as range() in Python
        }
        for (long i = 0; i < count; i++) {
          byte[] key = in.readUtf8();
          map.put(key, values.read(in)); // a repeated key keeps its first position and the last value
        }
        count = in.readLong();
      }
      return map;
    }
  }

  private static final class UnionReader extends Reader {
    private final Reader[] branches;

    UnionReader(Reader[] branches) {
      this.branches = branches;
    }

    @Override
    Object read(Input in) throws DecodeError {
      return branches[in.readUnionIndex(branches.length)].read(in);
    }
  }

  // ---------------------------------------------------------------------------------------- matching

  private static boolean isNamed(Schema.Type type) {
    return type == Schema.Type.RECORD || type == Schema.Type.ENUM || type == Schema.Type.FIXED;
  }

  private static boolean isComplex(Schema.Type type) {
    return isNamed(type) || type == Schema.Type.MAP || type == Schema.Type.ARRAY;
  }

  /** fastavro's match_types: may a writer value of this schema be read as the reader schema? */
  static boolean matchTypes(Schema writer, Schema reader) {
    Schema.Type w = writer.getType();
    Schema.Type r = reader.getType();
    if (w == Schema.Type.UNION || r == Schema.Type.UNION) {
      return true;
    }
    if (isComplex(w) || isComplex(r)) {
      return matchSchemas(writer, reader) != null;
    }
    if (w == r) {
      return true;
    }
    switch (w) {
      case INT:
        return r == Schema.Type.LONG || r == Schema.Type.FLOAT || r == Schema.Type.DOUBLE;
      case LONG:
        return r == Schema.Type.FLOAT || r == Schema.Type.DOUBLE;
      case FLOAT:
        return r == Schema.Type.DOUBLE;
      case STRING:
        return r == Schema.Type.BYTES;
      case BYTES:
        return r == Schema.Type.STRING;
      default:
        return false;
    }
  }

  /** fastavro's match_schemas for a non-union writer: the reader schema to read with, or null. */
  static Schema matchSchemas(Schema writer, Schema reader) {
    if (reader.getType() == Schema.Type.UNION) {
      for (Schema branch : reader.getTypes()) {
        if (matchTypes(writer, branch)) {
          return branch;
        }
      }
      return null;
    }
    Schema.Type w = writer.getType();
    Schema.Type r = reader.getType();
    if (w == Schema.Type.MAP && r == Schema.Type.MAP) {
      return matchTypes(writer.getValueType(), reader.getValueType()) ? reader : null;
    }
    if (w == Schema.Type.ARRAY && r == Schema.Type.ARRAY) {
      return matchTypes(writer.getElementType(), reader.getElementType()) ? reader : null;
    }
    if (isNamed(w) && isNamed(r)) {
      if (w == Schema.Type.FIXED && r == Schema.Type.FIXED && writer.getFixedSize() != reader.getFixedSize()) {
        return null;
      }
      boolean sameName = writer.getFullName().equals(reader.getFullName())
          || reader.getAliases().contains(writer.getFullName());
      return sameName ? reader : null;
    }
    return matchTypes(writer, reader) ? reader : null;
  }

  // --------------------------------------------------------------------------------------- compiling

  /** A reader of values written as {@code writer}, resolved to {@code reader} (null: the same schema). */
  static Reader compile(Schema writer, Schema reader) {
    if (reader != null && writer.equals(reader)) {
      reader = null;
    }
    if (reader != null && writer.getType() != Schema.Type.UNION) {
      Schema matched = matchSchemas(writer, reader);
      if (matched == null) {
        return new Mismatch("Schema mismatch: " + writer + " is not " + reader);
      }
      reader = matched;
    }
    Schema.Type target = reader == null ? writer.getType() : reader.getType();
    switch (writer.getType()) {
      case NULL:
        return NULL;
      case BOOLEAN:
        return BOOLEAN;
      case INT:
        if (target == Schema.Type.INT) {
          return INT;
        }
        return target == Schema.Type.LONG ? LONG : target == Schema.Type.FLOAT ? LONG_AS_FLOAT : LONG_AS_DOUBLE;
      case LONG:
        return target == Schema.Type.LONG ? LONG : target == Schema.Type.FLOAT ? LONG_AS_FLOAT : LONG_AS_DOUBLE;
      case FLOAT:
        return target == Schema.Type.FLOAT ? FLOAT : FLOAT_AS_DOUBLE;
      case DOUBLE:
        return DOUBLE;
      case BYTES:
        return target == Schema.Type.STRING ? UTF8 : BYTES;
      case STRING:
        return UTF8; // string read as bytes: fastavro decodes first, then encodes (same bytes)
      case MAP:
        return new MapReader(compile(writer.getValueType(), reader == null ? null : reader.getValueType()));
      case UNION:
        return union(writer, reader);
      default:
        throw new UnsupportedOperationException(
            "uxstream-udf cannot decode Avro " + writer.getType() + " values (" + writer + ")");
    }
  }

  private static Reader union(Schema writer, Schema reader) {
    List<Schema> branches = writer.getTypes();
    Reader[] readers = new Reader[branches.size()];
    for (int i = 0; i < readers.length; i++) {
      Schema branch = branches.get(i);
      if (reader == null) {
        readers[i] = compile(branch, null);
      } else if (reader.getType() != Schema.Type.UNION) {
        readers[i] = matchTypes(branch, reader)
            ? compile(branch, reader)
            : new Mismatch("schema mismatch: " + writer + " not found in " + reader);
      } else {
        Reader chosen = null;
        for (Schema candidate : reader.getTypes()) {
          if (matchTypes(branch, candidate)) {
            chosen = compile(branch, candidate);
            break;
          }
        }
        readers[i] = chosen != null ? chosen : new Mismatch("schema mismatch: " + writer + " not found in " + reader);
      }
    }
    return new UnionReader(readers);
  }

  /** A skipper for values of a writer-only field (fastavro's _skip_data: no UTF-8 check). */
  static Skipper skipper(Schema writer) {
    switch (writer.getType()) {
      case NULL:
        return new Skipper() {
          @Override
          void skip(Input in) {}
        };
      case BOOLEAN:
        return fixed(1);
      case INT:
      case LONG:
      case ENUM:
        return new Skipper() {
          @Override
          void skip(Input in) throws DecodeError {
            in.readLong();
          }
        };
      case FLOAT:
        return fixed(4);
      case DOUBLE:
        return fixed(8);
      case FIXED:
        return fixed(writer.getFixedSize());
      case STRING:
      case BYTES:
        return new Skipper() {
          @Override
          void skip(Input in) throws DecodeError {
            in.skipBlock();
          }
        };
      case ARRAY:
        return blocks(null, skipper(writer.getElementType()));
      case MAP:
        return blocks(skipper(Schema.create(Schema.Type.STRING)), skipper(writer.getValueType()));
      case UNION: {
        List<Schema> types = writer.getTypes();
        Skipper[] branches = new Skipper[types.size()];
        for (int i = 0; i < branches.length; i++) {
          branches[i] = skipper(types.get(i));
        }
        return new Skipper() {
          @Override
          void skip(Input in) throws DecodeError {
            branches[in.readUnionIndex(branches.length)].skip(in);
          }
        };
      }
      case RECORD: {
        List<Schema.Field> fields = writer.getFields();
        Skipper[] skippers = new Skipper[fields.size()];
        for (int i = 0; i < skippers.length; i++) {
          skippers[i] = skipper(fields.get(i).schema());
        }
        return new Skipper() {
          @Override
          void skip(Input in) throws DecodeError {
            for (Skipper skipper : skippers) {
              skipper.skip(in);
            }
          }
        };
      }
      default:
        throw new UnsupportedOperationException("cannot skip Avro " + writer.getType());
    }
  }

  private static Skipper fixed(int size) {
    return new Skipper() {
      @Override
      void skip(Input in) throws DecodeError {
        in.skipFixed(size);
      }
    };
  }

  private static Skipper blocks(Skipper key, Skipper item) {
    return new Skipper() {
      @Override
      void skip(Input in) throws DecodeError {
        long count = in.readLong();
        while (count != 0) {
          if (count < 0) {
            in.skipFixed(in.readLong());
          } else {
            int bound = key == null ? in.remaining() + 1 : Integer.MAX_VALUE; // zero-size items cannot spin
            for (long i = 0; i < count && i <= bound; i++) {
              if (key != null) {
                key.skip(in);
              }
              item.skip(in);
            }
          }
          count = in.readLong();
        }
      }
    };
  }

  // ------------------------------------------------------------------------------------------ records

  /** Reads a top-level record written as {@code writer} into the field order of {@code reader}. */
  static final class RecordPlan {
    private final Reader[] readers; // per writer field; null when skipped
    private final Skipper[] skippers; // per writer field; null when read
    private final int[] positions; // reader position per writer field
    private final int readerFields;
    private final int[] defaultPositions;
    private final Object[] defaultValues;
    private final String missingDefault; // a reader field with neither a writer value nor a default

    RecordPlan(Schema writer, Schema reader) {
      boolean same = writer.equals(reader);
      List<Schema.Field> writerFields = writer.getFields();
      readerFields = reader.getFields().size();
      readers = new Reader[writerFields.size()];
      skippers = new Skipper[writerFields.size()];
      positions = new int[writerFields.size()];
      Map<String, Schema.Field> aliases = new HashMap<>();
      for (Schema.Field field : reader.getFields()) {
        for (String alias : field.aliases()) {
          aliases.put(alias, field);
        }
      }
      Set<String> written = new HashSet<>();
      for (int i = 0; i < writerFields.size(); i++) {
        Schema.Field field = writerFields.get(i);
        Schema.Field target = reader.getField(field.name());
        if (target == null) {
          target = aliases.get(field.name());
        }
        if (target == null) {
          skippers[i] = skipper(field.schema());
        } else {
          readers[i] = compile(field.schema(), same ? null : target.schema());
          positions[i] = target.pos();
          written.add(target.name());
        }
      }
      List<Integer> defaultsAt = new ArrayList<>();
      List<Object> defaults = new ArrayList<>();
      String missing = null;
      Set<String> writerNames = new HashSet<>();
      for (Schema.Field w : writerFields) {
        writerNames.add(w.name());
      }
      for (Schema.Field field : reader.getFields()) {
        if (written.contains(field.name()) || writerNames.contains(field.name())) {
          continue;
        }
        if (field.hasDefaultValue()) {
          defaultsAt.add(field.pos());
          defaults.add(defaultValue(field.schema(), field.defaultVal()));
        } else if (missing == null) {
          missing = field.name();
        }
      }
      defaultPositions = defaultsAt.stream().mapToInt(Integer::intValue).toArray();
      defaultValues = defaults.toArray();
      missingDefault = missing;
    }

    Object[] read(Input in) throws DecodeError {
      Object[] values = new Object[readerFields];
      for (int i = 0; i < readers.length; i++) {
        Reader reader = readers[i];
        if (reader != null) {
          values[positions[i]] = reader.read(in);
        } else {
          skippers[i].skip(in);
        }
      }
      for (int i = 0; i < defaultPositions.length; i++) {
        values[defaultPositions[i]] = copyDefault(defaultValues[i]);
      }
      if (missingDefault != null) {
        throw new DecodeError("SchemaResolutionError", "No default value for " + missingDefault);
      }
      return values;
    }
  }

  private static Object copyDefault(Object value) {
    return value instanceof Utf8Map ? ((Utf8Map) value).copy() : value;
  }

  /** A field default (Avro's Java form) in the representation the readers produce. */
  static Object defaultValue(Schema schema, Object value) {
    if (value == null || value == JsonProperties.NULL_VALUE) {
      return null;
    }
    if (schema.getType() == Schema.Type.UNION) {
      return defaultValue(schema.getTypes().get(0), value);
    }
    switch (schema.getType()) {
      case STRING:
        return value.toString().getBytes(StandardCharsets.UTF_8);
      case BYTES:
        return value instanceof byte[] ? value : value.toString().getBytes(StandardCharsets.ISO_8859_1);
      case INT:
        return ((Number) value).intValue();
      case LONG:
        return ((Number) value).longValue();
      case FLOAT:
        return ((Number) value).floatValue();
      case DOUBLE:
        return ((Number) value).doubleValue();
      case BOOLEAN:
        return value;
      case MAP: {
        Utf8Map map = new Utf8Map();
        for (Map.Entry<?, ?> entry : ((Map<?, ?>) value).entrySet()) {
          map.put(
              entry.getKey().toString().getBytes(StandardCharsets.UTF_8),
              defaultValue(schema.getValueType(), entry.getValue()));
        }
        return map;
      }
      default:
        throw new UnsupportedOperationException("cannot use a default of Avro type " + schema.getType());
    }
  }
}
