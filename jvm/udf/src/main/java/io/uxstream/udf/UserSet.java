package io.uxstream.udf;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.api.dataview.MapView;
import org.apache.flink.table.functions.AggregateFunction;

/**
 * Exact sets of users for cascaded KPI windows (jobs/sessionize/job.py): the 1-minute windows collect the
 * distinct user keys of each row ({@code user_set(user_key) -> ARRAY<STRING>}, sorted), and the sliding
 * and cumulative windows built from the minute rows count the distinct users of the union of their sets
 * ({@code user_count(users ARRAY<STRING>) -> BIGINT}): the same figure as {@code COUNT(DISTINCT
 * user_key)} over the events of the longer window, without aggregating every event three times.
 *
 * <p>The set lives in a {@link MapView}, which Flink keeps in keyed map state (one entry per user), so a
 * large window does not serialize the whole set on every event.
 */
public final class UserSet {
  private UserSet() {}

  /** The users of a window (MapView keys; values unused). */
  public static class Accumulator {
    public MapView<String, Boolean> users = new MapView<>();
  }

  static void mergeInto(Accumulator accumulator, Iterable<Accumulator> others) throws Exception {
    for (Accumulator other : others) {
      for (String user : other.users.keys()) {
        accumulator.users.put(user, Boolean.TRUE);
      }
    }
  }

  /** {@code user_set(user_key STRING) -> ARRAY<STRING>}: the distinct non-null keys, sorted. */
  @FunctionHint(output = @DataTypeHint("ARRAY<STRING>"))
  public static class Collect extends AggregateFunction<String[], Accumulator> {
    private static final long serialVersionUID = 1L;

    @Override
    public Accumulator createAccumulator() {
      return new Accumulator();
    }

    public void accumulate(Accumulator accumulator, String user) throws Exception {
      if (user != null) {
        accumulator.users.put(user, Boolean.TRUE);
      }
    }

    public void merge(Accumulator accumulator, Iterable<Accumulator> others) throws Exception {
      mergeInto(accumulator, others);
    }

    @Override
    public String[] getValue(Accumulator accumulator) {
      List<String> users = new ArrayList<>();
      try {
        for (String user : accumulator.users.keys()) {
          users.add(user);
        }
      } catch (Exception e) {
        throw new IllegalStateException("user_set: cannot read the window's users", e);
      }
      Collections.sort(users);
      return users.toArray(new String[0]);
    }
  }

  /** {@code user_count(users ARRAY<STRING>) -> BIGINT}: distinct users of the union of the sets. */
  public static class Count extends AggregateFunction<Long, Accumulator> {
    private static final long serialVersionUID = 1L;

    @Override
    public Accumulator createAccumulator() {
      return new Accumulator();
    }

    public void accumulate(Accumulator accumulator, String[] users) throws Exception {
      if (users != null) {
        for (String user : users) {
          if (user != null) {
            accumulator.users.put(user, Boolean.TRUE);
          }
        }
      }
    }

    public void merge(Accumulator accumulator, Iterable<Accumulator> others) throws Exception {
      mergeInto(accumulator, others);
    }

    @Override
    public Long getValue(Accumulator accumulator) {
      long count = 0;
      try {
        for (String ignored : accumulator.users.keys()) {
          count++;
        }
      } catch (Exception e) {
        throw new IllegalStateException("user_count: cannot read the window's users", e);
      }
      return count;
    }
  }
}
