package io.uxstream.udf;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.util.Arrays;
import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.base.TypeSerializerSingleton;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.core.memory.DataOutputView;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.AggregateFunction;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * The dedup's memory of event ids as a few arrays per bucket of ids, for the heap state backend
 * (jobs/common/sql/classify.sql, issue 17).
 *
 * <p>{@code dedup_bucket(event_id STRING) -> INT} puts an id in one of {@link #BUCKETS} buckets (a fixed
 * hash of its UTF-8 bytes, the same in every JVM and version: the buckets are the keys of the state).
 * {@code occurrence_number(counter STRING, event_id STRING, ttl_ms BIGINT) OVER (PARTITION BY dedup_bucket
 * ORDER BY arrival ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) -> BIGINT} gives what {@code
 * occurrence_count} gives over a window partitioned by event_id (1 for the first occurrence of an id, n for
 * the n-th), with the same memory: an id is forgotten {@code ttl_ms} of processing time after its last
 * occurrence (what the state TTL does to the per-id state, update on create and write, expired state never
 * returned), so its next occurrence is a first one again. Every row with n &gt; 1 is counted in the counter
 * {@code total} of the metric group {@code uxstream.<counter>}, as occurrence_count does.
 *
 * <p>Why: with one keyed-state entry per event id, the heap backend holds ~7 objects per id (the key row
 * and its bytes, the map entry, the TTL wrapper, the accumulator row and its fields), every one of which the
 * young collections copy and age before it reaches the old generation, and every checkpoint serializes
 * field by field. A bucket ({@link Ids}) keeps its ids in one byte arena with parallel arrays and an open
 * addressing index: no object per id, a checkpoint writes each array at once. With RocksDB the bucket would
 * be (de)serialized whole on every access, so jobs on RocksDB keep the per-id window
 * (jobs/common/decode.py {@code dedup_sql}).
 */
public final class EventIds {
  private EventIds() {}

  /** The number of buckets; a power of two. Part of the state layout: changing it needs a new layout. */
  public static final int BUCKETS = 1024;

  /** The bucket of the UTF-8 bytes {@code bytes}: a fixed function (FNV-1a, then MurmurHash3's fmix32). */
  static int bucket(byte[] bytes) {
    return mix(fnv(0x811c9dc5, bytes, 0, bytes.length)) & (BUCKETS - 1);
  }

  private static int fnv(int seed, byte[] bytes, int from, int to) {
    int h = seed;
    for (int i = from; i < to; i++) {
      h = (h ^ (bytes[i] & 0xff)) * 0x01000193;
    }
    return h;
  }

  private static int mix(int h) {
    h ^= h >>> 16;
    h *= 0x85ebca6b;
    h ^= h >>> 13;
    h *= 0xc2b2ae35;
    h ^= h >>> 16;
    return h;
  }

  private static byte[] bytes(StringData id) {
    return id.toBytes();
  }

  /** {@code dedup_bucket(event_id STRING) -> INT}: the id's bucket (NULL for NULL). */
  public static class Bucket extends ScalarFunction {
    private static final long serialVersionUID = 1L;

    public Integer eval(@DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData id) {
      return id == null ? null : bucket(bytes(id));
    }
  }

  /**
   * The ids of one bucket with their occurrence counts and last occurrence (processing time, epoch ms).
   * Entry i is {@code meta[3i]} = its id's start in {@code arena} &lt;&lt; 32 | its length, {@code meta[3i+1]}
   * = its count, {@code meta[3i+2]} = its last occurrence: one array, so an entry is one cache line.
   * {@code index} is an open-addressing table (linear probing, at most half full) of {@code hash &lt;&lt; 32 |
   * entry + 1}, 0 = empty: a probe compares hashes and reads an id's bytes only when they match, so a new
   * id (most events) touches the index alone. Ids are only ever removed all expired ones at a time ({@link
   * #expire}), which rebuilds the arrays.
   */
  public static final class Ids {
    /** Per-JVM seed of the index's hash: the index is rebuilt on read, never serialized. */
    private static final int SEED = new SecureRandom().nextInt();

