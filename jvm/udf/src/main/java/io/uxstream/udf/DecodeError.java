package io.uxstream.udf;

/**
 * Why an Avro body does not decode, worded like the Python decoder (jobs/common/contract.py) words it: the
 * name of the exception fastavro raises there, and its message. {@link #why()} renders them exactly as
 * {@code contract.EventDecoder.decode_record} does ({@code "Type: message"}, or just the type when the
 * message is empty), so dead letters from the JVM and from Python carry the same detail.
 *
 * <p>Thrown on the hot path for every undecodable record: no stack trace is captured.
 */
final class DecodeError extends Exception {
  private static final long serialVersionUID = 1L;

  final String pythonType;

  DecodeError(String pythonType, String message) {
    super(message, null, false, false);
    this.pythonType = pythonType;
  }

  static DecodeError eof() {
    return new DecodeError("EOFError", "");
  }

  /** The Python decoder's rendering: {@code f"{type(exc).__name__}: {exc}" if str(exc) else type name}. */
  String why() {
    String message = getMessage();
    return message == null || message.isEmpty() ? pythonType : pythonType + ": " + message;
  }
}
