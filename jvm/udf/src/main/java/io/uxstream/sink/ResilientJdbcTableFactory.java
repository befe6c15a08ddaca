package io.uxstream.sink;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.connector.jdbc.core.table.JdbcDynamicTableFactory;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.catalog.ResolvedCatalogTable;
import org.apache.flink.table.connector.ChangelogMode;
import org.apache.flink.table.connector.sink.DynamicTableSink;
import org.apache.flink.table.connector.sink.legacy.SinkFunctionProvider;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.factories.DynamicTableSinkFactory;
import org.apache.flink.table.factories.FactoryUtil;

/**
 * Table connector {@code uxstream-jdbc}: flink-connector-jdbc's upsert sink (same options, same SQL, same
 * buffering and retries), whose failures stay inside the task.
 *
 * <p>flink-connector-jdbc 4.0.0 closes its prepared statements before it reconnects; when the reconnect
 * fails (the database is down), the task fails, and its {@code close()} then flushes the buffered rows
 * again through the closed statements. The resulting exception comes out of Flink's failure clean-up, which
 * Flink treats as fatal: it shuts the whole TaskExecutor down (a MiniCluster is then left without slots;
 * a standalone TaskManager process exits). This connector wraps the sink function so that a task that
 * failed or was cancelled closes quietly; its buffered rows are replayed from the last checkpoint when
 * the job restarts, and the upserts make the replay idempotent (RELIABILITY T20).
 *
 * <p>Option {@code password-file} (instead of {@code password}): the file holding the database password,
 * read here, when the planner creates the sink. The password then lives only inside the sink function;
 * the table's options, which Flink shows in its plans, job configuration and logs, carry the file's path.
 */
public final class ResilientJdbcTableFactory implements DynamicTableSinkFactory {

    public static final String IDENTIFIER = "uxstream-jdbc";

    public static final ConfigOption<String> PASSWORD_FILE =
            ConfigOptions.key("password-file")
                    .stringType()
                    .noDefaultValue()
                    .withDescription("File holding the JDBC password (surrounding whitespace ignored).");

    private final JdbcDynamicTableFactory jdbc = new JdbcDynamicTableFactory();

    @Override
    public String factoryIdentifier() {
        return IDENTIFIER;
    }

    @Override
    public Set<ConfigOption<?>> requiredOptions() {
        return jdbc.requiredOptions();
    }

    @Override
    public Set<ConfigOption<?>> optionalOptions() {
        Set<ConfigOption<?>> options = new HashSet<>(jdbc.optionalOptions());
        options.add(PASSWORD_FILE);
        return options;
    }

    @Override
    public Set<ConfigOption<?>> forwardOptions() {
        return jdbc.forwardOptions();
    }

    @Override
    public DynamicTableSink createDynamicTableSink(Context context) {
        return new Sink(jdbc.createDynamicTableSink(withPasswordFromFile(context)));
    }

    /** The context with {@code password-file} replaced by {@code password}, read from that file. */
    static Context withPasswordFromFile(Context context) {
        Map<String, String> options = context.getCatalogTable().getOptions();
        String file = options.get(PASSWORD_FILE.key());
        if (file == null) {
            return context;
        }
        if (options.containsKey("password")) {
            throw new ValidationException(
                    IDENTIFIER + ": set either 'password' or 'password-file', not both");
        }
        String password;
        try {
            password = Files.readString(Path.of(file), StandardCharsets.UTF_8).strip();
        } catch (IOException e) {
            throw new ValidationException(
                    IDENTIFIER + ": cannot read the password file " + file + " (" + e + ")");
        }
        Map<String, String> resolved = new HashMap<>(options);
        resolved.remove(PASSWORD_FILE.key());
        resolved.put("password", password);
        ResolvedCatalogTable table = context.getCatalogTable().copy(resolved);
        return new FactoryUtil.DefaultDynamicTableContext(
                context.getObjectIdentifier(),
                table,
                context.getEnrichmentOptions(),
                context.getConfiguration(),
                context.getClassLoader(),
                context.isTemporary());
    }

    /** The JDBC table sink, its sink function wrapped in {@link QuietOnFailureSinkFunction}. */
    static final class Sink implements DynamicTableSink {
        private final DynamicTableSink jdbc;

        Sink(DynamicTableSink jdbc) {
            this.jdbc = jdbc;
        }

        @Override
        public ChangelogMode getChangelogMode(ChangelogMode requestedMode) {
            return jdbc.getChangelogMode(requestedMode);
        }

        @Override
        public SinkRuntimeProvider getSinkRuntimeProvider(Context context) {
            SinkRuntimeProvider provider = jdbc.getSinkRuntimeProvider(context);
            if (!(provider instanceof SinkFunctionProvider)) {
                throw new IllegalStateException(
                        IDENTIFIER
                                + " wraps the JDBC connector's sink function, but the connector provided a "
                                + provider.getClass().getName()
                                + ": check the flink-connector-jdbc version in jvm/pom.xml");
            }
            SinkFunctionProvider functions = (SinkFunctionProvider) provider;
            return SinkFunctionProvider.of(
                    new QuietOnFailureSinkFunction<RowData>(functions.createSinkFunction()),
                    functions.getParallelism().orElse(null));
        }

        @Override
        public DynamicTableSink copy() {
            return new Sink(jdbc.copy());
        }

        @Override
        public String asSummaryString() {
            return IDENTIFIER + " (" + jdbc.asSummaryString() + ")";
        }
    }
}