    private static final int STRIDE = 3;

    byte[] arena = new byte[256];
    int used;
    int size;
    long[] meta = new long[8 * STRIDE];
    long[] index = new long[16];
    /** No entry's last occurrence is older than this (a lower bound; exact after {@link #expire}). */
    long oldest = Long.MAX_VALUE;
    /** The occurrence number the last {@link #occur} gave (what getValue returns). */
    transient long latest;

    /** The number of ids remembered. */
    public int size() {
      return size;
    }

    private static int hash(byte[] bytes, int from, int to) {
      return mix(fnv(SEED, bytes, from, to));
    }

    private int start(int entry) {
      return (int) (meta[entry * STRIDE] >>> 32);
    }

    private int length(int entry) {
      return (int) meta[entry * STRIDE];
    }

    private boolean same(int entry, byte[] id) {
      int start = start(entry);
      return length(entry) == id.length
          && Arrays.equals(arena, start, start + id.length, id, 0, id.length);
    }

    /** The slot of {@code id} in the index, or the empty slot where it would go. */
    private int slot(byte[] id, int hash) {
      int mask = index.length - 1;
      int slot = hash & mask;
      long wanted = (long) hash << 32;
      while (true) {
        long cell = index[slot];
        if (cell == 0 || ((cell & 0xffffffff00000000L) == wanted && same((int) cell - 1, id))) {
          return slot;
        }
        slot = (slot + 1) & mask;
      }
    }

    /**
     * An occurrence of {@code id} at {@code now}: its occurrence number, 1 when the id is new or its last
     * occurrence is {@code ttlMs} or more ago ({@code ttlMs} &lt;= 0: never forgotten).
     */
    public long occur(byte[] id, long now, long ttlMs) {
      if (ttlMs > 0 && size > 0 && now - oldest >= ttlMs) {
        expire(now, ttlMs);
      }
      int hash = hash(id, 0, id.length);
      int slot = slot(id, hash);
      long cell = index[slot];
      if (cell != 0) {
        int at = ((int) cell - 1) * STRIDE;
        boolean expired = ttlMs > 0 && now - meta[at + 2] >= ttlMs;
        meta[at + 1] = expired ? 1 : meta[at + 1] + 1;
        meta[at + 2] = now;
        latest = meta[at + 1];
        return latest;
      }
      index[slot] = (long) hash << 32 | (add(id, 1, now) + 1);
      if (2 * size > index.length) {
        reindex(index.length * 2);
      }
      latest = 1;
      return 1;
    }

    /** Appends an entry (not to the index); returns its number. */
    private int add(byte[] id, long occurrences, long at) {
      if ((size + 1) * STRIDE > meta.length) {
        meta = Arrays.copyOf(meta, meta.length * 2);
      }
      if (used + id.length > arena.length) {
        arena = Arrays.copyOf(arena, Math.max(arena.length * 2, used + id.length));
      }
      System.arraycopy(id, 0, arena, used, id.length);
      int entry = size;
      meta[entry * STRIDE] = (long) used << 32 | id.length;
      meta[entry * STRIDE + 1] = occurrences;
      meta[entry * STRIDE + 2] = at;
      used += id.length;
      oldest = Math.min(oldest, at);
      size++;
      return entry;
    }

    private void reindex(int capacity) {
      index = new long[capacity];
      int mask = capacity - 1;
      for (int entry = 0; entry < size; entry++) {
        int start = start(entry);
        int hash = hash(arena, start, start + length(entry));
        int slot = hash & mask;
        while (index[slot] != 0) {
          slot = (slot + 1) & mask;
        }
        index[slot] = (long) hash << 32 | (entry + 1);
      }
    }

    private static int slots(int size) {
      int capacity = 16;
      while (capacity < 2 * size) {
        capacity *= 2;
      }
      return capacity;
    }

