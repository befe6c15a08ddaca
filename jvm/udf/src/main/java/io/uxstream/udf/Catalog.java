package io.uxstream.udf;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.avro.Schema;

/**
 * The schema catalog ({@code schemas/avro/catalog.json} and its {@code .avsc} files), read from this jar:
 * the build copies {@code schemas/avro/} into it under {@code uxstream/avro/}, so the JVM and Python read
 * the same files. Mirrors {@code jobs.common.contract.Catalog}: ids are global, a subject's latest version
 * is its highest.
 */
public final class Catalog {
  public static final String RESOURCE_DIR = "uxstream/avro/";
  public static final String EVENT_SUBJECT = "ux.events-value";
  public static final String DEAD_LETTER_SUBJECT = "ux.events.dlq-value";

  /** One schema version. */
  public static final class Entry {
    public final int id;
    public final String subject;
    public final int version;
    public final String file;
    public final Schema schema;

    Entry(int id, String subject, int version, String file, Schema schema) {
      this.id = id;
      this.subject = subject;
      this.version = version;
      this.file = file;
      this.schema = schema;
    }
  }

  private final Map<Long, Entry> byId;
  private final List<Entry> entries;

  private Catalog(List<Entry> entries) {
    this.entries = Collections.unmodifiableList(entries);
    Map<Long, Entry> index = new HashMap<>();
    for (Entry entry : entries) {
      index.put((long) entry.id, entry);
    }
    this.byId = index;
  }

  private static volatile Catalog bundled;

  /** The catalog bundled in this jar (parsed once per class loader). */
  public static Catalog bundled() {
    Catalog catalog = bundled;
    if (catalog == null) {
      synchronized (Catalog.class) {
        catalog = bundled;
        if (catalog == null) {
          catalog = load();
          bundled = catalog;
        }
      }
    }
    return catalog;
  }

  private static InputStream open(String name) {
    InputStream stream = Catalog.class.getClassLoader().getResourceAsStream(RESOURCE_DIR + name);
    if (stream == null) {
      throw new IllegalStateException(
          RESOURCE_DIR + name + " is not in the uxstream-udf jar: rebuild it with `make jars`");
    }
    return stream;
  }

  private static Catalog load() {
    JsonNode root;
    try (InputStream stream = open("catalog.json")) {
      root = new ObjectMapper().readTree(stream);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read " + RESOURCE_DIR + "catalog.json", e);
    }
    JsonNode rows = root.get("schemas");
    if (rows == null || !rows.isArray() || rows.size() == 0) {
      throw new IllegalStateException("catalog.json: expected an object with a non-empty 'schemas' list");
    }
    List<Entry> entries = new ArrayList<>();
    for (JsonNode row : rows) {
      int id = row.path("id").asInt(-1);
      String subject = row.path("subject").asText("");
      int version = row.path("version").asInt(-1);
      String file = row.path("file").asText("");
      if (id <= 0 || subject.isEmpty() || version < 1 || !file.endsWith(".avsc")) {
        throw new IllegalStateException("catalog.json: bad entry " + row);
      }
      Schema schema;
      try (InputStream stream = open(file)) {
        schema = new Schema.Parser().parse(stream);
      } catch (IOException e) {
        throw new UncheckedIOException("cannot read " + RESOURCE_DIR + file, e);
      }
      entries.add(new Entry(id, subject, version, file, schema));
    }
    return new Catalog(entries);
  }

  public List<Entry> entries() {
    return entries;
  }

  /** The entry of a wire schema id (an unsigned 32-bit value), or null when unknown. */
  public Entry byId(long schemaId) {
    return byId.get(schemaId);
  }

  public Entry latest(String subject) {
    Entry latest = null;
    for (Entry entry : entries) {
      if (entry.subject.equals(subject) && (latest == null || entry.version > latest.version)) {
        latest = entry;
      }
    }
    if (latest == null) {
      throw new IllegalStateException("subject " + subject + " is not in catalog.json");
    }
    return latest;
  }
}
