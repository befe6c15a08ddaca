"""Test streams: generated traffic (with its ground truth) on Kafka, recorded lines produced byte for byte,
records copied between topics."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from jobs.common.settings import KafkaSettings
from uxstream.paths import ROOT


def unique_topic(prefix: str) -> str:
    """A topic name no other test (or earlier run) uses: `prefix.<8 hex>`."""
    return f"{prefix}.{uuid.uuid4().hex[:8]}"


def generate(generator_args: Sequence[str], truth_file: Path, topic: str | None = None) -> list[str]:
    """Generate a stream (`uxstream generate`) into `truth_file` and, with `topic`, onto that topic (one
    partition unless the arguments say otherwise); returns the truth file's lines in produce order."""
    target = ["--topic", topic] if topic else ["--partitions", "1", "--dry-run"]
    subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "generate", *generator_args, *target,
         "--output", str(truth_file)],
        cwd=ROOT, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return truth_file.read_text(encoding="utf-8").splitlines(keepends=True)


def generate_truth(generator_args: Sequence[str], truth_file: Path) -> list[str]:
    """Generate a stream into `truth_file` only (no Kafka); its lines, in produce order."""
    return generate(generator_args, truth_file)


def produce(
    truth_lines: Sequence[str], topic: str, folder: Path, name: str, env: Mapping[str, str] | None = None
) -> None:
    """Produce recorded ground-truth lines (`generate --output` format) to `topic`, byte for byte (to the
    broker `env` names, default: this process's)."""
    part = folder / f"{name}.jsonl"
    part.write_text("".join(truth_lines), encoding="utf-8")
    subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "replay", str(part), "--topic", topic, "--partitions", "1"],
        cwd=ROOT, check=True, capture_output=True, timeout=120, env=None if env is None else dict(env),
    )  # fmt: skip


def copy_records(
    kafka: KafkaSettings, source: str, target: str, start: int = 0, stop: int | None = None
) -> None:
    """Copy records [start, stop) of partition 0 of `source` (to its end without `stop`) to partition 0 of
    `target`, keys and timestamps kept (the generator's bytes, so the oracle's ground truth stays valid)."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    from jobs.common.topics import ensure_topics
    from tests.support.kafka import end_offset

    ensure_topics(kafka, {target: 1})
    stop = end_offset(kafka, source) if stop is None else stop
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