    /** Drops every id whose last occurrence is {@code ttlMs} or more before {@code now}. */
    void expire(long now, long ttlMs) {
      int kept = 0;
      int keptBytes = 0;
      long keptOldest = Long.MAX_VALUE;
      for (int entry = 0; entry < size; entry++) {
        long last = meta[entry * STRIDE + 2];
        if (now - last < ttlMs) {
          int length = length(entry);
          System.arraycopy(arena, start(entry), arena, keptBytes, length);
          meta[kept * STRIDE] = (long) keptBytes << 32 | length;
          meta[kept * STRIDE + 1] = meta[entry * STRIDE + 1];
          meta[kept * STRIDE + 2] = last;
          keptBytes += length;
          keptOldest = Math.min(keptOldest, last);
          kept++;
        }
      }
      size = kept;
      used = keptBytes;
      oldest = keptOldest;
      reindex(slots(size));
    }

    Ids copy() {
      Ids copy = new Ids();
      copy.arena = Arrays.copyOf(arena, Math.max(used, 1));
      copy.used = used;
      copy.size = size;
      copy.meta = Arrays.copyOf(meta, Math.max(size, 1) * STRIDE);
      copy.index = index.clone();
      copy.oldest = oldest;
      copy.latest = latest;
      return copy;
    }

    /** The serialized form: size, then per entry its id's length, count and last occurrence, then the ids. */
    void writeTo(DataOutputView out) throws IOException {
      out.writeInt(size);
      out.writeInt(used);
      for (int entry = 0; entry < size; entry++) {
        out.writeInt(length(entry));
        out.writeLong(meta[entry * STRIDE + 1]);
        out.writeLong(meta[entry * STRIDE + 2]);
      }
      out.write(arena, 0, used);
    }

    static Ids readFrom(DataInputView in) throws IOException {
      int size = in.readInt();
      int used = in.readInt();
      if (size < 0 || used < 0) {
        throw new IOException("event ids: a bucket of " + size + " ids in " + used + " bytes");
      }
      Ids ids = new Ids();
      ids.meta = new long[Math.max(size, 1) * STRIDE];
      long at = 0;
      long oldest = Long.MAX_VALUE;
      for (int entry = 0; entry < size; entry++) {
        int length = in.readInt();
        if (length < 0 || at + length > used) {
          throw new IOException("event ids: an id of " + length + " bytes past the form's " + used);
        }
        ids.meta[entry * STRIDE] = at << 32 | length;
        ids.meta[entry * STRIDE + 1] = in.readLong();
        ids.meta[entry * STRIDE + 2] = in.readLong();
        at += length;
        oldest = Math.min(oldest, ids.meta[entry * STRIDE + 2]);
      }
      if (at != used) {
        throw new IOException("event ids: ids of " + at + " bytes in a form that says " + used);
      }
      ids.arena = new byte[Math.max(used, 1)];
      in.readFully(ids.arena, 0, used);
      ids.used = used;
      ids.size = size;
      ids.oldest = oldest;
      ids.reindex(slots(size));
      return ids;
    }
  }

  /** {@link Ids} as a heap object in state, written and read with its serialized form. */
  public static final class IdsSerializer extends TypeSerializerSingleton<Ids> {
    private static final long serialVersionUID = 1L;

    @Override
    public boolean isImmutableType() {
      return false;
    }

    @Override
    public Ids createInstance() {
      return new Ids();
    }

    @Override
    public Ids copy(Ids from) {
      return from.copy();
    }

    @Override
    public Ids copy(Ids from, Ids reuse) {
      return from.copy();
    }

    @Override
    public int getLength() {
      return -1;
    }

    @Override
    public void serialize(Ids ids, DataOutputView out) throws IOException {
      ids.writeTo(out);
    }

    @Override
    public Ids deserialize(DataInputView in) throws IOException {
      return Ids.readFrom(in);
    }

