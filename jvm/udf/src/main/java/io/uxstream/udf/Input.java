package io.uxstream.udf;

/**
 * Avro binary primitives over a byte array, with exactly the semantics of fastavro 1.13 (the reader behind
 * the Python spec, jobs/common/contract.py), including its edge cases, so both decoders give the same
 * verdict for every input:
 *
 * <ul>
 *   <li>varints: any number of continuation bytes; bits are OR-ed in with the shift taken modulo 64 (as the
 *       x86-64 code of fastavro's C extension does); zig-zag decoded to a signed 64-bit value;
 *   <li>EOF at the first byte of a varint is {@code EOFError}, inside one {@code IndexError};
 *   <li>strings and bytes: a length that is negative or beyond the end is {@code EOFError: Expected N bytes,
 *       read M}; strings must be strict UTF-8 (CPython's rules and error messages, see {@link PyText});
 *   <li>doubles/floats/booleans short of bytes: {@code EOFError: cannot read double from <_io.BytesIO object>}
 *       (Python adds the object's address, which is meaningless elsewhere and left out).
 * </ul>
 *
 * Nothing is allocated beyond what the input holds: a length is checked against the remaining bytes before
 * any array is created, so a hostile length cannot exhaust memory.
 */
final class Input {
  private byte[] buf = new byte[0];
  private int pos;
  private int end;

  void reset(byte[] bytes, int offset, int limit) {
    this.buf = bytes;
    this.pos = offset;
    this.end = limit;
  }

  int position() {
    return pos;
  }

  int remaining() {
    return end - pos;
  }

  long readLong() throws DecodeError {
    if (pos >= end) {
      throw DecodeError.eof();
    }
    int b = buf[pos++] & 0xff;
    long n = b & 0x7f;
    int shift = 7;
    while ((b & 0x80) != 0) {
      if (pos >= end) {
        throw new DecodeError("IndexError", "string index out of range");
      }
      b = buf[pos++] & 0xff;
      n |= (long) (b & 0x7f) << shift; // Java masks the shift to 6 bits, like the x86-64 SHL fastavro runs on
      shift += 7;
    }
    return (n >>> 1) ^ -(n & 1);
  }

  /** Python list indexing of a union's branches: negative indexes count from the end. */
  int readUnionIndex(int branches) throws DecodeError {
    long index = readLong();
    if (index < -branches || index >= branches) {
      throw new DecodeError("IndexError", "list index out of range");
    }
    return (int) (index < 0 ? index + branches : index);
  }

  double readDouble() throws DecodeError {
    if (end - pos < 8) {
      pos = end;
      throw new DecodeError("EOFError", "cannot read double from <_io.BytesIO object>");
    }
    long bits = (buf[pos] & 0xffL)
        | (buf[pos + 1] & 0xffL) << 8
        | (buf[pos + 2] & 0xffL) << 16
        | (buf[pos + 3] & 0xffL) << 24
        | (buf[pos + 4] & 0xffL) << 32
        | (buf[pos + 5] & 0xffL) << 40
        | (buf[pos + 6] & 0xffL) << 48
        | (buf[pos + 7] & 0xffL) << 56;
    pos += 8;
    return Double.longBitsToDouble(bits);
  }

  float readFloat() throws DecodeError {
    if (end - pos < 4) {
      pos = end;
      throw new DecodeError("EOFError", "cannot read float from <_io.BytesIO object>");
    }
    int bits = (buf[pos] & 0xff)
        | (buf[pos + 1] & 0xff) << 8
        | (buf[pos + 2] & 0xff) << 16
        | (buf[pos + 3] & 0xff) << 24;
    pos += 4;
    return Float.intBitsToFloat(bits);
  }

  boolean readBoolean() throws DecodeError {
    if (pos >= end) {
      throw new DecodeError("EOFError", "cannot read boolean from <_io.BytesIO object>");
    }
    return buf[pos++] != 0;
  }

  /** Start offset of a length-prefixed block (bytes or string) of {@code size} bytes; moves past it. */
  private int block() throws DecodeError {
    long size = readLong();
    int available = end - pos;
    if (size < 0 || size > available) {
      // BytesIO.read(size) returns everything left for a negative size, at most what is left otherwise
      pos = end;
      throw new DecodeError("EOFError", "Expected " + size + " bytes, read " + available);
    }
    int start = pos;
    pos += (int) size;
    return start;
  }

  byte[] readBytes() throws DecodeError {
    int start = block();
    return java.util.Arrays.copyOfRange(buf, start, pos);
  }

  /** A string's UTF-8 bytes, validated as strictly as CPython's {@code bytes.decode()}. */
  byte[] readUtf8() throws DecodeError {
    int start = block();
    String error = PyText.utf8Error(buf, start, pos - start);
    if (error != null) {
      throw new DecodeError("UnicodeDecodeError", error);
    }
    return java.util.Arrays.copyOfRange(buf, start, pos);
  }

  // ------------------------------------------------------------------ skipping (fastavro's _skip_data)

  void skipFixed(long size) throws DecodeError {
    if (size < 0 || size > end - pos) {
      pos = end;
      throw DecodeError.eof();
    }
    pos += (int) size;
  }

  /** Skip a string or bytes value: no UTF-8 check, a short read is a bare EOFError. */
  void skipBlock() throws DecodeError {
    skipFixed(readLong());
  }
}
