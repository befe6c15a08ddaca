package io.uxstream.udf;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A decoded Avro map: keys as validated UTF-8 bytes, in first-insertion order, a repeated key keeping its
 * first position and taking the last value (Python dict semantics, as fastavro builds it). Keys stay bytes
 * so the Flink row gets binary strings without re-encoding.
 */
final class Utf8Map {
  private static final int LINEAR_SCAN = 8;

  private final List<byte[]> keys = new ArrayList<>(4);
  private final List<Object> values = new ArrayList<>(4);
  private Map<ByteBuffer, Integer> index; // only for large maps: a hostile payload cannot make puts O(n²)

  void put(byte[] key, Object value) {
    int at = indexOf(key);
    if (at >= 0) {
      values.set(at, value);
      return;
    }
    keys.add(key);
    values.add(value);
    if (index != null) {
      index.put(ByteBuffer.wrap(key), keys.size() - 1);
    } else if (keys.size() > LINEAR_SCAN) {
      index = new HashMap<>();
      for (int i = 0; i < keys.size(); i++) {
        index.put(ByteBuffer.wrap(keys.get(i)), i);
      }
    }
  }

  private int indexOf(byte[] key) {
    if (index != null) {
      Integer at = index.get(ByteBuffer.wrap(key));
      return at == null ? -1 : at;
    }
    for (int i = 0; i < keys.size(); i++) {
      if (java.util.Arrays.equals(keys.get(i), key)) {
        return i;
      }
    }
    return -1;
  }

  int size() {
    return keys.size();
  }

  boolean isEmpty() {
    return keys.isEmpty();
  }

  byte[] key(int i) {
    return keys.get(i);
  }

  Object value(int i) {
    return values.get(i);
  }

  Utf8Map copy() {
    Utf8Map copy = new Utf8Map();
    for (int i = 0; i < size(); i++) {
      copy.put(keys.get(i), values.get(i));
    }
    return copy;
  }
}
