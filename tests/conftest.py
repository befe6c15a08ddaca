"""Shared fixtures.

`kafka_settings` and `pg_settings` start the local services once per test session (the same idempotent
start as `make up`: services that already run are reused) and fail the session's tests that need them,
with the reason, when a service cannot start. Tests never skip for a missing service.

Services are left running at the end of the session, whoever started them: the next run (or the
developer's `make run-local`) reuses them instantly, and `make down` stops them. Set the environment
(UXSTREAM_KAFKA_BOOTSTRAP_SERVERS, UXSTREAM_PG_HOST, ...) to run the tests against external services.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jobs.common.settings import KafkaSettings, PostgresSettings, SettingsError
from uxstream.errors import UserError
from uxstream.services import ensure_kafka, ensure_postgres


@pytest.fixture(scope="session")
def kafka_settings() -> Iterator[KafkaSettings]:
    """Settings of a Kafka broker that answers (the local one, started if needed)."""
    try:
        settings = KafkaSettings.from_env()
        ensure_kafka(settings)
    except (UserError, SettingsError) as exc:
        pytest.fail(f"Kafka is not available: {exc}", pytrace=False)
    yield settings


@pytest.fixture(scope="session")
def pg_settings() -> Iterator[PostgresSettings]:
    """Settings of a PostgreSQL server that accepts connections (the local one, started if needed)."""
    try:
        settings = PostgresSettings.from_env()
        ensure_postgres(settings)
    except (UserError, SettingsError) as exc:
        pytest.fail(f"PostgreSQL is not available: {exc}", pytrace=False)
    yield settings
