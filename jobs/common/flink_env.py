"""Flink execution environment for every uxstream job.

One function builds the environment from typed settings: connector jars on the classpath, the project's
interpreter for Python workers (process mode) and its site-packages on the Python path (thread mode needs
`pemja` from there), EXACTLY_ONCE checkpointing, restart strategy, state backend and max parallelism.
The same configuration works in the MiniCluster (`python -m jobs.<name>.job`) and on a cluster
(`flink run -py`), where the cluster's config.yaml supplies what is not set here.
"""

from __future__ import annotations

import os
import re
import site
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from jobs.common.enrichment import EnrichmentSettings
from jobs.common.settings import SettingsError, env_int, env_str

if TYPE_CHECKING:
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FLINK_LIB_JARS = PROJECT_ROOT / ".cache" / "jars" / "flink-lib"
DEFAULT_STATE_DIR = PROJECT_ROOT / ".local" / "flink"

PythonMode = Literal["process", "thread"]
StateBackend = Literal["hashmap", "rocksdb"]


@dataclass(frozen=True)
class FlinkSettings:
    """Runtime settings shared by all jobs (env prefix `UXSTREAM_FLINK_`)."""

    parallelism: int = 1
    max_parallelism: int = 128
    checkpoint_interval_ms: int = 10_000
    checkpoint_timeout_ms: int = 120_000
    python_mode: PythonMode = "thread"
    state_backend: StateBackend = "hashmap"
    state_dir: Path = DEFAULT_STATE_DIR
    restart_attempts: int = 10
    """Restarts before the job fails (each waits longer: exponential delay, see `restart_config`)."""
    restart_delay_ms: int = 1_000
    """Delay before the first restart; it doubles with each further one, up to `restart_max_delay_ms`."""
    restart_max_delay_ms: int = 30_000
    jars_dir: Path = FLINK_LIB_JARS
    prometheus_port: int | None = None
    """Serve the job's metrics (Flink's and uxstream's counters) at http://<host>:<port>/metrics from the
    local MiniCluster (UXSTREAM_FLINK_PROMETHEUS_PORT; unset: no reporter). Clusters configure their
    reporter in flink-conf/config.yaml instead."""
    extra_config: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    """Additional raw Flink options (key, value), applied last."""
    enrichment: EnrichmentSettings = field(default_factory=EnrichmentSettings)
    """The decode step's enrichment (user agent, country, bots): global job parameters for the JVM."""
    restore_path: Path | None = None
    """Start from this retained checkpoint or savepoint (a folder with a `_metadata` file), e.g. after the
    whole MiniCluster or cluster went down (`--restore`, RELIABILITY T18)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FlinkSettings:
        env = os.environ if env is None else env
        mode = env_str(env, "UXSTREAM_FLINK_PYTHON_MODE", cls.python_mode)
        if mode not in ("process", "thread"):
            raise SettingsError(f"UXSTREAM_FLINK_PYTHON_MODE={mode!r} is not one of process, thread")
        backend = env_str(env, "UXSTREAM_FLINK_STATE_BACKEND", cls.state_backend)
        if backend not in ("hashmap", "rocksdb"):
            raise SettingsError(f"UXSTREAM_FLINK_STATE_BACKEND={backend!r} is not one of hashmap, rocksdb")
        settings = cls(
            parallelism=env_int(env, "UXSTREAM_FLINK_PARALLELISM", cls.parallelism),
            max_parallelism=env_int(env, "UXSTREAM_FLINK_MAX_PARALLELISM", cls.max_parallelism),
            checkpoint_interval_ms=env_int(
                env, "UXSTREAM_FLINK_CHECKPOINT_INTERVAL_MS", cls.checkpoint_interval_ms
            ),
            checkpoint_timeout_ms=env_int(
                env, "UXSTREAM_FLINK_CHECKPOINT_TIMEOUT_MS", cls.checkpoint_timeout_ms
            ),
            python_mode=mode,  # type: ignore[arg-type]
            state_backend=backend,  # type: ignore[arg-type]
            state_dir=Path(
                env_str(env, "UXSTREAM_FLINK_STATE_DIR", str(DEFAULT_STATE_DIR)) or DEFAULT_STATE_DIR
            ),
            restart_attempts=env_int(env, "UXSTREAM_FLINK_RESTART_ATTEMPTS", cls.restart_attempts),
            restart_delay_ms=env_int(env, "UXSTREAM_FLINK_RESTART_DELAY_MS", cls.restart_delay_ms),
            restart_max_delay_ms=env_int(
                env, "UXSTREAM_FLINK_RESTART_MAX_DELAY_MS", cls.restart_max_delay_ms
            ),
            prometheus_port=env_port(env, "UXSTREAM_FLINK_PROMETHEUS_PORT"),
            enrichment=EnrichmentSettings.from_env(env),
        )
        settings.check()
        return settings

    def check(self) -> None:
        self.enrichment.check()
        if self.parallelism < 1:
            raise SettingsError(f"parallelism must be at least 1, got {self.parallelism}")
        if self.max_parallelism < self.parallelism:
            raise SettingsError(
                f"max parallelism {self.max_parallelism} is below parallelism {self.parallelism}"
            )
        if self.restart_max_delay_ms < self.restart_delay_ms:
            raise SettingsError(
                f"UXSTREAM_FLINK_RESTART_MAX_DELAY_MS={self.restart_max_delay_ms} is below the first "
                f"restart's delay UXSTREAM_FLINK_RESTART_DELAY_MS={self.restart_delay_ms}"
            )
        if self.restore_path is not None and not (self.restore_path / "_metadata").is_file():
            raise SettingsError(
                f"cannot restore from {self.restore_path}: not a checkpoint or savepoint (no _metadata file "
                "in it)"
            )
        if self.checkpoint_interval_ms < 100:
            raise SettingsError(
                f"checkpoint interval must be at least 100 ms, got {self.checkpoint_interval_ms}"
            )

    def with_options(self, **changes: object) -> FlinkSettings:
        return replace(self, **changes)  # type: ignore[arg-type]


def env_port(env: Mapping[str, str], name: str) -> int | None:
    """An optional TCP port from the environment (1-65535)."""
    raw = env_str(env, name)
    if raw is None:
        return None
    port = env_int(env, name, 0)
    if not 1 <= port <= 65535:
        raise SettingsError(f"{name}={raw!r} is not a TCP port (1-65535)")
    return port


def connector_jars(jars_dir: Path) -> list[Path]:
    """The jars `make jars` resolved for Flink; a clear error when they are missing."""
    jars = sorted(jars_dir.glob("*.jar"))
    if not jars:
        raise SettingsError(
            f"no connector jars in {jars_dir}: run `make jars` (needs Maven and Java 17) to fetch them"
        )
    return jars


def python_path() -> str:
    """Project root + this interpreter's site-packages, for Python workers in both execution modes."""
    entries = [str(PROJECT_ROOT), *site.getsitepackages()]
    return os.pathsep.join(dict.fromkeys(entries))


