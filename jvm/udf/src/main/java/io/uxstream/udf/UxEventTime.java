package io.uxstream.udf;

import java.util.List;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * Event time of a ux.events value, for the raw source table, where Flink SQL requires the rowtime column
 * and its WATERMARK to be declared:
 *
 * <ul>
 *   <li>{@code ux_event_time(payload) -> TIMESTAMP_LTZ(3)}: {@code ts} of a VALID event, NULL for an invalid
 *       one (so an invalid record never moves the watermark);
 *   <li>{@code ux_event_time(payload, max_future_skew_ms) -> TIMESTAMP_LTZ(3)}: the same, but NULL also for
 *       a future event ({@code ts - received_at > max_future_skew_ms}, {@code contract.is_future}), for a
 *       watermark expression that future timestamps must not move (SEMANTICS.md, Time).
 * </ul>
 *
 * Shares the per-thread memo of {@link DecodeUxEvent}: the decodes of the same record that follow in the
 * query cost an array comparison.
 */
public class UxEventTime extends ScalarFunction {
  private static final long serialVersionUID = 1L;

  private final DecodeUxEvent decode = new DecodeUxEvent(false); // reads ts only: never enriches
  private transient int tsField;
  private transient int receivedAtField;

  @Override
  public void open(FunctionContext context) {
    decode.open(context);
    List<String> names = new EventDecoder().fieldNames();
    tsField = 3 + names.indexOf("ts");
    receivedAtField = 3 + names.indexOf("received_at");
  }

  public @DataTypeHint(value = "TIMESTAMP_LTZ(3)", bridgedTo = Long.class) Long eval(byte[] payload) {
    return eval(payload, null);
  }

  public @DataTypeHint(value = "TIMESTAMP_LTZ(3)", bridgedTo = Long.class) Long eval(
      byte[] payload, Long maxFutureSkewMs) {
    if (tsField < 3 || receivedAtField < 3) {
      open(null);
    }
    RowData row = decode.eval(payload);
    if (!row.isNullAt(0) || row.isNullAt(tsField)) {
      return null; // invalid
    }
    long ts = row.getLong(tsField);
    if (maxFutureSkewMs != null && !row.isNullAt(receivedAtField)
        && ts - row.getLong(receivedAtField) > maxFutureSkewMs) {
      return null; // future: must not move the watermark
    }
    return ts;
  }
}
