package io.uxstream.udf;

import org.apache.flink.table.annotation.ArgumentHint;
import org.apache.flink.table.annotation.ArgumentTrait;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.annotation.StateHint;
import org.apache.flink.table.functions.ProcessTableFunction;
import org.apache.flink.types.Row;

/**
 * {@code keyed_floor(input => TABLE t PARTITION BY k, uid => '…')}: counts each key's rows in keyed state
 * and emits nothing. Only the benchmark uses it and {@link Forward} ({@code uxstream bench}, the {@code
 * floor} run): sessionize's source, decode, enrichment and events view, then the two keyed stages any exact
 * sessionize needs, since duplicates are found by event id and sessions by device key: an exchange by
 * bucket of event ids with one keyed-state update per event, an exchange by device key with another
 * (issue 17: what the ratio to the bare pipeline can reach at most).
 */
@FunctionHint(output = @DataTypeHint("ROW<n BIGINT>"))
public class KeyedFloor extends ProcessTableFunction<Row> {
  private static final long serialVersionUID = 1L;

  /** The key's row count. */
  public static class Count {
    public long n;
  }

  public void eval(
      @StateHint Count count, @ArgumentHint(ArgumentTrait.SET_SEMANTIC_TABLE) Row input) {
    count.n++;
  }

  /**
   * {@code keyed_floor_forward(input => TABLE t PARTITION BY dedup_bucket, uid => '…')}: counts each key's rows
   * in keyed state and emits each row's {@code device_key} and {@code packed} (what the sessions read) with
   * that count, for the next stage.
   */
  @FunctionHint(output = @DataTypeHint("ROW<device_key STRING, packed STRING, n BIGINT>"))
  public static class Forward extends ProcessTableFunction<Row> {
    private static final long serialVersionUID = 1L;

    public void eval(
        @StateHint Count count, @ArgumentHint(ArgumentTrait.SET_SEMANTIC_TABLE) Row input) {
      count.n++;
      collect(Row.of(input.getFieldAs("device_key"), input.getFieldAs("packed"), count.n));
    }
  }
}
