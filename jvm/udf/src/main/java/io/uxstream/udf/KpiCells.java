package io.uxstream.udf;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.base.TypeSerializerSingleton;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.functions.AggregateFunction;
import org.apache.flink.types.Row;
import org.apache.flink.types.StringValue;

/**
 * The 1-minute KPI cells of a tumbling window, every dimension at once (jobs/sessionize/job.py, issue 17):
 * one aggregate call per event instead of a GROUPING SETS expansion into one row per dimension, each with
 * twenty filtered aggregates.
 *
 * <p>{@code kpi_cells(value_1, value_2, value_3, first, duplicate, bot, page_view, error, vital, conversion,
 * user_id, anonymous_id, lcp_ms, inp_ms, cls, feedback, nps, csat, feedback_score, promoter, detractor)}
 * groups an event into slot 0 (the whole window) and into slot {@code i} under {@code value_i} for every
 * non-null {@code value_i} (the job passes its configured dimensions' values, NULL for unused slots). Per
 * cell it computes exactly what the job's SQL computed per GROUPING SETS row: counts of the events for
 * which the flags hold ({@code first} = first occurrence and counted, {@code duplicate}, {@code bot}; the
 * others only count with {@code first}), the people of {@link UserSet} ({@code user_set} over the first
 * occurrences), Flink's {@code PERCENTILE(x, 0.75)} of the web vitals ({@link #percentile}, the same
 * arithmetic) and the feedback counts and sums ({@code promoter}, {@code detractor}: the score against the
 * NPS bounds; a passive is an NPS answer with a score that is neither). A NULL flag counts as false, as in
 * a FILTER clause.
 *
 * <p>The result is one row per cell ({@link #CELLS}); the job unnests it into the minute rows that the
 * sliding and cumulative windows cascade from. The accumulator is a heap object with its own serializer
 * (the local and global phases of the window aggregate exchange it once per window and subtask).
 */
@FunctionHint(
    accumulator =
        @DataTypeHint(
            value = "RAW",
            bridgedTo = KpiCells.Cells.class,
            rawSerializer = KpiCells.CellsSerializer.class),
    output = @DataTypeHint(KpiCells.CELLS))
public final class KpiCells extends AggregateFunction<Row[], KpiCells.Cells> {
  private static final long serialVersionUID = 1L;

  /** Dimension slots besides slot 0 (the whole window). */
  public static final int SLOTS = 3;

  /** The result: one row per cell of the window. */
  public static final String CELLS =
      "ARRAY<ROW<slot INT, dimension_value STRING, events BIGINT, page_views BIGINT, people "
          + UserSet.PEOPLE
          + ", error_events BIGINT, conversions BIGINT, duplicates BIGINT, bot_events BIGINT,"
          + " lcp_p75 DOUBLE, inp_p75 DOUBLE, cls_p75 DOUBLE, feedback_responses BIGINT,"
          + " nps_responses BIGINT, nps_score_sum BIGINT, nps_promoters BIGINT, nps_passives BIGINT,"
          + " nps_detractors BIGINT, csat_responses BIGINT, csat_score_sum BIGINT>>";

  static final double P75 = 0.75;

  /** Counters of a cell, in the order of {@link #CELLS} (after people) and of the serialized form. */
  static final int EVENTS = 0;
  static final int PAGE_VIEWS = 1;
  static final int ERRORS = 2;
  static final int CONVERSIONS = 3;
  static final int DUPLICATES = 4;
  static final int BOTS = 5;
  static final int FEEDBACK = 6;
  static final int NPS = 7;
  static final int NPS_SUM = 8;
  static final int NPS_SUMMED = 9;
  static final int PROMOTERS = 10;
  static final int PASSIVES = 11;
  static final int DETRACTORS = 12;
  static final int CSAT = 13;
  static final int CSAT_SUM = 14;
  static final int CSAT_SUMMED = 15;
  static final int COUNTERS = 16;

  /** A growable list of doubles (the samples of one web vital). */
  static final class Samples {
    double[] values = new double[4];
    int size;

    void add(double value) {
      if (size == values.length) {
        values = Arrays.copyOf(values, size * 2);
      }
      values[size++] = value;
    }

    void addAll(Samples other) {
      for (int i = 0; i < other.size; i++) {
        add(other.values[i]);
      }
    }
  }

  /** One cell: a dimension value of one window. */
  public static final class Cell {
    final long[] counters = new long[COUNTERS];
    final UserSet.Accumulator people = new UserSet.Accumulator();
    final Samples lcp = new Samples();
    final Samples inp = new Samples();
    final Samples cls = new Samples();

    void mergeFrom(Cell other) throws Exception {
      for (int i = 0; i < COUNTERS; i++) {
        counters[i] += other.counters[i];
      }
      people.mergeFrom(other.people);
      lcp.addAll(other.lcp);
      inp.addAll(other.inp);
      cls.addAll(other.cls);
    }
  }

