"""Helpers of the cluster tests: streams on unique topics, fresh databases, Kafka offsets, Prometheus.

The oracle comparison and the dead-letter reader are the sessionize end-to-end test's own helpers
(tests/sessionize/test_sessionize_e2e.py), loaded from that file, so both suites judge the job alike.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import ModuleType

from jobs.common.oracle import CleanEvents, load
from jobs.common.settings import KafkaSettings, PostgresSettings
from uxstream.db import connect, migrate
from uxstream.paths import ROOT

GENERATOR_ARGS = (
    "--events", "2500", "--duration", "20m", "--seed", "11", "--partitions", "1",
    "--duplicate-fraction", "0.03", "--late-fraction", "0.02", "--malformed-fraction", "0.01",
    "--future-fraction", "0.01",
)  # fmt: skip
"""The sessionize end-to-end test's stream: a few thousand events, one partition (oracle order)."""


def sessionize_e2e() -> ModuleType:
    """tests/sessionize/test_sessionize_e2e.py as a module (its helpers: assert_equals_oracle, ...)."""
    name = "uxstream_tests_sessionize_e2e"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tests/sessionize/test_sessionize_e2e.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@dataclasses.dataclass(frozen=True)
class Run:
    """One test stream: its topic (and the job's output topics named after it), database and truth."""

    topic: str
    pg: PostgresSettings
    truth: CleanEvents

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic}.dlq"

    @property
    def kpi_topic(self) -> str:
        return f"{self.topic}.kpi"

    def job_args(self, bounded: bool, interval_ms: int) -> list[str]:
        """The job options the sessionize end-to-end test passes (after `-m jobs.sessionize.job`)."""
        command: list[str] = sessionize_e2e().job_command(self, interval_ms, bounded=bounded)
        return command[command.index("jobs.sessionize.job") + 1 :]

    def job_env(self, **extra: str) -> dict[str, str]:
        """The job's environment as the end-to-end test sets it (its database, unique transactional ids,
        the pseudonym key its oracle uses), plus `extra`."""
        env: dict[str, str] = sessionize_e2e().job_env(self, extra)
        return env


def generate(topic: str, truth_file: Path, generator_args: tuple[str, ...]) -> None:
    subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "generate", *generator_args, "--topic", topic,
         "--output", str(truth_file)],
        cwd=ROOT, check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def fresh_database(pg_settings: PostgresSettings, name: str) -> PostgresSettings:
    with connect(pg_settings, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    pg = dataclasses.replace(pg_settings, dbname=name)
    migrate(pg)
    return pg


def drop_database(pg_settings: PostgresSettings, pg: PostgresSettings) -> None:
    with connect(pg_settings, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{pg.dbname}" WITH (FORCE)')


def prepare(
    pg_settings: PostgresSettings, folder: Path, generator_args: tuple[str, ...], topic: str | None = None
) -> tuple[Run, str]:
    """Generate a stream on a fresh topic (or `topic`) and a fresh migrated database.

    Returns the run and the topic that holds the generated records (the run's topic unless given).
    """
    suffix = uuid.uuid4().hex[:8]
    source = f"test.cluster.{suffix}"
    truth_file = folder / "truth.jsonl"
    generate(source, truth_file, generator_args)
    pg = fresh_database(pg_settings, f"uxstream_test_cluster_{suffix}")
    return Run(topic or source, pg, load(truth_file)), source


def end_offset(kafka: KafkaSettings, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**kafka.client_config(), "group.id": f"check-{uuid.uuid4()}"})
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        return int(high)
    finally:
        consumer.close()


def committed_offset(kafka: KafkaSettings, group: str, topic: str) -> int:
    """The offset the job's Kafka source committed with its last completed checkpoint (-1: none)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**kafka.client_config(), "group.id": group})
    try:
        [partition] = consumer.committed([TopicPartition(topic, 0)], timeout=10)
        return int(partition.offset)
    finally:
        consumer.close()


def wait_until_consumed(kafka: KafkaSettings, group: str, topic: str, timeout_s: float = 240.0) -> None:
    """Wait until a checkpoint covered every record of the topic (the source commits on checkpoints)."""
    target = end_offset(kafka, topic)
    deadline = time.monotonic() + timeout_s
    while committed_offset(kafka, group, topic) < target:
        assert time.monotonic() < deadline, f"the job did not consume {topic} up to {target} in {timeout_s} s"
        time.sleep(1)


def copy_records(kafka: KafkaSettings, source: str, target: str, start: int, stop: int) -> None:
    """Copy records [start, stop) of partition 0 of `source` to partition 0 of `target`, keys and
    timestamps kept (the generator's bytes, so the oracle's ground truth stays valid)."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    from jobs.common.topics import ensure_topics

    ensure_topics(kafka, {target: 1})
    consumer = Consumer({**kafka.client_config(), "group.id": f"copy-{uuid.uuid4()}"})
    consumer.assign([TopicPartition(source, 0, start)])
    producer = Producer({**kafka.client_config(), "enable.idempotence": True})
    offset = start
    while offset < stop:
        messages = consumer.consume(min(1000, stop - offset), timeout=5)
        assert messages, f"{source} has no records after offset {offset}"
        for m in messages:
            assert m.error() is None and m.offset() == offset
            _, timestamp = m.timestamp()
            producer.produce(target, value=m.value(), key=m.key(), partition=0, timestamp=timestamp)
            offset += 1
            if offset == stop:
                break
        producer.poll(0)
    consumer.close()
    assert producer.flush(30) == 0
