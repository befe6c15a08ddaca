package io.uxstream.udf;

import java.util.Arrays;
import org.apache.flink.table.api.dataview.MapView;
import org.apache.flink.table.functions.AggregateFunction;

/**
 * {@code bot_behaviour(user_key STRING, [future BOOLEAN, erased BOOLEAN,] event_id STRING, page_view BOOLEAN
 * | event_type STRING, ts BIGINT, per_minute INT, minutes INT, out_of_orderness_ms BIGINT) OVER (PARTITION BY
 * kafka_partition ORDER BY arrival ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) -> BOOLEAN}: whether the
 * current row's user key behaves like a bot (README "Bots": the behavioural rule), decided from the input
 * log alone, in arrival order. A row with {@code future} or {@code erased} TRUE counts as one with a NULL
 * user key; with {@code event_type}, a row is a page view when it is {@code page_view}. (sql/classify.sql
 * passes the flags and the event type as they are rather than expressions over them: an argument computed
 * from the non-deterministic erasure flag made the planner keep a Calc of its own in front of the OVER
 * aggregate, and any argument that is an expression becomes a column of its input that a Calc after it drops
 * again; each such Calc deep-copies every string column of every event.)
 *
 * <p>The rule, per user key within its Kafka partition: page views are counted per UTC event-time minute,
 * each event id once; a page view more than {@code minutes} + ⌈out_of_orderness / 1 min⌉ minutes behind the
 * minute of the key's newest counted page view does not count. When a page view brings its minute to
 * {@code per_minute} and that minute is part of {@code minutes} consecutive minutes that each hold at least
 * {@code per_minute}, the key is flagged: that row and every later row of the key answer TRUE, until a row
 * of the key comes {@link #MEMORY_MS} or more (event time) after the flagging page view, which starts the
 * key afresh. A row with a NULL {@code user_key} (future timestamps, erased users) is not looked at and
 * answers FALSE.
 *
 * <p>It runs in the same OVER aggregate as {@link PartitionWatermark} (same window, so the planner computes
 * both in one operator: no extra shuffle), which sees every valid event of a partition in partition order,
 * so a replay after any restore decides exactly as the first run. The keys live in a {@link MapView}
 * (state per entry, expiring with the job's state TTL, the dedup memory); a key holds at most {@code
 * per_minute} event ids for each of the minutes it keeps, and nothing but the flag once flagged.
 * jobs/common/enrichment.py {@code BotBehaviour} is the oracles' copy of the same rule.
 */
public class BotBehaviour extends AggregateFunction<Boolean, BotBehaviour.Accumulator> {
  private static final long serialVersionUID = 1L;

  /** How long (event time) a flag holds after the page view that set it. */
  public static final long MEMORY_MS = 24L * 3_600_000L;

  static final long MINUTE_MS = 60_000L;

  static final String PAGE_VIEW = "page_view";

  /** One user key: its flag, or its counted minutes (ascending) and the ids of the minutes not full yet. */
  public static class KeyState {
    public boolean flagged;
    public long flagTs;
    public long newestMinute;
    public long[] minutes = new long[0];
    public int[] counts = new int[0];
    public long[] idMinutes = new long[0];
    public String[] ids = new String[0];
  }

  /** The partition's keys, the verdict of the last row and whether any key was ever flagged. */
  public static class Accumulator {
    public MapView<String, KeyState> keys = new MapView<>();
    public boolean verdict;
    public long flaggedKeys;
  }

  @Override
  public Accumulator createAccumulator() {
    return new Accumulator();
  }

  public void accumulate(
      Accumulator accumulator,
      String userKey,
      Boolean future,
      Boolean erased,
      String eventId,
      String eventType,
      Long ts,
      Integer perMinute,
      Integer minutes,
      Long outOfOrdernessMs)
      throws Exception {
    accumulate(
        accumulator,
        Boolean.TRUE.equals(future) || Boolean.TRUE.equals(erased) ? null : userKey,
        eventId,
        PAGE_VIEW.equals(eventType),
        ts,
        perMinute,
        minutes,
        outOfOrdernessMs);
  }

  public void accumulate(
      Accumulator accumulator,
      String userKey,
      Boolean erased,
      String eventId,
      Boolean pageView,
      Long ts,
      Integer perMinute,
      Integer minutes,
      Long outOfOrdernessMs)
      throws Exception {
    accumulate(
        accumulator,
        Boolean.TRUE.equals(erased) ? null : userKey,
        eventId,
        pageView,
        ts,
        perMinute,
        minutes,
        outOfOrdernessMs);
  }

