package io.uxstream.udf;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.base.TypeSerializerSingleton;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.core.memory.DataOutputView;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.api.dataview.MapView;
import org.apache.flink.table.functions.AggregateFunction;
import org.apache.flink.types.Row;

/**
 * The people of the cascaded KPI windows (jobs/sessionize/job.py), exact, with logins stitched (README
 * "Active users and logins", issue 22 item 4 rule 2).
 *
 * <p>Per event: a non-empty {@code user_id} makes the event <em>identified</em> (it counts as that user);
 * an event without one is <em>anonymous</em> (it counts as its {@code anonymous_id}); an event carrying both
 * <em>links</em> its anonymous id to its user id. In a window, an anonymous id that an event of the same
 * window row links to a user counts as that user (linked to several: the least user id, by Unicode code
 * point order, Python's string order); else it counts as itself. Every link comes from an identified event
 * of the same row, so a linked anonymous id adds no one: the window's people are its user ids plus its
 * anonymous ids that no event of the window links.
 *
 * <p>{@code user_set(user_id STRING, anonymous_id STRING) -> PEOPLE} aggregates a 1-minute window row
 * into {@code users} (the sorted resolved people: what {@code active_users} counts and {@code users_sketch}
 * sketches), {@code anonymous} (the sorted subset of {@code users} counted as an anonymous id: a link in
 * another minute of a longer window may still resolve it) and {@code links} (anonymous id → least user id
 * linked in the minute). {@code user_count(people PEOPLE) -> BIGINT} counts the people of the union of such
 * minute rows (the sliding and cumulative windows), applying the links of every minute covered: the same
 * figure as the rule applied to the events of the longer window at once, without aggregating every event
 * three times.
 *
 * <p>Sets and maps, a minimum per link: the results depend on the window's events alone, never on their
 * arrival order, a restore or the slices a window is merged from. {@code user_set}'s sets live in {@link
 * MapView}s (keyed map state, one entry per key, where Flink backs them with state); {@code user_count}'s
 * accumulator is the same class held as one heap object per window and key ({@link PeopleSerializer}): with
 * the heap state backend it is serialized only at checkpoints and between the aggregate's two phases.
 */
public final class UserSet {
  private UserSet() {}

  /** The SQL type of a minute row's people ({@code user_set}'s result, {@code user_count}'s argument). */
  public static final String PEOPLE =
      "ROW<users ARRAY<STRING>, anonymous ARRAY<STRING>, links MAP<STRING, STRING>>";

  /** Unicode code point order (Python's {@code str} order; Java's natural order is UTF-16 units). */
  static final Comparator<String> CODE_POINTS = UserSet::compareCodePoints;

  static int compareCodePoints(String a, String b) {
    int i = 0;
    int j = 0;
    while (i < a.length() && j < b.length()) {
      int ca = a.codePointAt(i);
      int cb = b.codePointAt(j);
      if (ca != cb) {
        return Integer.compare(ca, cb);
      }
      i += Character.charCount(ca);
      j += Character.charCount(cb);
    }
    return Boolean.compare(i < a.length(), j < b.length());
  }

  private static String id(String value) {
    return value == null || value.isEmpty() ? null : value;
  }

  /**
   * The people of a window: each key with whether an identified event (or, in a longer window, a minute in
   * which it was identified) names it ({@code TRUE}) or only anonymous events do ({@code FALSE}); and the
   * least user id each linked anonymous id is linked to.
   */
  public static class Accumulator {
    public MapView<String, Boolean> keys = new MapView<>();
    public MapView<String, String> links = new MapView<>();

    /**
     * The window's people ({@link #count}), kept by the methods that change the maps. Transient: not a
     * field of {@code user_set}'s structured accumulator; {@code user_count}'s heap accumulators go through
     * these methods, {@link #readFrom} and {@link PeopleSerializer#copy} only, so it is always exact there
     * (a state-backed {@code user_set} accumulator never counts).
     */
    transient long people;

    void identified(String user) throws Exception {
      Boolean known = keys.get(user);
      if (Boolean.TRUE.equals(known)) {
        return;
      }
      if (known == null || links.contains(user)) {
        people++; // new, or an anonymous id that a link had resolved to a user: counted as itself now
      }
      keys.put(user, Boolean.TRUE);
    }

