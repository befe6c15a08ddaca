"""Batch oracle of the anomaly job: the same detector replayed over an ordered list of windows.

The detector (`logic.py`) is deterministic and is the specification, so the oracle reuses it rather than
re-implementing it; what the oracle adds is the job's plumbing done in batch: series routing, warm start
from history rows, the anomalies-table upsert (last message per alert wins) and the alert messages in
order per series. End-to-end tests compare the table and the topic with `expected(...)` exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jobs.anomaly.logic import Alert, DetectorSettings, MemoryDetector, group_key, series_windows
from jobs.anomaly.warm import WARM_WINDOW_KIND, history_from_rows


@dataclass(frozen=True)
class Replay:
    alerts: list[Alert]
    """Alert messages in arrival order."""
    expired: int
    """Groups expired (the job's counter `anomaly_series_expired`)."""


def run(
    windows: Iterable[tuple[str, Mapping[str, Any]]],
    settings: DetectorSettings | None = None,
    *,
    history: Mapping[tuple[str, str], list[Mapping[str, Any]]] | None = None,
    warm_start_days: int = 0,
    series_ttl_ms: int | None = None,
    final_watermark: int | None = None,
) -> Replay:
    """The job over `(source, kpi_window / funnel_window record)` in arrival order.

    `history` maps (dimension, dimension value) to that segment's kpi_1m rows (kpi_window field names,
    epoch-ms times): the warm start the job reads from the database for a new tumbling-1m KPI series.
    `series_ttl_ms` None: nothing expires; else groups expire as in the job, and at the end those whose
    expiry `final_watermark` reaches (None: the end of a bounded input, every group).
    """
    settings = settings or DetectorSettings()
    memory = MemoryDetector(settings, series_ttl_ms)
    out: list[Alert] = []
    for source, record in windows:
        out.extend(memory.expire_if_due(source, record))
        group = group_key(source, record)
        for spec, key, window in series_windows(source, record, settings.metrics):
            series, new = memory.series_of(group, key)
            detector = memory.detectors[spec]
            warm = source == "kpi" and key.window_kind == WARM_WINDOW_KIND
            if new and warm and warm_start_days and history:
                rows = history.get((key.dimension, key.dimension_value), [])
                for past in history_from_rows(rows, spec, window.start, warm_start_days):
                    detector.observe(key, series.state, series.slots, past, alerts=False)
            out.extend(detector.observe(key, series.state, series.slots, window))
    out.extend(memory.finish(final_watermark))
    return Replay(out, memory.expired)


def replay(
    windows: Iterable[tuple[str, Mapping[str, Any]]],
    settings: DetectorSettings | None = None,
    **kwargs: Any,
) -> list[Alert]:
    """Alert messages of `run(...)` in arrival order."""
    return run(windows, settings, **kwargs).alerts


def table_rows(alerts: Iterable[Alert]) -> list[dict[str, Any]]:
    """The anomalies table after upserting every message in order (one row per alert)."""
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for alert in alerts:
        row = alert.row()
        rows[(row["alert_id"], row["opened_window_start"])] = row
    return list(rows.values())


def expected(
    windows: Iterable[tuple[str, Mapping[str, Any]]],
    settings: DetectorSettings | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """{'anomalies': table rows, 'messages': [(series key, alert.v1 record)] in order, 'expired': groups
    expired}."""
    result = run(windows, settings, **kwargs)
    messages = [
        ("|".join((a.source, a.metric, a.window_kind, a.dimension, a.dimension_value)), a.message())
        for a in result.alerts
    ]
    return {"anomalies": table_rows(result.alerts), "messages": messages, "expired": result.expired}
