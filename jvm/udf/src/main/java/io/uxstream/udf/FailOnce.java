package io.uxstream.udf;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * The JVM twin of {@code jobs.common.chaos.FailOnce} (fault injection for recovery tests; inert unless
 * configured): {@code UXSTREAM_CHAOS_FAIL_ONCE=<marker file>:<n>} makes {@link #check} throw once, at its
 * n-th call in a task, but only after the job has completed a checkpoint (a {@code chk-*}/{@code _metadata}
 * below {@code UXSTREAM_CHAOS_CHECKPOINTS}, when set) and only if the marker file does not exist yet; it
 * writes the marker first, so the restarted task runs through.
 */
final class FailOnce {
  static final String ENV_FAIL_ONCE = "UXSTREAM_CHAOS_FAIL_ONCE";
  static final String ENV_CHECKPOINTS = "UXSTREAM_CHAOS_CHECKPOINTS";

  /** The failure a chaos test asked for. */
  static final class InjectedFailure extends RuntimeException {
    private static final long serialVersionUID = 1L;

    InjectedFailure(String message) {
      super(message);
    }
  }

  private final Path marker;
  private final int at;
  private final Path checkpoints;
  private long calls;
  private boolean spent;

  FailOnce(Map<String, String> env) {
    String spec = env.getOrDefault(ENV_FAIL_ONCE, "");
    int colon = spec.lastIndexOf(':');
    String file = colon < 0 ? "" : spec.substring(0, colon);
    String count = colon < 0 ? spec : spec.substring(colon + 1);
    this.marker = file.isEmpty() ? null : Path.of(file);
    this.at = !count.isEmpty() && count.chars().allMatch(Character::isDigit) ? Integer.parseInt(count) : 0;
    String folder = env.get(ENV_CHECKPOINTS);
    this.checkpoints = folder == null || folder.isEmpty() ? null : Path.of(folder);
  }

  /** Count a call at {@code where}; throw {@link InjectedFailure} when this is the configured one. */
  void check(String where) {
    if (marker == null || spent) {
      return;
    }
    calls++;
    if (calls < at) {
      return;
    }
    if (Files.exists(marker)) {
      spent = true; // the failure happened (in this or an earlier attempt): never again in this task
      return;
    }
    if (!checkpointCompleted()) {
      return;
    }
    try {
      Files.writeString(marker, "failed in " + where + " at call " + calls + "\n", StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new IllegalStateException("uxstream chaos: cannot write the marker " + marker, e);
    }
    spent = true;
    throw new InjectedFailure("uxstream chaos: injected failure in " + where + " at call " + calls);
  }

  private boolean checkpointCompleted() {
    if (checkpoints == null) {
      return true;
    }
    if (!Files.isDirectory(checkpoints)) {
      return false;
    }
    try (DirectoryStream<Path> jobs = Files.newDirectoryStream(checkpoints)) {
      for (Path job : jobs) {
        if (!Files.isDirectory(job)) {
          continue;
        }
        try (DirectoryStream<Path> chks = Files.newDirectoryStream(job, "chk-*")) {
          for (Path chk : chks) {
            if (Files.exists(chk.resolve("_metadata"))) {
              return true;
            }
          }
        }
      }
    } catch (IOException e) {
      return false;
    }
    return false;
  }
}
