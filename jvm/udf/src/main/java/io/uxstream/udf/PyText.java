package io.uxstream.udf;

import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;
import java.nio.charset.StandardCharsets;
import java.time.LocalDateTime;
import java.time.ZoneOffset;

/**
 * Text exactly as CPython 3.11 renders it, for dead-letter details that match the Python decoder's:
 * {@code repr()} of strings and floats, strict UTF-8 validation with CPython's error messages, and
 * {@code contract.iso_ms}.
 */
final class PyText {
  private PyText() {}

  private static final char[] HEX = "0123456789abcdef".toCharArray();

  // --------------------------------------------------------------------------------------------- UTF-8

  private static boolean cont(int b) {
    return (b & 0xc0) == 0x80;
  }

  /**
   * Null when {@code bytes[offset, offset+length)} is valid UTF-8 for CPython (no surrogates, no overlong
   * forms, nothing above U+10FFFF); otherwise the message of the UnicodeDecodeError that
   * {@code bytes.decode()} raises, with CPython's choice of error position and range.
   */
  static String utf8Error(byte[] bytes, int offset, int length) {
    int i = 0;
    while (i < length) {
      int c = bytes[offset + i] & 0xff;
      if (c < 0x80) {
        i++;
        continue;
      }
      int left = length - i;
      if (c < 0xc2) {
        return utf8Message(bytes, offset, i, i + 1, "invalid start byte");
      }
      if (c < 0xe0) {
        if (left < 2) {
          return utf8Message(bytes, offset, i, length, "unexpected end of data");
        }
        if (!cont(bytes[offset + i + 1] & 0xff)) {
          return utf8Message(bytes, offset, i, i + 1, "invalid continuation byte");
        }
        i += 2;
        continue;
      }
      if (c < 0xf0) {
        if (left < 3) {
          if (left >= 2) {
            int c2 = bytes[offset + i + 1] & 0xff;
            if (!cont(c2) || (c2 < 0xa0 ? c == 0xe0 : c == 0xed)) {
              return utf8Message(bytes, offset, i, i + 1, "invalid continuation byte");
            }
          }
          return utf8Message(bytes, offset, i, length, "unexpected end of data");
        }
        int c2 = bytes[offset + i + 1] & 0xff;
        int c3 = bytes[offset + i + 2] & 0xff;
        if (!cont(c2) || (c == 0xe0 && c2 < 0xa0) || (c == 0xed && c2 >= 0xa0)) {
          return utf8Message(bytes, offset, i, i + 1, "invalid continuation byte");
        }
        if (!cont(c3)) {
          return utf8Message(bytes, offset, i, i + 2, "invalid continuation byte");
        }
        i += 3;
        continue;
      }
      if (c < 0xf5) {
        if (left < 4) {
          if (left >= 2) {
            int c2 = bytes[offset + i + 1] & 0xff;
            if (!cont(c2) || (c2 < 0x90 ? c == 0xf0 : c == 0xf4)) {
              return utf8Message(bytes, offset, i, i + 1, "invalid continuation byte");
            }
            if (left >= 3 && !cont(bytes[offset + i + 2] & 0xff)) {
              return utf8Message(bytes, offset, i, i + 2, "invalid continuation byte");
            }
          }
          return utf8Message(bytes, offset, i, length, "unexpected end of data");
        }
        int c2 = bytes[offset + i + 1] & 0xff;
        int c3 = bytes[offset + i + 2] & 0xff;
        int c4 = bytes[offset + i + 3] & 0xff;
        if (!cont(c2) || (c == 0xf0 && c2 < 0x90) || (c == 0xf4 && c2 >= 0x90)) {
          return utf8Message(bytes, offset, i, i + 1, "invalid continuation byte");
        }
        if (!cont(c3)) {
          return utf8Message(bytes, offset, i, i + 2, "invalid continuation byte");
        }
        if (!cont(c4)) {
          return utf8Message(bytes, offset, i, i + 3, "invalid continuation byte");
        }
        i += 4;
        continue;
      }
      return utf8Message(bytes, offset, i, i + 1, "invalid start byte");
    }
    return null;
  }

