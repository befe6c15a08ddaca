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
 * and emits nothing. Only the benchmark uses it ({@code uxstream bench}, the {@code floor} run): sessionize's
 * source, decode, enrichment and events view, one hash exchange of the whole event row by device key and
 * one keyed-state update per event, the least any sessionize design that keys events by user does per
 * event (issue 17: what the ratio to the bare pipeline can reach at most).
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
}
