package io.uxstream.udf;

import java.time.Instant;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code epoch_ms(instant TIMESTAMP_LTZ(3)) -> BIGINT}: the instant in epoch milliseconds, NULL for NULL
 * (the classification's runtime watermark, jobs/common/sql/classify.sql). Flink has no built-in for it;
 * {@code UNIX_TIMESTAMP(CAST(instant AS STRING))} formats and parses a wall-clock string of
 * {@code table.local-time-zone} on every event, and in the hour a daylight-saving zone repeats that string
 * names two instants, so it could be an hour off.
 */
public class EpochMs extends ScalarFunction {
  private static final long serialVersionUID = 1L;

  public Long eval(@DataTypeHint(value = "TIMESTAMP_LTZ(3)", bridgedTo = Instant.class) Instant instant) {
    return instant == null ? null : instant.toEpochMilli();
  }
}