    @Override
    public Ids deserialize(Ids reuse, DataInputView in) throws IOException {
      return Ids.readFrom(in);
    }

    @Override
    public void copy(DataInputView in, DataOutputView out) throws IOException {
      serialize(deserialize(in), out);
    }

    @Override
    public TypeSerializerSnapshot<Ids> snapshotConfiguration() {
      return new IdsSerializerSnapshot();
    }
  }

  /** The serializer's snapshot (no configuration: the form is versioned with the job's state layout). */
  public static final class IdsSerializerSnapshot extends SimpleTypeSerializerSnapshot<Ids> {
    public IdsSerializerSnapshot() {
      super(IdsSerializer::new);
    }
  }

  /** {@code occurrence_number(counter STRING, event_id STRING, ttl_ms BIGINT) -> BIGINT} (see the class). */
  @FunctionHint(
      accumulator =
          @DataTypeHint(value = "RAW", bridgedTo = Ids.class, rawSerializer = IdsSerializer.class))
  public static class Occurrence extends AggregateFunction<Long, Ids> {
    private static final long serialVersionUID = 1L;

    private transient MetricGroup metrics;
    private transient Counter counter;

    @Override
    public void open(FunctionContext context) {
      metrics = context.getMetricGroup().addGroup("uxstream");
    }

    @Override
    public Ids createAccumulator() {
      return new Ids();
    }

    public void accumulate(
        Ids ids,
        String counterName,
        @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData id,
        Long ttlMs) {
      if (id == null) {
        throw new IllegalArgumentException("occurrence_number: the event id is NULL");
      }
      long occurrence = ids.occur(bytes(id), System.currentTimeMillis(), ttlMs == null ? 0 : ttlMs);
      if (occurrence > 1 && metrics != null) {
        if (counter == null) {
          if (counterName == null || !counterName.matches("[a-z0-9_]+")) {
            throw new IllegalArgumentException(
                "occurrence_number: the counter name must match [a-z0-9_]+, got " + counterName);
          }
          counter = metrics.addGroup(counterName).counter("total");
        }
        counter.inc();
      }
    }

    @Override
    public Long getValue(Ids ids) {
      return ids.latest;
    }
  }

  /**
   * The command line the parity tests drive (tests/decode/test_event_ids.py): reads lines {@code
   * <now_ms> <ttl_ms> <bucket> <event id>} (the id is the rest of the line), keeps one {@link Ids} per bucket
   * and prints each line's occurrence number; a line {@code ROUNDTRIP} sends every bucket through the
   * serializer (written, read back, copied) and prints the ids remembered. Also prints {@code dedup_bucket}
   * of each id as {@code B <bucket>} when the bucket field is {@code -}.
   */
  public static void main(String[] args) throws IOException {
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
    IdsSerializer serializer = new IdsSerializer();
    Ids[] buckets = new Ids[BUCKETS];
    String line;
    while ((line = in.readLine()) != null) {
      if (line.equals("ROUNDTRIP")) {
        int total = 0;
        for (int b = 0; b < BUCKETS; b++) {
          if (buckets[b] != null) {
            DataOutputSerializer form = new DataOutputSerializer(64);
            serializer.serialize(buckets[b], form);
            Ids read = serializer.deserialize(new DataInputDeserializer(form.getCopyOfBuffer()));
            buckets[b] = serializer.copy(read);
            total += buckets[b].size();
          }
        }
        out.println("IDS " + total);
        continue;
      }
      String[] parts = line.split(" ", 4);
      byte[] id = parts[3].getBytes(StandardCharsets.UTF_8);
      if (parts[2].equals("-")) {
        out.println("B " + bucket(id));
        continue;
      }
      int b = Integer.parseInt(parts[2]);
      if (buckets[b] == null) {
        buckets[b] = new Ids();
      }
      out.println(buckets[b].occur(id, Long.parseLong(parts[0]), Long.parseLong(parts[1])));
    }
    out.flush();
  }
}
