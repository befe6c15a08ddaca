package io.uxstream.udf;

import java.util.ArrayList;
import java.util.List;

/**
 * Whether a string is an IP address for Python 3.11's {@code ipaddress.ip_address(str)}, parsed literally
 * (never a DNS lookup): dotted-quad IPv4 with 1–3 ASCII digits per octet, no leading zeros, each ≤ 255;
 * IPv6 with 2–8 colons, at most one {@code ::}, 1–4 hex digits per hextet, an optional trailing IPv4 part
 * and an optional {@code %scope} suffix; no {@code /} anywhere.
 */
final class IpLiteral {
  private IpLiteral() {}

  static boolean isIpAddress(String s) {
    return isIPv4(s) || isIPv6(s);
  }

  /** Python's str.split(sep): every occurrence splits, empty parts kept. */
  private static List<String> split(String s, char sep) {
    List<String> parts = new ArrayList<>(8);
    int start = 0;
    for (int i = 0; i < s.length(); i++) {
      if (s.charAt(i) == sep) {
        parts.add(s.substring(start, i));
        start = i + 1;
      }
    }
    parts.add(s.substring(start));
    return parts;
  }

  static boolean isIPv4(String s) {
    if (s.isEmpty() || s.indexOf('/') >= 0) {
      return false;
    }
    List<String> octets = split(s, '.');
    if (octets.size() != 4) {
      return false;
    }
    for (String octet : octets) {
      if (octet.isEmpty() || octet.length() > 3) {
        return false;
      }
      for (int i = 0; i < octet.length(); i++) {
        char c = octet.charAt(i);
        if (c < '0' || c > '9') {
          return false;
        }
      }
      if (octet.length() > 1 && octet.charAt(0) == '0') {
        return false;
      }
      if (Integer.parseInt(octet) > 255) {
        return false;
      }
    }
    return true;
  }

  private static boolean isHextet(String part) {
    if (part.isEmpty() || part.length() > 4) {
      return false; // int('', 16) fails too
    }
    for (int i = 0; i < part.length(); i++) {
      char c = part.charAt(i);
      boolean hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
      if (!hex) {
        return false;
      }
    }
    return true;
  }

  static boolean isIPv6(String s) {
    if (s.indexOf('/') >= 0) {
      return false;
    }
    int percent = s.indexOf('%');
    if (percent >= 0) {
      String scope = s.substring(percent + 1);
      if (scope.isEmpty() || scope.indexOf('%') >= 0) {
        return false;
      }
      s = s.substring(0, percent);
    }
    if (s.isEmpty()) {
      return false;
    }
    List<String> parts = split(s, ':');
    if (parts.size() < 3) {
      return false;
    }
    String last = parts.get(parts.size() - 1);
    if (last.indexOf('.') >= 0) {
      if (!isIPv4(last)) {
        return false;
      }
      parts.remove(parts.size() - 1);
      parts.add("0");
      parts.add("0"); // two valid hextets stand for the IPv4 part
    }
    final int hextets = 8;
    if (parts.size() > hextets + 1) {
      return false;
    }
    int skipIndex = -1;
    for (int i = 1; i < parts.size() - 1; i++) {
      if (parts.get(i).isEmpty()) {
        if (skipIndex >= 0) {
          return false;
        }
        skipIndex = i;
      }
    }
    int partsHi;
    int partsLo;
    if (skipIndex >= 0) {
      partsHi = skipIndex;
      partsLo = parts.size() - skipIndex - 1;
      if (parts.get(0).isEmpty()) {
        partsHi--;
        if (partsHi > 0) {
          return false;
        }
      }
      if (parts.get(parts.size() - 1).isEmpty()) {
        partsLo--;
        if (partsLo > 0) {
          return false;
        }
      }
      if (hextets - (partsHi + partsLo) < 1) {
        return false;
      }
    } else {
      if (parts.size() != hextets) {
        return false;
      }
      if (parts.get(0).isEmpty() || parts.get(parts.size() - 1).isEmpty()) {
        return false;
      }
      partsHi = parts.size();
      partsLo = 0;
    }
    for (int i = 0; i < partsHi; i++) {
      if (!isHextet(parts.get(i))) {
        return false;
      }
    }
    for (int i = parts.size() - partsLo; i < parts.size(); i++) {
      if (!isHextet(parts.get(i))) {
        return false;
      }
    }
    return true;
  }
}
