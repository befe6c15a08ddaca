package io.uxstream.udf;

import org.apache.flink.table.functions.AggregateFunction;

/**
 * {@code partition_watermark(ts BIGINT, out_of_orderness_ms BIGINT) OVER (PARTITION BY kafka_partition
 * ORDER BY arrival ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) -> BIGINT}: the arrival watermark of
 * the current row, in epoch ms: the greatest {@code ts} of the rows of its partition <em>before</em> it,
 * minus the out-of-orderness bound; NULL while no earlier row had a {@code ts}. Rows that must not move
 * the watermark (future timestamps) pass a NULL {@code ts}.
 *
 * <p>This is SEMANTICS.md's "watermark at arrival" computed from the input log alone: the running maximum
 * lives in the OVER aggregate's keyed state, which is checkpointed together with the Kafka offsets, so a
 * replay after any restore (failover, savepoint, rescale) classifies every record exactly as the first
 * run did. Flink's runtime watermark (not checkpointed; NULL after a restore) never decides it.
 */
public class PartitionWatermark extends AggregateFunction<Long, PartitionWatermark.Accumulator> {
  private static final long serialVersionUID = 1L;

  /** The running maximum of the partition, and the maximum before the last row accumulated. */
  public static class Accumulator {
    public boolean hasMax;
    public long max;
    public boolean hadMaxBefore;
    public long maxBefore;
    public long bound;
  }

  @Override
  public Accumulator createAccumulator() {
    return new Accumulator();
  }

  public void accumulate(Accumulator accumulator, Long ts, Long outOfOrdernessMs) {
    if (outOfOrdernessMs == null || outOfOrdernessMs < 0) {
      throw new IllegalArgumentException(
          "partition_watermark: the out-of-orderness bound must be a non-negative BIGINT, got "
              + outOfOrdernessMs);
    }
    accumulator.bound = outOfOrdernessMs;
    accumulator.hadMaxBefore = accumulator.hasMax;
    accumulator.maxBefore = accumulator.max;
    if (ts != null && (!accumulator.hasMax || ts > accumulator.max)) {
      accumulator.max = ts;
      accumulator.hasMax = true;
    }
  }

  @Override
  public Long getValue(Accumulator accumulator) {
    return accumulator.hadMaxBefore ? accumulator.maxBefore - accumulator.bound : null;
  }
}