  /** The accumulator: the cells of slot 0 (key "") and of every dimension slot, by value. */
  public static final class Cells {
    @SuppressWarnings("unchecked")
    final Map<String, Cell>[] slots = new Map[SLOTS + 1];

    public Cells() {
      for (int i = 0; i <= SLOTS; i++) {
        slots[i] = new HashMap<>();
      }
    }

    Cell cell(int slot, String value) {
      return slots[slot].computeIfAbsent(value, v -> new Cell());
    }
  }

  @Override
  public Cells createAccumulator() {
    return new Cells();
  }

  private static boolean holds(Boolean flag) {
    return flag != null && flag;
  }

  public void accumulate(
      Cells cells,
      String value1,
      String value2,
      String value3,
      Boolean first,
      Boolean duplicate,
      Boolean bot,
      Boolean pageView,
      Boolean error,
      Boolean vital,
      Boolean conversion,
      String userId,
      String anonymousId,
      Double lcp,
      Double inp,
      Double cls,
      Boolean feedback,
      Boolean nps,
      Boolean csat,
      Integer score,
      Boolean promoter,
      Boolean detractor)
      throws Exception {
    Cell[] targets = {
      cells.cell(0, ""),
      value1 == null ? null : cells.cell(1, value1),
      value2 == null ? null : cells.cell(2, value2),
      value3 == null ? null : cells.cell(3, value3),
    };
    boolean counted = holds(first);
    boolean isNps = counted && holds(feedback) && holds(nps);
    boolean isCsat = counted && holds(feedback) && holds(csat);
    boolean isPromoter = isNps && holds(promoter);
    boolean isDetractor = isNps && holds(detractor);
    boolean isPassive = isNps && score != null && !holds(promoter) && !holds(detractor);
    String user = id(userId);
    String anonymous = id(anonymousId);
    for (Cell cell : targets) {
      if (cell == null) {
        continue;
      }
      long[] c = cell.counters;
      if (holds(duplicate)) {
        c[DUPLICATES]++;
      }
      if (holds(bot)) {
        c[BOTS]++;
      }
      if (!counted) {
        continue;
      }
      c[EVENTS]++;
      if (holds(pageView)) {
        c[PAGE_VIEWS]++;
      }
      if (holds(error)) {
        c[ERRORS]++;
      }
      if (holds(conversion)) {
        c[CONVERSIONS]++;
      }
      if (user != null) {
        cell.people.identified(user);
        if (anonymous != null) {
          cell.people.link(anonymous, user);
        }
      } else if (anonymous != null) {
        cell.people.anonymous(anonymous);
      }
      if (holds(vital)) {
        if (lcp != null) {
          cell.lcp.add(lcp);
        }
        if (inp != null) {
          cell.inp.add(inp);
        }
        if (cls != null) {
          cell.cls.add(cls);
        }
      }
      if (holds(feedback)) {
        c[FEEDBACK]++;
      }
      if (isNps) {
        c[NPS]++;
        if (score != null) {
          c[NPS_SUM] += score;
          c[NPS_SUMMED]++;
        }
      }
      if (isPromoter) {
        c[PROMOTERS]++;
      }
      if (isPassive) {
        c[PASSIVES]++;
      }
      if (isDetractor) {
        c[DETRACTORS]++;
      }
      if (isCsat) {
        c[CSAT]++;
        if (score != null) {
          c[CSAT_SUM] += score;
          c[CSAT_SUMMED]++;
        }
      }
    }
  }

  private static String id(String value) {
    return value == null || value.isEmpty() ? null : value;
  }

  public void merge(Cells cells, Iterable<Cells> others) throws Exception {
    for (Cells other : others) {
      for (int slot = 0; slot <= SLOTS; slot++) {
        for (Map.Entry<String, Cell> entry : other.slots[slot].entrySet()) {
          cells.cell(slot, entry.getKey()).mergeFrom(entry.getValue());
        }
      }
    }
  }

  @Override
  public Row[] getValue(Cells cells) {
    List<Row> rows = new ArrayList<>();
    try {
      for (int slot = 0; slot <= SLOTS; slot++) {
        for (Map.Entry<String, Cell> entry : cells.slots[slot].entrySet()) {
          Cell cell = entry.getValue();
          long[] c = cell.counters;
          rows.add(
              Row.of(
                  slot,
                  slot == 0 ? null : entry.getKey(),
                  c[EVENTS],
                  c[PAGE_VIEWS],
                  cell.people.people(),
                  c[ERRORS],
                  c[CONVERSIONS],
                  c[DUPLICATES],
                  c[BOTS],
                  percentile(cell.lcp, P75),
                  percentile(cell.inp, P75),
                  percentile(cell.cls, P75),
                  c[FEEDBACK],
                  c[NPS],
                  c[NPS_SUMMED] == 0 ? null : c[NPS_SUM],
                  c[PROMOTERS],
                  c[PASSIVES],
                  c[DETRACTORS],
                  c[CSAT],
                  c[CSAT_SUMMED] == 0 ? null : c[CSAT_SUM]));
        }
      }
    } catch (Exception e) {
      throw new IllegalStateException("kpi_cells: cannot read the window's cells", e);
    }
    return rows.toArray(new Row[0]);
  }

