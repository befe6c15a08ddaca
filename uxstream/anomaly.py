"""Anomaly commands: `uxstream alerts` (open and recent alerts from the database) and
`uxstream anomaly-eval` (recall and false alerts of the detector on simulated traffic)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.common import tables
from jobs.common.settings import PostgresSettings
from uxstream.errors import UserError

if TYPE_CHECKING:
    from jobs.anomaly.logic import DetectorSettings

ALERT_COLUMNS = (
    "status",
    "severity",
    "metric",
    "window_kind",
    "dimension",
    "dimension_value",
    "opened_window_start",
    "opened_at",
    "resolved_at",
    "last_window_end",
    "value",
    "baseline",
    "baseline_method",
    "z_score",
    "peak_z",
    "peak_value",
    "opened_baseline",
    "opened_z",
    "anomalous_windows",
    "alert_id",
)


def list_alerts(pg: PostgresSettings, recent: timedelta, limit: int) -> list[dict[str, Any]]:
    """Open alerts, then alerts resolved within `recent` of the newest window seen, newest first."""
    from uxstream.db import connect

    query = f"""
        SELECT {", ".join(ALERT_COLUMNS)} FROM {tables.ANOMALIES}
        WHERE status = 'open'
           OR resolved_at >= (SELECT max(last_window_end) FROM {tables.ANOMALIES}) - %s
        ORDER BY status = 'open' DESC, opened_window_start DESC
        LIMIT %s"""
    try:
        with connect(pg) as conn:
            rows = conn.execute(query, (recent, limit)).fetchall()
    except Exception as exc:  # psycopg.errors.UndefinedTable when the migration has not run
        if "does not exist" in str(exc):
            raise UserError(
                f"table {tables.ANOMALIES} does not exist in {pg.describe()}: run `uxstream db migrate`"
            ) from None
        raise
    return [dict(zip(ALERT_COLUMNS, row, strict=True)) for row in rows]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _duration(row: Mapping[str, Any]) -> str:
    """From the start of the first anomalous window to the end of the resolving (or latest) window."""
    end = row["resolved_at"] or row["last_window_end"]
    minutes = round((end - row["opened_window_start"]).total_seconds() / 60)
    return f"{minutes} min"


def _z(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_alerts(rows: list[dict[str, Any]]) -> list[str]:
    """One line per alert: its worst window against the pre-incident baseline, and how it went.

    `peak` is the value of the most extreme window, `baseline` the expectation when the alert opened,
    `z open/peak` the robust z of the opening and of the most extreme window, `last` the latest window's
    value and baseline (for a resolved alert: the window that resolved it). Rows written before the
    opening columns existed show the latest baseline instead and '-' for what they lack."""
    if not rows:
        return ["no open or recent alerts"]
    shown = (
        "status", "severity", "metric", "segment", "opened (UTC)", "resolved", "duration", "peak",
        "baseline", "z open/peak", "last (baseline)",
    )  # fmt: skip
    table = [
        [
            r["status"],
            r["severity"],
            f"{r['metric']} ({r['window_kind']})",
            f"{r['dimension']}={r['dimension_value']}",
            _cell(r["opened_window_start"]),
            _cell(r["resolved_at"]),
            _duration(r),
            _cell(r["peak_value"]),
            f"{_cell(r['baseline'] if r['opened_baseline'] is None else r['opened_baseline'])} "
            f"({r['baseline_method']})",
            f"{_z(r['opened_z'])}/{_z(r['peak_z'])}",
            f"{_cell(r['value'])} ({_cell(r['baseline'])})",
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(shown)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(shown, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in table]
    return lines


def _cmd_alerts(args: argparse.Namespace) -> int:
    pg = PostgresSettings.from_env(role="reader")
    if args.db:
        pg = replace(pg, dbname=args.db)
    rows = list_alerts(pg, timedelta(hours=args.recent_hours), args.limit)
    for line in format_alerts(rows):
        print(line)
    return 0


def with_detector_overrides(settings: DetectorSettings, assignments: list[str]) -> DetectorSettings:
    """`NAME=VALUE` assignments of numeric DetectorSettings fields (to compare settings on a cache)."""
    from jobs.anomaly.logic import DetectorError, DetectorSettings

    numeric = {f.name: f.type for f in fields(DetectorSettings) if f.name != "metrics"}
    changes: dict[str, Any] = {}
    for text in assignments:
        name, sep, raw = text.partition("=")
        if not sep or name not in numeric:
            names = ", ".join(sorted(numeric))
            raise UserError(f"--set {text!r}: expected NAME=VALUE with NAME one of {names}")
        try:
            changes[name] = int(raw) if numeric[name] in ("int", int) else float(raw)
        except ValueError:
            raise UserError(f"--set {text!r}: {raw!r} is not a number") from None
    try:
        return replace(settings, **changes)
    except DetectorError as exc:
        raise UserError(f"--set: {exc}") from None


def _cmd_eval(args: argparse.Namespace) -> int:
    from jobs.anomaly.logic import DetectorSettings
    from uxstream.anomaly_eval import evaluate

    settings = DetectorSettings()
    if args.threshold is not None:
        settings = replace(settings, threshold=args.threshold)
    settings = with_detector_overrides(settings, args.set)
    report = evaluate(
        days=args.days,
        events_per_day=args.events_per_day,
        seed=args.seed,
        per_day=args.anomalies_per_day,
        settings=settings,
        cache=args.cache,
        mix=args.mix,
    )
    for line in report.lines():
        print(line)
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("alerts", help="list open and recently resolved anomaly alerts")
    p.add_argument(
        "--recent-hours", type=float, default=24.0, help="resolved alerts this recent (event time)"
    )
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--db", default=None, help="database name (default: UXSTREAM_PG_DB)")
    p.set_defaults(handler=_cmd_alerts)

    p = subparsers.add_parser(
        "anomaly-eval",
        help="detector recall and false alerts per day on simulated seasonal traffic with injected anomalies",
        description="Simulated seasonal traffic with injected anomalies (uxstream/anomaly_eval.py): "
        "prints recall of the injected anomalies and false alerts per simulated day.",
    )
    p.add_argument(
        "--days", type=int, default=3, help="simulated days from a Monday (9 or more: hour-of-week baselines)"
    )
    p.add_argument("--events-per-day", type=int, default=3_000_000, help="mean over a week")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--anomalies-per-day", type=int, default=6, help="from the second day, in distinct hours")
    p.add_argument("--threshold", type=float, default=None, help="|z| threshold (default: the detector's)")
    p.add_argument(
        "--mix",
        choices=("default", "graded"),
        default="default",
        help="anomaly magnitudes: the generator's (default) or graded "
        "(error x3/x5/x10, traffic -50/-70/-80 %%, latency x1.5/x2/x3)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a numeric detector setting (repeatable), e.g. --set open_after=2",
    )
    p.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="keep the simulated KPI windows in this file (reused if present)",
    )
    p.set_defaults(handler=_cmd_eval)
    register_latency(subparsers)


# ------------------------------------------------------------------------------ latency measurement


def _kpi_record(start: int, segment: str, errors: int) -> dict[str, Any]:
    return {
        "window_kind": "tumbling_1m",
        "window_start": start,
        "window_end": start + 60_000,
        "dimension": tables.DIM_PAGE_PATH,
        "dimension_value": segment,
        "events": 800,
        "page_views": 200,
        "active_users": 80,
        "new_sessions": None,
        "error_events": errors,
        "error_rate": errors / 200,
        "conversions": 2,
        "lcp_p75_ms": 1500.0 + errors % 3,
        "inp_p75_ms": None,
        "cls_p75": None,
        "duplicates": 0,
        "late_events": None,
        "revision": 1,
    }


def measure_latency(trials: int, timeout_s: float = 120.0) -> list[float]:
    """Seconds from the KPI window that opens an alert being visible on the KPI topic to the alert row
    being visible in PostgreSQL, once per trial, with the anomaly job running unbounded on scratch topics
    and a scratch database (both removed afterwards)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    import uuid

    from confluent_kafka import Producer

    from jobs.common import topics
    from jobs.common.contract import encode, load_catalog
    from jobs.common.settings import KafkaSettings
    from uxstream.db import connect, create_database, migrate
    from uxstream.paths import ROOT

    kafka, pg = KafkaSettings.from_env(), PostgresSettings.from_env()
    suffix = uuid.uuid4().hex[:8]
    kpi_topic, alerts_topic = f"bench.anomaly.kpi.{suffix}", f"bench.anomaly.alerts.{suffix}"
    scratch = replace(pg, dbname=f"uxstream_anomaly_latency_{suffix}")
    schema_id = load_catalog().latest(topics.value_subject(topics.KPI)).id
    create_database(pg, scratch.dbname)
    job = None
    try:
        migrate(scratch)
        topics.ensure_topics(kafka, {kpi_topic: 1, alerts_topic: 1})
        producer = Producer({**kafka.client_config(), "linger.ms": 0})

        def send(records: list[dict[str, Any]]) -> None:
            for record in records:
                key = f"tumbling_1m|{record['dimension']}|{record['dimension_value']}"
                producer.produce(kpi_topic, encode(record, schema_id), key.encode())
            if producer.flush(30):
                raise UserError(f"could not produce to {kpi_topic}")

        segments = [f"/latency/{i}" for i in range(trials + 1)]  # the first one only proves the job is live
        t0 = 1_736_121_600_000
        send([_kpi_record(t0 + m * 60_000, s, 4 + m % 3) for m in range(40) for s in segments])
        env = {**os.environ, "UXSTREAM_PG_DB": scratch.dbname}
        job = subprocess.Popen(
            [sys.executable, "-m", "jobs.anomaly.job", "--kpi-topic", kpi_topic, "--funnel-topic", "",
             "--alerts-topic", alerts_topic, "--transactional-id-prefix", f"bench-anomaly-{suffix}",
             "--warm-start-days", "0"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        latencies: list[float] = []
        with connect(scratch, autocommit=True) as conn:
            for n, segment in enumerate(segments):
                # one window of a 20x error spike opens the alert at once (fast open, |z| ≥ fast_open_z)
                send([_kpi_record(t0 + 40 * 60_000, segment, 100)])
                visible = time.monotonic()
                deadline = visible + (timeout_s if n == 0 else 30.0)
                query = f"SELECT 1 FROM {tables.ANOMALIES} WHERE dimension_value = %s"
                while conn.execute(query, (segment,)).fetchone() is None:
                    if job.poll() is not None:
                        raise UserError(f"the anomaly job exited with code {job.returncode}")
                    if time.monotonic() > deadline:
                        raise UserError(f"no alert row for {segment} after {deadline - visible:.0f} s")
                    time.sleep(0.005)
                if n:
                    latencies.append(time.monotonic() - visible)
        return latencies
    finally:
        if job is not None and job.poll() is None:
            os.killpg(job.pid, signal.SIGTERM)
            try:
                job.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(job.pid, signal.SIGKILL)
        with connect(pg, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{scratch.dbname}" WITH (FORCE)')
        try:
            from confluent_kafka.admin import AdminClient

            AdminClient(kafka.client_config()).delete_topics([kpi_topic, alerts_topic])
        except Exception:  # best effort: scratch topics
            pass


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def _cmd_latency(args: argparse.Namespace) -> int:
    latencies = measure_latency(args.trials)
    print(
        f"window visible on the KPI topic -> alert row visible in PostgreSQL, {len(latencies)} alerts: "
        f"p50 {percentile(latencies, 0.5) * 1000:.0f} ms, p95 {percentile(latencies, 0.95) * 1000:.0f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
    )
    return 0


def register_latency(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "anomaly-latency",
        help="latency from a finalized KPI window to its alert row in PostgreSQL (p50/p95/p99)",
    )
    p.add_argument("--trials", type=int, default=50, help="alerts to time (one series each)")
    p.set_defaults(handler=_cmd_latency)