RESTART_BACKOFF_RESET = "10 min"
"""A job that ran this long without failing starts its restart delays and attempts from the first again."""


def restart_config(settings: FlinkSettings) -> dict[str, str]:
    """Exponential-delay restarts: 1 s, 2 s, 4 s … up to the maximum delay, `restart_attempts` of them in a
    row. With the defaults (10 attempts, 1 s doubling up to 30 s) a job rides out about 3 min of outage of
    a service it writes to (database, broker: RELIABILITY T19/T20) before it fails, while a job that
    cannot start at all (a bad configuration) still fails within minutes instead of restarting forever."""
    if settings.restart_attempts == 0:
        return {"restart-strategy.type": "none"}
    prefix = "restart-strategy.exponential-delay"
    return {
        "restart-strategy.type": "exponential-delay",
        f"{prefix}.initial-backoff": f"{settings.restart_delay_ms} ms",
        f"{prefix}.max-backoff": f"{settings.restart_max_delay_ms} ms",
        f"{prefix}.backoff-multiplier": "2.0",
        f"{prefix}.jitter-factor": "0.1",
        f"{prefix}.reset-backoff-threshold": RESTART_BACKOFF_RESET,
        f"{prefix}.attempts-before-reset-backoff": str(settings.restart_attempts),
    }


def checkpoint_dir(settings: FlinkSettings, job_name: str) -> Path:
    """Where a job's checkpoints go: one folder per run (Flink job id), `chk-<n>` folders in it."""
    return (settings.state_dir / "checkpoints" / job_name).resolve()


def latest_checkpoint(settings: FlinkSettings, job_name: str) -> Path:
    """The newest completed checkpoint any run of `job_name` retained (SettingsError when there is none)."""
    folder = checkpoint_dir(settings, job_name)
    found = [m.parent for m in folder.glob("*/chk-*/_metadata")]
    if not found:
        raise SettingsError(f"no retained checkpoint of {job_name} under {folder}: nothing to restore")
    return max(found, key=lambda chk: (chk.stat().st_mtime, int(chk.name.removeprefix("chk-"))))


