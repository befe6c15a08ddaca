package io.uxstream.udf;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.avro.Schema;

/**
 * Decodes and validates ux.events payloads exactly as {@code jobs.common.contract.EventDecoder.decode}
 * does (the spec): Confluent framing, writer schema from the catalog by id, resolution to the reader schema
 * (the latest ux.events-value version), no trailing bytes, then {@link EventLimits} (the record size before
 * anything else, the field limits after decoding) and {@link EventRules}. Same reason code for
 * every input, same detail text (undecodable bodies: same exception name and message as fastavro, minus
 * Python object addresses). Never throws.
 *
 * <p>Not thread-safe (reuses one input cursor): one instance per task, like the Python decoder.
 */
public final class EventDecoder {
  public static final String BAD_MAGIC_BYTE = "bad_magic_byte";
  public static final String TRUNCATED_FRAME = "truncated_frame";
  public static final String UNKNOWN_SCHEMA_ID = "unknown_schema_id";
  public static final String UNDECODABLE_AVRO = "undecodable_avro";
  public static final String MISSING_FIELD = EventRules.MISSING_FIELD;
  public static final String IMPOSSIBLE_VALUE = EventRules.IMPOSSIBLE_VALUE;
  public static final List<String> REASONS = List.of(
      BAD_MAGIC_BYTE, TRUNCATED_FRAME, UNKNOWN_SCHEMA_ID, UNDECODABLE_AVRO, MISSING_FIELD, IMPOSSIBLE_VALUE);

  static final int HEADER_SIZE = 5;

  private final Catalog catalog;
  private final Schema reader;
  private final String readerName;
  private final List<String> fieldNames;
  private final EventRules rules;
  private final EventLimits limits;
  private final int comment; // feedback_comment's position (-1 before schema v3): scrubbed when valid
  private final Map<Long, Plans.RecordPlan> plans = new HashMap<>();
  private final Input input = new Input();

  public EventDecoder() {
    this(Catalog.bundled());
  }

  public EventDecoder(Catalog catalog) {
    this.catalog = catalog;
    this.reader = readerSchema(catalog);
    this.readerName = reader.getFullName();
    List<String> names = new ArrayList<>();
    for (Schema.Field field : reader.getFields()) {
      names.add(field.name());
    }
    this.fieldNames = List.copyOf(names);
    this.rules = new EventRules(fieldNames);
    this.limits = new EventLimits(reader);
    this.comment = fieldNames.indexOf(CommentScrub.FIELD);
    for (Catalog.Entry entry : catalog.entries()) { // compile every event version up front: fail fast
      if (entry.schema.getFullName().equals(readerName)) {
        plans.put((long) entry.id, new Plans.RecordPlan(entry.schema, reader));
      }
    }
  }

  /** The reader schema of decoded events: the latest version of ux.events-value. */
  public static Schema readerSchema(Catalog catalog) {
    Schema schema = catalog.latest(Catalog.EVENT_SUBJECT).schema;
    if (schema.getType() != Schema.Type.RECORD) {
      throw new IllegalStateException("the " + Catalog.EVENT_SUBJECT + " schema is not a record");
    }
    return schema;
  }

  public Schema reader() {
    return reader;
  }

  public List<String> fieldNames() {
    return fieldNames;
  }

  /** The character limit applied to each string field (and -1 for properties), in check order. */
  public Map<String, Integer> appliedLimits() {
    return limits.applied(fieldNames);
  }

  public DecodeResult decode(byte[] payload) {
    try {
      return decodeUnsafe(payload);
    } catch (RuntimeException | StackOverflowError e) {
      // Not expected for any input (the parity fuzz tests say so); never let one record fail a job.
      return DecodeResult.invalid(UNDECODABLE_AVRO, "decoder error: " + e, null);
    }
  }

  private DecodeResult decodeUnsafe(byte[] payload) {
    if (payload == null) {
      return DecodeResult.invalid(TRUNCATED_FRAME, "null value (tombstone): no wire header", null);
    }
    String[] tooBig = EventLimits.recordSize(payload.length); // first: a larger record is never parsed
    if (tooBig != null) {
      return DecodeResult.invalid(tooBig[0], tooBig[1], null);
    }
    if (payload.length < HEADER_SIZE) {
      return DecodeResult.invalid(
          TRUNCATED_FRAME,
          payload.length + " bytes, a Confluent frame needs at least " + HEADER_SIZE,
          null);
    }
    int magic = payload[0] & 0xff;
    if (magic != 0) {
      String hex = Integer.toHexString(magic);
      return DecodeResult.invalid(
          BAD_MAGIC_BYTE,
          "first byte is 0x" + (hex.length() == 1 ? "0" + hex : hex) + ", expected 0x00 (Confluent wire format)",
          null);
    }
    long schemaId = ((payload[1] & 0xffL) << 24)
        | ((payload[2] & 0xffL) << 16)
        | ((payload[3] & 0xffL) << 8)
        | (payload[4] & 0xffL);
    Plans.RecordPlan plan = plans.get(schemaId);
    if (plan == null) {
      Catalog.Entry entry = catalog.byId(schemaId);
      if (entry == null) {
        return DecodeResult.invalid(UNKNOWN_SCHEMA_ID, "schema id " + schemaId + " is not registered", schemaId);
      }
      return DecodeResult.invalid(
          UNKNOWN_SCHEMA_ID,
          "schema id " + schemaId + " is " + entry.schema.getFullName() + ", not a UX event schema ("
              + readerName + ")",
          schemaId);
    }
    Input in = input;
    in.reset(payload, HEADER_SIZE, payload.length);
    Object[] values;
    try {
      values = plan.read(in);
    } catch (DecodeError e) {
      int size = payload.length - HEADER_SIZE;
      return DecodeResult.invalid(
          UNDECODABLE_AVRO,
          "body of " + size + " bytes does not decode with schema id " + schemaId + " (" + e.why() + ")",
          schemaId);
    }
    int trailing = in.remaining();
    if (trailing > 0) {
      return DecodeResult.invalid(
          UNDECODABLE_AVRO,
          trailing + " trailing byte(s) after the record (schema id " + schemaId + ")",
          schemaId);
    }
    String[] problem = limits.validate(values);
    if (problem == null) {
      problem = rules.validate(values);
    }
    if (problem != null) {
      return DecodeResult.invalid(problem[0], problem[1], schemaId);
    }
    if (comment >= 0 && values[comment] instanceof byte[]) {
      values[comment] = CommentScrub.scrub((byte[]) values[comment]);
    }
    return DecodeResult.valid(schemaId, values);
  }
}
