"""The data-quality gate (`uxstream validate`, uxstream/quality.py) on a scratch database.

A small, consistent output of the sessionize job (two users, two minutes) passes every expectation; each
kind of violation, written into that data set, fails with a message naming the table, the column and the
expectation. Great Expectations takes ~5 s to import (once per test session) and ~1 s per run, so the cases
share one database and one clean data set, reloaded before each case.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobs.common import tables as t
from jobs.common.settings import PostgresSettings
from uxstream.cli import main as cli_main
from uxstream.db import connect, migrate
from uxstream.quality import QualityReport, validate

from .conftest import MakeDatabase

pytestmark = pytest.mark.services

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
"""Start of the first minute of the data set."""
S, M = timedelta(seconds=1), timedelta(minutes=1)
DAY_START = datetime(2026, 3, 2, tzinfo=UTC)

# Counted events: u1 page_view /a @T0+5s, page_view /b @T0+40s, click on /b @T0+70s (mobile, NL);
#                 u2 page_view /a @T0+20s, error on /a @T0+30s (desktop, DE).
SESSIONS = [
    # session_id, user_key, start, end, duration_ms, events, page_views, distinct_pages, entry, exit,
    # device, country, errors, conversions, engaged, bounce, split_reason, is_final
    ("s-u1", "u1", T0 + 5 * S, T0 + 70 * S, 65_000, 3, 2, 2, "/a", "/b", "mobile", "NL", 0, 0, True, False,
     "gap", True),
    ("s-u2", "u2", T0 + 20 * S, T0 + 30 * S, 10_000, 2, 1, 1, "/a", "/a", "desktop", "DE", 1, 0, False, True,
     "gap", True),
]  # fmt: skip
KPI_1M = [
    # window_start, dimension, value, events, page_views, active_users, error_events, error_rate
    (T0, "global", "(all)", 4, 3, 2, 1, 1 / 3),
    (T0, "page_path", "/a", 3, 2, 2, 1, 0.5),
    (T0, "page_path", "/b", 1, 1, 1, 0, 0.0),
    (T0 + M, "global", "(all)", 1, 0, 1, 0, None),
    (T0 + M, "page_path", "/b", 1, 0, 1, 0, None),
]
KPI_SLIDING_5M = [
    # window_start, dimension, value, active_users, page_views, error_events, error_rate
    (T0 - M, "global", "(all)", 2, 3, 1, 1 / 3),
    (T0 + M, "global", "(all)", 1, 0, 0, None),
    (T0 - 3 * M, "page_path", "/b", 1, 1, 0, 0.0),
]
KPI_DAILY = [
    # window_end, dimension, value, daily_active_users, page_views
    (T0 + 5 * M, "global", "(all)", 2, 3),
    (T0 + 10 * M, "global", "(all)", 2, 3),
    (T0 + 5 * M, "page_path", "/a", 2, 2),
]
LATE_EVENTS = [
    # event_id, event_time, received_at, watermark, lateness_ms, reason, offset, page_path
    ("e-late", T0 + 10 * S, T0 + 3 * M, T0 + 175 * S, 165_000, "late", 42, "/a"),
    ("e-future", T0 + timedelta(hours=2), T0 + M, None, None, "future_timestamp", 43, "/b"),
]


def load_clean(pg: PostgresSettings) -> None:
    """Empty the five tables and write the consistent data set above."""
    with connect(pg, autocommit=True) as conn, conn.transaction():
        conn.execute(f"TRUNCATE {', '.join(t.SESSIONIZE_TABLES)}")
        for s in SESSIONS:
            conn.execute(
                f"""INSERT INTO {t.SESSIONS} (session_id, user_key, session_start, session_end, duration_ms,
                      event_count, page_views, distinct_pages, entry_page, exit_page, device_type, country,
                      error_count, conversions, engaged, bounce, split_reason, is_final)
                    VALUES ({", ".join(["%s"] * 18)})""",
                s,
            )
        for start, dim, value, events, views, users, errors, rate in KPI_1M:
            conn.execute(
                f"""INSERT INTO {t.KPI_1M} (window_start, window_end, dimension, dimension_value, events,
                      page_views, active_users, error_events, conversions, duplicates, error_rate)
                    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 0, 0, %s)""",
                (start, start + M, dim, value, events, views, users, errors, rate),
            )
        for start, dim, value, users, views, errors, rate in KPI_SLIDING_5M:
            conn.execute(
                f"INSERT INTO {t.KPI_SLIDING_5M} VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (start, start + 5 * M, dim, value, users, views, errors, rate),
            )
        for end, dim, value, users, views in KPI_DAILY:
            conn.execute(
                f"INSERT INTO {t.KPI_DAILY} VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (DAY_START.date(), DAY_START, end, dim, value, users, views),
            )
        for event_id, event_time, received, watermark, lateness, reason, offset, page in LATE_EVENTS:
            conn.execute(
                f"""INSERT INTO {t.LATE_EVENTS} (job, event_id, event_time, received_at, watermark,
                      lateness_ms, reason, source_partition, source_offset, page_path)
                    VALUES ('sessionize', %s, %s, %s, %s, %s, %s, 0, %s, %s)""",
                (event_id, event_time, received, watermark, lateness, reason, offset, page),
            )


@pytest.fixture(scope="module")
def quality_db(make_database: MakeDatabase, migrations_dir: Path) -> Iterator[PostgresSettings]:
    pg = make_database()
    migrate(pg, migrations_dir)
    yield pg


@pytest.fixture
def clean_db(quality_db: PostgresSettings) -> PostgresSettings:
    load_clean(quality_db)
    return quality_db


def sql(pg: PostgresSettings, statement: str) -> None:
    with connect(pg, autocommit=True) as conn:
        conn.execute(statement)


def test_a_clean_data_set_passes_every_expectation(
    clean_db: PostgresSettings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("UXSTREAM_PG_DB", clean_db.dbname)
    started = time.perf_counter()
    code = cli_main(["validate"])
    seconds = time.perf_counter() - started
    out = capsys.readouterr().out
    print(out, f"`uxstream validate` took {seconds:.1f} s (Great Expectations import included)")
    assert code == 0, out
    assert "0 failed, 0 skipped" in out
    for table in t.SESSIONIZE_TABLES:
        assert f"PASS    {table} " in out


def test_the_command_exits_1_and_names_the_failure(
    clean_db: PostgresSettings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sql(clean_db, f"UPDATE {t.SESSIONS} SET bounce = engaged WHERE user_key = 'u1'")
    monkeypatch.setenv("UXSTREAM_PG_DB", clean_db.dbname)
    code = cli_main(["validate", "--tables", t.SESSIONS])
    out = capsys.readouterr().out
    assert code == 1, out
    assert (
        "FAILED sessions.bounce: unexpected_rows_expectation (bounce = NOT engaged) failed: 1 row(s)" in out
    )


Violation = Callable[[PostgresSettings], None]


def _duplicate_key(pg: PostgresSettings) -> None:
    # The primary key would refuse a duplicate: drop it so the suite has one to find.
    sql(pg, f"ALTER TABLE {t.KPI_1M} DROP CONSTRAINT kpi_1m_pkey")
    sql(pg, f"INSERT INTO {t.KPI_1M} SELECT * FROM {t.KPI_1M} WHERE dimension = 'page_path' LIMIT 1")


CASES: list[tuple[str, Violation, tuple[str, ...]]] = [
    (
        "duplicate key",
        _duplicate_key,
        ("kpi_1m.window_start, dimension, dimension_value", "expect_compound_columns_to_be_unique"),
    ),
    (
        "error rate 1.5 against 1 error in 3 page views",
        lambda pg: sql(pg, f"UPDATE {t.KPI_1M} SET error_rate = 1.5 WHERE error_events = 1 AND events = 4"),
        ("kpi_1m.error_rate", "unexpected_rows_expectation", "= error_events / page_views"),
    ),
    (
        "negative rate",
        lambda pg: sql(pg, f"UPDATE {t.KPI_SLIDING_5M} SET error_rate = -0.5 WHERE page_views = 1"),
        ("kpi_sliding_5m.error_rate", "expect_column_values_to_be_between", ">= 0"),
    ),
    (
        "negative duration",
        lambda pg: sql(pg, f"UPDATE {t.SESSIONS} SET duration_ms = -10 WHERE user_key = 'u2'"),
        ("sessions.duration_ms", "expect_column_values_to_be_between", ">= 0"),
    ),
    (
        "window_end <= window_start",
        lambda pg: sql(pg, f"UPDATE {t.KPI_DAILY} SET window_end = window_start WHERE page_views = 2"),
        ("kpi_daily_cumulative.window_end, window_start", "expect_column_pair_values_a_to_be_greater_than_b"),
    ),
    (
        "session event counts disagree with the KPI windows",
        lambda pg: sql(pg, f"UPDATE {t.SESSIONS} SET event_count = 4 WHERE user_key = 'u1'"),
        ("kpi_1m.events", "unexpected_rows_expectation", "sum(sessions.event_count)"),
    ),
    (
        "an NPS that does not follow from its promoters and detractors",
        lambda pg: sql(
            pg,
            f"""UPDATE {t.KPI_1M} SET feedback_responses = 2, nps_responses = 2, nps_score_sum = 13,
                  nps_promoters = 1, nps_passives = 0, nps_detractors = 1, nps = 50, csat_responses = 0,
                  csat_score_sum = 0
                WHERE page_views = 1 AND dimension = 'page_path'""",
        ),
        ("kpi_1m.feedback_responses, nps_*, csat_*", "unexpected_rows_expectation", "nps = 100 (P - D) / N"),
    ),
    (
        "sliding window disagrees with its minutes",
        lambda pg: sql(pg, f"UPDATE {t.KPI_SLIDING_5M} SET page_views = 4 WHERE page_views = 3"),
        ("kpi_sliding_5m.page_views, error_events, active_users", "sums of the kpi_1m minutes"),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("violation", "names"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_each_kind_of_violation_fails_naming_table_column_and_expectation(
    clean_db: PostgresSettings, violation: Violation, names: tuple[str, ...]
) -> None:
    try:
        violation(clean_db)
        report = validate(clean_db)
    finally:
        restore_primary_key(clean_db)
    assert not report.ok
    messages = [r.message() for r in report.failures]
    assert any(all(name in m for name in names) for m in messages), "\n".join(messages)
    rendered = report.render()
    assert any(line.startswith("FAILED ") and all(n in line for n in names) for line in rendered.splitlines())


def restore_primary_key(pg: PostgresSettings) -> None:
    with connect(pg, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('kpi_1m_pkey')").fetchone() == (None,):
            conn.execute(f"TRUNCATE {t.KPI_1M}")
            key = "window_start, dimension, dimension_value"
            conn.execute(f"ALTER TABLE {t.KPI_1M} ADD CONSTRAINT kpi_1m_pkey PRIMARY KEY ({key})")


def only_failures(report: QualityReport) -> list[str]:
    return [r.message() for r in report.failures]


def test_an_error_rate_above_one_that_matches_its_counts_passes(clean_db: PostgresSettings) -> None:
    """SEMANTICS.md: error rate = error events / page views, which exceeds 1 when a page logs several errors;
    the gate checks the rate against its counts, not against 1."""
    sql(clean_db, f"UPDATE {t.KPI_1M} SET error_events = 3, error_rate = 1.5 WHERE dimension_value = '/a'")
    sql(clean_db, f"UPDATE {t.KPI_1M} SET error_events = 3, error_rate = 1.0 WHERE events = 4")
    report = validate(clean_db, [t.KPI_1M], cross_table=False)
    assert report.ok, only_failures(report)
