package io.uxstream.udf;

import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code ux_pseudonym(user_key STRING, key_files STRING) -> STRING}: the pseudonym the tables store for a
 * user key, under the current key (the first of {@code key_files}, see {@link KeyRing}); NULL for a NULL
 * key. The JVM twin of {@code jobs.common.privacy.Pseudonymizer}, for rows written from SQL (the late
 * ledger). {@code key_files} must be a literal.
 */
public class Pseudonym extends ScalarFunction {
  private static final long serialVersionUID = 1L;

  private transient KeyRing ring;
  private transient String ringOf;

  public String eval(String userKey, String keyFiles) {
    if (userKey == null) {
      return null;
    }
    if (ring == null || !keyFiles.equals(ringOf)) {
      ring = new KeyRing(keyFiles);
      ringOf = keyFiles;
    }
    return ring.pseudonym(0, userKey);
  }
}
