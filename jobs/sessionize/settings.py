"""Typed settings of the sessionize job; defaults are SEMANTICS.md's (env prefix `UXSTREAM_SESSIONIZE_`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jobs.common import topics
from jobs.common.connectors import StopOffsets
from jobs.common.flink_env import FlinkSettings
from jobs.common.settings import (
    DEFAULT_IDENTITY_TTL_MS,
    KafkaSettings,
    PostgresSettings,
    SettingsError,
    env_int,
    env_str,
    identity_ttl_ms,
)
from jobs.sessionize.logic import DEFAULT_GAP_MS, DEFAULT_MAX_DURATION_MS, SessionRules

MINUTE_MS = 60_000
DIMENSIONS = ("page_path", "country", "device_type")
"""Event columns a KPI row can be broken down by (besides `global`)."""


@dataclass(frozen=True)
class SessionizeSettings:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    postgres: PostgresSettings = field(default_factory=PostgresSettings)
    flink: FlinkSettings = field(default_factory=FlinkSettings)
    input_topic: str = topics.EVENTS
    dlq_topic: str = topics.DLQ
    kpi_topic: str = topics.KPI
    """Where final KPI windows are published (kpi_window.v2); empty: not published."""
    transactional_id_prefix: str = "sessionize"
    """Kafka transactional-id prefix of the exactly-once sinks (`<prefix>-dlq`, `<prefix>-kpi`): unique per
    deployment on a broker, or two jobs fence each other's transactions."""
    bounded: bool = False
    """Read up to the end offsets present at start, then finish (tests, backfills, run-local)."""
    stop_offsets: StopOffsets = ()
    """Read up to these offsets (exclusive) of the input topic's partitions instead, then finish."""
    session_gap_ms: int = DEFAULT_GAP_MS
    session_timezone: str = "UTC"
    split_at_midnight: bool = True
    max_session_duration_ms: int = DEFAULT_MAX_DURATION_MS
    conversion_events: tuple[str, ...] = ("order_completed", "signup_completed")
    dimensions: tuple[str, ...] = DIMENSIONS
    out_of_orderness_ms: int = 5_000
    idleness_ms: int = 30_000
    max_future_skew_ms: int = 5 * MINUTE_MS
    dedup_ttl_ms: int = 24 * 60 * MINUTE_MS
    tumble_ms: int = MINUTE_MS
    sliding_size_ms: int = 5 * MINUTE_MS
    sliding_step_ms: int = MINUTE_MS
    cumulative_step_ms: int = 5 * MINUTE_MS
    identity_ttl_ms: int = DEFAULT_IDENTITY_TTL_MS
    """UXSTREAM_IDENTITY_TTL: how long a login attributes later anonymous sessions to the user."""

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.session_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(
                f"session timezone {self.session_timezone!r} is not a known IANA time zone"
            ) from None
        unknown = [d for d in self.dimensions if d not in DIMENSIONS]
        if unknown:
            raise SettingsError(
                f"unknown KPI dimension(s) {', '.join(unknown)}: choose from {', '.join(DIMENSIONS)}"
            )
        repeated = sorted({d for d in self.dimensions if self.dimensions.count(d) > 1})
        if repeated:
            raise SettingsError(f"KPI dimension(s) listed twice: {', '.join(repeated)}")
        if not self.transactional_id_prefix.strip():
            raise SettingsError("the transactional-id prefix must not be empty")
        for name in (
            "session_gap_ms",
            "max_session_duration_ms",
            "tumble_ms",
            "sliding_size_ms",
            "sliding_step_ms",
            "cumulative_step_ms",
            "dedup_ttl_ms",
            "identity_ttl_ms",
        ):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("out_of_orderness_ms", "idleness_ms", "max_future_skew_ms"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.sliding_size_ms % self.sliding_step_ms:
            raise SettingsError("the sliding window size must be a multiple of its step")
        if (24 * 60 * MINUTE_MS) % self.cumulative_step_ms:
            raise SettingsError("the cumulative step must divide a day")
        for name in ("sliding_step_ms", "cumulative_step_ms"):
            if getattr(self, name) % self.tumble_ms:
                raise SettingsError(
                    f"{name} ({getattr(self, name)}) must be a multiple of tumble_ms ({self.tumble_ms}): the "
                    "sliding and cumulative windows are built from the tumbling windows' rows"
                )

    @property
    def rules(self) -> SessionRules:
        return SessionRules(
            gap_ms=self.session_gap_ms,
            timezone=self.session_timezone,
            split_at_midnight=self.split_at_midnight,
            max_duration_ms=self.max_session_duration_ms,
            conversion_events=frozenset(self.conversion_events),
            identity_ttl_ms=self.identity_ttl_ms,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> SessionizeSettings:
        env = os.environ if env is None else env
        p = "UXSTREAM_SESSIONIZE_"

        def csv(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
            raw = env_str(env, p + name)
            return default if raw is None else tuple(x.strip() for x in raw.split(",") if x.strip())

        midnight = (env_str(env, p + "SPLIT_AT_MIDNIGHT", "true") or "true").lower()
        if midnight not in ("true", "false"):
            raise SettingsError(f"{p}SPLIT_AT_MIDNIGHT={midnight!r} is not true or false")
        values: dict[str, object] = {
            "kafka": KafkaSettings.from_env(env),
            "postgres": PostgresSettings.from_env(env, "writer"),
            "flink": FlinkSettings.from_env(env),
            "input_topic": env_str(env, p + "INPUT_TOPIC", cls.input_topic),
            "dlq_topic": env_str(env, p + "DLQ_TOPIC", cls.dlq_topic),
            # set but empty: do not publish KPI windows
            "kpi_topic": env.get(p + "KPI_TOPIC", cls.kpi_topic).strip(),
            "transactional_id_prefix": env_str(
                env, p + "TRANSACTIONAL_ID_PREFIX", cls.transactional_id_prefix
            ),
            "session_gap_ms": env_int(env, p + "SESSION_GAP_MS", cls.session_gap_ms),
            "session_timezone": env_str(env, p + "SESSION_TIMEZONE", cls.session_timezone),
            "split_at_midnight": midnight == "true",
            "max_session_duration_ms": env_int(
                env, p + "MAX_SESSION_DURATION_MS", cls.max_session_duration_ms
            ),
            "conversion_events": csv("CONVERSION_EVENTS", cls.conversion_events),
            "dimensions": csv("DIMENSIONS", cls.dimensions),
            "out_of_orderness_ms": env_int(env, p + "OUT_OF_ORDERNESS_MS", cls.out_of_orderness_ms),
            "idleness_ms": env_int(env, p + "IDLENESS_MS", cls.idleness_ms),
            "max_future_skew_ms": env_int(env, p + "MAX_FUTURE_SKEW_MS", cls.max_future_skew_ms),
            "dedup_ttl_ms": env_int(env, p + "DEDUP_TTL_MS", cls.dedup_ttl_ms),
            "identity_ttl_ms": identity_ttl_ms(env),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
