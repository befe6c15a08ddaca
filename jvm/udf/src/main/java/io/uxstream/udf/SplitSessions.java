package io.uxstream.udf;

import java.io.IOException;
import java.util.List;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.TableFunction;
import org.apache.flink.types.Row;

/**
 * {@code split_sessions(device_key, packed, end_reason, linked_user, linked_ts, gap_ms, max_duration_ms,
 * timezone, conversion_events, identity_ttl_ms, key_files)}: one row per final session of a run of a
 * device's events that {@link SessionEvents} closed ({@link SessionRows}, the twin of
 * {@code jobs.sessionize.logic.split_gap_session}). {@code timezone} {@code ''}: no midnight splits;
 * {@code conversion_events}: a JSON array of event names; {@code key_files}: the pseudonym keys
 * ({@link KeyRing}). Every argument after {@code linked_ts} must be a literal (read once per instance). No
 * raw id leaves the function: user and device keys are pseudonyms. Chaos point
 * {@code sessionize.split_sessions} ({@link FailOnce}).
 */
@FunctionHint(
    output =
        @DataTypeHint(
            "ROW<session_id STRING, user_key STRING, session_start BIGINT, session_end BIGINT,"
                + " duration_ms BIGINT, event_count INT, page_views INT, distinct_pages INT,"
                + " entry_page STRING, exit_page STRING, referrer STRING, utm_source STRING,"
                + " utm_medium STRING, utm_campaign STRING, device_type STRING, browser STRING,"
                + " country STRING, error_count INT, conversions INT, engaged_time_ms BIGINT,"
                + " engaged BOOLEAN, bounce BOOLEAN, split_reason STRING, is_final BOOLEAN,"
                + " feedback_responses INT, feedback STRING, device_key STRING>"))
public class SplitSessions extends TableFunction<Row> {
  private static final long serialVersionUID = 1L;

  /** The output's field names, in order (SessionRow of logic.py names them the same). */
  static final List<String> FIELDS =
      List.of(
          "session_id", "user_key", "session_start", "session_end", "duration_ms", "event_count",
          "page_views", "distinct_pages", "entry_page", "exit_page", "referrer", "utm_source",
          "utm_medium", "utm_campaign", "device_type", "browser", "country", "error_count",
          "conversions", "engaged_time_ms", "engaged", "bounce", "split_reason", "is_final",
          "feedback_responses", "feedback", "device_key");

  static final List<String> END_REASONS =
      List.of(SessionEvents.GAP, SessionEvents.MIDNIGHT, SessionEvents.MAX_DURATION);

  private transient SessionRows finaliser;
  private transient FailOnce chaos;

  @Override
  public void open(FunctionContext context) {
    chaos = new FailOnce(System.getenv()); // the environment of the worker, not of the client
  }

  public void eval(
      String deviceKey,
      String packed,
      String endReason,
      String linkedUser,
      Long linkedTs,
      Long gapMs,
      Long maxDurationMs,
      String timezone,
      String conversionEvents,
      Long identityTtlMs,
      String keyFiles)
      throws IOException {
    if (finaliser == null) {
      if (gapMs == null || maxDurationMs == null || identityTtlMs == null || conversionEvents == null) {
        throw new IllegalArgumentException("split_sessions: the rules must be non-null literals");
      }
      KeyRing ring = new KeyRing(keyFiles);
      SessionRows.Rules rules =
          SessionRows.Rules.of(gapMs, timezone, maxDurationMs, conversionEvents, identityTtlMs);
      finaliser = new SessionRows(rules, raw -> ring.pseudonym(0, raw));
    }
    if (chaos == null) {
      chaos = new FailOnce(System.getenv());
    }
    chaos.check("sessionize.split_sessions");
    if (!END_REASONS.contains(endReason)) {
      throw new IllegalArgumentException("session_events sent an unknown end reason " + endReason);
    }
    for (SessionRows.Row row : finaliser.split(deviceKey, packed, endReason, linkedUser, linkedTs)) {
      collect(Row.of(row.fields()));
    }
  }
}
