"""What the dashboard shows, read from the jobs' tables: `load(conn, params, now)` runs the queries,
the pure `shape_*` functions turn rows into the JSON the page draws (times as epoch seconds, uPlot's unit).

Every chart's data comes with what the page needs to say when it is empty or warming up. The JSON is the
contract between server, page and the static report (tests read it through `window.uxDashboard.data`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from jobs.common import tables
from uxstream import uniques
from uxstream.dashboard.params import DIMENSION_TITLES, Params

CORE_WEB_VITALS = {
    # metric: (good up to, poor above, unit) — web.dev "Core Web Vitals" thresholds at p75
    "lcp_p75": (2500.0, 4000.0, "ms"),
    "inp_p75": (200.0, 500.0, "ms"),
    "cls_p75": (0.1, 0.25, ""),
}
ALERT_METRIC_CHART = {
    "active_users": "active_users",
    "page_views": "page_views",
    "error_rate": "error_rate",
    "lcp_p75_ms": "lcp_p75",
}
"""Anomaly metric → the chart its alerts are marked on (funnel alerts go on their funnel's card)."""
ANOMALY_MIN_HISTORY = 30
"""jobs.anomaly.logic.DetectorSettings.min_history: windows a series needs before it can alert."""
ALERT_COLUMNS = (
    "alert_id", "status", "source", "metric", "window_kind", "dimension", "dimension_value",
    "opened_window_start", "opened_at", "resolved_at", "last_window_end", "value", "baseline", "z_score",
    "peak_z", "severity", "anomalous_windows",
)  # fmt: skip


def epoch_s(value: datetime) -> int:
    return int(value.timestamp())


def number(value: Any) -> float | int | None:
    """A JSON number (Decimal and numpy-free), None for NULL/NaN."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    result = float(value)
    return None if result != result else result


# ------------------------------------------------------------------------------------------ pure shaping


def resolve_window(params: Params, latest_end: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """[from, to) of the range: ending at the given instant, now, or the newest final window (now when the
    database has none yet)."""
    if params.end is not None:
        end = params.end
    elif params.end_is_now or latest_end is None:
        end = now
    else:
        end = latest_end
    return end - params.span, end


def shape_series(
    rows: Iterable[Sequence[Any]], values: Sequence[str], metrics: Sequence[str]
) -> dict[str, Any]:
    """Rows (window_start, dimension_value, *metrics) → one time axis and, per value and metric, a column
    aligned to it (None where that value had no window)."""
    by_time: dict[int, dict[str, Sequence[Any]]] = defaultdict(dict)
    for row in rows:
        by_time[epoch_s(row[0])][row[1]] = row[2:]
    times = sorted(by_time)
    series = {
        value: {
            metric: [number(by_time[t][value][i]) if value in by_time[t] else None for t in times]
            for i, metric in enumerate(metrics)
        }
        for value in values
    }
    return {"times": times, "values": list(values), "series": series}


def shape_funnels(
    windows: Iterable[Sequence[Any]], steps: Iterable[Sequence[Any]], alerts: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per funnel: totals of its windows in the range for every breakdown (dimension, value), steps with
    reached, conversion from the previous step and drop-off to the next (recomputed from the summed counts:
    rates do not add up)."""
    totals: dict[str, dict[tuple[str, str], dict[str, Any]]] = defaultdict(dict)
    for funnel, dimension, value, entered, converted, dropped, excluded in windows:
        totals[funnel][(dimension, value)] = {
            "dimension": dimension,
            "dimension_value": value,
            "entered": int(entered),
            "converted": int(converted),
            "dropped": int(dropped),
            "excluded": int(excluded),
            "conversion_rate": int(converted) / int(entered) if int(entered) else None,
            "steps": [],
        }
    for funnel, dimension, value, step, name, reached in steps:
        segment = totals[funnel].get((dimension, value))
        if segment is not None:
            segment["steps"].append({"step": int(step), "name": name, "reached": int(reached)})
    result = []
    for funnel in sorted(totals):
        segments = []
        for key in sorted(totals[funnel], key=lambda k: (k[0] != "global", k[0], k[1])):
            segment = totals[funnel][key]
            ordered = sorted(segment["steps"], key=lambda s: s["step"])
            for i, step in enumerate(ordered):
                before = ordered[i - 1]["reached"] if i else None
                after = ordered[i + 1]["reached"] if i + 1 < len(ordered) else None
                step["conversion_from_previous"] = step["reached"] / before if before else None
                step["drop_off"] = step["reached"] - after if after is not None else None
            segment["steps"] = ordered
            segments.append(segment)
        funnel_alerts = [
            a for a in alerts if a["source"] == "funnel" and a["metric"].startswith(f"{funnel}.")
        ]
        result.append({"funnel": funnel, "segments": segments, "alerts": funnel_alerts})
    return result


def alert_json(row: Sequence[Any]) -> dict[str, Any]:
    alert = dict(zip(ALERT_COLUMNS, row, strict=True))
    for name in ("opened_window_start", "opened_at", "resolved_at", "last_window_end"):
        alert[name] = epoch_s(alert[name]) if alert[name] is not None else None
    for name in ("value", "baseline", "z_score", "peak_z"):
        alert[name] = number(alert[name])
    alert["chart"] = ALERT_METRIC_CHART.get(alert["metric"]) if alert["source"] == "kpi" else None
    return dict(alert)


def notes(data: dict[str, Any]) -> dict[str, str]:
    """The empty / warming-up note of each chart ('' when the chart has data to stand on its own)."""
    kpi_points = len(data["kpi"]["times"])
    empty = "No final windows in this range yet (a window is written once the watermark passes its end)."
    warming = (
        f"Warming up: anomaly baselines need {ANOMALY_MIN_HISTORY} windows of a series before it can alert "
        f"({kpi_points} in this range)."
    )
    health = data["health"]
    return {
        "active_users": empty if kpi_points == 0 else "",
        "page_views": empty if kpi_points == 0 else "",
        "error_rate": empty if kpi_points == 0 else "",
        "vitals": empty
        if not any(v is not None for m in ("lcp_p75", "inp_p75", "cls_p75") for v in data["vitals"][m])
        else "",
        "funnels": "No final funnel windows in this range yet (a funnel window is final once its end plus "
        "the conversion window passed the watermark)."
        if not data["funnels"]
        else "",
        "alerts": ("No open or recent alerts in this range. " if not data["alerts"] else "")
        + (warming if kpi_points < ANOMALY_MIN_HISTORY else ""),
        "health": empty if not health["times"] else "",
        "uniques": uniques_note(data["uniques"]),
    }


def uniques_note(shown: dict[str, Any]) -> str:
    """The unique-users panel's note: no windows, or windows without a sketch (written before V0010)."""
    rows = shown["rows"]
    if not rows or rows[0]["windows"] == 0:
        return "No final windows with a user sketch in this range yet" + (
            f" ({rows[0]['windows_without_sketch']} written before migration V0010 have none)."
            if rows and rows[0]["windows_without_sketch"]
            else "."
        )
    missing = max(r["windows_without_sketch"] for r in rows)
    return (
        f"{missing} window(s) of the range have no sketch (written before V0010) and are not counted."
        if missing
        else ""
    )


# ------------------------------------------------------------------------------------------------- I/O


def top_values(conn: Any, params: Params, start: datetime, end: datetime) -> list[str]:
    """The values of the dimension the charts show: the `top` with the most page views in the range."""
    if params.dimension == "global":
        return ["(all)"]
    return [
        r[0]
        for r in conn.execute(
            f"SELECT dimension_value FROM {tables.KPI_1M} WHERE dimension = %s AND window_start >= %s "
            "AND window_start < %s GROUP BY 1 ORDER BY sum(page_views) DESC, 1 LIMIT %s",
            (params.dimension, start, end, params.top),
        ).fetchall()
    ]


def unique_users(
    conn: Any, start: datetime, end: datetime, dimension: str, values: Sequence[str]
) -> dict[str, Any]:
    """Unique users over [start, end) from the merged HLL sketches of kpi_1m (uxstream.uniques): all users
    first, then each charted value of the dimension. Estimates with their bounds and windows merged."""
    span = uniques.TimeRange(start, end)
    segments = [uniques.Segment(tables.DIM_GLOBAL, tables.ALL_VALUE)]
    if dimension != tables.DIM_GLOBAL:
        segments += [uniques.Segment(dimension, value) for value in values]
    rows = [
        {"dimension": s.dimension, "value": s.value, **uniques.query(conn, span, s).as_json()}
        for s in segments
    ]
    return {"from": epoch_s(start), "to": epoch_s(end), "rows": rows}


def latest_window_end(conn: Any) -> datetime | None:
    row = conn.execute(
        f"SELECT window_end FROM {tables.KPI_1M} ORDER BY window_start DESC LIMIT 1"
    ).fetchone()
    return None if row is None else row[0]


def change_marker(conn: Any) -> tuple[Any, ...]:
    """Changes whenever a final window, funnel window or alert lands or is corrected (cheap: index ranges
    near the newest window and the small alerts table). The live page reloads its data when it changes."""
    return tuple(
        conn.execute(
            f"""
            WITH newest AS (SELECT max(window_start) AS t FROM {tables.KPI_1M})
            SELECT (SELECT t FROM newest),
                   (SELECT count(*) FROM {tables.KPI_1M}, newest
                     WHERE window_start > newest.t - INTERVAL '10 minutes'),
                   (SELECT coalesce(sum(revision), 0) FROM {tables.KPI_1M}, newest
                     WHERE window_start > newest.t - INTERVAL '10 minutes'),
                   (SELECT max(window_start) FROM {tables.FUNNEL_WINDOWS}),
                   (SELECT count(*) FROM {tables.FUNNEL_WINDOWS}),
                   (SELECT count(*) FROM {tables.ANOMALIES}),
                   (SELECT max(last_window_end) FROM {tables.ANOMALIES}),
                   (SELECT count(*) FROM {tables.ANOMALIES} WHERE status = 'open')
            """
        ).fetchone()
    )


def load(
    conn: Any, params: Params, now: datetime, dead_letters: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Everything the page draws for `params`, read in one read-only transaction."""
    latest = latest_window_end(conn)
    start, end = resolve_window(params, latest, now)
    span = (start, end)
    dimension = params.dimension
    values = top_values(conn, params, start, end)
    kpi_rows = conn.execute(
        f"SELECT window_start, dimension_value, active_users, page_views, error_rate, error_events "
        f"FROM {tables.KPI_1M} WHERE dimension = %s AND dimension_value = ANY(%s) "
        "AND window_start >= %s AND window_start < %s ORDER BY window_start, dimension_value",
        (dimension, values, *span),
    ).fetchall()
    kpi = shape_series(kpi_rows, values, ("active_users", "page_views", "error_rate", "error_events"))
    # A sliding 5-minute window is drawn at the start of its last minute: at x = t, "1 min" is the minute
    # starting at t and "5 min" the five minutes ending with it.
    sliding_rows = conn.execute(
        "SELECT window_end - INTERVAL '1 minute', dimension_value, active_users "
        f"FROM {tables.KPI_SLIDING_5M} "
        "WHERE dimension = %s AND dimension_value = ANY(%s) AND window_end > %s AND window_end <= %s "
        "ORDER BY 1, 2",
        (dimension, values, *span),
    ).fetchall()
    sliding = shape_series(sliding_rows, values, ("active_users_5m",))
    global_rows = conn.execute(
        "SELECT window_start, dimension_value, events, duplicates, lcp_p75, inp_p75, cls_p75 "
        f"FROM {tables.KPI_1M} "
        "WHERE dimension = 'global' AND window_start >= %s AND window_start < %s ORDER BY window_start",
        span,
    ).fetchall()
    late = dict(
        conn.execute(
            f"SELECT window_start, late_events FROM {tables.LATE_EVENTS_1M} WHERE dimension = 'global' "
            "AND window_start >= %s AND window_start < %s",
            span,
        ).fetchall()
    )
    vitals_shape = shape_series(
        [r[:2] + r[4:] for r in global_rows], ["(all)"], ("lcp_p75", "inp_p75", "cls_p75")
    )
    health_shape = shape_series([r[:4] for r in global_rows], ["(all)"], ("events", "duplicates"))
    late_times = sorted(set(health_shape["times"]) | {epoch_s(t) for t in late})
    late_by_s = {epoch_s(t): int(n) for t, n in late.items()}
    events_by_s = dict(zip(health_shape["times"], health_shape["series"]["(all)"]["events"], strict=True))
    dups_by_s = dict(zip(health_shape["times"], health_shape["series"]["(all)"]["duplicates"], strict=True))
    alert_rows = conn.execute(
        f"SELECT {', '.join(ALERT_COLUMNS)} FROM {tables.ANOMALIES} "
        "WHERE status = 'open' "
        "OR (opened_window_start < %s AND coalesce(resolved_at, last_window_end) >= %s) "
        "ORDER BY status = 'open' DESC, opened_window_start DESC, alert_id LIMIT 100",
        (end, start),
    ).fetchall()
    alerts = [alert_json(r) for r in alert_rows]
    funnel_windows = conn.execute(
        "SELECT funnel, dimension, dimension_value, "
        "sum(entered), sum(converted), sum(dropped), sum(excluded) "
        f"FROM {tables.FUNNEL_WINDOWS} WHERE window_start >= %s AND window_start < %s GROUP BY 1, 2, 3",
        span,
    ).fetchall()
    funnel_steps = conn.execute(
        f"SELECT funnel, dimension, dimension_value, step, min(step_name), sum(reached) "
        f"FROM {tables.FUNNEL_WINDOW_STEPS} WHERE window_start >= %s AND window_start < %s "
        "GROUP BY 1, 2, 3, 4",
        span,
    ).fetchall()
    data: dict[str, Any] = {
        "params": params.query(),
        "uniques": unique_users(conn, start, end, dimension, values),
        "dimension_title": DIMENSION_TITLES[dimension],
        "range": {"from": epoch_s(start), "to": epoch_s(end), "tz": params.tz},
        "latest_window_end": epoch_s(latest) if latest is not None else None,
        "kpi": {
            **kpi,
            "sliding": sliding,
        },
        "vitals": {
            "times": vitals_shape["times"],
            **vitals_shape["series"]["(all)"],
            "thresholds": {k: {"good": g, "poor": p, "unit": u} for k, (g, p, u) in CORE_WEB_VITALS.items()},
        },
        "funnels": shape_funnels(funnel_windows, funnel_steps, alerts),
        "alerts": alerts,
        "health": {
            "times": late_times,
            "events": [events_by_s.get(t) for t in late_times],
            "duplicates": [dups_by_s.get(t) for t in late_times],
            "late": [late_by_s.get(t, 0) for t in late_times],
            "late_total": sum(late_by_s.values()),
            "dead_letters": dead_letters,
        },
    }
    data["notes"] = notes(data)
    return data


def now_utc() -> datetime:
    return datetime.now(UTC)
