"""generate and replay against the real local broker: what lands in Kafka is exactly the ground truth."""

from __future__ import annotations

import shlex
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from jobs.common.oracle import TruthRecord, read_truth
from jobs.common.settings import KafkaSettings
from jobs.common.topics import ensure_topics, partition_counts
from uxstream.cli import main
from uxstream.contract.generator import partition_for

pytestmark = pytest.mark.services

Landed = tuple[bytes, bytes | None, int]
"""(value, key, timestamp) of a consumed record."""


def argv(text: str) -> list[str]:
    return shlex.split(text)


@pytest.fixture
def fresh_topic(kafka_settings: KafkaSettings) -> Iterator[Callable[[str], str]]:
    """A factory of unique topic names; the topics are deleted after the test."""
    names: list[str] = []

    def name(kind: str) -> str:
        names.append(f"test.contract.{kind}.{uuid.uuid4().hex[:10]}")
        return names[-1]

    yield name
    existing = [n for n in names if n in partition_counts(kafka_settings, names)]
    if existing:
        admin = AdminClient(kafka_settings.client_config())  # keep the handle alive until the futures resolve
        for future in admin.delete_topics(existing, operation_timeout=30).values():
            future.result(timeout=30)


def consume_all(settings: KafkaSettings, topic: str, partitions: int) -> dict[int, list[Landed]]:
    """Every record of the topic, per partition in offset order."""
    consumer = Consumer(
        {**settings.client_config(), "group.id": f"test-{uuid.uuid4().hex}", "enable.auto.commit": False}
    )
    try:
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for p in range(partitions)
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        landed: dict[int, list[Landed]] = defaultdict(list)
        remaining = sum(ends.values())
        while remaining:
            message = consumer.poll(10)
            assert message is not None, f"{remaining} records did not arrive"
            assert message.error() is None, message.error()
            value, partition = message.value(), message.partition()
            assert partition is not None
            landed[partition].append(
                (value if value is not None else b"", message.key(), message.timestamp()[1])
            )
            remaining -= 1
        return dict(landed)
    finally:
        consumer.close()


def expected(truth: list[TruthRecord]) -> dict[int, list[Landed]]:
    per_partition: dict[int, list[Landed]] = defaultdict(list)
    for record in truth:
        assert record.partition is not None
        key = record.key.encode() if record.key is not None else None
        per_partition[record.partition].append((record.payload, key, record.timestamp))
    return dict(per_partition)


def test_generated_records_land_exactly_as_the_ground_truth_says(
    kafka_settings: KafkaSettings, tmp_path: Path, fresh_topic: Callable[[str], str]
) -> None:
    topic = fresh_topic("generate")
    truth_file = tmp_path / "truth.jsonl"
    knobs = argv(
        "--events 6000 --seed 21 --partitions 3 --duplicate-fraction 0.05 --malformed-fraction 0.05 "
        "--late-fraction 0.01 --future-fraction 0.01"
    )

    assert main(["generate", *knobs, "--topic", topic, "--output", str(truth_file)]) == 0

    truth = list(read_truth(truth_file))
    assert [r.seq for r in truth] == list(range(6000))
    assert consume_all(kafka_settings, topic, 3) == expected(truth)


def test_a_replayed_ground_truth_lands_identically_on_another_topic(
    kafka_settings: KafkaSettings, tmp_path: Path, fresh_topic: Callable[[str], str]
) -> None:
    generated, replayed = tmp_path / "generated.jsonl", tmp_path / "replayed.jsonl"
    first, second = fresh_topic("original"), fresh_topic("replayed")
    knobs = argv("--events 2000 --seed 5 --partitions 2 --malformed-fraction 0.05")
    assert main(["generate", *knobs, "--topic", first, "--output", str(generated)]) == 0

    assert (
        main(["replay", str(generated), "--partitions", "2", "--topic", second, "--output", str(replayed)])
        == 0
    )

    assert replayed.read_text(encoding="utf-8") == generated.read_text(encoding="utf-8")
    assert consume_all(kafka_settings, second, 2) == consume_all(kafka_settings, first, 2)


def test_the_partitions_we_compute_are_the_ones_librdkafka_and_java_choose(
    kafka_settings: KafkaSettings, fresh_topic: Callable[[str], str]
) -> None:
    topic = fresh_topic("partitioner")
    ensure_topics(kafka_settings, {topic: 7})
    chosen: dict[bytes, int] = {}

    def delivered(error: Any, message: Any) -> None:
        assert error is None, error
        chosen[message.key()] = message.partition()

    producer = Producer({**kafka_settings.client_config(), "partitioner": "murmur2_random"})
    keys = [f"usr_{n:012x}".encode() for n in range(60)] + [uuid.UUID(int=n).hex.encode() for n in range(60)]
    for key in keys:
        producer.produce(topic, b"x", key, on_delivery=delivered)
    assert producer.flush(30) == 0

    assert chosen == {key: partition_for(key, 7) for key in keys}
