package io.uxstream.udf;

import java.nio.charset.StandardCharsets;
import java.util.List;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.MetricGroup;
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

  /** From the job parameters of {@code context} (null, e.g. outside a job: UA on, no geo). */
  static Enrichment forJob(FunctionContext context, List<String> fieldNames) {
    boolean ua = true;
    String db = "";
    int cacheSize = UserAgentVerdicts.DEFAULT_CACHE_SIZE;
    if (context != null) {
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

  private static String text(Object[] values, int index) {
    if (index < 0 || !(values[index] instanceof byte[])) {
      return null;
    }
    byte[] bytes = (byte[]) values[index];
    return bytes.length == 0 ? null : new String(bytes, StandardCharsets.UTF_8);
  }

  private static void fill(Object[] values, int index, String derived) {
    if (index >= 0 && derived != null) {
      Object sent = values[index];
      if (sent == null || (sent instanceof byte[] && ((byte[]) sent).length == 0)) {
        values[index] = derived.getBytes(StandardCharsets.UTF_8);
      }
    }
  }

  /** Fills the missing fields of a valid event in place (decoder representation); returns is_bot. */
  Boolean enrich(Object[] values) {
    boolean bot = false;
    if (userAgents != null) {
      String agent = text(values, userAgent);
      if (agent != null) {
        UserAgentVerdicts.Verdict verdict = userAgents.verdict(agent);
        fill(values, deviceType, verdict.deviceType);
        fill(values, os, verdict.os);
        fill(values, browser, verdict.browser);
        bot = verdict.isBot;
      }
    }
    if (geo != null) {
      String address = text(values, ip);
      if (address != null) {
        fill(values, country, geo.country(address));
      }
    }
    return bot;
  }
}
