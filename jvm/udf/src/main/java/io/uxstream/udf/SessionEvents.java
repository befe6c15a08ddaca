package io.uxstream.udf;

import java.util.ArrayList;
import java.util.List;
import org.apache.flink.table.annotation.ArgumentHint;
import org.apache.flink.table.annotation.ArgumentTrait;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.annotation.StateHint;
import org.apache.flink.table.api.dataview.ListView;
import org.apache.flink.table.functions.ProcessTableFunction;
import org.apache.flink.types.Row;

/**
 * {@code session_events(input => TABLE t PARTITION BY user_key, on_time => DESCRIPTOR(event_time),
 * gap_ms => 1800000, uid => '…')}: one row {@code (user_key, packed, rowtime)} per gap-session of a user,
 * where {@code packed} is the JSON array {@code [e1, e2, …]} of the {@code packed} column (one JSON value per
 * event) of the session's events, in event-time order (ties in arrival order; the Python finaliser orders
 * them by time and event id).
 *
 * <p>The gap rule of SEMANTICS.md, exactly: a session ends when the next event of the user comes more than
 * {@code gap_ms} after its last one (a gap of exactly {@code gap_ms} stays in the session). The function
 * keeps the user's events and one timer at (latest event time + gap); the timer fires once the watermark
 * reaches that time, when no on-time event can still join (an event at or below the watermark is late and
 * never reaches this function), and emits every gap-session of the buffer. A session window TVF closes at
 * (last + gap − 1 ms) instead, which splits off an event exactly one gap later if the watermark passes
 * that instant before the event arrives.
 *
 * <p>State per user: the buffered events (a ListView: one list entry per event in RocksDB) and the latest
 * event time; both are cleared when the sessions are emitted, with the timer.
 */
@FunctionHint(output = @DataTypeHint("ROW<packed STRING>"))
public class SessionEvents extends ProcessTableFunction<Row> {
  private static final long serialVersionUID = 1L;
  private static final String CLOSE = "close";

  /** The latest event time in the buffer (null: empty) and the gap the timer was set with. */
  public static class Latest {
    public Long ts;
    public Long gapMs;
  }

  public void eval(
      Context ctx,
      @StateHint Latest latest,
      @StateHint(type = @DataTypeHint("ARRAY<STRING>")) ListView<String> events,
      @ArgumentHint(
              name = "input",
              value = {ArgumentTrait.SET_SEMANTIC_TABLE, ArgumentTrait.REQUIRE_ON_TIME})
          Row input,
      @ArgumentHint(name = "gap_ms", type = @DataTypeHint("BIGINT")) Long gapMs)
      throws Exception {
    if (gapMs == null || gapMs < 0) {
      throw new IllegalArgumentException("session_events: gap_ms must be a non-negative BIGINT, got " + gapMs);
    }
    TimeContext<Long> time = ctx.timeContext(Long.class);
    long ts = time.time();
    String packed = input.getFieldAs("packed");
    events.add(ts + ":" + packed);
    latest.gapMs = gapMs;
    if (latest.ts == null || ts > latest.ts) {
      latest.ts = ts;
      time.registerOnTime(CLOSE, ts + gapMs); // replaces the previous timer of this user
    }
  }

  public void onTimer(
      OnTimerContext ctx,
      Latest latest,
      @StateHint(type = @DataTypeHint("ARRAY<STRING>")) ListView<String> events)
      throws Exception {
    List<long[]> times = new ArrayList<>();
    List<String> values = new ArrayList<>();
    long gap = latest.gapMs;
    for (String entry : events.get()) {
      int colon = entry.indexOf(':');
      times.add(new long[] {Long.parseLong(entry.substring(0, colon)), values.size()});
      values.add(entry.substring(colon + 1));
    }
    // Stable order by time: ties keep arrival order.
    times.sort((a, b) -> Long.compare(a[0], b[0]));
    StringBuilder session = new StringBuilder("[");
    long previous = Long.MIN_VALUE;
    for (long[] t : times) {
      if (previous != Long.MIN_VALUE && t[0] - previous > gap) {
        collect(Row.of(session.append(']').toString()));
        session = new StringBuilder("[");
      }
      if (session.length() > 1) {
        session.append(',');
      }
      session.append(values.get((int) t[1]));
      previous = t[0];
    }
    if (session.length() > 1) {
      collect(Row.of(session.append(']').toString()));
    }
    ctx.clearAll();
  }
}