    void anonymous(String anonymousId) throws Exception {
      if (!keys.contains(anonymousId)) {
        keys.put(anonymousId, Boolean.FALSE);
        if (!links.contains(anonymousId)) {
          people++;
        }
      }
    }

    void link(String anonymousId, String user) throws Exception {
      String known = links.get(anonymousId);
      if (known == null) {
        if (Boolean.FALSE.equals(keys.get(anonymousId))) {
          people--; // the anonymous id counted as itself; now it resolves to a user
        }
        links.put(anonymousId, user);
      } else if (compareCodePoints(user, known) < 0) {
        links.put(anonymousId, user);
      }
    }

    void mergeFrom(Accumulator other) throws Exception {
      for (Map.Entry<String, Boolean> key : other.keys.entries()) {
        if (key.getValue()) {
          identified(key.getKey());
        } else {
          anonymous(key.getKey());
        }
      }
      for (Map.Entry<String, String> link : other.links.entries()) {
        link(link.getKey(), link.getValue());
      }
    }

    /** Whether {@code key} is one of the window's people (an anonymous id counts unless it is linked). */
    boolean counts(Map.Entry<String, Boolean> key) throws Exception {
      return key.getValue() || !links.contains(key.getKey());
    }

    /** The window's people as a {@link #PEOPLE} row (sorted arrays, sorted map). */
    Row people() throws Exception {
      List<String> users = new ArrayList<>();
      List<String> anonymous = new ArrayList<>();
      for (Map.Entry<String, Boolean> key : keys.entries()) {
        if (counts(key)) {
          users.add(key.getKey());
          if (!key.getValue()) {
            anonymous.add(key.getKey());
          }
        }
      }
      users.sort(CODE_POINTS);
      anonymous.sort(CODE_POINTS);
      Map<String, String> linked = new TreeMap<>(CODE_POINTS);
      for (Map.Entry<String, String> link : links.entries()) {
        linked.put(link.getKey(), link.getValue());
      }
      return Row.of(users.toArray(new String[0]), anonymous.toArray(new String[0]), linked);
    }

    /**
     * How many people the window has: O(1), kept as the maps change (a daily window counted its whole day
     * at every 5-minute step otherwise: most of its thread's time in issue 17's profile).
     */
    long count() {
      return people;
    }

    /** The people by a walk over the maps ({@link #count} without the running figure). */
    private long countByScan() throws Exception {
      long count = 0;
      for (Map.Entry<String, Boolean> key : keys.entries()) {
        if (counts(key)) {
          count++;
        }
      }
      return count;
    }

    /**
     * The form: the length in bytes of what follows, then the keys' number, each key ({@link #writeId})
     * with its flag byte, the links' number and each link's two ids. Built in one buffer and written at
     * once: written an id and a character at a time, through Flink's {@code StringValue}, the stream calls
     * and thread-local lookups took most of the KPI window threads' time (issue 17's profile).
     */
    void writeTo(DataOutputView out) throws Exception {
      DataOutputSerializer form = new DataOutputSerializer(256);
      int count = 0;
      form.writeInt(0);
      for (Map.Entry<String, Boolean> key : keys.entries()) {
        writeId(form, key.getKey());
        form.writeBoolean(key.getValue());
        count++;
      }
      int linksAt = form.length();
      form.writeInt(0);
      int pairs = 0;
      for (Map.Entry<String, String> link : links.entries()) {
        writeId(form, link.getKey());
        writeId(form, link.getValue());
        pairs++;
      }
      byte[] bytes = form.getSharedBuffer();
      putInt(bytes, 0, count);
      putInt(bytes, linksAt, pairs);
      out.writeInt(form.length());
      out.write(bytes, 0, form.length());
    }

