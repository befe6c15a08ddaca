package io.uxstream.udf;

/**
 * Outcome of decoding one payload: valid ({@code reason == null}, {@code values} in reader-schema field
 * order) or invalid ({@code reason}/{@code detail} set, {@code values == null}). {@code schemaId} is the
 * header's schema id (unsigned 32-bit) when the header was readable, else null.
 *
 * <p>Value representation: string → UTF-8 {@code byte[]} (validated), bytes → {@code byte[]}, int →
 * Integer, long → Long, float → Float, double → Double, boolean → Boolean, map → {@link Utf8Map} (UTF-8 keys,
 * values as above), null → null.
 */
public final class DecodeResult {
  public final String reason;
  public final String detail;
  public final Long schemaId;
  public final Object[] values;

  private DecodeResult(String reason, String detail, Long schemaId, Object[] values) {
    this.reason = reason;
    this.detail = detail;
    this.schemaId = schemaId;
    this.values = values;
  }

  static DecodeResult valid(long schemaId, Object[] values) {
    return new DecodeResult(null, null, schemaId, values);
  }

  static DecodeResult invalid(String reason, String detail, Long schemaId) {
    return new DecodeResult(reason, detail, schemaId, null);
  }

  public boolean isValid() {
    return reason == null;
  }
}
