"""The dashboard's check on a database a real job run wrote: what the page draws (the /api/data JSON)
equals the oracle's windows and alerts. Called by the job suites' shared runs (no job run of its own)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from jobs.common.settings import PostgresSettings
from uxstream.dashboard.app import Dashboard
from uxstream.dashboard.params import parse_params

METRICS = ("page_views", "active_users", "error_rate")


def column(times: Sequence[int], values: Sequence[Any]) -> dict[int, Any]:
    """A chart column as {time: value}, gaps left out."""
    return {t: v for t, v in zip(times, values, strict=True) if v is not None}


def assert_dashboard_shows(
    pg: PostgresSettings,
    kpi_1m: Sequence[dict[str, Any]],
    alert_ids: set[str],
    dimension: str = "country",
    range_text: str = "3h",
) -> None:
    """The dashboard over `pg` charts the oracle's 1-minute windows `kpi_1m` (epoch-ms times; every window of
    the run within `range_text` of the newest) for the top values of `dimension`, and lists `alert_ids`."""
    assert kpi_1m and alert_ids, "the run must have windows and alerts to show"
    data = Dashboard(pg).read_data(parse_params({"dimension": dimension, "range": range_text}))
    assert data["latest_window_end"] == max(r["window_end"] for r in kpi_1m) // 1000
    rows = [r for r in kpi_1m if r["dimension"] == dimension]
    first = min(r["window_start"] for r in rows) // 1000
    assert first >= data["range"]["from"], "the range must cover the run"
    views: dict[str, int] = defaultdict(int)
    for r in rows:
        views[r["dimension_value"]] += r["page_views"]
    values = sorted(views, key=lambda v: (-views[v], v))[:5]
    assert data["kpi"]["values"] == values
    for value in values:
        for metric in METRICS:
            want = {
                r["window_start"] // 1000: r[metric]
                for r in rows
                if r["dimension_value"] == value and r[metric] is not None
            }
            got = column(data["kpi"]["times"], data["kpi"]["series"][value][metric])
            assert got == want, (value, metric)
    assert {a["alert_id"] for a in data["alerts"]} == alert_ids
