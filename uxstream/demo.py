"""`uxstream demo`: what `make run-local` shows. Generate a demo stream, run sessionize bounded, summarize.

The stream is deterministic (fixed seed), so running the demo again re-sends the same events: the job
dedups them and the tables come out the same.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Any

from jobs.common import tables, topics
from jobs.common.settings import KafkaSettings, PostgresSettings
from uxstream.db import connect, migrate
from uxstream.paths import ROOT

DEMO_ARGS = (
    "--duration", "30m", "--seed", "7", "--partitions", "1",
    "--duplicate-fraction", "0.02", "--late-fraction", "0.01", "--malformed-fraction", "0.005",
    "--future-fraction", "0.002",
)  # fmt: skip


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


def summarize(pg: PostgresSettings, kafka: KafkaSettings) -> None:
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
        f"dead-lettered: {count_topic(kafka, topics.DLQ)} (topic {topics.DLQ})"
    )


def _cmd_demo(args: argparse.Namespace) -> int:
    kafka, pg = KafkaSettings.from_env(), PostgresSettings.from_env()
    report = migrate(pg)
    applied = f", applied {', '.join(report.applied)}" if report.applied else ""
    print(f"database {pg.describe()} ready ({report.mode}{applied})")
    print(f"generating {args.events} demo events into {topics.EVENTS} …", flush=True)
    subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "generate", "--events", str(args.events), *DEMO_ARGS],
        cwd=ROOT, check=True,
    )  # fmt: skip
    print(
        "running sessionize on a Flink MiniCluster (bounded: stops at the current end offsets) …", flush=True
    )
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "jobs.sessionize.job", "--bounded"], cwd=ROOT, check=True)
    print(f"sessionize finished in {time.monotonic() - started:.0f} s; results in {pg.describe()}:")
    summarize(pg, kafka)
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("demo", help="generate a demo stream, run sessionize on it, print a summary")
    p.add_argument("--events", type=int, default=20_000, help="demo events to generate (default 20000)")
    p.set_defaults(handler=_cmd_demo)
