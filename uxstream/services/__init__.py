"""Local services for development and tests: a single-node Kafka broker, a PostgreSQL server and Redis
(the dashboard's "right now" tier, uxstream/services/redis.py).

Both run as plain processes on 127.0.0.1 with their data under `paths.LOCAL` (`.local/`). When the settings
say `.external` (the user pointed uxstream at their own deployment through the environment), nothing is
started: the functions only check that the external service answers.

    ensure_kafka(settings)      start the broker unless it already runs (idempotent), wait until ready
    ensure_postgres(settings)   same for PostgreSQL
    stop_all()                  stop both (idempotent)
    status_all()                one ServiceStatus per service

`LocalKafka` / `LocalPostgres` describe one local instance (home folder, ports); tests pass their own to run
a separate instance without touching the shared one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from jobs.common.settings import KafkaSettings, PostgresSettings
from uxstream.services.common import ServiceStatus
from uxstream.services.kafka import LocalKafka, ensure_kafka, kafka_status, stop_kafka
from uxstream.services.postgres import LocalPostgres, ensure_postgres, postgres_status, stop_postgres
from uxstream.services.redis import ensure_redis, redis_status, stop_redis

SERVICES = ("kafka", "postgres", "redis")

__all__ = [
    "SERVICES",
    "LocalKafka",
    "LocalPostgres",
    "ServiceStatus",
    "ensure_all",
    "ensure_kafka",
    "ensure_postgres",
    "ensure_redis",
    "kafka_status",
    "postgres_status",
    "redis_status",
    "status_all",
    "stop_all",
    "stop_kafka",
    "stop_postgres",
    "stop_redis",
]


def ensure_all(
    only: Sequence[str] = SERVICES,
    *,
    kafka: KafkaSettings | None = None,
    postgres: PostgresSettings | None = None,
    timeout: float = 60.0,
    out: TextIO | None = None,
) -> None:
    """Start (or reuse) the selected services; settings default to the environment."""
    if "kafka" in only:
        ensure_kafka(kafka, timeout=timeout, out=out)
    if "postgres" in only:
        ensure_postgres(postgres, timeout=timeout, out=out)
    if "redis" in only:
        ensure_redis(timeout=min(timeout, 30.0), out=out)


def stop_all(
    only: Sequence[str] = SERVICES,
    *,
    kafka: KafkaSettings | None = None,
    postgres: PostgresSettings | None = None,
    out: TextIO | None = None,
) -> None:
    """Stop the selected local services (idempotent; external services are left alone)."""
    if "kafka" in only:
        stop_kafka(kafka, out=out)
    if "postgres" in only:
        stop_postgres(postgres, out=out)
    if "redis" in only:
        stop_redis(out=out)


def status_all(
    only: Sequence[str] = SERVICES,
    *,
    kafka: KafkaSettings | None = None,
    postgres: PostgresSettings | None = None,
) -> list[ServiceStatus]:
    """The state of the selected services, in `SERVICES` order."""
    result: list[ServiceStatus] = []
    if "kafka" in only:
        result.append(kafka_status(kafka))
    if "postgres" in only:
        result.append(postgres_status(postgres))
    if "redis" in only:
        result.append(redis_status())
    return result