def flink_config(settings: FlinkSettings, job_name: str) -> dict[str, str]:
    """The Flink options a job sets for itself, as plain strings (inspectable in tests)."""
    settings.check()
    checkpoints = checkpoint_dir(settings, job_name)
    conf: dict[str, str] = {
        "pipeline.name": job_name,
        "pipeline.jars": ";".join(p.resolve().as_uri() for p in connector_jars(settings.jars_dir)),
        "parallelism.default": str(settings.parallelism),
        "pipeline.max-parallelism": str(settings.max_parallelism),
        "execution.checkpointing.interval": f"{settings.checkpoint_interval_ms} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.timeout": f"{settings.checkpoint_timeout_ms} ms",
        "execution.checkpointing.dir": checkpoints.as_uri(),
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.checkpoints-after-tasks-finish": "true",
        "state.backend.type": settings.state_backend,
        **restart_config(settings),
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        "python.execution-mode": settings.python_mode,
        "python.pythonpath": python_path(),
        # Chained operators hand records over without a defensive copy. The SQL operators and the Java
        # UDFs never keep a reference to an input row; the decode step measured ~2x with it (NOTES.md).
        "pipeline.object-reuse": "true",
        # Event time is UTC everywhere; TIMESTAMP_LTZ → TIMESTAMP conversions must not depend on the host.
        "table.local-time-zone": "UTC",
        "rest.bind-address": "127.0.0.1",
        "rest.address": "127.0.0.1",
        # io.uxstream.udf.Enrichment reads these (FunctionContext.getJobParameter).
        "pipeline.global-job-parameters": ",".join(
            f"{k}:{v}" for k, v in settings.enrichment.job_parameters().items() if v
        ),
    }
    if settings.prometheus_port is not None:
        conf.update(
            {
                "metrics.reporters": "prom",
                "metrics.reporter.prom.factory.class": PROMETHEUS_REPORTER_FACTORY,
                "metrics.reporter.prom.port": str(settings.prometheus_port),
            }
        )
    if settings.restore_path is not None:
        conf["execution.state-recovery.path"] = settings.restore_path.resolve().as_uri()
    conf.update(dict(settings.extra_config))
    return conf


PROMETHEUS_REPORTER_FACTORY = "org.apache.flink.metrics.prometheus.PrometheusReporterFactory"


def prometheus_reporter_jar() -> Path:
    """flink-metrics-prometheus at the Flink version: the wheel ships it in plugins/metrics-prometheus."""
    import pyflink

    folder = Path(pyflink.__file__).resolve().parent / "plugins" / "metrics-prometheus"
    jars = sorted(folder.glob("flink-metrics-prometheus-*.jar"))
    if not jars:
        raise SettingsError(f"no flink-metrics-prometheus jar in {folder}: reinstall apache-flink")
    return jars[0]


def use_prometheus_reporter() -> None:
    """Put the Prometheus reporter on the classpath of the local Flink JVM (PyFlink's gateway).

    The MiniCluster inside that JVM finds reporters on its classpath only (DESIGN.md §3: it does not load
    plugins/). PyFlink builds the gateway's classpath from lib/, opt/flink-python and HADOOP_CLASSPATH, so
    the jar goes on HADOOP_CLASSPATH. Only effective before the gateway starts.
    """
    jar = str(prometheus_reporter_jar())
    current = os.environ.get("HADOOP_CLASSPATH", "")
    if jar not in current.split(os.pathsep):
        os.environ["HADOOP_CLASSPATH"] = os.pathsep.join(p for p in (current, jar) if p)


