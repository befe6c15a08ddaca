"""Scratch databases and table contents in tests: fresh migrated databases, rows as comparable tuples,
snapshots, and the one comparison of a table with its oracle."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from jobs.common.settings import PostgresSettings
from uxstream.db import connect, create_database, migrate


def fresh_database(pg_settings: PostgresSettings, name: str) -> PostgresSettings:
    """Create the database `name` on the test server and migrate it; its settings."""
    pg = create_database(pg_settings, name)
    migrate(pg)
    return pg


def drop_database(pg_settings: PostgresSettings, pg: PostgresSettings) -> None:
    with connect(pg_settings, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{pg.dbname}" WITH (FORCE)')


def normalize(value: Any) -> Any:
    """A stored or expected value in comparable form: instants as epoch ms, floats to 9 places (NaN as
    None), lists as tuples, objects as sorted (key, value) tuples."""
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 9)
    if isinstance(value, list):
        return tuple(normalize(v) for v in value)
    if isinstance(value, dict):  # JSONB objects (sessions.feedback)
        return tuple(sorted((k, normalize(v)) for k, v in value.items()))
    return value


def rows(
    pg: PostgresSettings, table: str, columns: Sequence[str], where: str = ""
) -> Counter[tuple[Any, ...]]:
    """The table's rows (these columns, normalized) as a multiset."""
    with connect(pg) as conn:
        found = conn.execute(f"SELECT {', '.join(columns)} FROM {table}{where}").fetchall()
    return Counter(tuple(normalize(v) for v in row) for row in found)


def as_rows(records: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> Counter[tuple[Any, ...]]:
    """Oracle rows (dicts) as the multiset `rows` returns for the same columns."""
    return Counter(tuple(normalize(r[c]) for c in columns) for r in records)


def snapshot(pg: PostgresSettings, tables: Iterable[str]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of these tables in a total order: a replay must reproduce it exactly."""
    with connect(pg) as conn:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}


def assert_multisets_equal(name: str, want: Counter[Any], got: Counter[Any], unit: str = "rows") -> None:
    """Both directions: nothing missing, nothing unexpected; the message names the first of each."""
    missing, extra = want - got, got - want
    assert not missing and not extra, (
        f"{name}: {sum(missing.values())} expected {unit} missing, {sum(extra.values())} unexpected; "
        f"first missing {list(missing)[:2]}, first unexpected {list(extra)[:2]}"
    )


def assert_table_equals(
    pg: PostgresSettings, table: str, expected: Sequence[Mapping[str, Any]], where: str = ""
) -> None:
    """The table holds exactly the expected rows (their columns), both directions. An empty expectation
    is an error: such a test would prove nothing."""
    assert expected, f"the stream gives no expected {table} rows: the test would prove nothing"
    columns = list(expected[0])
    assert_multisets_equal(table, as_rows(expected, columns), rows(pg, table, columns, where))
