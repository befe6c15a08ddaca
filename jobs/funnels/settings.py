"""Typed settings of the funnels job; defaults are SEMANTICS.md's (env prefix `UXSTREAM_FUNNELS_`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from jobs.common import topics
from jobs.common.connectors import StopOffsets
from jobs.common.flink_env import PROJECT_ROOT, FlinkSettings
from jobs.common.settings import (
    DEFAULT_IDENTITY_TTL_MS,
    KafkaSettings,
    PostgresSettings,
    SettingsError,
    env_int,
    env_str,
    identity_ttl_ms,
)
from jobs.funnels.definitions import load_funnels
from jobs.funnels.logic import DEFAULT_REPORT_WINDOW_MS, DEFAULT_VISIT_GAP_MS, Funnel

MINUTE_MS = 60_000
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "funnels.toml"


@dataclass(frozen=True)
class FunnelsSettings:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    postgres: PostgresSettings = field(default_factory=PostgresSettings)
    flink: FlinkSettings = field(default_factory=FlinkSettings)
    config_path: Path = DEFAULT_CONFIG
    """The funnel definitions file (UXSTREAM_FUNNELS_CONFIG)."""
    funnels: tuple[Funnel, ...] = ()
    """The definitions read from `config_path` (`from_env` loads them)."""
    input_topic: str = topics.EVENTS
    dlq_topic: str = topics.DLQ
    funnel_topic: str = topics.FUNNEL
    transactional_id_prefix: str = "funnels"
    """Kafka transactional-id prefix: `<prefix>-dlq` and `<prefix>-windows`; unique per job on a broker."""
    bounded: bool = False
    """Read up to the end offsets present at start, then finish (tests, backfills, run-local)."""
    stop_offsets: StopOffsets = ()
    """Read up to these offsets (exclusive) of the input topic's partitions instead, then finish."""
    window_ms: int = DEFAULT_REPORT_WINDOW_MS
    """Tumbling window of entry time for the funnel window rows."""
    out_of_orderness_ms: int = 5_000
    idleness_ms: int = 30_000
    max_future_skew_ms: int = 5 * MINUTE_MS
    dedup_ttl_ms: int = 24 * 60 * MINUTE_MS
    state_ttl_ms: int = 48 * 60 * MINUTE_MS
    """Safety net on the per-user funnel state (processing time); state is cleared when nothing is open."""
    visit_gap_ms: int = DEFAULT_VISIT_GAP_MS
    """Identity: a device's anonymous events wait for a login until this long without an event of the
    device (UXSTREAM_FUNNELS_VISIT_GAP_MS, else sessionize's UXSTREAM_SESSIONIZE_SESSION_GAP_MS)."""
    identity_ttl_ms: int = DEFAULT_IDENTITY_TTL_MS
    """Identity: how long (event time) a device's link attributes its anonymous events
    (UXSTREAM_IDENTITY_TTL)."""

    def __post_init__(self) -> None:
        for name in ("window_ms", "dedup_ttl_ms", "state_ttl_ms", "visit_gap_ms", "identity_ttl_ms"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("out_of_orderness_ms", "idleness_ms", "max_future_skew_ms"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name} must not be negative, got {getattr(self, name)}")
        if not self.transactional_id_prefix:
            raise SettingsError("the transactional-id prefix must not be empty")

    @property
    def dlq_transactional_id_prefix(self) -> str:
        return f"{self.transactional_id_prefix}-dlq"

    @property
    def windows_transactional_id_prefix(self) -> str:
        return f"{self.transactional_id_prefix}-windows"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> FunnelsSettings:
        env = os.environ if env is None else env
        p = "UXSTREAM_FUNNELS_"
        values: dict[str, object] = {
            "kafka": KafkaSettings.from_env(env),
            "postgres": PostgresSettings.from_env(env, "writer"),
            "flink": FlinkSettings.from_env(env),
            "config_path": Path(env_str(env, p + "CONFIG", str(DEFAULT_CONFIG)) or DEFAULT_CONFIG),
            "input_topic": env_str(env, p + "INPUT_TOPIC", cls.input_topic),
            "dlq_topic": env_str(env, p + "DLQ_TOPIC", cls.dlq_topic),
            "funnel_topic": env_str(env, p + "FUNNEL_TOPIC", cls.funnel_topic),
            "transactional_id_prefix": env_str(
                env, p + "TRANSACTIONAL_ID_PREFIX", cls.transactional_id_prefix
            ),
            "window_ms": env_int(env, p + "WINDOW_MS", cls.window_ms),
            "out_of_orderness_ms": env_int(env, p + "OUT_OF_ORDERNESS_MS", cls.out_of_orderness_ms),
            "idleness_ms": env_int(env, p + "IDLENESS_MS", cls.idleness_ms),
            "max_future_skew_ms": env_int(env, p + "MAX_FUTURE_SKEW_MS", cls.max_future_skew_ms),
            "dedup_ttl_ms": env_int(env, p + "DEDUP_TTL_MS", cls.dedup_ttl_ms),
            "state_ttl_ms": env_int(env, p + "STATE_TTL_MS", cls.state_ttl_ms),
            "visit_gap_ms": env_int(
                env,
                p + "VISIT_GAP_MS",
                env_int(env, "UXSTREAM_SESSIONIZE_SESSION_GAP_MS", cls.visit_gap_ms),
            ),
            "identity_ttl_ms": identity_ttl_ms(env),
        }
        values.update(overrides)
        if "funnels" not in overrides:
            values["funnels"] = load_funnels(Path(str(values["config_path"])))
        return cls(**values)  # type: ignore[arg-type]
