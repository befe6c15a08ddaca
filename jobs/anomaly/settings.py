"""Typed settings of the anomaly job (env prefix `UXSTREAM_ANOMALY_`); defaults in README "Configuration".

Detector defaults are SEMANTICS.md's (|z| ≥ 4) and the measured ones of NOTES.md "Anomaly".
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from jobs.anomaly.logic import DEFAULT_SERIES_TTL_MS, DetectorError, DetectorSettings, MetricSpec
from jobs.common import topics
from jobs.common.flink_env import FlinkSettings
from jobs.common.settings import (
    KafkaSettings,
    PostgresSettings,
    SettingsError,
    env_int,
    env_str,
    parse_duration_ms,
)

PREFIX = "UXSTREAM_ANOMALY_"
_FLOAT_FIELDS = (
    "threshold",
    "critical_z",
    "min_volume",
    "min_relative_change",
    "mad_floor_relative",
    "mad_floor_absolute",
    "ewma_alpha",
    "anomalous_learning",
    "fast_open_z",
    "cusum_k",
    "cusum_h",
)
_INT_FIELDS = (
    "open_after",
    "resolve_after",
    "cooldown_ms",
    "ewma_window",
    "min_history",
    "seasonal_min_samples",
    "seasonal_max_samples",
    "max_gap_fill",
    "baseline_hold",
)


def env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env_str(env, name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None


def detector_from_env(env: Mapping[str, str]) -> DetectorSettings:
    """`UXSTREAM_ANOMALY_<FIELD>` for every DetectorSettings field; METRICS is a comma list of
    `SOURCE:WINDOW_KIND:METRIC[:DIRECTION]`."""
    defaults = DetectorSettings()
    values: dict[str, object] = {}
    for name in _FLOAT_FIELDS:
        values[name] = env_float(env, PREFIX + name.upper(), getattr(defaults, name))
    for name in _INT_FIELDS:
        values[name] = env_int(env, PREFIX + name.upper(), getattr(defaults, name))
    raw = env_str(env, PREFIX + "METRICS")
    try:
        if raw is not None:
            values["metrics"] = tuple(MetricSpec.parse(x) for x in raw.split(",") if x.strip())
        return DetectorSettings(**values)  # type: ignore[arg-type]
    except DetectorError as exc:
        raise SettingsError(f"{PREFIX}{_variable(str(exc))}: {exc}") from None


def _variable(message: str) -> str:
    """The variable suffix a DetectorError message is about."""
    if message.startswith("metric"):
        return "METRICS"
    name = message.split(" ", 1)[0]
    return name.upper() if name in {f.name for f in fields(DetectorSettings)} else "METRICS"


@dataclass(frozen=True)
class AnomalySettings:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    postgres: PostgresSettings = field(default_factory=PostgresSettings)
    flink: FlinkSettings = field(default_factory=FlinkSettings)
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    kpi_topic: str = topics.KPI
    funnel_topic: str = topics.FUNNEL
    """Empty: do not read funnel windows. A funnel topic that does not exist (yet) is skipped at start."""
    alerts_topic: str = topics.ALERTS
    transactional_id_prefix: str = "anomaly"
    warm_start_days: int = 14
    """Seed each new tumbling-1m KPI series from this many days of kpi_1m history (0: off)."""
    series_ttl_ms: int = DEFAULT_SERIES_TTL_MS
    """UXSTREAM_ANOMALY_SERIES_TTL: a series group (one job key: all metrics of one Kafka key) expires after
    this much event time without a window (logic.py "Series expiry"; default 8 days: see
    `logic.DEFAULT_SERIES_TTL_MS`)."""
    bounded: bool = False
    python_bundle_ms: int = 100
    """How long the Python operator may buffer records (latency from window to alert)."""

    def __post_init__(self) -> None:
        if not self.kpi_topic:
            raise SettingsError(f"{PREFIX}KPI_TOPIC must not be empty")
        if not self.alerts_topic:
            raise SettingsError(f"{PREFIX}ALERTS_TOPIC must not be empty")
        if self.warm_start_days < 0:
            raise SettingsError(f"{PREFIX}WARM_START_DAYS must not be negative, got {self.warm_start_days}")
        if self.series_ttl_ms <= 0:
            raise SettingsError(f"{PREFIX}SERIES_TTL must be positive, got {self.series_ttl_ms} ms")
        if self.python_bundle_ms < 1:
            raise SettingsError(f"{PREFIX}PYTHON_BUNDLE_MS must be positive, got {self.python_bundle_ms}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> AnomalySettings:
        env = os.environ if env is None else env
        values: dict[str, object] = {
            "kafka": KafkaSettings.from_env(env),
            "postgres": PostgresSettings.from_env(env, "writer"),
            "flink": FlinkSettings.from_env(env),
            "detector": detector_from_env(env),
            "kpi_topic": env_str(env, PREFIX + "KPI_TOPIC", cls.kpi_topic),
            "funnel_topic": env.get(PREFIX + "FUNNEL_TOPIC", cls.funnel_topic).strip(),
            "alerts_topic": env_str(env, PREFIX + "ALERTS_TOPIC", cls.alerts_topic),
            "transactional_id_prefix": env_str(
                env, PREFIX + "TRANSACTIONAL_ID_PREFIX", cls.transactional_id_prefix
            ),
            "warm_start_days": env_int(env, PREFIX + "WARM_START_DAYS", cls.warm_start_days),
            "python_bundle_ms": env_int(env, PREFIX + "PYTHON_BUNDLE_MS", cls.python_bundle_ms),
        }
        ttl = env_str(env, PREFIX + "SERIES_TTL")
        if ttl is not None:
            values["series_ttl_ms"] = parse_duration_ms(PREFIX + "SERIES_TTL", ttl)
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