    /** Adds what {@link #writeTo} wrote (into an empty accumulator: the same people and links). */
    void readFrom(DataInputView in) throws Exception {
      int length = in.readInt();
      if (length < 8) {
        throw new IOException("a serialized people set of " + length + " bytes (at least 8)");
      }
      byte[] bytes = new byte[length];
      in.readFully(bytes);
      DataInputDeserializer form = new DataInputDeserializer(bytes);
      int count = form.readInt();
      Map<String, Boolean> keyMap = new HashMap<>(capacity(count + keys.getMap().size()));
      keyMap.putAll(keys.getMap());
      for (int i = 0; i < count; i++) {
        String key = readId(form, bytes);
        keyMap.put(key, form.readBoolean());
      }
      keys.setMap(keyMap);
      int pairs = form.readInt();
      Map<String, String> linkMap = new HashMap<>(capacity(pairs + links.getMap().size()));
      linkMap.putAll(links.getMap());
      for (int i = 0; i < pairs; i++) {
        String key = readId(form, bytes);
        linkMap.put(key, readId(form, bytes));
      }
      links.setMap(linkMap);
      if (form.available() != 0) {
        throw new IOException("a serialized people set with " + form.available() + " bytes left over");
      }
      people = countByScan();
    }
  }

  private static int capacity(int entries) {
    return (int) (entries / 0.75f) + 1;
  }

  private static void putInt(byte[] bytes, int at, int value) {
    bytes[at] = (byte) (value >>> 24);
    bytes[at + 1] = (byte) (value >>> 16);
    bytes[at + 2] = (byte) (value >>> 8);
    bytes[at + 3] = (byte) value;
  }

  /**
   * An id: its length in UTF-16 units shifted left by one, the low bit set when it holds a unit above
   * U+00FF; then a byte per unit (ISO 8859-1, exact for such ids: all of the generator's, every ASCII id)
   * or two per unit. Any Java string reads back equal, lone surrogates included.
   */
  static void writeId(DataOutputSerializer out, String id) throws IOException {
    int length = id.length();
    for (int i = 0; i < length; i++) {
      if (id.charAt(i) > 0xFF) {
        out.writeInt(length << 1 | 1);
        for (int j = 0; j < length; j++) {
          out.writeChar(id.charAt(j));
        }
        return;
      }
    }
    out.writeInt(length << 1);
    for (int i = 0; i < length; i++) {
      out.writeByte(id.charAt(i)); // Flink's writeBytes(String) moves the position twice
    }
  }

  static String readId(DataInputDeserializer in, byte[] bytes) throws IOException {
    int header = in.readInt();
    int length = header >>> 1;
    if ((header & 1) == 0) {
      if (length > in.available()) {
        throw new IOException("a serialized id of " + length + " bytes, " + in.available() + " left");
      }
      String id = new String(bytes, in.getPosition(), length, StandardCharsets.ISO_8859_1);
      in.skipBytesToRead(length);
      return id;
    }
    if (2L * length > in.available()) {
      throw new IOException("a serialized id of " + length + " units, " + in.available() + " bytes left");
    }
    char[] units = new char[length];
    for (int i = 0; i < length; i++) {
      units[i] = in.readChar();
    }
    return new String(units);
  }

  /**
   * {@link Accumulator} as a heap object with this serialized form ({@code user_count}'s accumulator, and
   * the people inside {@link KpiCells}' cells). A {@code user_count} accumulator in a window aggregate's
   * state is then one heap value per window and key, merged and counted as a Java map, instead of map
   * state with an entry per person, each access going through the state table (issue 17: the sliding and
   * cumulative windows' threads spent most of their time there).
   */
  public static final class PeopleSerializer extends TypeSerializerSingleton<Accumulator> {
    private static final long serialVersionUID = 1L;

    @Override
    public boolean isImmutableType() {
      return false;
    }

    @Override
    public Accumulator createInstance() {
      return new Accumulator();
    }

    @Override
    public Accumulator copy(Accumulator from) {
      Accumulator copy = new Accumulator();
      try {
        copy.mergeFrom(from);
      } catch (Exception e) {
        throw new IllegalStateException("user_count: cannot copy an accumulator", e);
      }
      return copy;
    }

    @Override
    public Accumulator copy(Accumulator from, Accumulator reuse) {
      return copy(from);
    }

    @Override
    public int getLength() {
      return -1;
    }

    @Override
    public void serialize(Accumulator accumulator, DataOutputView out) throws IOException {
      try {
        accumulator.writeTo(out);
      } catch (IOException e) {
        throw e;
      } catch (Exception e) {
        throw new IOException("user_count: cannot serialize an accumulator", e);
      }
    }

