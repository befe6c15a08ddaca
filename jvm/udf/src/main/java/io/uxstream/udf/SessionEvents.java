package io.uxstream.udf;

import java.time.Instant;
import java.time.ZoneId;
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
 * {@code session_events(input => TABLE t PARTITION BY device_key, on_time => DESCRIPTOR(event_time),
 * gap_ms => 1800000, max_duration_ms => 86400000, timezone => 'Europe/Berlin', identity_ttl_ms => …,
 * uid => '…')}: rows {@code (device_key, packed, end_reason, linked_user, linked_ts, rowtime)}, each holding
 * events of one device in event-time order as the JSON array {@code [e1, e2, …]} of the {@code packed}
 * column (ties in arrival order; the finaliser {@link SplitSessions} orders them by time and event id),
 * the reason the last session of the row ended, and the device's identity link before the row.
 *
 * <p>Identity (README "Identity: one visitor across a login"): the input's {@code user_id} column (null for
 * an anonymous event) is kept with each buffered event. After a row is emitted, the device's link becomes
 * the user id of the row's latest event that carries one (event time; ties: the greatest user id), with
 * that event's time; the next row carries it ({@code linked_user}, {@code linked_ts}), so the finaliser can
 * attribute a session without any user id to the user the device was last linked to. The link outlives
 * the buffer: it is forgotten by an event-time timer at {@code linked_ts + identity_ttl_ms}, after which
 * no session could use it (the finaliser applies the same bound).
 *
 * <p>The session rules of SEMANTICS.md, exactly, applied to the events in time order: a new session starts
 * when the next event comes more than {@code gap_ms} after the previous one (a gap of exactly
 * {@code gap_ms} stays), falls on a later local day in {@code timezone} ({@code ''}: no midnight splits), or
 * comes more than {@code max_duration_ms} after the session's start.
 *
 * <p>Two ways out, both decided only by events at or below the watermark (an on-time event is above it,
 * so nothing that arrives later can change them):
 *
 * <ul>
 *   <li><b>Gap</b>: one timer per user, set at (first buffered event time + gap); when it fires before
 *       (latest event time + gap) it is moved there. When the watermark reaches that no event can join any
 *       more, and the whole buffer is emitted, split at gaps (the finaliser applies midnight
 *       and max-duration splits inside it); {@code end_reason} {@code gap}. A SESSION window TVF closes at
 *       (last + gap − 1 ms) instead, which splits off an event exactly one gap later if the watermark
 *       passes that instant before the event arrives.
 *   <li><b>Midnight and max duration</b> (the state bound of a user who never goes idle): once the watermark
 *       passes the first instant at which a split other than a gap could happen (the next local midnight
 *       after the open session's start, or start + max duration), the buffer is walked in time order and
 *       every session closed by a split event at or below the watermark is emitted, one row each, with the
 *       rule that closed it as {@code end_reason}; only the open session stays in state. So a user's state
 *       holds at most one day (or one max duration) of events plus the out-of-orderness bound.
 * </ul>
 */
@FunctionHint(
    output =
        @DataTypeHint(
            "ROW<packed STRING, end_reason STRING, linked_user STRING, linked_ts BIGINT>"))
public class SessionEvents extends ProcessTableFunction<Row> {
  private static final long serialVersionUID = 1L;
  private static final String CLOSE = "close";
  private static final String FORGET = "forget";
  static final String GAP = "gap";
  static final String MIDNIGHT = "midnight";
  static final String MAX_DURATION = "max_duration";

  /**
   * The state has no time-to-live (the job's {@code table.exec.state.ttl} is the dedup's): the function
   * clears a device's state itself, when its last session closes or its link is too old to use. A TTL
   * would only cost time (the heap backend's incremental TTL cleanup ran on every state access: ~30 % of
   * this operator's CPU samples in {@code make bench}) and could drop a buffer that waits for a stalled
   * watermark.
   */
  static final String NO_TTL = "0 ms";

  /**
   * The latest event time in the buffer (null: empty), the gap the timer was set with, the open session's
   * start (the earliest event time in the buffer) and the watermark at or after which a walk may close a
   * session by midnight or max duration; the device's identity link (user id and the event time it was
   * seen at, null: none) and how long a link is kept.
   */
  public static class Latest {
    public Long ts;
    public Long gapMs;
    public Long start;
    public Long boundary;
    public String linkUser;
    public Long linkTs;
    public Long identityTtlMs;
  }

  public void eval(
      Context ctx,
      @StateHint(ttl = NO_TTL) Latest latest,
      @StateHint(type = @DataTypeHint("ARRAY<STRING>"), ttl = NO_TTL) ListView<String> events,
      @ArgumentHint(
              name = "input",
              value = {ArgumentTrait.SET_SEMANTIC_TABLE, ArgumentTrait.REQUIRE_ON_TIME})
          Row input,
      @ArgumentHint(name = "gap_ms", type = @DataTypeHint("BIGINT")) Long gapMs,
      @ArgumentHint(name = "max_duration_ms", type = @DataTypeHint("BIGINT")) Long maxDurationMs,
      @ArgumentHint(name = "timezone", type = @DataTypeHint("STRING")) String timezone,
      @ArgumentHint(name = "identity_ttl_ms", type = @DataTypeHint("BIGINT")) Long identityTtlMs)
      throws Exception {
    if (gapMs == null || gapMs < 0) {
      throw new IllegalArgumentException("session_events: gap_ms must be a non-negative BIGINT, got " + gapMs);
    }
    if (maxDurationMs == null || maxDurationMs <= 0) {
      throw new IllegalArgumentException(
          "session_events: max_duration_ms must be a positive BIGINT, got " + maxDurationMs);
    }
    if (identityTtlMs == null || identityTtlMs < 0) {
      throw new IllegalArgumentException(
          "session_events: identity_ttl_ms must be a non-negative BIGINT, got " + identityTtlMs);
    }
    ZoneId zone = zone(timezone);
    TimeContext<Long> time = ctx.timeContext(Long.class);
    long ts = time.time();
    String packed = input.getFieldAs("packed");
    String userId = input.getFieldAs("user_id");
    events.add(Event.entry(ts, userId, packed));
    latest.gapMs = gapMs;
    latest.identityTtlMs = identityTtlMs;
    if (latest.ts == null) {
      latest.ts = ts;
      // The close timer is set once per buffer and moved on when it fires before the session's end + gap
      // (onTimer): re-registering it on every later event cost a timer delete and insert per event.
      time.registerOnTime(CLOSE, ts + gapMs);
    } else if (ts > latest.ts) {
      latest.ts = ts;
    }
    if (latest.start == null || ts < latest.start) {
      latest.start = ts;
      latest.boundary = firstNonGapSplit(ts, maxDurationMs, zone);
    }
    Long watermark = time.currentWatermark();
    if (watermark != null && watermark >= latest.boundary) {
      walk(latest, events, watermark, gapMs, maxDurationMs, zone);
    }
  }

  public void onTimer(
      OnTimerContext ctx,
      @StateHint(ttl = NO_TTL) Latest latest,
      @StateHint(type = @DataTypeHint("ARRAY<STRING>"), ttl = NO_TTL) ListView<String> events)
      throws Exception {
    TimeContext<Long> time = ctx.timeContext(Long.class);
    if (FORGET.equals(ctx.currentTimer())) {
      if (latest.ts == null) {
        ctx.clearAll(); // nothing buffered and the link too old to attribute any later session
      } // else: the open session may still use it; the close below decides
      return;
    }
    if (latest.ts == null) {
      return; // nothing buffered (cannot happen: the close clears its timer)
    }
    long gap = latest.gapMs;
    long due = latest.ts + gap;
    Long watermark = time.currentWatermark();
    if (watermark == null || watermark < due) {
      // A later event moved the end: move the timer there. (When the watermark jumped past it in one step,
      // e.g. at the end of a bounded input, the session closes now: Flink drops timers in the past. The
      // row's time is then this timer's, before last + gap; nothing downstream uses it.)
      time.registerOnTime(CLOSE, due);
      return;
    }
    List<Event> session = new ArrayList<>();
    long previous = Long.MIN_VALUE;
    for (Event e : sorted(events)) {
      if (previous != Long.MIN_VALUE && e.ts - previous > gap) {
        emit(latest, session, GAP);
        session = new ArrayList<>();
      }
      session.add(e);
      previous = e.ts;
    }
    if (!session.isEmpty()) {
      emit(latest, session, GAP);
    }
    if (latest.linkUser == null
        || watermark != null && latest.linkTs + latest.identityTtlMs <= watermark) {
      ctx.clearAll();
      return;
    }
    events.clear();
    latest.ts = null;
    latest.start = null;
    latest.boundary = null;
    ctx.clearAllTimers();
    time.registerOnTime(FORGET, latest.linkTs + latest.identityTtlMs);
  }

  /** Emit one row of events (time order) with the link before it, then move the link past them. */
  private void emit(Latest latest, List<Event> session, String reason) {
    StringBuilder packed = new StringBuilder("[");
    for (Event e : session) {
      if (packed.length() > 1) {
        packed.append(',');
      }
      packed.append(e.packed);
    }
    collect(Row.of(packed.append(']').toString(), reason, latest.linkUser, latest.linkTs));
    for (Event e : session) {
      if (e.userId != null
          && (latest.linkTs == null
              || e.ts > latest.linkTs
              || e.ts == latest.linkTs && e.userId.compareTo(latest.linkUser) > 0)) {
        latest.linkUser = e.userId;
        latest.linkTs = e.ts;
      }
    }
  }

  /**
   * Emit every session closed by a split event at or below the watermark, keep the rest. Sets the next
   * boundary: the open session's first possible non-gap split, or (when a split is pending on an event
   * above the watermark) that event's time.
   */
  private void walk(
      Latest latest, ListView<String> events, long watermark, long gap, long maxDuration, ZoneId zone)
      throws Exception {
    List<Event> all = sorted(events);
    int start = 0; // index of the open session's first event
    long sessionStart = all.get(0).ts;
    long midnight = zone == null ? Long.MAX_VALUE : nextMidnight(sessionStart, zone);
    Long pending = null;
    for (int i = 1; i < all.size(); i++) {
      Event e = all.get(i);
      String reason = null;
      if (e.ts - all.get(i - 1).ts > gap) {
        reason = GAP;
      } else if (e.ts >= midnight) {
        reason = MIDNIGHT;
      } else if (e.ts - sessionStart > maxDuration) {
        reason = MAX_DURATION;
      }
      if (reason == null) {
        continue;
      }
      if (e.ts > watermark) {
        pending = e.ts; // an earlier event may still arrive: decide once the watermark passes this one
        break;
      }
      emit(latest, all.subList(start, i), reason);
      start = i;
      sessionStart = e.ts;
      midnight = zone == null ? Long.MAX_VALUE : nextMidnight(sessionStart, zone);
    }
    if (start > 0) {
      List<String> rest = new ArrayList<>(all.size() - start);
      for (int j = start; j < all.size(); j++) {
        rest.add(all.get(j).entry);
      }
      events.clear();
      events.addAll(rest);
      latest.start = sessionStart;
    }
    if (pending != null) {
      latest.boundary = pending;
    } else {
      long next = firstNonGapSplit(sessionStart, maxDuration, zone);
      // Past it already, but no event beyond it yet: the next event is one; look again when it is below.
      latest.boundary = next <= watermark ? watermark + 1 : next;
    }
  }

  private transient String zoneName;
  private transient ZoneId zoneId;

  /** The session time zone ({@code ''}: none), parsed once per function instance. */
  private ZoneId zone(String timezone) {
    if (timezone == null || timezone.isEmpty()) {
      return null;
    }
    if (!timezone.equals(zoneName)) {
      zoneId = ZoneId.of(timezone);
      zoneName = timezone;
    }
    return zoneId;
  }

  /** The first event time at which a session starting at {@code start} can split other than by a gap. */
  static long firstNonGapSplit(long start, long maxDuration, ZoneId zone) {
    long byDuration = start + maxDuration + 1;
    return zone == null ? byDuration : Math.min(byDuration, nextMidnight(start, zone));
  }

  /** Epoch ms of the first local midnight after {@code ts} in {@code zone} (the start of the next day). */
  static long nextMidnight(long ts, ZoneId zone) {
    return Instant.ofEpochMilli(ts)
        .atZone(zone)
        .toLocalDate()
        .plusDays(1)
        .atStartOfDay(zone)
        .toInstant()
        .toEpochMilli();
  }

  /**
   * One buffered event: its time, its user id (null: anonymous), the packed JSON value and the state entry
   * it came from ({@code ts:L:user_id packed}, L the user id's length or {@code -} for none).
   */
  private static final class Event {
    final long ts;
    final String userId;
    final String packed;
    final String entry;

    Event(String entry) {
      int colon = entry.indexOf(':');
      int second = entry.indexOf(':', colon + 1);
      this.ts = Long.parseLong(entry.substring(0, colon));
      String length = entry.substring(colon + 1, second);
      if (length.equals("-")) {
        this.userId = null;
        this.packed = entry.substring(second + 1);
      } else {
        int end = second + 1 + Integer.parseInt(length);
        this.userId = entry.substring(second + 1, end);
        this.packed = entry.substring(end);
      }
      this.entry = entry;
    }

    static String entry(long ts, String userId, String packed) {
      return userId == null
          ? ts + ":-:" + packed
          : ts + ":" + userId.length() + ":" + userId + packed;
    }
  }

  /** The buffered events in time order; ties keep arrival order (a stable sort). */
  private static List<Event> sorted(ListView<String> events) throws Exception {
    List<Event> all = new ArrayList<>();
    for (String entry : events.get()) {
      all.add(new Event(entry));
    }
    all.sort((a, b) -> Long.compare(a.ts, b.ts));
    return all;
  }
}
