"""`uxstream demo`: what `make run-local` shows. The whole suite on a demo stream, then a summary.

1. A deterministic demo stream (fixed seed, two hours of simulated traffic with every fault kind, the
   signup and checkout journeys, and an injected error-rate spike) in its own topic `ux.demo.events.…`,
   generated once and re-used by later runs, so a re-run reads exactly the same input.
2. sessionize, funnels and anomaly, each bounded on a Flink MiniCluster, one after the other: sessionize
   publishes the KPI windows the anomaly job scores. Their output topics are per run (and deleted at the
   end); the database tables are upserted by deterministic keys, so a re-run leaves them the same.
3. A readable summary from PostgreSQL: sessions, top pages, active users per minute, error rate, funnel
   conversion, alerts, late and dead-lettered counts.
4. The dashboard as one static HTML file (uxstream.dashboard.report: the same charts, data embedded, opens
   offline), its path, and the `uxstream dashboard` command that serves the live page.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from psycopg import sql

from jobs.common import tables, topics
from jobs.common.settings import KafkaSettings, PostgresSettings
from uxstream.contract import streams
from uxstream.db import connect, create_database, migrate
from uxstream.paths import LOCAL, ROOT

DEMO_ARGS = (
    "--duration", "2h", "--seed", "7", "--partitions", "1",
    "--duplicate-fraction", "0.02", "--late-fraction", "0.01", "--malformed-fraction", "0.005",
    "--future-fraction", "0.002", "--anomaly", "error_spike:global:80m:15m:12",
    "--feedback-share", "0.1", "--login-share", "0.1", "--stealth-bot-share", "0.001",
)  # fmt: skip
"""The demo stream's generator options (the topic name hashes them with the event count). A tenth of the
identified users' visits log in mid-visit (identity stitching: one session across the login), and one
stealth bot (human user agent, ~1,150 page views at ≥ 40 a minute: the behavioural bot rule's ground truth)
browses the default 30,000 events."""
DEMO_TOPIC_PREFIX = "ux.demo.events"


def count_topic(kafka: KafkaSettings, topic: str) -> int:
    """Committed records in a topic (read_committed consumer from the beginning)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {**kafka.client_config(), "group.id": "uxstream-demo-count", "isolation.level": "read_committed"}
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return 0
        consumer.assign([TopicPartition(topic, p, 0) for p in metadata.partitions])
        count, idle = 0, 0
        while idle < 4:
            messages = consumer.consume(10_000, timeout=0.5)
            if not messages:
                idle += 1
                continue
            count += sum(1 for m in messages if m.error() is None)
        return count
    finally:
        consumer.close()


def print_table(title: str, header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    print(f"\n{title}")
    cells = [
        header,
        *[
            tuple("—" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v)) for v in r)
            for r in rows
        ],
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for i, row in enumerate(cells):
        print("  " + "  ".join(value.ljust(widths[j]) for j, value in enumerate(row)))
        if i == 0:
            print("  " + "  ".join("-" * w for w in widths))


def summarize(pg: PostgresSettings, kafka: KafkaSettings, dlq_topic: str = topics.DLQ) -> None:
    with connect(pg) as conn:
        (sessions, engaged, avg_s, events) = conn.execute(
            "SELECT count(*), avg(engaged::int), avg(duration_ms) / 1000.0, sum(event_count) "
            f"FROM {tables.SESSIONS}"
        ).fetchone()
        print(
            f"\nsessions: {sessions}, engaged {100 * float(engaged or 0):.1f} %, "
            f"mean duration {float(avg_s or 0):.0f} s, {events or 0} events in sessions"
        )
        top_pages = conn.execute(
            "SELECT dimension_value, sum(page_views) AS views, sum(error_events) AS errors "
            f"FROM {tables.KPI_1M} WHERE dimension = 'page_path' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 8"
        ).fetchall()
        print_table("top pages", ("page", "views", "errors"), top_pages)
        minutes = conn.execute(
            "SELECT to_char(window_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), active_users, "
            f"page_views, error_rate, new_sessions, late_events FROM {tables.KPI_1M_FULL} "
            "WHERE dimension = 'global' ORDER BY window_start LIMIT 12"
        ).fetchall()
        print_table(
            "per minute (UTC, first 12)",
            ("minute", "active users", "page views", "error rate", "new sessions", "late"),
            minutes,
        )
        late = dict(conn.execute(f"SELECT reason, count(*) FROM {tables.LATE_EVENTS} GROUP BY 1").fetchall())
        totals = conn.execute(
            f"SELECT sum(page_views), sum(error_events), sum(duplicates) FROM {tables.KPI_1M} "
            "WHERE dimension = 'global'"
        ).fetchone()
    views, errors, duplicates = (int(v or 0) for v in totals)
    rate = f"{errors / views:.3f}" if views else "—"
    print(f"\npage views {views}, errors {errors} (error rate {rate})")
    print(
        f"duplicates not counted: {duplicates} re-sent while their window was open (re-sends arriving after"
    )
    print("  the watermark passed them are in the late ledger)")
    print(
        f"late ledger: {late.get('late', 0)} late, {late.get('future_timestamp', 0)} future timestamps; "
        f"dead-lettered: {count_topic(kafka, dlq_topic)}"
    )


def run_job(name: str, args: list[str], env: dict[str, str]) -> None:
    print(f"running {name} on a Flink MiniCluster (bounded: to the end offsets at start) …", flush=True)
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", f"jobs.{name}.job", "--bounded", *args], cwd=ROOT, env=env, check=True
    )
    print(f"{name} finished in {time.monotonic() - started:.0f} s", flush=True)


