package io.uxstream.udf;

import java.util.Arrays;
import org.apache.flink.table.data.RowData;

/**
 * The last payload decoded on this thread and its row. A watermark declared on the source table evaluates
 * {@code ux_event_time(payload)} inside the Kafka source, and every branch of the query after it decodes
 * the same record again in chained operators, on the same thread, before any other record: this
 * one-entry memo turns those repeated decodes into an array comparison. Keyed by content (a private copy)
 * and stored as one immutable pair, so a hit is always the right row; a miss just decodes.
 *
 * <p>Disable with the JVM system property {@code -Duxstream.udf.noMemo=true} (for measurements).
 */
final class DecodeMemo {
  private static final ThreadLocal<DecodeMemo> CURRENT = ThreadLocal.withInitial(DecodeMemo::new);
  private static final boolean ENABLED = !Boolean.getBoolean("uxstream.udf.noMemo");

  private static final class Entry {
    final byte[] payload;
    final RowData row;

    Entry(byte[] payload, RowData row) {
      this.payload = payload;
      this.row = row;
    }
  }

  private Entry last;

  private DecodeMemo() {}

  /** The row decoded last on this thread when it was decoded from these bytes, else null. */
  static RowData rowFor(byte[] payload) {
    if (!ENABLED || payload == null) {
      return null;
    }
    Entry entry = CURRENT.get().last;
    return entry != null && Arrays.equals(entry.payload, payload) ? entry.row : null;
  }

  static void remember(byte[] payload, RowData row) {
    if (ENABLED && payload != null) {
      CURRENT.get().last = new Entry(payload.clone(), row);
    }
  }
}