  public void accumulate(
      Accumulator accumulator,
      String userKey,
      String eventId,
      Boolean pageView,
      Long ts,
      Integer perMinute,
      Integer minutes,
      Long outOfOrdernessMs)
      throws Exception {
    accumulator.verdict = false;
    if (perMinute == null || perMinute < 1 || minutes == null || minutes < 1) {
      throw new IllegalArgumentException(
          "bot_behaviour: per_minute and minutes must be positive INTs, got " + perMinute + ", " + minutes);
    }
    if (outOfOrdernessMs == null || outOfOrdernessMs < 0) {
      throw new IllegalArgumentException(
          "bot_behaviour: the out-of-orderness bound must be a non-negative BIGINT, got " + outOfOrdernessMs);
    }
    if (userKey == null || ts == null) {
      return;
    }
    boolean counts = Boolean.TRUE.equals(pageView) && eventId != null;
    if (!counts && accumulator.flaggedKeys == 0) {
      return; // no key of this partition was ever flagged: a row that counts nothing changes nothing
    }
    KeyState state = accumulator.keys.get(userKey);
    if (state != null && state.flagged && ts >= state.flagTs + MEMORY_MS) {
      state = null; // the flag has lapsed: the key starts afresh
      accumulator.keys.remove(userKey);
    }
    if (state != null && state.flagged) {
      accumulator.verdict = true;
      return;
    }
    if (!counts) {
      return;
    }
    KeyState next = state == null ? new KeyState() : state;
    if (state == null) {
      next.newestMinute = Long.MIN_VALUE;
    }
    if (count(next, eventId, ts, perMinute, minutes, outOfOrdernessMs)) {
      KeyState flag = new KeyState();
      flag.flagged = true;
      flag.flagTs = ts;
      accumulator.keys.put(userKey, flag);
      accumulator.flaggedKeys += 1;
      accumulator.verdict = true;
    } else {
      accumulator.keys.put(userKey, next);
    }
  }

  /** Counts one page view into {@code s}; true when it completes a sustained run. */
  static boolean count(KeyState s, String eventId, long ts, int perMinute, int minutes, long boundMs) {
    long minute = Math.floorDiv(ts, MINUTE_MS);
    if (minute > s.newestMinute) {
      s.newestMinute = minute;
    }
    long horizon = s.newestMinute - minutes - (boundMs + MINUTE_MS - 1) / MINUTE_MS;
    forget(s, horizon);
    if (minute < horizon) {
      return false;
    }
    int at = Arrays.binarySearch(s.minutes, minute);
    if (at >= 0 && s.counts[at] >= perMinute) {
      return false; // full already: nothing more to learn from this minute
    }
    for (int i = 0; i < s.ids.length; i++) {
      if (s.idMinutes[i] == minute && s.ids[i].equals(eventId)) {
        return false; // the same event again
      }
    }
    if (at < 0) {
      at = -at - 1;
      s.minutes = insert(s.minutes, at, minute);
      s.counts = insert(s.counts, at, 0);
    }
    s.counts[at] += 1;
    if (s.counts[at] < perMinute) {
      s.idMinutes = Arrays.copyOf(s.idMinutes, s.idMinutes.length + 1);
      s.idMinutes[s.idMinutes.length - 1] = minute;
      s.ids = Arrays.copyOf(s.ids, s.ids.length + 1);
      s.ids[s.ids.length - 1] = eventId;
      return false;
    }
    dropIds(s, minute);
    int run = 1;
    for (int i = at - 1; i >= 0 && s.minutes[i] == minute - (at - i) && s.counts[i] >= perMinute; i--) {
      run++;
    }
    for (int i = at + 1;
        i < s.minutes.length && s.minutes[i] == minute + (i - at) && s.counts[i] >= perMinute;
        i++) {
      run++;
    }
    return run >= minutes;
  }

  private static void forget(KeyState s, long horizon) {
    int keep = 0;
    while (keep < s.minutes.length && s.minutes[keep] < horizon) {
      keep++;
    }
    if (keep > 0) {
      s.minutes = Arrays.copyOfRange(s.minutes, keep, s.minutes.length);
      s.counts = Arrays.copyOfRange(s.counts, keep, s.counts.length);
    }
    int stale = 0;
    for (long m : s.idMinutes) {
      if (m < horizon) {
        stale++;
      }
    }
    if (stale > 0) {
      long[] minutes = new long[s.idMinutes.length - stale];
      String[] ids = new String[minutes.length];
      int j = 0;
      for (int i = 0; i < s.idMinutes.length; i++) {
        if (s.idMinutes[i] >= horizon) {
          minutes[j] = s.idMinutes[i];
          ids[j++] = s.ids[i];
        }
      }
      s.idMinutes = minutes;
      s.ids = ids;
    }
  }

  private static void dropIds(KeyState s, long minute) {
    int n = 0;
    for (long m : s.idMinutes) {
      if (m != minute) {
        n++;
      }
    }
    long[] minutes = new long[n];
    String[] ids = new String[n];
    int j = 0;
    for (int i = 0; i < s.idMinutes.length; i++) {
      if (s.idMinutes[i] != minute) {
        minutes[j] = s.idMinutes[i];
        ids[j++] = s.ids[i];
      }
    }
    s.idMinutes = minutes;
    s.ids = ids;
  }

  private static long[] insert(long[] values, int at, long value) {
    long[] out = new long[values.length + 1];
    System.arraycopy(values, 0, out, 0, at);
    out[at] = value;
    System.arraycopy(values, at, out, at + 1, values.length - at);
    return out;
  }

  private static int[] insert(int[] values, int at, int value) {
    int[] out = new int[values.length + 1];
    System.arraycopy(values, 0, out, 0, at);
    out[at] = value;
    System.arraycopy(values, at, out, at + 1, values.length - at);
    return out;
  }

  @Override
  public Boolean getValue(Accumulator accumulator) {
    return accumulator.verdict;
  }
}