    @Override
    public Accumulator deserialize(DataInputView in) throws IOException {
      Accumulator accumulator = new Accumulator();
      try {
        accumulator.readFrom(in);
      } catch (IOException e) {
        throw e;
      } catch (Exception e) {
        throw new IOException("user_count: cannot deserialize an accumulator", e);
      }
      return accumulator;
    }

    @Override
    public Accumulator deserialize(Accumulator reuse, DataInputView in) throws IOException {
      return deserialize(in);
    }

    @Override
    public void copy(DataInputView in, DataOutputView out) throws IOException {
      serialize(deserialize(in), out);
    }

    @Override
    public TypeSerializerSnapshot<Accumulator> snapshotConfiguration() {
      return new PeopleSerializerSnapshot();
    }
  }

  /** The serializer's snapshot (no configuration: the form is versioned with the job's state layout). */
  public static final class PeopleSerializerSnapshot extends SimpleTypeSerializerSnapshot<Accumulator> {
    public PeopleSerializerSnapshot() {
      super(PeopleSerializer::new);
    }
  }

  static void mergeInto(Accumulator accumulator, Iterable<Accumulator> others) throws Exception {
    for (Accumulator other : others) {
      accumulator.mergeFrom(other);
    }
  }

  /** {@code user_set(user_id STRING, anonymous_id STRING) -> PEOPLE}: a minute row's people and links. */
  @FunctionHint(output = @DataTypeHint(PEOPLE))
  public static class Collect extends AggregateFunction<Row, Accumulator> {
    private static final long serialVersionUID = 1L;

    @Override
    public Accumulator createAccumulator() {
      return new Accumulator();
    }

    public void accumulate(Accumulator accumulator, String userId, String anonymousId) throws Exception {
      String user = id(userId);
      String anonymous = id(anonymousId);
      if (user != null) {
        accumulator.identified(user);
        if (anonymous != null) {
          accumulator.link(anonymous, user);
        }
      } else if (anonymous != null) {
        accumulator.anonymous(anonymous);
      }
    }

    public void merge(Accumulator accumulator, Iterable<Accumulator> others) throws Exception {
      mergeInto(accumulator, others);
    }

    @Override
    public Row getValue(Accumulator accumulator) {
      try {
        return accumulator.people();
      } catch (Exception e) {
        throw new IllegalStateException("user_set: cannot read the window's users", e);
      }
    }
  }

  /**
   * {@code user_count(people PEOPLE) -> BIGINT}: the people of the union of minute rows, links applied. Its
   * accumulator is a heap object ({@link PeopleSerializer}), whatever the aggregate's state backend.
   */
  @FunctionHint(
      accumulator =
          @DataTypeHint(
              value = "RAW",
              bridgedTo = Accumulator.class,
              rawSerializer = PeopleSerializer.class))
  public static class Count extends AggregateFunction<Long, Accumulator> {
    private static final long serialVersionUID = 1L;

    @Override
    public Accumulator createAccumulator() {
      return new Accumulator();
    }

    public void accumulate(Accumulator accumulator, @DataTypeHint(PEOPLE) Row people) throws Exception {
      if (people == null) {
        return;
      }
      String[] users = (String[]) people.getField(0);
      String[] anonymous = (String[]) people.getField(1);
      @SuppressWarnings("unchecked")
      Map<String, String> links = (Map<String, String>) people.getField(2);
      Set<String> pending = anonymous == null ? Set.of() : new HashSet<>(Arrays.asList(anonymous));
      if (users != null) {
        for (String user : users) {
          if (user == null) {
            continue;
          }
          if (pending.contains(user)) {
            accumulator.anonymous(user);
          } else {
            accumulator.identified(user);
          }
        }
      }
      if (links != null) {
        for (Map.Entry<String, String> link : links.entrySet()) {
          if (link.getKey() != null && link.getValue() != null) {
            accumulator.link(link.getKey(), link.getValue());
          }
        }
      }
    }

    public void merge(Accumulator accumulator, Iterable<Accumulator> others) throws Exception {
      mergeInto(accumulator, others);
    }

    @Override
    public Long getValue(Accumulator accumulator) {
      try {
        return accumulator.count();
      } catch (Exception e) {
        throw new IllegalStateException("user_count: cannot read the window's users", e);
      }
    }
  }

