"""Flink execution environment for every uxstream job.

One function builds the environment from typed settings: connector jars on the classpath, the project's
interpreter for Python workers (process mode) and its site-packages on the Python path (thread mode needs
`pemja` from there), EXACTLY_ONCE checkpointing, restart strategy, state backend and max parallelism.
The same configuration works in the MiniCluster (`python -m jobs.<name>.job`) and on a cluster
(`flink run -py`), where the cluster's config.yaml supplies what is not set here.
"""

from __future__ import annotations

import os
import site
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

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
    restart_attempts: int = 3
    restart_delay_ms: int = 1_000
    jars_dir: Path = FLINK_LIB_JARS
    extra_config: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    """Additional raw Flink options (key, value), applied last."""

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
        )
        settings.check()
        return settings

    def check(self) -> None:
        if self.parallelism < 1:
            raise SettingsError(f"parallelism must be at least 1, got {self.parallelism}")
        if self.max_parallelism < self.parallelism:
            raise SettingsError(
                f"max parallelism {self.max_parallelism} is below parallelism {self.parallelism}"
            )
        if self.checkpoint_interval_ms < 100:
            raise SettingsError(
                f"checkpoint interval must be at least 100 ms, got {self.checkpoint_interval_ms}"
            )

    def with_options(self, **changes: object) -> FlinkSettings:
        return replace(self, **changes)  # type: ignore[arg-type]


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


def flink_config(settings: FlinkSettings, job_name: str) -> dict[str, str]:
    """The Flink options a job sets for itself, as plain strings (inspectable in tests)."""
    settings.check()
    checkpoints = (settings.state_dir / "checkpoints" / job_name).resolve()
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
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": str(settings.restart_attempts),
        "restart-strategy.fixed-delay.delay": f"{settings.restart_delay_ms} ms",
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
    }
    conf.update(dict(settings.extra_config))
    return conf


JVM_TIMEZONE_OPTION = "-Duser.timezone=UTC"


def use_utc_jvm() -> None:
    """Start the local Flink JVM (PyFlink's gateway, which hosts the MiniCluster) in UTC.

    The JDBC sink hands PostgreSQL TIMESTAMP values that the driver reads in the JVM's default zone; with
    UTC, `to_utc(...)` values land in TIMESTAMPTZ columns as the exact instants. Only effective before the
    gateway starts; clusters set the same option in flink-conf/config.yaml (env.java.opts.all).
    """
    current = os.environ.get("JVM_ARGS", "")
    if "-Duser.timezone=" not in current:
        os.environ["JVM_ARGS"] = f"{current} {JVM_TIMEZONE_OPTION}".strip()


def create_environments(
    settings: FlinkSettings, job_name: str
) -> tuple[StreamExecutionEnvironment, StreamTableEnvironment]:
    """A streaming DataStream + Table environment pair configured for `job_name`."""
    use_utc_jvm()
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
