package io.uxstream.udf;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.datasketches.hll.HllSketch;
import org.apache.datasketches.hll.TgtHllType;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code user_sketch(users ARRAY<STRING>, key_files STRING, lg_k INT, hll_type STRING) -> BYTES}: the
 * mergeable sketch of a KPI window's users that {@code kpi_1m.users_sketch} stores (README "Unique users
 * over any range"): an Apache DataSketches HLL sketch (compact serialization, the bytes the Python {@code
 * datasketches} package reads) of the <em>pseudonyms</em> of the window's people, the {@code users} of the
 * row {@code user_set} returns (logins stitched: an anonymous id a login of the row resolved is not among
 * them; {@link UserSet}), so the sketch counts exactly the people {@code active_users} counts, and the bytes
 * in the database allow no membership test of a raw user id: the pseudonym key is a secret.
 *
 * <p>Replay-deterministic by construction: the pseudonyms are sorted before they enter the sketch, so the
 * bytes are a function of the window's set of users alone, whatever the arrival order, parallelism or
 * restore (an HLL sketch in list/set mode, its HIP estimator included, otherwise depends on insertion
 * order). Sorting also lets an oracle rebuild the same bytes from the pseudonym set.
 *
 * <p>It is a scalar over the exact set the 1-minute window aggregate already keeps ({@link UserSet}), not a
 * second aggregate: no new state, each user hashed once per row instead of once per event and grouping
 * set. {@code lg_k} and {@code hll_type} come from {@code jobs.common.sketches} (declared once); both must
 * be literals. A NULL or empty set gives the empty sketch's bytes (merging it changes nothing).
 */
public class UserSketch extends ScalarFunction {
  private static final long serialVersionUID = 1L;

  /**
   * How many users' pseudonyms an instance remembers (least recently used out first). A user is in each
   * of a minute's cells (the whole window and one per dimension) and in the minutes after: the HMAC ran
   * 4+ times per user and minute, 15 % of the minute rows' thread in {@code make bench} (issue 17).
   */
  static final int REMEMBERED = 100_000;

  private transient KeyRing ring;
  private transient String ringOf;
  private transient Map<String, String> pseudonyms;

  public @DataTypeHint("BYTES") byte[] eval(String[] users, String keyFiles, Integer lgK, String hllType) {
    if (keyFiles == null || lgK == null || hllType == null) {
      throw new IllegalArgumentException("user_sketch: key_files, lg_k and hll_type must not be NULL");
    }
    if (ring == null || !keyFiles.equals(ringOf)) {
      ring = new KeyRing(keyFiles);
      ringOf = keyFiles;
      pseudonyms = remembered();
    }
    List<String> keys = new ArrayList<>(users == null ? 0 : users.length);
    if (users != null) {
      for (String user : users) {
        if (user != null) {
          keys.add(pseudonyms.computeIfAbsent(user, u -> ring.pseudonym(0, u)));
        }
      }
    }
    return sketch(keys, lgK, hllType);
  }

  /** An empty memory of pseudonyms of the current ring, bounded to {@link #REMEMBERED} users. */
  private static Map<String, String> remembered() {
    return new LinkedHashMap<>(1024, 0.75f, true) {
      private static final long serialVersionUID = 1L;

      @Override
      protected boolean removeEldestEntry(Map.Entry<String, String> eldest) {
        return size() > REMEMBERED;
      }
    };
  }

  /** The compact bytes of the HLL sketch of {@code keys} (distinct or not), updated in sorted order. */
  static byte[] sketch(List<String> keys, int lgK, String hllType) {
    String[] sorted = keys.toArray(new String[0]);
    Arrays.sort(sorted);
    HllSketch sketch = new HllSketch(lgK, TgtHllType.valueOf(hllType));
    for (String key : sorted) {
      sketch.update(key);
    }
    return sketch.toCompactByteArray();
  }

  /**
   * {@code java -cp uxstream-udf.jar:<Flink table jars> io.uxstream.udf.UserSketch <lg_k> <hll_type>
   * [<key files>]}: one group of keys per stdin line (tab-separated; an empty line is an empty group), one
   * line per group on stdout: the hex of its sketch's bytes, a tab, the estimate. With key files the keys
   * are raw user keys and go through the function itself ({@link #eval}: pseudonyms, then the sketch); the
   * JVM↔Python parity test, tests/sessionize/test_user_sketch.py.
   */
  public static void main(String[] args) throws IOException {
    if (args.length != 2 && args.length != 3) {
      System.err.println("usage: UserSketch <lg_k> <hll_type> [<key files>]  (groups of keys on stdin)");
      System.exit(2);
    }
    int lgK = Integer.parseInt(args[0]);
    String hllType = args[1];
    UserSketch function = args.length == 3 ? new UserSketch() : null;
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
    HexFormat hex = HexFormat.of();
    for (String line = in.readLine(); line != null; line = in.readLine()) {
      List<String> keys = line.isEmpty() ? List.of() : Arrays.asList(line.split("\t", -1));
      byte[] bytes =
          function == null
              ? sketch(keys, lgK, hllType)
              : function.eval(keys.toArray(new String[0]), args[2], lgK, hllType);
      out.append(hex.formatHex(bytes)).append('\t')
          .append(Double.toString(HllSketch.heapify(bytes).getEstimate())).append('\n');
    }
    out.flush();
  }
}
