package io.uxstream.udf;

import java.util.HashMap;
import java.util.Map;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code count_when(name STRING, flag BOOLEAN) -> BOOLEAN}: always TRUE; counts the rows whose flag is TRUE
 * in the counter {@code total} of the metric group {@code uxstream.<name>} (Prometheus:
 * {@code flink_taskmanager_job_task_operator_uxstream_<name>_total}).
 *
 * <p>Used as a conjunct of a WHERE clause where the job computes the flag, e.g. {@code WHERE count_when(
 * 'duplicates', occurrence > 1)}, so the job's own counters come from the JVM operators that make the
 * decision (Python UDF metrics are not reported in thread mode). The flag must be complete on its own: the
 * planner may evaluate the conjuncts of a WHERE in any order. Declared non-deterministic, so the planner
 * neither folds nor drops the call. {@code name} must be a literal of [a-z0-9_]+.
 */
public class CountWhen extends ScalarFunction {
  private static final long serialVersionUID = 1L;

  private transient MetricGroup metrics;
  private transient Map<String, Counter> counters;

  @Override
  public void open(FunctionContext context) {
    counters = new HashMap<>();
    metrics = context == null ? null : context.getMetricGroup().addGroup("uxstream");
  }

  public Boolean eval(String name, Boolean flag) {
    if (counters == null) {
      open(null);
    }
    if (Boolean.TRUE.equals(flag) && metrics != null) {
      Counter counter = counters.get(name);
      if (counter == null) {
        if (name == null || !name.matches("[a-z0-9_]+")) {
          throw new IllegalArgumentException(
              "count_when: the counter name must match [a-z0-9_]+, got " + name);
        }
        counter = metrics.addGroup(name).counter("total");
        counters.put(name, counter);
      }
      counter.inc();
    }
    return Boolean.TRUE;
  }

  @Override
  public boolean isDeterministic() {
    return false;
  }
}