JVM_TIMEZONE_OPTION = "-Duser.timezone=UTC"
JVM_GC_OPTION = "-XX:+UseParallelGC"
"""The local Flink JVM's garbage collector. The jobs' output waits for checkpoints (exactly-once sinks, every
10 s), so throughput matters and pauses of a young collection do not; G1's write barriers cost the task
threads CPU on every reference store. Measured with `make bench` job runs (NOTES.md, "Parallel GC"):
CPU per event −10 % for sessionize and funnels, −27 % for the bare pipeline."""
_GC_SELECTED = re.compile(r"-XX:\+Use\w*GC\b")
JVM_HEAP_OPTION = "-Xms2g"
"""The local Flink JVM's initial heap, with the parallel collector. Grown from the default (1/64 of the
memory), the old generation filled with the jobs' keyed state (the dedup's event ids) and the collector
ran full collections to resize it, ~1 s pauses on both cores (16 of them, 3.2 s, in a sessionize bench
run; -Xlog:gc). Measured with `make bench` job runs (NOTES.md, "a 2 GiB initial heap"): GC threads
10.8 → ~5 µs of CPU per sessionize event, peak RSS +0.4 GB. A caller's heap size wins (-Xms/-Xmx or the RAM
percentages)."""
_HEAP_SELECTED = re.compile(r"-Xm[sx]\S|-XX:(?:Initial|Max|Min)HeapSize=|-XX:\w*RAMPercentage=")
JVM_JIT_OPTIONS = (
    "-XX:Tier4InvocationThreshold=50000 -XX:Tier4MinInvocationThreshold=6000 "
    "-XX:Tier4CompileThreshold=150000 -XX:Tier4BackEdgeThreshold=400000"
)
"""The local Flink JVM's C2 thresholds, 10× HotSpot's (JDK 17 tiered defaults 5000/600/15000/40000). The
jobs' generated operator code is so large that C2 stayed busy for a whole sessionize run (~35k
compilations, ~46 µs of its CPU per event); with these only code that stays hot is compiled by C2, the rest
keeps running as profiled C1 code. Measured with `make bench` job runs (NOTES.md, "C2 thresholds"):
medians of 3 runs each, sessionize CPU per event −12 % (the JIT's share 46 → 29 µs), funnels −14 %, the bare
pipeline unchanged."""
_JIT_SELECTED = re.compile(
    r"-XX:(?:Tier4\w+=|TieredStopAtLevel=|[+-]TieredCompilation\b|CompileThresholdScaling=)"
)


def local_jvm_args(current: str) -> str:
    """JVM_ARGS for the local Flink JVM: `current` plus UTC, the parallel collector with its initial heap and
    the C2 thresholds, unless `current` already sets a time zone, chooses a collector, sizes the heap or
    tunes the JIT's tiers (a caller's choice wins: the tests' serial GC and C1 only)."""
    args = current.strip()
    if "-Duser.timezone=" not in args:
        args = f"{args} {JVM_TIMEZONE_OPTION}".strip()
    if _GC_SELECTED.search(args) is None:
        args = f"{args} {JVM_GC_OPTION}"
        if _HEAP_SELECTED.search(args) is None:
            args = f"{args} {JVM_HEAP_OPTION}"
    if _JIT_SELECTED.search(args) is None:
        args = f"{args} {JVM_JIT_OPTIONS}"
    return args


def use_local_jvm_options() -> None:
    """Start the local Flink JVM (PyFlink's gateway, which hosts the MiniCluster) in UTC, with the parallel
    collector and the C2 thresholds (`local_jvm_args`).

    The JDBC sink hands PostgreSQL TIMESTAMP values that the driver reads in the JVM's default zone; with
    UTC, `to_utc(...)` values land in TIMESTAMPTZ columns as the exact instants. Only effective before the
    gateway starts; clusters set the time zone in flink-conf/config.yaml (env.java.opts.all) and keep
    Flink's default collector and JIT.
    """
    os.environ["JVM_ARGS"] = local_jvm_args(os.environ.get("JVM_ARGS", ""))


PYFLINK_WORKER_MODE_ENV = "_python_worker_execution_mode"
"""PyFlink's switch for where a local (MiniCluster) job's process-mode Python workers run. Unset, PyFlink
runs them as threads of a "loopback" worker pool inside the Python driver, and `beam_boot` only asks for
one; "process" gives every worker a process of its own, as on a cluster's TaskManager."""


def use_worker_processes(settings: FlinkSettings) -> None:
    """Make UXSTREAM_FLINK_PYTHON_MODE=process mean separate worker processes in a MiniCluster too (a
    crashed UDF process then fails its task, as on a cluster, instead of sharing the driver's fate)."""
    if settings.python_mode == "process":
        os.environ.setdefault(PYFLINK_WORKER_MODE_ENV, "process")


def create_environments(
    settings: FlinkSettings, job_name: str
) -> tuple[StreamExecutionEnvironment, StreamTableEnvironment]:
    """A streaming DataStream + Table environment pair configured for `job_name`."""
    use_local_jvm_options()
    use_worker_processes(settings)
    if settings.prometheus_port is not None:
        use_prometheus_reporter()
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import EnvironmentSettings, StreamTableEnvironment

    config = Configuration()
    for key, value in flink_config(settings, job_name).items():
        config.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    t_env = StreamTableEnvironment.create(
        env,
        environment_settings=EnvironmentSettings.new_instance()
        .in_streaming_mode()
        .with_configuration(config)
        .build(),
    )
    return env, t_env
