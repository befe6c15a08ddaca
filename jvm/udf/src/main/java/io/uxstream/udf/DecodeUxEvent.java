package io.uxstream.udf;

import java.util.List;
import org.apache.avro.Schema;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.catalog.DataTypeFactory;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.inference.StaticArgument;
import org.apache.flink.table.types.inference.TypeInference;
import org.apache.flink.table.types.inference.TypeStrategies;

/**
 * {@code decode_ux_event(payload BYTES)}: decodes and validates one ux.events value (Confluent-framed
 * Avro) exactly as {@code jobs.common.contract.decode} does, into a ROW:
 *
 * <pre>
 *   reason STRING, detail STRING, schema_id INT, &lt;every field of the latest ux_event schema, in order&gt;
 * </pre>
 *
 * Valid: reason NULL and the fields set. Invalid: reason/detail set (one of the contract's reason codes),
 * the fields NULL, schema_id set when the header was readable (and the id fits an INT: a wire id beyond
 * 2^31-1 is named in the detail only). The row type is derived from the Avro reader
 * schema bundled in the jar, so a new optional field in a new .avsc version needs no Java change. Never
 * throws, whatever the bytes.
 */
public class DecodeUxEvent extends ScalarFunction {
  private static final long serialVersionUID = 1L;

  private transient EventDecoder decoder;
  private transient AvroTypes.Converter[] converters;
  private transient Enrichment enrichment;
  private final boolean enrich;

  public DecodeUxEvent() {
    this(true);
  }

  /** {@code enrich = false}: the plain decoded rows (ux_event_time's decode: it reads ts only). */
  DecodeUxEvent(boolean enrich) {
    this.enrich = enrich;
  }

  /** The ROW type this function returns, from the reader schema, then {@code is_bot} (Enrichment). */
  public static DataType outputType() {
    Schema reader = EventDecoder.readerSchema(Catalog.bundled());
    List<DataTypes.Field> fields = new java.util.ArrayList<>(AvroTypes.rowFields(reader));
    fields.add(DataTypes.FIELD(Enrichment.IS_BOT, DataTypes.BOOLEAN()));
    return DataTypes.ROW(fields.toArray(new DataTypes.Field[0])).bridgedTo(RowData.class);
  }

  @Override
  public TypeInference getTypeInference(DataTypeFactory typeFactory) {
    return TypeInference.newBuilder()
        .staticArguments(StaticArgument.scalar("payload", DataTypes.BYTES(), false))
        .outputTypeStrategy(TypeStrategies.explicit(outputType()))
        .build();
  }

  /**
   * Declared non-deterministic so the planner never inlines the call into each field access: with a
   * deterministic function, {@code SELECT d.a, d.b FROM (SELECT decode_ux_event(payload) AS d …)} becomes
   * one call per field. (The result does only depend on the bytes.)
   */
  @Override
  public boolean isDeterministic() {
    return false;
  }

  @Override
  public void open(FunctionContext context) {
    init();
    enrichment = enrich ? Enrichment.forJob(context, decoder.fieldNames()) : null;
  }

  private void init() {
    decoder = new EventDecoder();
    List<Schema.Field> fields = decoder.reader().getFields();
    converters = new AvroTypes.Converter[fields.size()];
    for (int i = 0; i < converters.length; i++) {
      converters[i] = AvroTypes.converter(fields.get(i).schema());
    }
  }

  public RowData eval(byte[] payload) {
    if (decoder == null) {
      init();
      enrichment = enrich ? Enrichment.forJob(null, decoder.fieldNames()) : null;
    }
    RowData cached = DecodeMemo.rowFor(payload);
    if (cached != null) {
      return enriched((GenericRowData) cached);
    }
    DecodeResult result = decoder.decode(payload);
    GenericRowData row = new GenericRowData(3 + converters.length + 1);
    if (result.isValid()) {
      Object[] values = result.values;
      for (int i = 0; i < converters.length; i++) {
        row.setField(3 + i, converters[i].convert(values[i]));
      }
    } else {
      row.setField(0, StringData.fromString(result.reason));
      row.setField(1, StringData.fromString(result.detail));
    }
    Long schemaId = result.schemaId;
    if (schemaId != null && schemaId <= Integer.MAX_VALUE) {
      row.setField(2, schemaId.intValue()); // ids above 2^31-1 cannot be an INT: the detail still names them
    }
    DecodeMemo.remember(payload, row);
    return enriched(row);
  }

  /** A valid row enriched once, in place (the memo shares it); invalid rows and no-enrichment: as is. */
  private RowData enriched(GenericRowData row) {
    if (enrichment != null && row.isNullAt(0)) {
      enrichment.enrich(row, 3, 3 + converters.length);
    }
    return row;
  }
}
