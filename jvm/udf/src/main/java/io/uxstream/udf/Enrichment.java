package io.uxstream.udf;

import java.util.List;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.table.api.TableException;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.FunctionContext;

/**
 * The enrichment step of {@code decode_ux_event} (issue 22 items 1–3): fills device_type, os and browser
 * from user_agent, country from ip, and decides is_bot, on every valid event, so every job sees the same
 * enriched event. A field the client sent wins: only a missing (null or empty) field is derived.
 *
 * <p>Configured by Flink job parameters ({@code pipeline.global-job-parameters}, set by the Python settings
 * {@code jobs.common.settings.EnrichmentSettings}):
 *
 * <ul>
 *   <li>{@code uxstream.enrich.user-agent}: {@code true} (default) or {@code false} (no UA parsing at all:
 *       device/os/browser stay as sent, is_bot false);
 *   <li>{@code uxstream.enrich.geoip-db}: path of the .mmdb; empty or absent: no country lookup. A path that
 *       is not a readable .mmdb fails the task at open() with a message naming it;
 *   <li>{@code uxstream.enrich.ua-cache-size}: verdict LRU entries per task (default 100000).
 * </ul>
 *
 * Metrics (group {@code uxstream.enrichment}): gauges {@code ua_cache_hits}, {@code ua_cache_misses}.
 * Not thread-safe: one per function instance (one per task).
 *
 * <p>It works on the decoded ROW after the per-thread memo ({@link DecodeMemo}): the memo holds the plain
 * decoded row, and {@code decode_ux_event} enriches it in place once (is_bot NULL = not yet enriched). The
 * watermark's {@code ux_event_time} in the Kafka source cannot read job parameters and never enriches.
 */
final class Enrichment {
  static final String IS_BOT = "is_bot";
  static final String USER_AGENT_OPTION = "uxstream.enrich.user-agent";
  static final String GEOIP_DB_OPTION = "uxstream.enrich.geoip-db";
  static final String UA_CACHE_OPTION = "uxstream.enrich.ua-cache-size";

  private final UserAgentVerdicts userAgents; // null: off
  private final GeoCountry geo; // null: off
  private final int userAgent;
  private final int ip;
  private final int deviceType;
  private final int os;
  private final int browser;
  private final int country;

  Enrichment(UserAgentVerdicts userAgents, GeoCountry geo, List<String> fieldNames) {
    this.userAgents = userAgents;
    this.geo = geo;
    this.userAgent = fieldNames.indexOf("user_agent");
    this.ip = fieldNames.indexOf("ip");
    this.deviceType = fieldNames.indexOf("device_type");
    this.os = fieldNames.indexOf("os");
    this.browser = fieldNames.indexOf("browser");
    this.country = fieldNames.indexOf("country");
  }

  /**
   * From the job parameters of {@code context} (null, e.g. outside a job: UA on, no geo); null where job
   * parameters cannot be read (a watermark generator in the source: no enrichment there).
   */
  static Enrichment forJob(FunctionContext context, List<String> fieldNames) {
    boolean ua = true;
    String db = "";
    int cacheSize = UserAgentVerdicts.DEFAULT_CACHE_SIZE;
    if (context != null) {
      try {
        context.getJobParameter(USER_AGENT_OPTION, "true");
      } catch (TableException e) {
        return null; // "Calls to FunctionContext.getJobParameter are not available at the current location"
      }
      ua = Boolean.parseBoolean(context.getJobParameter(USER_AGENT_OPTION, "true").strip());
      db = context.getJobParameter(GEOIP_DB_OPTION, "").strip();
      cacheSize = Integer.parseInt(
          context.getJobParameter(UA_CACHE_OPTION, String.valueOf(UserAgentVerdicts.DEFAULT_CACHE_SIZE)).strip());
    }
    UserAgentVerdicts verdicts = ua ? new UserAgentVerdicts(cacheSize) : null;
    Enrichment enrichment = new Enrichment(verdicts, db.isEmpty() ? null : new GeoCountry(db), fieldNames);
    if (context != null && verdicts != null) {
      MetricGroup group = context.getMetricGroup().addGroup("uxstream").addGroup("enrichment");
      group.gauge("ua_cache_hits", (Gauge<Long>) verdicts::hits);
      group.gauge("ua_cache_misses", (Gauge<Long>) verdicts::misses);
    }
    return enrichment;
  }

  private static String text(GenericRowData row, int index) {
    if (index < 0 || row.isNullAt(index)) {
      return null;
    }
    String value = row.getString(index).toString();
    return value.isEmpty() ? null : value;
  }

  /** Longest derived value kept: the contract's limit of os and browser (jobs/common/limits.py). */
  static final int MAX_DERIVED_CHARS = 64;

  private static void fill(GenericRowData row, int index, String derived) {
    if (index >= 0 && derived != null && text(row, index) == null && storable(derived)) {
      row.setField(index, StringData.fromString(derived));
    }
  }

  /** What PostgreSQL can store and the limits allow: a derived value that is not is dropped, never cut. */
  static boolean storable(String value) {
    if (value.codePointCount(0, value.length()) > MAX_DERIVED_CHARS) {
      return false;
    }
    for (int i = 0; i < value.length(); i++) {
      char c = value.charAt(i);
      if (c == 0 || Character.isSurrogate(c)) {
        return false;
      }
    }
    return true;
  }

  /**
   * Fills the missing fields of a valid decoded row in place (event field i at position {@code offset + i})
   * and sets is_bot at {@code botIndex}; a row whose is_bot is already set is left alone.
   */
  void enrich(GenericRowData row, int offset, int botIndex) {
    if (!row.isNullAt(botIndex)) {
      return;
    }
    boolean bot = false;
    if (userAgents != null) {
      String agent = text(row, at(offset, userAgent));
      if (agent != null) {
        UserAgentVerdicts.Verdict verdict = userAgents.verdict(agent);
        fill(row, at(offset, deviceType), verdict.deviceType);
        fill(row, at(offset, os), verdict.os);
        fill(row, at(offset, browser), verdict.browser);
        bot = verdict.isBot;
      }
    }
    if (geo != null && text(row, at(offset, country)) == null) { // a sent country wins: no lookup
      String address = text(row, at(offset, ip));
      if (address != null) {
        fill(row, at(offset, country), geo.country(address));
      }
    }
    row.setField(botIndex, bot);
  }

  private static int at(int offset, int index) {
    return index < 0 ? -1 : offset + index;
  }
}
