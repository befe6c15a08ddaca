"""Unique users over any range (issue 20 item 3), end to end: a 7-day stream through sessionize into
PostgreSQL, then `uxstream uniques` / `uxstream.uniques` merge the stored HLL sketches (kpi_1m.users_sketch)
of 1 day and of 7 days, and the estimate's bounds must hold the exact distinct users of the same windows
(the oracle's user sets, `jobs.sessionize.oracle.window_users`).

One bounded job run of its own (the shared sessionize stream spans 20 minutes, not days): ~6,000 records
over 7 days of event time, KPI dimensions country and device type only (`DIMENSIONS`): with page paths the job
also writes ~78,000 more cumulative-day rows, which this test does not read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from jobs.common import sketches, tables
from jobs.common.settings import PostgresSettings
from jobs.sessionize.oracle import expected, window_users
from tests.support.db import assert_table_equals
from tests.support.sessionize import PSEUDONYM, Run, drop, prepare, run_job
from uxstream import uniques
from uxstream.db import connect
from uxstream.paths import ROOT

pytestmark = [pytest.mark.services, pytest.mark.flink]

START = datetime(2025, 1, 6, tzinfo=UTC)
"""The generator's default start: the first day of the stream (a Monday)."""
DAY = timedelta(days=1)
DAY_MS = 86_400_000
WEEK_ARGS = (
    "--events", "6000", "--duration", "7d", "--users", "4000", "--seed", "20", "--partitions", "1",
    "--duplicate-fraction", "0.01", "--late-fraction", "0.01",
)  # fmt: skip
"""7 days of traffic, a few thousand records (≈ 400 distinct users, ≈ 65 a day), a few duplicates and late
records (neither may count)."""

DIMENSIONS = ("country", "device_type")
"""The run's KPI dimensions (UXSTREAM_SESSIONIZE_DIMENSIONS) and the oracle's."""

SPANS = {
    "one day": (START + DAY, START + 2 * DAY),
    "seven days": (START, START + 7 * DAY),
}


@pytest.fixture(scope="module")
def week(pg_settings: PostgresSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    run = prepare(pg_settings, tmp_path_factory.mktemp("uniques"), WEEK_ARGS)
    run_job(run, {"UXSTREAM_SESSIONIZE_DIMENSIONS": ",".join(DIMENSIONS)})
    yield run
    drop(pg_settings, run)


def exact_users(run: Run, start: datetime, end: datetime, dimension: str, value: str) -> tuple[set[str], int]:
    """The distinct users of the segment's windows starting in [start, end), and how many windows."""
    lo, hi = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    sets = [
        users
        for (window_start, d, v), users in window_users(
            run.truth.events, dimensions=DIMENSIONS, enrichment=run.enrichment
        ).items()
        if d == dimension and v == value and lo <= window_start < hi
    ]
    return set().union(*sets), len(sets)


def reader(run: Run) -> PostgresSettings:
    return run.pg.as_role("reader")


def test_kpi_1m_and_its_sketch_bytes_equal_the_oracle(week: Run) -> None:
    want = expected(week.truth.events, dimensions=DIMENSIONS, cumulative_step_ms=DAY_MS, pseudonym=PSEUDONYM)
    assert_table_equals(week.pg, tables.KPI_1M, want[tables.KPI_1M])


@pytest.mark.parametrize("span", SPANS, ids=list(SPANS))
@pytest.mark.parametrize(
    ("dimension", "value"), [("global", "(all)"), ("country", "US"), ("device_type", "mobile")]
)
def test_merged_sketches_hold_the_exact_unique_users_within_their_bounds(
    week: Run, span: str, dimension: str, value: str
) -> None:
    start, end = SPANS[span]
    exact, windows = exact_users(week, start, end, dimension, value)
    assert len(exact) >= 20, "too few users in the range: the test would prove little"
    with connect(reader(week)) as conn:
        result = uniques.query(conn, uniques.TimeRange.of(start, end), uniques.Segment.of(dimension, value))
    assert result.windows == windows
    assert result.windows_without_sketch == 0
    assert result.lower_bound <= len(exact) <= result.upper_bound, (len(exact), result)
    # The point of the sketch: summing the minutes' active users counts a returning user once per minute.
    assert windows > len(exact) or span == "one day"


def test_every_value_of_a_dimension_at_once_equals_the_single_segment_queries(week: Run) -> None:
    start, end = SPANS["seven days"]
    span = uniques.TimeRange.of(start, end)
    with connect(reader(week)) as conn:
        by_value = uniques.query_values(conn, span, "country", limit=3)
        singles = {v: uniques.query(conn, span, uniques.Segment.of("country", v)) for v in by_value}
    assert len(by_value) == 3
    assert by_value == singles
    estimates = [u.estimate for u in by_value.values()]
    assert estimates == sorted(estimates, reverse=True)


def uniques_command(run: Run, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UXSTREAM_PG_DB": run.pg.dbname}
    return subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "uniques", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_command_prints_the_seven_day_estimate_bounds_and_windows_as_json(week: Run) -> None:
    start, end = SPANS["seven days"]
    exact, windows = exact_users(week, start, end, "global", "(all)")
    proc = uniques_command(week, "--from", "2025-01-06", "--to", "2025-01-13T00:00:00Z", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert {
        k: out[k] for k in ("from", "to", "dimension", "value", "windows", "std_devs", "lg_k", "hll_type")
    } == {
        "from": "2025-01-06T00:00:00Z",
        "to": "2025-01-13T00:00:00Z",
        "dimension": "global",
        "value": "(all)",
        "windows": windows,
        "std_devs": sketches.BOUND_STD_DEVS,
        "lg_k": sketches.LG_K,
        "hll_type": sketches.HLL_TYPE,
    }
    assert out["lower_bound"] <= len(exact) <= out["upper_bound"]


def test_the_command_says_when_the_range_has_no_windows(week: Run) -> None:
    proc = uniques_command(
        week, "--from", "2024-01-01", "--to", "2024-01-02", "--dimension", "country", "--value", "US"
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == (
        "no KPI windows with a sketch for country=US, 2024-01-01T00:00:00Z to 2024-01-02T00:00:00Z: "
        "0 windows merged\n"
    )
