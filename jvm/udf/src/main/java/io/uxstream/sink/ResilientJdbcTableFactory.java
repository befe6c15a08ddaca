package io.uxstream.sink;

import java.util.Set;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.connector.jdbc.core.table.JdbcDynamicTableFactory;
import org.apache.flink.table.connector.ChangelogMode;
import org.apache.flink.table.connector.sink.DynamicTableSink;
import org.apache.flink.table.connector.sink.legacy.SinkFunctionProvider;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.factories.DynamicTableSinkFactory;

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
 */
public final class ResilientJdbcTableFactory implements DynamicTableSinkFactory {

    public static final String IDENTIFIER = "uxstream-jdbc";

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
        return jdbc.optionalOptions();
    }

    @Override
    public Set<ConfigOption<?>> forwardOptions() {
        return jdbc.forwardOptions();
    }

    @Override
    public DynamicTableSink createDynamicTableSink(Context context) {
        return new Sink(jdbc.createDynamicTableSink(context));
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