def summarize_funnels_and_alerts(pg: PostgresSettings) -> None:
    from uxstream.anomaly import format_alerts, list_alerts

    with connect(pg) as conn:
        funnels = conn.execute(
            "SELECT funnel, sum(entered), sum(converted), sum(dropped), sum(excluded), "
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY median_time_to_convert_ms) / 1000.0 "
            f"FROM {tables.FUNNEL_WINDOWS} WHERE dimension = 'global' GROUP BY funnel ORDER BY funnel"
        ).fetchall()
    rows = [
        (
            f,
            int(e),
            int(c),
            int(d),
            int(x),
            int(c) / int(e) if e else None,
            float(s) if s is not None else None,
        )
        for f, e, c, d, x, s in funnels
    ]
    print_table(
        "funnels (all entry windows)",
        ("funnel", "entered", "converted", "dropped", "excluded", "conversion", "median s to convert"),
        rows,
    )
    print(f"\nanomaly alerts (`uxstream alerts --db {pg.dbname}`):")
    for line in format_alerts(list_alerts(pg, timedelta(days=7), 10)):
        print("  " + line)


def write_dashboard_report(pg: PostgresSettings, path: Path, dlq_topic: str) -> None:
    """The dashboard of the demo's results as a static HTML file, and how to open the live one."""
    from uxstream.dashboard.app import Dashboard
    from uxstream.dashboard.params import parse_params
    from uxstream.dashboard.report import write_report

    dashboard = Dashboard(pg, dead_letter_topic=dlq_topic)
    try:
        report = write_report(dashboard, parse_params({"range": "2h"}), path)
    finally:
        dashboard.close()
    print(f"\ndashboard report (static, opens offline): {report.resolve()}")
    print(
        f"live dashboard: UXSTREAM_PG_DB={pg.dbname} .venv/bin/uxstream dashboard  (then open http://127.0.0.1:8050/)"
    )


def _cmd_demo(args: argparse.Namespace) -> int:
    kafka, server = KafkaSettings.from_env(), PostgresSettings.from_env()
    # A database of its own, re-created each time: the demo never mixes with your data or an older demo.
    pg = replace(server, dbname=args.db)
    with connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(args.db)))
    create_database(server, args.db)
    report = migrate(pg)
    reader = pg.as_role("reader")
    print(f"database {pg.describe()} created ({report.mode})")
    source = streams.content_topic(DEMO_TOPIC_PREFIX, args.events, DEMO_ARGS)
    streams.ensure_generated(kafka, source, args.events, DEMO_ARGS, lambda m: print(f"demo stream: {m}"))
    run = uuid.uuid4().hex[:8]
    dlq, kpi, funnel, alerts = (f"ux.demo.{kind}.{run}" for kind in ("dlq", "kpi", "funnel", "alerts"))
    env = {
        **os.environ,
        "UXSTREAM_PG_DB": args.db,
        "UXSTREAM_FLINK_STATE_DIR": str(LOCAL / "flink" / f"demo-{run}"),
    }
    try:
        run_job("sessionize", ["--input-topic", source, "--dlq-topic", dlq, "--kpi-topic", kpi], env)
        run_job(
            "funnels",
            ["--input-topic", source, "--dlq-topic", f"{dlq}.funnels", "--funnel-topic", funnel,
             "--transactional-id-prefix", f"funnels-demo-{run}"],
            env,
        )  # fmt: skip
        run_job(
            "anomaly",
            ["--kpi-topic", kpi, "--funnel-topic", funnel, "--alerts-topic", alerts,
             "--transactional-id-prefix", f"anomaly-demo-{run}"],
            env,
        )  # fmt: skip
        print(f"\nresults in {pg.describe()} (input topic {source}):")
        summarize(reader, kafka, dlq)
        summarize_funnels_and_alerts(reader)
        print(
            f"\nexplore: UXSTREAM_PG_DB={pg.dbname} uxstream validate (data-quality gate), "
            f"or any SQL client on {pg.describe()}"
        )
        write_dashboard_report(reader, args.report, dlq)
    finally:
        topics.delete_topics(kafka, [dlq, f"{dlq}.funnels", kpi, funnel, alerts])
        shutil.rmtree(LOCAL / "flink" / f"demo-{run}", ignore_errors=True)
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo", help="the whole suite (sessionize, funnels, anomaly) on a demo stream, then a summary"
    )
    p.add_argument("--events", type=int, default=30_000, help="demo stream size (default 30000)")
    p.add_argument(
        "--db", default="uxstream_demo", help="database for the results, re-created (default uxstream_demo)"
    )
    p.add_argument(
        "--report",
        type=Path,
        default=LOCAL / "demo-dashboard.html",
        help="the static dashboard report to write (default .local/demo-dashboard.html)",
    )
    p.set_defaults(handler=_cmd_demo)