  private static String utf8Message(byte[] bytes, int offset, int start, int end, String reason) {
    if (end == start + 1) {
      int b = bytes[offset + start] & 0xff;
      return "'utf-8' codec can't decode byte 0x" + HEX[b >> 4] + HEX[b & 0xf] + " in position " + start
          + ": " + reason;
    }
    return "'utf-8' codec can't decode bytes in position " + start + "-" + (end - 1) + ": " + reason;
  }

  // ---------------------------------------------------------------------------------------------- repr

  /** Python's repr() of a value as the validity rules see it (strings arrive as UTF-8 bytes). */
  static String repr(Object value) {
    if (value == null) {
      return "None";
    }
    if (value instanceof byte[]) {
      return reprStr(new String((byte[]) value, StandardCharsets.UTF_8));
    }
    if (value instanceof String) {
      return reprStr((String) value);
    }
    if (value instanceof Double) {
      return reprFloat((Double) value);
    }
    if (value instanceof Float) {
      return reprFloat(((Float) value).doubleValue());
    }
    if (value instanceof Boolean) {
      return ((Boolean) value) ? "True" : "False";
    }
    if (value instanceof Utf8Map) {
      Utf8Map map = (Utf8Map) value;
      StringBuilder out = new StringBuilder("{");
      for (int i = 0; i < map.size(); i++) {
        out.append(i > 0 ? ", " : "").append(repr(map.key(i))).append(": ").append(repr(map.value(i)));
      }
      return out.append('}').toString();
    }
    return String.valueOf(value); // Integer, Long
  }

  /** CPython's unicode_repr: quote choice, escapes, and Py_UNICODE_ISPRINTABLE for non-ASCII. */
  static String reprStr(String s) {
    boolean squote = s.indexOf('\'') >= 0;
    boolean dquote = s.indexOf('"') >= 0;
    char quote = squote && !dquote ? '"' : '\'';
    StringBuilder out = new StringBuilder(s.length() + 2).append(quote);
    for (int i = 0; i < s.length(); ) {
      int cp = s.codePointAt(i);
      i += Character.charCount(cp);
      if (cp == quote || cp == '\\') {
        out.append('\\').append((char) cp);
      } else if (cp == '\t') {
        out.append("\\t");
      } else if (cp == '\n') {
        out.append("\\n");
      } else if (cp == '\r') {
        out.append("\\r");
      } else if (cp < ' ' || cp == 0x7f) {
        out.append("\\x").append(HEX[cp >> 4]).append(HEX[cp & 0xf]);
      } else if (cp < 0x7f) {
        out.append((char) cp);
      } else if (isPrintable(cp)) {
        out.appendCodePoint(cp);
      } else if (cp <= 0xff) {
        out.append("\\x").append(HEX[cp >> 4]).append(HEX[cp & 0xf]);
      } else if (cp <= 0xffff) {
        out.append("\\u");
        hex(out, cp, 4);
      } else {
        out.append("\\U");
        hex(out, cp, 8);
      }
    }
    return out.append(quote).toString();
  }

