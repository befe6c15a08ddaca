package io.uxstream.udf;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.util.ArrayList;
import java.util.List;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * The pseudonym keys of {@code jobs.common.privacy}: the current key first, then every earlier key that is
 * not retired. Built from {@code <key id>=<key file>,…} (what {@code jobs.common.privacy.key_files}
 * renders; the key values never travel in the job's SQL). A pseudonym is {@code <key id>_<first 128 bits of
 * HMAC-SHA256(key, user key) in lowercase hex>}, exactly as {@code Pseudonymizer} computes it.
 *
 * <p>Not thread-safe (one {@link Mac} per key): each function instance keeps its own ring.
 */
final class KeyRing {
  static final int HEX_CHARS = 32;
  private static final char[] HEX = "0123456789abcdef".toCharArray();

  private final List<String> ids = new ArrayList<>();
  private final List<Mac> macs = new ArrayList<>();

  KeyRing(String keyFiles) {
    if (keyFiles == null || keyFiles.isBlank()) {
      throw new IllegalArgumentException("no pseudonym key files given (<key id>=<file>,…)");
    }
    for (String entry : keyFiles.split(",")) {
      int eq = entry.indexOf('=');
      if (eq <= 0 || eq == entry.length() - 1) {
        throw new IllegalArgumentException("pseudonym key entry is not <key id>=<file>: " + entry);
      }
      String id = entry.substring(0, eq).strip();
      String file = entry.substring(eq + 1).strip();
      String key;
      try {
        key = Files.readString(Path.of(file), StandardCharsets.UTF_8).strip();
      } catch (IOException e) {
        throw new IllegalStateException("cannot read the pseudonym key " + id + " from " + file + " (" + e + ")");
      }
      try {
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(key.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
        ids.add(id);
        macs.add(mac);
      } catch (GeneralSecurityException e) {
        throw new IllegalStateException("HmacSHA256 is not available in this JVM", e);
      }
    }
  }

  int size() {
    return ids.size();
  }

  String id(int index) {
    return ids.get(index);
  }

  /**
   * {@code java -cp uxstream-udf.jar io.uxstream.udf.KeyRing <key files> <user key>…}: one line per user
   * key, its pseudonyms under every key of the ring, tab-separated (the parity test with the Python
   * pseudonymizer, tests/privacy/test_privacy.py).
   */
  public static void main(String[] args) {
    KeyRing ring = new KeyRing(args[0]);
    StringBuilder out = new StringBuilder();
    for (int a = 1; a < args.length; a++) {
      for (int i = 0; i < ring.size(); i++) {
        out.append(i == 0 ? "" : "\t").append(ring.pseudonym(i, args[a]));
      }
      out.append('\n');
    }
    System.out.print(out);
  }

  /** The pseudonym of {@code userKey} under key {@code index} (0: the current key). */
  String pseudonym(int index, String userKey) {
    byte[] digest = macs.get(index).doFinal(userKey.getBytes(StandardCharsets.UTF_8));
    String id = ids.get(index);
    char[] out = new char[id.length() + 1 + HEX_CHARS];
    id.getChars(0, id.length(), out, 0);
    int at = id.length();
    out[at++] = '_';
    for (int i = 0; i < HEX_CHARS / 2; i++) {
      out[at++] = HEX[(digest[i] >> 4) & 0xf];
      out[at++] = HEX[digest[i] & 0xf];
    }
    return new String(out);
  }
}
