"""A database filled from the jobs' oracles: the tables a bounded sessionize + funnels + anomaly run writes
for a generated stream, computed by the independent batch oracles and inserted as they are, so the page
tests know every value the dashboard must show without paying for three Flink start-ups. (That the jobs
write exactly these rows is what tests/sessionize, tests/funnels and tests/anomaly prove.)"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobs.anomaly.oracle import expected as anomaly_expected
from jobs.common import tables
from jobs.common.oracle import load
from jobs.common.settings import PostgresSettings
from jobs.funnels.definitions import load_funnels
from jobs.funnels.oracle import expected as funnels_expected
from jobs.funnels.settings import DEFAULT_CONFIG
from jobs.sessionize.oracle import expected as sessionize_expected
from jobs.sessionize.oracle import expected_kpi_messages
from tests.support.streams import generate_truth
from uxstream.db import connect

GENERATOR_ARGS = (
    "--events", "20000", "--duration", "2h", "--seed", "31", "--partitions", "1",
    "--duplicate-fraction", "0.01", "--late-fraction", "0.01",
    "--anomaly", "error_spike:global:80m:20m:20",
)  # fmt: skip
"""Two hours, so the anomaly baselines (30 windows) warm up and the injected error spike opens an alert."""


@dataclasses.dataclass(frozen=True)
class Filled:
    pg: PostgresSettings
    rows: Mapping[str, list[dict[str, Any]]]
    """The oracle's rows per table (epoch-ms times), exactly what the database holds."""


def oracle_rows(truth_file: Path) -> dict[str, list[dict[str, Any]]]:
    generate_truth(GENERATOR_ARGS, truth_file)
    truth = load(truth_file)
    # One cumulative step per day: the dashboard does not read kpi_daily_cumulative (not inserted), and the
    # oracle's 5-minute steps cost a minute of CPU on this stream.
    kpi = sessionize_expected(truth.events, cumulative_step_ms=86_400_000)
    funnels = funnels_expected(truth.events, load_funnels(DEFAULT_CONFIG))
    windows = [("kpi", record) for _, record in expected_kpi_messages(kpi)]
    windows += [("funnel", record) for record in funnels["windows"]]
    alerts = anomaly_expected(windows)
    return {
        tables.SESSIONS: kpi["sessions"],
        tables.KPI_1M: kpi["kpi_1m"],
        tables.KPI_SLIDING_5M: kpi["kpi_sliding_5m"],
        tables.LATE_EVENTS: [
            {"source_partition": 0, "source_offset": i, **row}
            for i, row in enumerate(kpi["late_events"] + funnels["late_events"])
        ],
        tables.FUNNEL_ATTEMPTS: funnels["funnel_attempts"],
        tables.FUNNEL_WINDOWS: funnels["funnel_windows"],
        tables.FUNNEL_WINDOW_STEPS: funnels["funnel_window_steps"],
        tables.ANOMALIES: alerts["anomalies"],
    }


def insert_rows(pg: PostgresSettings, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert oracle rows (epoch-ms integers into TIMESTAMPTZ columns become instants)."""
    if not rows:
        return
    with connect(pg) as conn:
        types = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s",
                (table,),
            ).fetchall()
        )
        columns = [c for c in rows[0] if c in types]

        def value(column: str, v: Any) -> Any:
            if types[column] == "timestamp with time zone" and isinstance(v, int):
                return datetime.fromtimestamp(v / 1000, UTC)
            return v

        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})",
                [tuple(value(c, r[c]) for c in columns) for r in rows],
            )


def fill(pg: PostgresSettings, rows: Mapping[str, list[dict[str, Any]]]) -> Filled:
    for table, table_rows in rows.items():
        insert_rows(pg, table, table_rows)
    return Filled(pg, rows)
