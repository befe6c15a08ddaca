package io.uxstream.udf;

import org.apache.flink.table.functions.AggregateFunction;

/**
 * {@code partition_watermark(ts BIGINT, [future BOOLEAN,] out_of_orderness_ms BIGINT) OVER (PARTITION BY
 * kafka_partition ORDER BY arrival ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) -> BIGINT}: the arrival
 * watermark of the current row, in epoch ms: the greatest {@code ts} of the rows of its partition
 * <em>before</em> it, minus the out-of-orderness bound; NULL while no earlier row had a {@code ts}. Rows
 * that must not move the watermark (future timestamps) pass {@code future} TRUE or a NULL {@code ts}.
 * (sql/classify.sql passes the flag as is rather than a CASE over {@code ts}: an argument that is an
 * expression becomes a column of the OVER aggregate's input, and the projection that drops it again is a
 * Calc after the operator, deep-copying every string column of every event.)
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

  public void accumulate(Accumulator accumulator, Long ts, Boolean future, Long outOfOrdernessMs) {
    accumulate(accumulator, Boolean.TRUE.equals(future) ? null : ts, outOfOrdernessMs);
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
