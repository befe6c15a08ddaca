package io.uxstream.udf;

import java.nio.ByteBuffer;
import org.apache.avro.generic.GenericData;

/**
 * Confluent-framed Avro of a dead letter (the latest version of subject ux.events.dlq-value, with its
 * catalog id in the header): the same bytes {@code contract.encode(contract.dead_letter(...), id)} writes.
 * Not thread-safe (reuses its buffer and encoder): one instance per task.
 */
public final class DeadLetterEncoder {
  private final FramedAvro framed;

  public DeadLetterEncoder() {
    this(Catalog.bundled());
  }

  public DeadLetterEncoder(Catalog catalog) {
    this.framed = new FramedAvro(catalog.latest(Catalog.DEAD_LETTER_SUBJECT));
  }

  public int schemaId() {
    return framed.schemaId;
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
    GenericData.Record record = new GenericData.Record(framed.schema);
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
    return framed.write(record);
  }
}