  /**
   * Flink's {@code PERCENTILE(x, fraction)} (PercentileAggFunction, same arithmetic): the values in
   * {@link Double#compare} order, the 1-based position {@code fraction * (n - 1) + 1}; when the ranks at
   * its floor and ceiling hold the same value, that value, else {@code (ceil - position) * low + (position -
   * floor) * high}; NULL without values.
   */
  static Double percentile(Samples samples, double fraction) {
    if (samples.size == 0) {
      return null;
    }
    double[] sorted = Arrays.copyOf(samples.values, samples.size);
    Arrays.sort(sorted);
    double position = fraction * (double) (samples.size - 1) + 1.0;
    long floor = (long) Math.floor(position);
    long ceil = (long) Math.ceil(position);
    double low = sorted[(int) floor - 1];
    double high = sorted[(int) ceil - 1];
    if (Double.compare(low, high) == 0) {
      return low;
    }
    return ((double) ceil - position) * low + (position - (double) floor) * high;
  }

  /** The accumulator's serialized form (exchanged between the window aggregate's phases, checkpointed). */
  public static final class CellsSerializer extends TypeSerializerSingleton<Cells> {
    private static final long serialVersionUID = 1L;

    @Override
    public boolean isImmutableType() {
      return false;
    }

    @Override
    public Cells createInstance() {
      return new Cells();
    }

    @Override
    public Cells copy(Cells from) {
      Cells copy = new Cells();
      try {
        for (int slot = 0; slot <= SLOTS; slot++) {
          for (Map.Entry<String, Cell> entry : from.slots[slot].entrySet()) {
            copy.cell(slot, entry.getKey()).mergeFrom(entry.getValue());
          }
        }
      } catch (Exception e) {
        throw new IllegalStateException("kpi_cells: cannot copy an accumulator", e);
      }
      return copy;
    }

    @Override
    public Cells copy(Cells from, Cells reuse) {
      return copy(from);
    }

    @Override
    public int getLength() {
      return -1;
    }

    @Override
    public void serialize(Cells cells, DataOutputView out) throws IOException {
      try {
        for (int slot = 0; slot <= SLOTS; slot++) {
          out.writeInt(cells.slots[slot].size());
          for (Map.Entry<String, Cell> entry : cells.slots[slot].entrySet()) {
            StringValue.writeString(entry.getKey(), out);
            writeCell(entry.getValue(), out);
          }
        }
      } catch (IOException e) {
        throw e;
      } catch (Exception e) {
        throw new IOException("kpi_cells: cannot serialize an accumulator", e);
      }
    }

    private static void writeCell(Cell cell, DataOutputView out) throws Exception {
      for (long counter : cell.counters) {
        out.writeLong(counter);
      }
      cell.people.writeTo(out);
      for (Samples samples : new Samples[] {cell.lcp, cell.inp, cell.cls}) {
        out.writeInt(samples.size);
        for (int i = 0; i < samples.size; i++) {
          out.writeDouble(samples.values[i]);
        }
      }
    }

    @Override
    public Cells deserialize(DataInputView in) throws IOException {
      Cells cells = new Cells();
      try {
        for (int slot = 0; slot <= SLOTS; slot++) {
          int count = in.readInt();
          for (int i = 0; i < count; i++) {
            String value = StringValue.readString(in);
            readCell(cells.cell(slot, value), in);
          }
        }
      } catch (IOException e) {
        throw e;
      } catch (Exception e) {
        throw new IOException("kpi_cells: cannot deserialize an accumulator", e);
      }
      return cells;
    }

    private static void readCell(Cell cell, DataInputView in) throws Exception {
      for (int i = 0; i < COUNTERS; i++) {
        cell.counters[i] = in.readLong();
      }
      cell.people.readFrom(in);
      for (Samples samples : new Samples[] {cell.lcp, cell.inp, cell.cls}) {
        int size = in.readInt();
        for (int i = 0; i < size; i++) {
          samples.add(in.readDouble());
        }
      }
    }

    @Override
    public Cells deserialize(Cells reuse, DataInputView in) throws IOException {
      return deserialize(in);
    }

    @Override
    public void copy(DataInputView in, DataOutputView out) throws IOException {
      serialize(deserialize(in), out);
    }

    @Override
    public TypeSerializerSnapshot<Cells> snapshotConfiguration() {
      return new CellsSerializerSnapshot();
    }
  }

  /** The serializer's snapshot (no configuration: the form is versioned with the job's state layout). */
  public static final class CellsSerializerSnapshot extends SimpleTypeSerializerSnapshot<Cells> {
    public CellsSerializerSnapshot() {
      super(CellsSerializer::new);
    }
  }
}
