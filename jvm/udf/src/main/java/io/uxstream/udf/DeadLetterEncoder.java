package io.uxstream.udf;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.EncoderFactory;

/**
 * Confluent-framed Avro of a dead letter (the latest version of subject ux.events.dlq-value, with its
 * catalog id in the header): the same bytes {@code contract.encode(contract.dead_letter(...), id)} writes.
 * Not thread-safe (reuses its buffer and encoder): one instance per task.
 */
public final class DeadLetterEncoder {
  private final int schemaId;
  private final Schema schema;
  private final GenericDatumWriter<GenericRecord> writer;
  private final ByteArrayOutputStream buffer = new ByteArrayOutputStream(512);
  private BinaryEncoder encoder;

  public DeadLetterEncoder() {
    this(Catalog.bundled());
  }

  public DeadLetterEncoder(Catalog catalog) {
    Catalog.Entry entry = catalog.latest(Catalog.DEAD_LETTER_SUBJECT);
    this.schemaId = entry.id;
    this.schema = entry.schema;
    this.writer = new GenericDatumWriter<>(schema);
  }

  public int schemaId() {
    return schemaId;
  }

  /**
   * The framed dead letter. Required strings that are null become "" and a null partition/offset/time -1:
   * the DLQ path must not fail the job either (Kafka metadata is never null in practice).
   */
  public byte[] encode(
      byte[] original,
      byte[] originalKey,
      String sourceTopic,
      Integer sourcePartition,
      Long sourceOffset,
      Long observedAtMs,
      String reason,
      String detail,
      Integer writerSchemaId,
      String job) {
    GenericData.Record record = new GenericData.Record(schema);
    record.put("original", original == null ? null : ByteBuffer.wrap(original));
    record.put("original_key", originalKey == null ? null : ByteBuffer.wrap(originalKey));
    record.put("source_topic", sourceTopic == null ? "" : sourceTopic);
    record.put("source_partition", sourcePartition == null ? -1 : sourcePartition);
    record.put("source_offset", sourceOffset == null ? -1L : sourceOffset);
    record.put("observed_at", observedAtMs == null ? -1L : observedAtMs);
    record.put("reason", reason == null ? "" : reason);
    record.put("detail", detail == null ? "" : detail);
    record.put("schema_id", writerSchemaId);
    record.put("job", job == null ? "" : job);
    buffer.reset();
    buffer.write(0);
    buffer.write(schemaId >>> 24);
    buffer.write(schemaId >>> 16);
    buffer.write(schemaId >>> 8);
    buffer.write(schemaId);
    encoder = EncoderFactory.get().binaryEncoder(buffer, encoder);
    try {
      writer.write(record, encoder);
      encoder.flush();
    } catch (IOException e) {
      throw new UncheckedIOException(e); // cannot happen: in-memory buffer
    }
    return buffer.toByteArray();
  }
}