  // ------------------------------------------------------------------------------ command line (tests)

  private static final String MINUTES = "\u001e";
  private static final String EVENTS = "\u001f";
  private static final String IDS = "\u001d";
  private static final String PAIR = "\u001c";

  /**
   * {@code java -cp uxstream-udf.jar:<Flink table jars> io.uxstream.udf.UserSet}: the functions themselves
   * on windows read from stdin, one per line: minutes separated by U+001E, a minute's events by U+001F, an
   * event {@code user_id U+001D anonymous_id} (empty: none). Per window one line on stdout, tab-separated:
   * {@code user_count} over the minute rows accumulated one by one; the same over one accumulator per
   * minute, each through {@link PeopleSerializer} (serialized, read back and copied, as the exchange between
   * the window aggregate's phases and the state do), merged (as slices are); the minute rows of {@code user_set} (U+001E between minutes); the same
   * with each minute aggregated in two halves then merged; the links of the whole window. A row prints as
   * {@code users U+001D anonymous U+001D links}, lists joined by U+001F, a link as {@code anonymous U+001C
   * user}. The check-tier tests of tests/sessionize/test_identity_kpi.py.
   */
  public static void main(String[] args) throws Exception {
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
    Collect collect = new Collect();
    Count count = new Count();
    for (String line = in.readLine(); line != null; line = in.readLine()) {
      List<Row> rows = new ArrayList<>();
      List<Row> halves = new ArrayList<>();
      for (String minute : line.split(MINUTES, -1)) {
        List<String[]> events = new ArrayList<>();
        for (String event : minute.isEmpty() ? new String[0] : minute.split(EVENTS, -1)) {
          String[] ids = event.split(IDS, -1);
          if (ids.length != 2) {
            throw new IOException("an event must be 'user_id U+001D anonymous_id', got: " + event);
          }
          events.add(ids);
        }
        rows.add(collect.getValue(collected(collect, events)));
        Accumulator first = collected(collect, events.subList(0, events.size() / 2));
        Accumulator second = collected(collect, events.subList(events.size() / 2, events.size()));
        collect.merge(first, List.of(second));
        halves.add(collect.getValue(first));
      }
      Accumulator whole = count.createAccumulator();
      List<Accumulator> slices = new ArrayList<>();
      for (Row row : rows) {
        count.accumulate(whole, row);
        Accumulator slice = count.createAccumulator();
        count.accumulate(slice, row);
        slices.add(roundTrip(slice));
      }
      Accumulator merged = count.createAccumulator();
      count.merge(merged, slices);
      out.append(Long.toString(count.getValue(whole))).append('\t')
          .append(Long.toString(count.getValue(merged))).append('\t')
          .append(format(rows)).append('\t')
          .append(format(halves)).append('\t')
          .append(links(whole.people())).append('\n');
    }
    out.flush();
  }

  private static Accumulator roundTrip(Accumulator accumulator) throws IOException {
    PeopleSerializer serializer = new PeopleSerializer();
    DataOutputSerializer out = new DataOutputSerializer(256);
    serializer.serialize(accumulator, out);
    Accumulator read = serializer.deserialize(new DataInputDeserializer(out.getCopyOfBuffer()));
    return serializer.copy(read);
  }

  private static Accumulator collected(Collect collect, List<String[]> events) throws Exception {
    Accumulator accumulator = collect.createAccumulator();
    for (String[] ids : events) {
      collect.accumulate(accumulator, ids[0], ids[1]);
    }
    return accumulator;
  }

  private static String format(List<Row> rows) {
    List<String> minutes = new ArrayList<>();
    for (Row row : rows) {
      minutes.add(
          String.join(EVENTS, (String[]) row.getField(0))
              + IDS
              + String.join(EVENTS, (String[]) row.getField(1))
              + IDS
              + links(row));
    }
    return String.join(MINUTES, minutes);
  }

  private static String links(Row row) {
    List<String> pairs = new ArrayList<>();
    @SuppressWarnings("unchecked")
    Map<String, String> links = (Map<String, String>) row.getField(2);
    for (Map.Entry<String, String> link : links.entrySet()) {
      pairs.add(link.getKey() + PAIR + link.getValue());
    }
    return String.join(EVENTS, pairs);
  }
}
