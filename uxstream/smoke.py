"""`uxstream smoke`: produce a small deterministic stream, run the smoke job bounded, print what landed.

This is what `make run-local` runs until the sessionize job exists: it proves Kafka → Flink → PostgreSQL on
the local (or configured) services and prints rows read back from PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import dataclass
from typing import Any

from jobs.common.settings import KafkaSettings, PostgresSettings
from jobs.common.topics import ensure_topics
from uxstream.errors import UserError

PAGES = ("/", "/pricing", "/docs", "/blog", "/signup", "/cart", "/checkout")
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@dataclass(frozen=True)
class SmokeEvent:
    event_id: str
    user_id: str
    page: str
    ts: int

    def to_json(self) -> bytes:
        return json.dumps(
            {"event_id": self.event_id, "user_id": self.user_id, "page": self.page, "ts": self.ts}
        ).encode()


def smoke_events(count: int, seed: int = 7) -> list[SmokeEvent]:
    """Deterministic page views: URLs with hosts, queries and trailing slashes the job normalizes."""
    rng = random.Random(seed)
    events = []
    for i in range(count):
        path = rng.choice(PAGES)
        url = f"https://shop.example{path.upper() if i % 5 == 0 else path}{'/' if i % 3 == 0 else ''}?i={i}"
        events.append(
            SmokeEvent(f"smoke-{seed}-{i:06d}", f"user-{rng.randrange(20):02d}", url, T0_MS + i * 250)
        )
    return events


def produce(kafka: KafkaSettings, topic: str, events: list[SmokeEvent]) -> None:
    from confluent_kafka import Producer

    producer = Producer({**kafka.client_config(), "enable.idempotence": True, "linger.ms": 20})
    for event in events:
        producer.produce(topic, key=event.user_id.encode(), value=event.to_json(), timestamp=event.ts)
        producer.poll(0)
    remaining = producer.flush(30)
    if remaining:
        raise UserError(f"{remaining} smoke events were not acknowledged by {kafka.bootstrap_servers}")


def summarize(pg: PostgresSettings, table: str) -> list[tuple[Any, ...]]:
    from uxstream.db import connect

    with connect(pg) as conn:
        rows: list[tuple[Any, ...]] = conn.execute(
            f"SELECT path, count(*) AS views, count(DISTINCT user_id) AS users FROM {table} "
            "GROUP BY path ORDER BY views DESC, path"
        ).fetchall()
        return rows


def _cmd_smoke(args: argparse.Namespace) -> int:
    from jobs.smoke import job
    from uxstream.db import migrate

    kafka, pg = KafkaSettings.from_env(), PostgresSettings.from_env()
    migrate(pg)
    ensure_topics(kafka, [job.INPUT_TOPIC, job.OUTPUT_TOPIC], partitions=1)
    events = smoke_events(args.events, seed=args.seed)
    produce(kafka, job.INPUT_TOPIC, events)
    print(f"produced {len(events)} events to {job.INPUT_TOPIC} on {kafka.bootstrap_servers}")
    print("running the smoke job on a Flink MiniCluster (bounded: stops at the current end offsets) …")
    started = time.monotonic()
    job.run(job.settings_from_args(job.parse_args(["--bounded"])))
    print(f"job finished in {time.monotonic() - started:.1f}s; rows in {pg.describe()} table {job.PG_TABLE}:")
    rows = summarize(pg.as_role("reader"), job.PG_TABLE)
    print(f"  {'path':<12} {'views':>6} {'users':>6}")
    for path, views, users in rows:
        print(f"  {path:<12} {views:>6} {users:>6}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "smoke", help="run the smoke pipeline (Kafka → Flink → PostgreSQL) on a demo stream"
    )
    p.add_argument("--events", type=int, default=200, help="events to produce (default 200)")
    p.add_argument("--seed", type=int, default=7, help="random seed of the demo stream (default 7)")
    p.set_defaults(handler=_cmd_smoke)
