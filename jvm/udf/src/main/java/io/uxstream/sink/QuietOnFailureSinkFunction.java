package io.uxstream.sink;

import org.apache.flink.api.common.ExecutionConfig;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.functions.RuntimeContext;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.typeutils.InputTypeConfigurable;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.functions.sink.legacy.RichSinkFunction;
import org.apache.flink.streaming.api.functions.sink.legacy.SinkFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A checkpointed sink function that writes through another one, except that once the task failed or was
 * cancelled, {@link #close()} logs the other's failure to close instead of throwing it.
 *
 * <p>A task finishes normally through {@link #finish()}, which flushes (the wrapped function's
 * {@code snapshotState}); a {@code close()} without a finish before it is a task that failed, was cancelled
 * or stopped with a savepoint (whose snapshot already flushed). Nothing is lost by not throwing there: the
 * restarted task replays from the last checkpoint everything not yet written.
 */
public final class QuietOnFailureSinkFunction<T> extends RichSinkFunction<T>
        implements CheckpointedFunction, InputTypeConfigurable {

    private static final Logger LOG = LoggerFactory.getLogger(QuietOnFailureSinkFunction.class);

    private final RichSinkFunction<T> sink;
    private transient boolean finished;

    public QuietOnFailureSinkFunction(SinkFunction<T> sink) {
        if (!(sink instanceof RichSinkFunction)
                || !(sink instanceof CheckpointedFunction)
                || !(sink instanceof InputTypeConfigurable)) {
            throw new IllegalArgumentException(
                    "expected a rich, checkpointed, input-type-configurable sink function, got "
                            + sink.getClass().getName());
        }
        this.sink = (RichSinkFunction<T>) sink;
    }

    private CheckpointedFunction checkpointed() {
        return (CheckpointedFunction) sink;
    }

    @Override
    public void setRuntimeContext(RuntimeContext context) {
        super.setRuntimeContext(context);
        sink.setRuntimeContext(context);
    }

    @Override
    public void setInputType(TypeInformation<?> type, ExecutionConfig executionConfig) {
        ((InputTypeConfigurable) sink).setInputType(type, executionConfig);
    }

    @Override
    public void open(OpenContext openContext) throws Exception {
        sink.open(openContext);
    }

    @Override
    public void initializeState(FunctionInitializationContext context) throws Exception {
        checkpointed().initializeState(context);
    }

    @Override
    public void invoke(T value, Context context) throws Exception {
        sink.invoke(value, context);
    }

    @Override
    public void snapshotState(FunctionSnapshotContext context) throws Exception {
        checkpointed().snapshotState(context);
    }

    @Override
    public void finish() throws Exception {
        checkpointed().snapshotState(null); // the JDBC sink flushes its buffer; it does not read the context
        sink.finish();
        finished = true;
    }

    @Override
    public void close() throws Exception {
        if (finished) {
            sink.close();
            return;
        }
        try {
            sink.close();
        } catch (Exception e) {
            LOG.warn(
                    "The JDBC sink of a failed, cancelled or stopped task could not close cleanly; its buffered"
                            + " rows are written again from the last checkpoint when the job restarts.",
                    e);
        }
    }
}
