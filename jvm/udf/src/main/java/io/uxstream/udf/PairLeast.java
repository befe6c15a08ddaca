package io.uxstream.udf;

import org.apache.flink.table.api.dataview.MapView;
import org.apache.flink.table.functions.AggregateFunction;

/**
 * {@code pair_least_ts(anonymous_id STRING, user_id STRING, ts BIGINT) OVER (PARTITION BY kafka_partition
 * ORDER BY arrival ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) -> BIGINT}: the least {@code ts} of the
 * arrivals so far (the current row included) of the row's (anonymous_id, user_id) pair in its partition;
 * NULL when the row lacks either id (or {@code ts}).
 *
 * <p>The funnels job lets an identified event that carries both ids through its JVM filter only when it is
 * the earliest of its pair seen so far (README "Identity in funnels"). It runs in the partition
 * watermark's OVER window (one operator, fed in partition order), so the decision is a function of the
 * input log alone at any parallelism: a separate OVER keyed by the pair before the partition watermark
 * would hand a partition's events to it from several subtasks in a timing-dependent order. An event that
 * carries a user id is keyed by it (the user key), so all of a pair's events share a partition. The pairs
 * live in a {@link MapView} (one number per pair, expiring with the job's state TTL).
 */
public class PairLeast extends AggregateFunction<Long, PairLeast.Accumulator> {
  private static final long serialVersionUID = 1L;

  /** The partition's pairs (anonymous id NUL user id: the contract forbids NUL) and the last row's answer. */
  public static class Accumulator {
    public MapView<String, Long> least = new MapView<>();
    public Long value;
  }

  @Override
  public Accumulator createAccumulator() {
    return new Accumulator();
  }

  public void accumulate(Accumulator accumulator, String anonymousId, String userId, Long ts)
      throws Exception {
    accumulator.value = null;
    if (anonymousId == null || anonymousId.isEmpty() || userId == null || userId.isEmpty() || ts == null) {
      return;
    }
    String pair = anonymousId + '\u0000' + userId;
    Long known = accumulator.least.get(pair);
    if (known == null || ts < known) {
      accumulator.least.put(pair, ts);
      accumulator.value = ts;
    } else {
      accumulator.value = known;
    }
  }

  @Override
  public Long getValue(Accumulator accumulator) {
    return accumulator.value;
  }
}
