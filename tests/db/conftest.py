"""Fixtures of the database tests: scratch databases on the test PostgreSQL server.

Each test module gets its own databases (`CREATE DATABASE uxstream_test_<module>_<random>` through the
configured connection, dropped at the end of the module), so these tests never touch the `uxstream`
database that the jobs and other tests use, and never collide with each other.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jobs.common.settings import PostgresSettings
from uxstream.db import MIGRATIONS, connect, create_database

MakeDatabase = Callable[[], PostgresSettings]


@pytest.fixture(scope="session")
def migrations_dir() -> Path:
    """The project's migrations folder (the files under test)."""
    return MIGRATIONS


@pytest.fixture(scope="module")
def make_database(pg_settings: PostgresSettings, request: pytest.FixtureRequest) -> Iterator[MakeDatabase]:
    """A factory of empty scratch databases; all are dropped when the module's tests are done."""
    module = re.sub(r"[^a-z0-9]+", "_", request.module.__name__.rsplit(".", 1)[-1].lower())[:24]
    created: list[str] = []

    def make() -> PostgresSettings:
        name = f"uxstream_test_{module}_{uuid.uuid4().hex[:8]}"
        pg = create_database(pg_settings, name)
        created.append(name)
        return pg

    yield make
    with connect(pg_settings, autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
