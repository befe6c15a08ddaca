"""Fixtures of the dashboard tests: the Redis of the right-now tier (the local redis-server that
`uxstream up` starts, or UXSTREAM_REDIS_URL's), started once per session like Kafka and PostgreSQL."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from jobs.common.settings import SettingsError
from uxstream.errors import UserError
from uxstream.services.redis import RedisSettings, ensure_redis


@pytest.fixture(scope="session")
def redis_settings() -> Iterator[RedisSettings]:
    """Settings of a Redis that answers (the local one, started if needed)."""
    try:
        settings = RedisSettings.from_env()
        ensure_redis(settings, out=io.StringIO())
    except (UserError, SettingsError) as exc:
        pytest.fail(f"Redis is not available: {exc}", pytrace=False)
    yield settings
