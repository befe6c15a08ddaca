package io.uxstream.udf;

import java.time.Instant;
import java.util.HashMap;
import java.util.Map;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code encode_dead_letter(original BYTES, original_key BYTES, source_topic STRING, source_partition INT,
 * source_offset BIGINT, observed_at BIGINT|TIMESTAMP_LTZ(3), reason STRING, detail STRING, schema_id INT,
 * job STRING) -> BYTES}: the Confluent-framed Avro dead_letter record (catalog id of the latest
 * ux.events.dlq-value version), so the DLQ Kafka sink writes it with {@code value.format = raw}.
 *
 * <p>Counts what it encodes: metric group {@code uxstream.dead_letters}, counter {@code total} and one
 * counter per reason ({@code reason=<code>} subgroup, counter {@code count}).
 */
public class EncodeDeadLetter extends ScalarFunction {
  private static final long serialVersionUID = 1L;

  private transient DeadLetterEncoder encoder;
  private transient MetricGroup metrics;
  private transient Counter total;
  private transient Map<String, Counter> byReason;

  @Override
  public void open(FunctionContext context) {
    encoder = new DeadLetterEncoder();
    byReason = new HashMap<>();
    if (context != null) {
      metrics = context.getMetricGroup().addGroup("uxstream").addGroup("dead_letters");
      total = metrics.counter("total");
    }
  }

  private void count(String reason) {
    if (metrics == null) {
      return;
    }
    total.inc();
    String key = reason == null ? "unknown" : reason;
    Counter counter = byReason.get(key);
    if (counter == null) {
      counter = metrics.addGroup("reason", key).counter("count");
      byReason.put(key, counter);
    }
    counter.inc();
  }

  public byte[] eval(
      byte[] original,
      byte[] originalKey,
      String sourceTopic,
      Integer sourcePartition,
      Long sourceOffset,
      Long observedAtMs,
      String reason,
      String detail,
      Integer schemaId,
      String job) {
    if (encoder == null) {
      open(null);
    }
    count(reason);
    return encoder.encode(
        original, originalKey, sourceTopic, sourcePartition, sourceOffset, observedAtMs, reason, detail,
        schemaId, job);
  }

  public byte[] eval(
      byte[] original,
      byte[] originalKey,
      String sourceTopic,
      Integer sourcePartition,
      Long sourceOffset,
      @DataTypeHint("TIMESTAMP_LTZ(3)") Instant observedAt,
      String reason,
      String detail,
      Integer schemaId,
      String job) {
    return eval(
        original, originalKey, sourceTopic, sourcePartition, sourceOffset,
        observedAt == null ? null : observedAt.toEpochMilli(), reason, detail, schemaId, job);
  }
}
