package io.uxstream.udf;

import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.table.functions.AggregateFunction;
import org.apache.flink.table.functions.FunctionContext;

/**
 * {@code occurrence_count(counter STRING) OVER (PARTITION BY event_id ORDER BY arrival ROWS BETWEEN
 * UNBOUNDED PRECEDING AND CURRENT ROW) -> BIGINT}: what {@code COUNT(*)} gives over that window (1 for the
 * first occurrence of a key, n for the n-th), and every row with n > 1 is counted in the counter {@code
 * total} of the metric group {@code uxstream.<counter>}.
 *
 * <p>The dedup operator is the one place that sees every duplicate exactly once, whatever the planner does
 * with the filters after it (a {@code WHERE occurrence = 1} downstream is merged into the same Calc and
 * would hide a filter-based counter), so the duplicates counter lives in the aggregate itself.
 */
public class OccurrenceCount extends AggregateFunction<Long, OccurrenceCount.Accumulator> {
  private static final long serialVersionUID = 1L;

  /** The number of rows of the key so far. */
  public static class Accumulator {
    public long count;
  }

  private transient MetricGroup metrics;
  private transient Counter counter;

  @Override
  public void open(FunctionContext context) {
    metrics = context.getMetricGroup().addGroup("uxstream");
  }

  @Override
  public Accumulator createAccumulator() {
    return new Accumulator();
  }

  public void accumulate(Accumulator accumulator, String counterName) {
    accumulator.count += 1;
    if (accumulator.count > 1 && metrics != null) {
      if (counter == null) {
        if (counterName == null || !counterName.matches("[a-z0-9_]+")) {
          throw new IllegalArgumentException(
              "occurrence_count: the counter name must match [a-z0-9_]+, got " + counterName);
        }
        counter = metrics.addGroup(counterName).counter("total");
      }
      counter.inc();
    }
  }

  @Override
  public Long getValue(Accumulator accumulator) {
    return accumulator.count;
  }
}
