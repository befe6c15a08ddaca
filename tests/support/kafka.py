"""Reading topics in tests: every committed record up to the topic's end, offsets, consumption by a job."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from jobs.common.settings import KafkaSettings

IDLE_POLLS = 6
"""Empty polls (0.5 s each) after which a read ends although the end was not reached: a transaction still
open (read_committed stops before it) or a job still writing."""


@dataclass(frozen=True)
class Record:
    key: bytes | None
    timestamp: int
    value: bytes
    partition: int
    offset: int


def committed_records(kafka: KafkaSettings, topic: str) -> list[Record]:
    """Every committed record of every partition of `topic` (read_committed), in offset order per
    partition. The read ends when the consumer's position reached each partition's end offset (transaction
    markers included), or after `IDLE_POLLS` empty polls without reaching it (an open transaction)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {**kafka.client_config(), "group.id": f"check-{uuid.uuid4()}", "isolation.level": "read_committed"}
    )
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        found: list[Record] = []
        idle = 0
        while idle < IDLE_POLLS:
            message = consumer.poll(0.5)
            if message is not None:
                assert message.error() is None, message.error()
                value = message.value()
                assert value is not None
                partition, offset = message.partition(), message.offset()
                assert partition is not None and offset is not None
                found.append(Record(message.key(), message.timestamp()[1], value, partition, offset))
                continue
            idle += 1
            if _at_end(consumer, topic, partitions):
                break
        return found
    finally:
        consumer.close()


def _at_end(consumer: Any, topic: str, partitions: list[int]) -> bool:
    from confluent_kafka import TopicPartition

    positions = consumer.position([TopicPartition(topic, p) for p in partitions])
    for position in positions:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, position.partition), timeout=10, cached=False
        )
        if high == low:
            continue  # empty (or emptied by retention)
        if position.offset < high:  # also OFFSET_INVALID (< 0): nothing fetched yet
            return False
    return True


def committed_decoded(
    kafka: KafkaSettings, topic: str, subject: str | None = None
) -> list[tuple[Record, dict[str, Any]]]:
    """`committed_records` with each value decoded as a framed Avro record (checking its subject if given)."""
    from jobs.common.contract import decode_framed

    decoded = []
    for record in committed_records(kafka, topic):
        entry, value = decode_framed(record.value)
        if subject is not None:
            assert entry.subject == subject, f"{topic} holds a {entry.subject} record, not {subject}"
        decoded.append((record, value))
    return decoded


def end_offset(kafka: KafkaSettings, topic: str, partition: int = 0) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**kafka.client_config(), "group.id": f"check-{uuid.uuid4()}"})
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
        return int(high)
    finally:
        consumer.close()


def committed_offset(kafka: KafkaSettings, group: str, topic: str) -> int:
    """The offset a consumer group (a job's Kafka source, on checkpoints) committed on partition 0
    (-1: none)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**kafka.client_config(), "group.id": group})
    try:
        [partition] = consumer.committed([TopicPartition(topic, 0)], timeout=10)
        return int(partition.offset)
    finally:
        consumer.close()


def committed_offsets(kafka: KafkaSettings, group: str, topic: str) -> dict[int, int]:
    """The offsets a consumer group committed on every partition of `topic` (-1 where none)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**kafka.client_config(), "group.id": group})
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return {c.partition: int(c.offset) for c in committed}
    finally:
        consumer.close()


def wait_until_consumed(kafka: KafkaSettings, group: str, topic: str, timeout_s: float = 240.0) -> None:
    """Wait until a checkpoint covered every record of every partition of the topic (a job's Kafka source
    commits its offsets when a checkpoint completes, after the sinks flushed what the records produced)."""
    partitions = committed_offsets(kafka, group, topic)
    targets = {p: end_offset(kafka, topic, p) for p in partitions}
    deadline = time.monotonic() + timeout_s
    while True:
        committed = committed_offsets(kafka, group, topic)
        behind = {p: (committed[p], t) for p, t in targets.items() if t > 0 and committed[p] < t}
        if not behind:
            return
        assert time.monotonic() < deadline, (
            f"the job did not consume {topic} in {timeout_s} s: (committed, end) per partition {behind}"
        )
        time.sleep(1)
