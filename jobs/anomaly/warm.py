"""Warm start: seed a new series' baselines from the KPI history already in the database.

When the job meets a tumbling-1m KPI series it has no state for (first deployment, new segment, state
discarded), it reads that series' `kpi_1m` rows of the `warm_start_days` before the series' first window
and feeds them through the detector without alerting (`Detector.observe(..., alerts=False)`): the EWMA,
residuals and hour-of-week slots are then as if the job had been running. Rows before the first window
are final, so a replay reads the same history. A restart from a checkpoint or savepoint keeps its state
and reads nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from jobs.anomaly.logic import MetricSpec, SeriesKey, Window
from jobs.common import tables
from jobs.common.settings import PostgresSettings

DAY_MS: Final = 86_400_000
WARM_WINDOW_KIND: Final = "tumbling_1m"
"""Only this window kind has a history table (kpi_1m)."""
KPI_1M_COLUMNS: Final = {"lcp_p75_ms": "lcp_p75", "inp_p75_ms": "inp_p75"}
"""kpi_window field → kpi_1m column where the names differ."""
HISTORY_METRICS: Final = (
    "events",
    "page_views",
    "active_users",
    "error_events",
    "conversions",
    "error_rate",
    "lcp_p75_ms",
    "inp_p75_ms",
    "cls_p75",
)


def history_from_rows(
    rows: Iterable[Mapping[str, Any]], spec: MetricSpec, before: int, days: int
) -> list[Window]:
    """Windows of one series from kpi_1m-like rows (epoch-ms window_start/window_end, kpi_window field
    names), those starting in [before − days, before), in window order."""
    since = before - days * DAY_MS
    out = []
    for row in sorted(rows, key=lambda r: int(r["window_start"])):
        start = int(row["window_start"])
        if not since <= start < before:
            continue
        raw = row.get(spec.metric)
        volume = row.get("page_views")
        out.append(
            Window(
                start,
                int(row["window_end"]),
                None if raw is None else float(raw),
                None if volume is None else float(volume),
            )
        )
    return out


def read_kpi_history(
    pg: PostgresSettings, dimension: str, dimension_value: str, since: int, before: int
) -> list[dict[str, Any]]:
    """kpi_1m rows of one segment with window_start in [since, before), as kpi_window-named dicts."""
    from jobs.common.db import connect

    columns = ", ".join(f"{KPI_1M_COLUMNS.get(m, m)} AS {m}" for m in HISTORY_METRICS)
    query = (
        "SELECT (extract(epoch FROM window_start) * 1000)::bigint AS window_start, "
        "(extract(epoch FROM window_end) * 1000)::bigint AS window_end, "
        f"{columns} FROM {tables.KPI_1M} "
        "WHERE dimension = %s AND dimension_value = %s "
        "AND window_start >= to_timestamp(%s / 1000.0) AND window_start < to_timestamp(%s / 1000.0) "
        "ORDER BY window_start"
    )
    with connect(pg) as conn:
        cursor = conn.execute(query, (dimension, dimension_value, since, before))
        names = [d.name for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def history_windows(
    pg: PostgresSettings, key: SeriesKey, spec: MetricSpec, before: int, days: int
) -> list[Window]:
    """The warm-start windows of a KPI series (empty for other window kinds)."""
    if key.source != "kpi" or key.window_kind != WARM_WINDOW_KIND or days <= 0:
        return []
    since = before - days * DAY_MS
    rows = read_kpi_history(pg, key.dimension, key.dimension_value, since, before)
    return history_from_rows(rows, spec, before, days)
