package io.uxstream.udf;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.EncoderFactory;

/**
 * Records of one catalog entry in the Confluent wire format: 0x00, the 4-byte big-endian schema id, the
 * Avro binary body (what {@code jobs.common.contract.frame(id, encode_body(record, entry))} writes). Not
 * thread-safe (reuses its buffer and encoder): one instance per task.
 */
final class FramedAvro {
  final Catalog.Entry entry;
  final int schemaId;
  final Schema schema;
  private final GenericDatumWriter<GenericRecord> writer;
  private final ByteArrayOutputStream buffer = new ByteArrayOutputStream(512);
  private BinaryEncoder encoder;

  FramedAvro(Catalog.Entry entry) {
    this.entry = entry;
    this.schemaId = entry.id;
    this.schema = entry.schema;
    this.writer = new GenericDatumWriter<>(schema);
  }

  byte[] write(GenericRecord record) {
    buffer.reset();
    buffer.write(0);
    buffer.write(schemaId >>> 24);
    buffer.write(schemaId >>> 16);
    buffer.write(schemaId >>> 8);
    buffer.write(schemaId);
    encoder = EncoderFactory.get().binaryEncoder(buffer, encoder);
    try {
      writer.write(record, encoder);
      encoder.flush();
    } catch (IOException e) {
      throw new UncheckedIOException(e); // cannot happen: in-memory buffer
    }
    return buffer.toByteArray();
  }
}
