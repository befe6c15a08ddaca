package io.uxstream.udf;

import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code to_utc(instant TIMESTAMP_LTZ(3)) -> TIMESTAMP(3)}: the UTC wall-clock time of an instant,
 * whatever {@code table.local-time-zone} is. The JDBC sink cannot write TIMESTAMP_LTZ; it writes a
 * TIMESTAMP, which PostgreSQL reads in the JVM's default zone (uxstream runs its JVMs with
 * {@code -Duser.timezone=UTC}), so a TIMESTAMPTZ column receives the exact instant. A plain CAST would
 * give the session zone's wall clock, which is ambiguous in the hour a daylight-saving zone repeats.
 */
public class ToUtc extends ScalarFunction {
  private static final long serialVersionUID = 1L;

  public @DataTypeHint("TIMESTAMP(3)") LocalDateTime eval(
      @DataTypeHint(value = "TIMESTAMP_LTZ(3)", bridgedTo = Instant.class) Instant instant) {
    return instant == null ? null : LocalDateTime.ofInstant(instant, ZoneOffset.UTC);
  }
}