  private static void hex(StringBuilder out, int value, int digits) {
    for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4) {
      out.append(HEX[(value >> shift) & 0xf]);
    }
  }

  /**
   * Python's str.isprintable() for one code point: not Cc, Cf, Cs, Co, Cn, Zl, Zp or Zs (space excepted).
   * Java 17 knows Unicode 13, Python 3.11 Unicode 14: characters assigned in 14 are escaped here and not
   * by Python (the only place the two renderings can differ).
   */
  static boolean isPrintable(int cp) {
    if (cp == ' ') {
      return true;
    }
    switch (Character.getType(cp)) {
      case Character.CONTROL:
      case Character.FORMAT:
      case Character.SURROGATE:
      case Character.PRIVATE_USE:
      case Character.UNASSIGNED:
      case Character.LINE_SEPARATOR:
      case Character.PARAGRAPH_SEPARATOR:
      case Character.SPACE_SEPARATOR:
        return false;
      default:
        return true;
    }
  }

  /**
   * Python's repr() of a float: the shortest decimal that reads back as the same double (the closest one
   * among those), in positional notation when the decimal exponent is in [-4, 16), else as d.ddde±XX.
   */
  static String reprFloat(double d) {
    if (Double.isNaN(d)) {
      return "nan";
    }
    if (Double.isInfinite(d)) {
      return d > 0 ? "inf" : "-inf";
    }
    if (d == 0) {
      return (Double.doubleToRawLongBits(d) < 0) ? "-0.0" : "0.0";
    }
    double magnitude = Math.abs(d);
    BigDecimal exact = new BigDecimal(magnitude);
    BigDecimal shortest = exact;
    for (int precision = 1; precision <= 17; precision++) {
      // The p-digit neighbours below and above the exact value. The double's rounding interval is not
      // symmetric at powers of two, so the nearer one may not read back while the other does.
      BigDecimal below = exact.round(new MathContext(precision, RoundingMode.DOWN));
      BigDecimal above = exact.round(new MathContext(precision, RoundingMode.UP));
      boolean belowOk = below.doubleValue() == magnitude;
      boolean aboveOk = above.doubleValue() == magnitude;
      if (belowOk && aboveOk) {
        int nearer = exact.subtract(below).compareTo(above.subtract(exact));
        shortest = nearer < 0 ? below : nearer > 0 ? above
            : exact.round(new MathContext(precision, RoundingMode.HALF_EVEN)); // a tie: even digit
        break;
      }
      if (belowOk || aboveOk) {
        shortest = belowOk ? below : above;
        break;
      }
    }
    shortest = shortest.stripTrailingZeros();
    String digits = shortest.unscaledValue().toString();
    int decpt = digits.length() - shortest.scale(); // value = 0.DIGITS × 10^decpt
    StringBuilder out = new StringBuilder(24);
    if (d < 0) {
      out.append('-');
    }
    if (decpt <= -4 || decpt > 16) {
      out.append(digits.charAt(0));
      if (digits.length() > 1) {
        out.append('.').append(digits, 1, digits.length());
      }
      int exponent = decpt - 1;
      out.append('e').append(exponent < 0 ? '-' : '+');
      int digitsOfExponent = Math.abs(exponent);
      if (digitsOfExponent < 10) {
        out.append('0');
      }
      out.append(digitsOfExponent);
    } else if (decpt <= 0) {
      out.append("0.");
      for (int i = 0; i < -decpt; i++) {
        out.append('0');
      }
      out.append(digits);
    } else if (decpt >= digits.length()) {
      out.append(digits);
      for (int i = digits.length(); i < decpt; i++) {
        out.append('0');
      }
      out.append(".0");
    } else {
      out.append(digits, 0, decpt).append('.').append(digits, decpt, digits.length());
    }
    return out.toString();
  }

  // ------------------------------------------------------------------------------------------ iso_ms

  private static final long MIN_DATETIME_SECONDS = -62_135_596_800L; // 0001-01-01T00:00:00Z

  /**
   * {@code contract.iso_ms}: {@code datetime.fromtimestamp(ms / 1000, UTC)} rendered with millisecond
   * precision and a Z, or {@code "<ms> ms since the epoch"} outside years 1..9999. Reproduces CPython's
   * float arithmetic (modf, ×1e6, round-half-even to microseconds) so the millisecond shown is the same.
   */
  static String isoMs(long ms) {
    double seconds = (double) ms / 1000.0;
    double intPart = seconds < 0 ? Math.ceil(seconds) : Math.floor(seconds); // modf: toward zero
    double micros = Math.rint((seconds - intPart) * 1e6);
    if (micros >= 1e6) {
      micros -= 1e6;
      intPart += 1.0;
    } else if (micros < 0) {
      micros += 1e6;
      intPart -= 1.0;
    }
    if (intPart < MIN_DATETIME_SECONDS || intPart > 253_402_300_799.0) {
      return ms + " ms since the epoch";
    }
    LocalDateTime moment = LocalDateTime.ofEpochSecond((long) intPart, 0, ZoneOffset.UTC);
    int millis = (int) micros / 1000;
    return String.format(
        "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
        moment.getYear(),
        moment.getMonthValue(),
        moment.getDayOfMonth(),
        moment.getHour(),
        moment.getMinute(),
        moment.getSecond(),
        millis);
  }
}
