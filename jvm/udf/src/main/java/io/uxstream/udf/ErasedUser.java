package io.uxstream.udf;

import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code erased_user(counter STRING, user_key STRING, jdbc_url STRING, user STRING, password_file STRING,
 * key_files STRING, refresh_ms BIGINT) -> BOOLEAN}: TRUE when the user key belongs to an erased user, i.e. its pseudonym
 * under some key of the ring ({@link KeyRing}, the current key and every non-retired earlier one) is on
 * the erased-pseudonym list ({@link ErasedList}, reloaded every {@code refresh_ms} while the job runs).
 * Counts the TRUE results in the counter {@code total} of the metric group {@code uxstream.<counter>} (jobs.common.counters.ERASED_EVENTS),
 * and logs the instance's count when it closes (a bounded run's only record of it:
 * {@value #CLOSE_LOG} N).
 *
 * <p>The jobs call it in the shared classification (jobs/common/sql/classify.sql) to drop those events
 * before anything keyed by the user. Every argument but the user key must be a literal; the password is
 * read from its file, never passed. Declared non-deterministic: the answer changes when the list does.
 */
public class ErasedUser extends ScalarFunction {
  private static final long serialVersionUID = 1L;
  static final String CLOSE_LOG = "erased_user: events of erased users dropped:";
  private static final Logger LOG = LoggerFactory.getLogger(ErasedUser.class);

  private transient Counter erased;
  private transient MetricGroup metrics;
  private transient ErasedList list;
  private transient KeyRing ring;
  private transient long dropped;

  @Override
  public void open(FunctionContext context) {
    metrics = context == null ? null : context.getMetricGroup().addGroup("uxstream");
  }

  public Boolean eval(
      String counter,
      String userKey,
      String jdbcUrl,
      String user,
      String passwordFile,
      String keyFiles,
      Long refreshMs) {
    if (list == null) {
      if (counter == null || !counter.matches("[a-z0-9_]+")) {
        throw new IllegalArgumentException("erased_user: the counter name must match [a-z0-9_]+, got " + counter);
      }
      erased = metrics == null ? null : metrics.addGroup(counter).counter("total");
      ring = new KeyRing(keyFiles);
      list = ErasedList.acquire(jdbcUrl, user, passwordFile, refreshMs == null ? 10_000L : refreshMs);
    }
    if (userKey == null) {
      return Boolean.FALSE;
    }
    ErasedList.Snapshot snapshot = list.snapshot();
    if (snapshot.pseudonyms.isEmpty()) {
      return Boolean.FALSE;
    }
    for (int i = 0; i < ring.size(); i++) {
      if (snapshot.keyIds.contains(ring.id(i)) && snapshot.pseudonyms.contains(ring.pseudonym(i, userKey))) {
        dropped++;
        if (erased != null) {
          erased.inc();
        }
        return Boolean.TRUE;
      }
    }
    return Boolean.FALSE;
  }

  @Override
  public void close() {
    if (list != null) {
      LOG.info("{} {}", CLOSE_LOG, dropped);
      list.release();
      list = null;
    }
  }

  @Override
  public boolean isDeterministic() {
    return false;
  }
}
