package io.uxstream.udf;

import com.maxmind.db.CHMCache;
import com.maxmind.db.Reader;
import java.io.File;
import java.io.IOException;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.Map;

/**
 * IP address → ISO 3166-1 alpha-2 country from a MaxMind-format {@code .mmdb} (issue 22 item 2), looked up
 * with the address already truncated as SEMANTICS.md "Privacy" says (IPv4 → /24, IPv6 → /48, an IPv4-mapped
 * IPv6 address counts as IPv4: jobs.common.privacy.truncate_ip), so no result ever depends on the full address.
 * The record's country is {@code country.iso_code} (GeoLite2/GeoIP2 and DB-IP's own layout) or
 * {@code country_code} (ip-location-db's layout); the oracle (jobs/common/enrichment.py) reads the same file
 * with the same rule. Thread-safe (the reader is).
 */
public final class GeoCountry implements AutoCloseable {
  private final Reader reader;
  private final String path;

  /** Opens the database; a missing or unreadable file fails with a message naming it and the setting. */
  public GeoCountry(String path) {
    this.path = path;
    File file = new File(path);
    if (!file.isFile()) {
      throw new IllegalArgumentException(
          "UXSTREAM_GEOIP_DB: " + path + " does not exist or is not a file (an .mmdb country database)");
    }
    try {
      this.reader = new Reader(file, new CHMCache());
    } catch (IOException | RuntimeException e) {
      throw new IllegalArgumentException(
          "UXSTREAM_GEOIP_DB: " + path + " is not a MaxMind-format (.mmdb) database: " + e.getMessage(), e);
    }
  }

  public String path() {
    return path;
  }

  /** The truncated address the lookup uses, as bytes (4 or 16), or null when the text is no IP literal. */
  static InetAddress truncated(String ip) {
    if (ip == null || !IpLiteral.isIpAddress(ip)) {
      return null; // the contract already rejects these; never resolve a name
    }
    String literal = ip;
    int percent = literal.indexOf('%');
    if (percent >= 0) {
      literal = literal.substring(0, percent);
    }
    try {
      InetAddress address = InetAddress.getByName(literal); // a literal: no DNS lookup
      byte[] bytes = address.getAddress(); // an IPv4-mapped IPv6 literal arrives as Inet4Address already
      int keepBytes = address instanceof Inet4Address ? 3 : 6;
      for (int i = keepBytes; i < bytes.length; i++) {
        bytes[i] = 0;
      }
      return InetAddress.getByAddress(bytes);
    } catch (UnknownHostException e) {
      return null;
    }
  }

  /** The country of the address's network, or null (unknown address, no record, no country in it). */
  public String country(String ip) {
    InetAddress address = truncated(ip);
    if (address == null) {
      return null;
    }
    Map<?, ?> record;
    try {
      record = reader.get(address, Map.class);
    } catch (IOException e) {
      throw new IllegalStateException("UXSTREAM_GEOIP_DB: " + path + " failed a lookup: " + e.getMessage(), e);
    }
    if (record == null) {
      return null;
    }
    Object country = record.get("country");
    if (country instanceof Map) {
      Object iso = ((Map<?, ?>) country).get("iso_code");
      if (iso instanceof String) {
        return (String) iso;
      }
    }
    Object code = record.get("country_code");
    return code instanceof String ? (String) code : null;
  }

  @Override
  public void close() throws IOException {
    reader.close();
  }
}
