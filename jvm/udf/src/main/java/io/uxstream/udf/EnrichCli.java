package io.uxstream.udf;

import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Line protocol over the enrichment, for the corpus and geo tests and the cache measurement (no Flink needed):
 *
 * <pre>
 *   java -cp uxstream-udf.jar io.uxstream.udf.EnrichCli --user-agents        # one UA per line in, verdicts out
 *   java -cp uxstream-udf.jar io.uxstream.udf.EnrichCli --geo FILE.mmdb      # one IP per line in, countries out
 *   java -cp uxstream-udf.jar io.uxstream.udf.EnrichCli --bench-user-agents ROUNDS  # UAs in; cold vs cached speed
 * </pre>
 *
 * Verdict lines: {@code {"device_type":…,"os":…,"browser":…,"is_bot":…,"device_class":…}}; geo lines:
 * {@code {"country":…}} (JSON null when unknown), or {@code {"error":…}} once when the database cannot be opened
 * (exit status 2).
 */
public final class EnrichCli {
  private EnrichCli() {}

  public static void main(String[] args) throws IOException {
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    BufferedWriter out = new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8));
    List<String> lines = new ArrayList<>();
    String line;
    if (args.length == 1 && args[0].equals("--user-agents")) {
      UserAgentVerdicts verdicts = new UserAgentVerdicts();
      while ((line = in.readLine()) != null) {
        UserAgentVerdicts.Verdict v = verdicts.verdict(line);
        out.write("{\"device_type\":" + json(v.deviceType) + ",\"os\":" + json(v.os) + ",\"browser\":"
            + json(v.browser) + ",\"is_bot\":" + v.isBot + ",\"device_class\":" + json(v.deviceClass) + "}");
        out.newLine();
      }
      out.flush();
      return;
    }
    if (args.length == 2 && args[0].equals("--geo")) {
      GeoCountry geo;
      try {
        geo = new GeoCountry(args[1]);
      } catch (IllegalArgumentException e) {
        out.write("{\"error\":" + json(e.getMessage()) + "}");
        out.newLine();
        out.flush();
        System.exit(2);
        return;
      }
      while ((line = in.readLine()) != null) {
        out.write("{\"country\":" + json(geo.country(line)) + "}");
        out.newLine();
      }
      out.flush();
      return;
    }
    if (args.length == 2 && args[0].equals("--bench-user-agents")) {
      while ((line = in.readLine()) != null) {
        lines.add(line);
      }
      int rounds = Integer.parseInt(args[1]);
      UserAgentVerdicts warm = new UserAgentVerdicts(0); // cache of 0: every call parses
      for (int r = 0; r < 5; r++) { // build the analyzer and warm the JIT outside the timing
        for (String ua : lines) {
          warm.verdict(ua);
        }
      }
      int coldRounds = 5;
      long t0 = System.nanoTime();
      for (int r = 0; r < coldRounds; r++) {
        for (String ua : lines) {
          warm.verdict(ua);
        }
      }
      long cold = (System.nanoTime() - t0) / coldRounds;
      UserAgentVerdicts cached = new UserAgentVerdicts();
      for (String ua : lines) {
        cached.verdict(ua);
      }
      long t1 = System.nanoTime();
      for (int r = 0; r < rounds; r++) {
        for (String ua : lines) {
          cached.verdict(ua);
        }
      }
      long hot = System.nanoTime() - t1;
      out.write(String.format(
          "{\"user_agents\":%d,\"uncached_per_s\":%.0f,\"cached_per_s\":%.0f,\"hits\":%d,\"misses\":%d}",
          lines.size(), lines.size() / (cold / 1e9), (double) rounds * lines.size() / (hot / 1e9),
          cached.hits(), cached.misses()));
      out.newLine();
      out.flush();
      return;
    }
    if (args.length == 4 && args[0].equals("--bot-behaviour")) {
      botBehaviour(in, out, Integer.parseInt(args[1]), Integer.parseInt(args[2]), Long.parseLong(args[3]));
      return;
    }
    System.err.println(
        "usage: EnrichCli --user-agents | --geo FILE.mmdb | --bench-user-agents ROUNDS"
            + " | --bot-behaviour PER_MINUTE MINUTES OUT_OF_ORDERNESS_MS");
    System.exit(2);
  }

  /**
   * The behavioural bot rule over rows in arrival order, one OVER accumulator per partition as in the jobs.
   * Input lines: {@code partition TAB user_key TAB event_id TAB page_view(0|1) TAB ts} (an empty user key:
   * NULL, a row the rule does not look at); output lines: {@code true} or {@code false}.
   */
  static void botBehaviour(BufferedReader in, BufferedWriter out, int perMinute, int minutes, long boundMs)
      throws IOException {
    BotBehaviour rule = new BotBehaviour();
    java.util.Map<String, BotBehaviour.Accumulator> partitions = new java.util.HashMap<>();
    String line;
    try {
      while ((line = in.readLine()) != null) {
        String[] f = line.split("\t", -1);
        BotBehaviour.Accumulator acc = partitions.computeIfAbsent(f[0], p -> rule.createAccumulator());
        rule.accumulate(acc, f[1].isEmpty() ? null : f[1], f[2], f[3].equals("1"), Long.parseLong(f[4]),
            perMinute, minutes, boundMs);
        out.write(String.valueOf(rule.getValue(acc)));
        out.newLine();
      }
    } catch (Exception e) {
      throw new IOException(e);
    }
    out.flush();
  }

  static String json(String s) {
    if (s == null) {
      return "null";
    }
    StringBuilder b = new StringBuilder(s.length() + 2).append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c == '"' || c == '\\') {
        b.append('\\').append(c);
      } else if (c < 0x20) {
        b.append(String.format("\\u%04x", (int) c));
      } else {
        b.append(c);
      }
    }
    return b.append('"').toString();
  }
}
