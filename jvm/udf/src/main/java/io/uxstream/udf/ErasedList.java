package io.uxstream.udf;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.Driver;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The erased-pseudonym list (table {@code erased_pseudonyms}, written by {@code uxstream privacy erase}),
 * loaded over JDBC and reloaded every {@code refreshMs} by one daemon thread per list and JVM, shared by
 * every task of the JVM that asks for the same list ({@link #acquire} / {@link #release}).
 *
 * <p>The first load happens in the caller and fails it (the task fails and the job restarts by its restart
 * strategy) when the database cannot be read: a job never runs without the list. A later reload that fails
 * keeps the list it has (logged; the next period tries again): entries are never removed by a failure.
 */
final class ErasedList {
  private static final Logger LOG = LoggerFactory.getLogger(ErasedList.class);
  static final String QUERY = "SELECT pseudonym FROM erased_pseudonyms";
  private static final Map<String, ErasedList> SHARED = new HashMap<>();

  private final String url;
  private final String user;
  private final String passwordFile;
  private final String key;
  private final ScheduledExecutorService reloader;
  private int users;
  private volatile Snapshot snapshot;

  /** The pseudonyms and the key ids they were made under (a key absent here needs no HMAC). */
  static final class Snapshot {
    final Set<String> pseudonyms;
    final Set<String> keyIds;

    Snapshot(Set<String> pseudonyms) {
      this.pseudonyms = pseudonyms;
      Set<String> ids = new HashSet<>();
      for (String p : pseudonyms) {
        int underscore = p.indexOf('_');
        if (underscore > 0) {
          ids.add(p.substring(0, underscore));
        }
      }
      this.keyIds = ids;
    }
  }

  private ErasedList(String url, String user, String passwordFile, long refreshMs, String key) {
    this.url = url;
    this.user = user;
    this.passwordFile = passwordFile;
    this.key = key;
    this.snapshot = new Snapshot(load());
    this.reloader =
        Executors.newSingleThreadScheduledExecutor(
            runnable -> {
              Thread thread = new Thread(runnable, "uxstream-erased-list");
              thread.setDaemon(true);
              return thread;
            });
    reloader.scheduleWithFixedDelay(this::reload, refreshMs, refreshMs, TimeUnit.MILLISECONDS);
  }

  static ErasedList acquire(String url, String user, String passwordFile, long refreshMs) {
    if (refreshMs < 100) {
      throw new IllegalArgumentException("erased list refresh must be at least 100 ms, got " + refreshMs);
    }
    String key = url + "\n" + user + "\n" + passwordFile + "\n" + refreshMs;
    synchronized (SHARED) {
      ErasedList list = SHARED.get(key);
      if (list == null) {
        list = new ErasedList(url, user, passwordFile, refreshMs, key);
        SHARED.put(key, list);
      }
      list.users++;
      return list;
    }
  }

  void release() {
    synchronized (SHARED) {
      if (--users == 0) {
        SHARED.remove(key);
        reloader.shutdownNow();
      }
    }
  }

  /**
   * {@code java -cp … io.uxstream.udf.ErasedList <jdbc url> <user> <password file> <refresh ms>}: loads the
   * list like a job does and prints it (sorted, comma-separated) at start and whenever a reload changes it,
   * until stdin closes (the refresh test, tests/privacy/test_privacy_requests.py).
   */
  public static void main(String[] args) throws Exception {
    ErasedList list = acquire(args[0], args[1], args[2], Long.parseLong(args[3]));
    Thread watcher =
        new Thread(
            () -> {
              try {
                while (System.in.read() >= 0) {
                  // wait for EOF
                }
              } catch (java.io.IOException e) {
                // stdin gone: stop too
              }
              System.exit(0);
            });
    watcher.setDaemon(true);
    watcher.start();
    Set<String> printed = null;
    while (true) {
      Set<String> now = list.snapshot().pseudonyms;
      if (!now.equals(printed)) {
        System.out.println(String.join(",", new java.util.TreeSet<>(now)));
        System.out.flush();
        printed = now;
      }
      Thread.sleep(20);
    }
  }

  Snapshot snapshot() {
    return snapshot;
  }

  private void reload() {
    try {
      Set<String> fresh = load();
      if (fresh.size() != snapshot.pseudonyms.size()) {
        LOG.info("erased-pseudonym list reloaded: {} entries", fresh.size());
      }
      snapshot = new Snapshot(fresh);
    } catch (RuntimeException e) {
      LOG.warn("erased-pseudonym list: reload failed, keeping {} entries ({})", snapshot.pseudonyms.size(), e.toString());
    }
  }

  private Set<String> load() {
    Properties properties = new Properties();
    if (user != null && !user.isEmpty()) {
      properties.setProperty("user", user);
    }
    if (passwordFile != null && !passwordFile.isEmpty()) {
      try {
        properties.setProperty(
            "password", Files.readString(Path.of(passwordFile), StandardCharsets.UTF_8).strip());
      } catch (java.io.IOException e) {
        throw new IllegalStateException("erased-pseudonym list: cannot read the password file " + passwordFile, e);
      }
    }
    properties.setProperty("connectTimeout", "10");
    Set<String> pseudonyms = new HashSet<>();
    try (Connection connection = driver().connect(url, properties)) {
      if (connection == null) {
        throw new IllegalStateException("erased-pseudonym list: not a PostgreSQL JDBC URL: " + url);
      }
      try (Statement statement = connection.createStatement();
          ResultSet rows = statement.executeQuery(QUERY)) {
        while (rows.next()) {
          pseudonyms.add(rows.getString(1));
        }
      }
    } catch (SQLException e) {
      // The URL holds no secret (jobs.common.settings.PostgresSettings.jdbc_url).
      throw new IllegalStateException(
          "erased-pseudonym list: cannot read " + QUERY + " as " + user + " at " + url + ": " + e.getMessage(), e);
    }
    return Collections.unmodifiableSet(pseudonyms);
  }

  /** The PostgreSQL driver from the job's class loader (DriverManager does not see user-code jars). */
  private static Driver driver() {
    try {
      ClassLoader loader = Thread.currentThread().getContextClassLoader();
      if (loader == null) {
        loader = ErasedList.class.getClassLoader();
      }
      return (Driver) Class.forName("org.postgresql.Driver", true, loader).getDeclaredConstructor().newInstance();
    } catch (ReflectiveOperationException e) {
      throw new IllegalStateException("erased-pseudonym list: the PostgreSQL JDBC driver is not on the classpath", e);
    }
  }
}
