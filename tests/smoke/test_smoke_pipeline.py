"""Smoke pipeline on real services: Kafka → Flink MiniCluster → PostgreSQL (upsert) and Kafka (exactly-once).

One test runs the job twice on the same input: first with Python UDFs in process mode, then in thread
mode. The first run must write exactly the produced events (normalized) to PostgreSQL and, through a
transactional sink, to Kafka; the second (a replay) must leave the table unchanged.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from jobs.common.settings import KafkaSettings, PostgresSettings
from jobs.common.topics import ensure_topics
from jobs.smoke.logic import normalize_path
from uxstream.db import connect, migrate
from uxstream.paths import ROOT
from uxstream.smoke import SmokeEvent, produce, smoke_events

pytestmark = [pytest.mark.services, pytest.mark.flink]

SEED = 11
EVENTS = 120


def run_job(*args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.smoke.job", "--bounded", "--checkpoint-interval-ms", "1000", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,  # ~45 s on a quiet box; 327 s seen in CI at load ~20 (the bench smoke beside it)
    )
    assert proc.returncode == 0, f"smoke job failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def expected_rows(events: list[SmokeEvent]) -> list[tuple[Any, ...]]:
    return sorted(
        (
            e.event_id,
            e.user_id,
            normalize_path(e.page),
            datetime.fromtimestamp(e.ts / 1000, tz=UTC).replace(tzinfo=None),
        )
        for e in events
    )


def table_rows(pg: PostgresSettings) -> list[tuple[Any, ...]]:
    with connect(pg) as conn:
        return list(
            conn.execute(
                "SELECT event_id, user_id, path, event_time FROM smoke_events WHERE event_id LIKE %s "
                "ORDER BY event_id",
                (f"smoke-{SEED}-%",),
            ).fetchall()
        )


def committed_values(kafka: KafkaSettings, topic: str, expected: int) -> list[dict[str, Any]]:
    import json

    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            **kafka.client_config(),
            "group.id": f"smoke-check-{uuid.uuid4()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    values: list[dict[str, Any]] = []
    idle_polls = 0
    while idle_polls < 6 and len(values) <= expected:
        message = consumer.poll(0.5)
        if message is None:
            idle_polls += 1
            continue
        assert message.error() is None, message.error()
        value = message.value()
        assert value is not None
        values.append(json.loads(value))
    consumer.close()
    return values


def test_smoke_job_writes_exactly_the_produced_events_and_a_replay_changes_nothing(
    kafka_settings: KafkaSettings, pg_settings: PostgresSettings
) -> None:
    migrate(pg_settings)
    with connect(pg_settings, autocommit=True) as conn:
        conn.execute("DELETE FROM smoke_events WHERE event_id LIKE %s", (f"smoke-{SEED}-%",))
    suffix = uuid.uuid4().hex[:8]
    input_topic, output_topic = f"test.smoke.in.{suffix}", f"test.smoke.out.{suffix}"
    ensure_topics(kafka_settings, [input_topic, output_topic], partitions=1)
    events = smoke_events(EVENTS, seed=SEED)
    produce(kafka_settings, input_topic, events)
    topics = ("--input-topic", input_topic, "--output-topic", output_topic)

    run_job(*topics, "--python-mode", "process")

    assert table_rows(pg_settings) == expected_rows(events)
    committed = committed_values(kafka_settings, output_topic, EVENTS)
    assert sorted((v["event_id"], v["user_id"], v["path"], v["ts"]) for v in committed) == sorted(
        (e.event_id, e.user_id, normalize_path(e.page), e.ts) for e in events
    )

    run_job(*topics, "--python-mode", "thread")

    assert table_rows(pg_settings) == expected_rows(events)
