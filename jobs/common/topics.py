"""Kafka topic names: the one place they are spelled, plus an idempotent topic-creation helper.

Schema subjects in `schemas/avro/catalog.json` follow the TopicNameStrategy (`<topic>-value`), so a test
keeps them in step with these names.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from jobs.common.settings import KafkaSettings

EVENTS: Final = "ux.events"
"""Raw UX events, Confluent-framed Avro (subject ux.events-value), keyed by user key."""

DLQ: Final = "ux.events.dlq"
"""Dead letters: input records a job could not accept, with original bytes and a reason code."""

KPI: Final = "ux.kpi"
"""Finalized KPI window rows."""

FUNNEL: Final = "ux.funnel"
"""Finalized funnel window rows."""

ALERTS: Final = "ux.alerts"
"""Anomaly alert lifecycle messages."""

ALL: Final = (EVENTS, DLQ, KPI, FUNNEL, ALERTS)


def value_subject(topic: str) -> str:
    """Schema Registry subject of a topic's values (TopicNameStrategy)."""
    return f"{topic}-value"


class TopicError(RuntimeError):
    """A topic could not be created or described. The message names the topic and the broker."""


def _admin(settings: KafkaSettings) -> Any:
    from confluent_kafka.admin import AdminClient

    # Warnings and errors only: librdkafka's info lines (e.g. "Purging 1 unserved events from background
    # queue" when a short-lived admin client is destroyed) would land in the output of the CLI commands.
    return AdminClient({**settings.client_config(), "log_level": 4})


def partition_counts(settings: KafkaSettings, topics: Iterable[str], timeout: float = 30.0) -> dict[str, int]:
    """Partition count of each existing topic among `topics` (missing topics are absent from the result)."""
    metadata = _admin(settings).list_topics(timeout=timeout)
    counts: dict[str, int] = {}
    for name in topics:
        topic = metadata.topics.get(name)
        if topic is not None and topic.error is None:
            counts[name] = len(topic.partitions)
    return counts


def ensure_topics(
    settings: KafkaSettings,
    topics: Iterable[str] | Mapping[str, int],
    *,
    partitions: int = 4,
    replication_factor: int = -1,
    config: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> dict[str, int]:
    """Create the topics that do not exist yet; leave existing ones untouched. Idempotent.

    `topics` is a list of names (each created with `partitions`) or a mapping name → partitions.
    `replication_factor=-1` takes the broker default (the local broker: 1). Returns the partition count of
    every requested topic as it is after the call (an existing topic keeps its own count).
    """
    from confluent_kafka.cimpl import NewTopic

    wanted = dict(topics) if isinstance(topics, Mapping) else dict.fromkeys(topics, partitions)
    admin = _admin(settings)
    existing = partition_counts(settings, wanted, timeout=timeout)
    missing = [
        NewTopic(name, num_partitions=count, replication_factor=replication_factor, config=dict(config or {}))
        for name, count in wanted.items()
        if name not in existing
    ]
    if missing:
        futures = admin.create_topics(missing, operation_timeout=timeout, request_timeout=timeout)
        for name, future in futures.items():
            try:
                future.result(timeout=timeout)
            except Exception as exc:  # the admin client raises KafkaException; "already exists" is success
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise TopicError(
                        f"cannot create topic {name} on {settings.bootstrap_servers}: {exc}"
                    ) from None
    deadline = time.monotonic() + timeout
    while True:  # a new topic's metadata propagates asynchronously
        counts = partition_counts(settings, wanted, timeout=timeout)
        absent = [name for name in wanted if name not in counts]
        if not absent:
            return counts
        if time.monotonic() > deadline:
            raise TopicError(
                f"topic {absent[0]} does not show up on {settings.bootstrap_servers} after creation"
            )
        time.sleep(0.1)


def broker_config(settings: KafkaSettings, name: str, timeout: float = 30.0) -> str | None:
    """The value of one broker configuration entry (of the first broker the cluster metadata names)."""
    from confluent_kafka.admin import (  # type: ignore[attr-defined]
        ConfigResource,
        ResourceType,
    )

    admin = _admin(settings)
    brokers = admin.list_topics(timeout=timeout).brokers
    if not brokers:
        raise TopicError(f"no broker answered at {settings.bootstrap_servers}")
    resource = ConfigResource(ResourceType.BROKER, str(min(brokers)))
    entries = admin.describe_configs([resource], request_timeout=timeout)[resource].result(timeout=timeout)
    entry = entries.get(name)
    return None if entry is None else entry.value


def check_transactions(settings: KafkaSettings, checkpoint_interval_ms: int) -> None:
    """Fail fast, before a job starts, when its exactly-once sinks could never commit (RELIABILITY T22):
    a transaction timeout above the broker's `transaction.max.timeout.ms` (every transaction would be
    refused) or not longer than the checkpoint interval (transactions would expire before their commit)."""
    from jobs.common.settings import SettingsError

    wanted = settings.transaction_timeout_ms
    if wanted <= checkpoint_interval_ms:
        raise SettingsError(
            f"UXSTREAM_KAFKA_TRANSACTION_TIMEOUT_MS={wanted} must be longer than the checkpoint interval "
            f"({checkpoint_interval_ms} ms): a transaction stays open from one checkpoint to the next"
        )
    allowed = broker_config(settings, "transaction.max.timeout.ms")
    if allowed is not None and wanted > int(allowed):
        raise SettingsError(
            f"the exactly-once Kafka sinks ask for transactions of {wanted} ms, but the broker at "
            f"{settings.bootstrap_servers} allows at most {allowed} ms (transaction.max.timeout.ms): set "
            f"UXSTREAM_KAFKA_TRANSACTION_TIMEOUT_MS to at most {allowed} or raise the broker's limit"
        )


def check_stop_offsets(settings: KafkaSettings, topic: str, stop_offsets: Sequence[tuple[int, int]]) -> None:
    """Fail fast when a bounded read with explicit stop offsets would not read the whole topic: every
    partition of `topic` must be listed (an unlisted one is never read), and only those."""
    from jobs.common.settings import SettingsError

    count = partition_counts(settings, [topic]).get(topic)
    if count is None:
        raise SettingsError(
            f"stop offsets given, but topic {topic} does not exist on {settings.bootstrap_servers}"
        )
    listed = {partition for partition, _ in stop_offsets}
    missing = sorted(set(range(count)) - listed)
    unknown = sorted(listed - set(range(count)))
    if missing or unknown:
        problems = [f"partition(s) {', '.join(map(str, missing))} not listed"] if missing else []
        problems += [f"partition(s) {', '.join(map(str, unknown))} do not exist"] if unknown else []
        raise SettingsError(
            f"stop offsets for topic {topic}, which has {count} partition(s): {'; '.join(problems)}; "
            "give PARTITION:OFFSET for each of its partitions"
        )


def delete_topics(settings: KafkaSettings, names: Sequence[str]) -> None:
    """Delete topics (missing ones are fine); a warning on stderr for any other failure."""
    import sys

    if not names:
        return
    admin = _admin(settings)  # referenced until the futures resolve (else: _DESTROY)
    futures = admin.delete_topics(list(names), operation_timeout=30)
    for name, future in futures.items():
        try:
            future.result(timeout=30)
        except Exception as exc:  # KafkaException
            if "UNKNOWN_TOPIC" not in str(exc):  # never created: fine
                print(f"warning: could not delete topic {name}: {exc}", file=sys.stderr)


def wait_deleted(settings: KafkaSettings, topic: str, timeout: float = 60) -> None:
    """Wait until a deleted topic is gone from the metadata (deletion is asynchronous)."""
    deadline = time.monotonic() + timeout
    while topic in partition_counts(settings, [topic]):
        if time.monotonic() > deadline:
            raise TopicError(f"topic {topic} still exists {timeout:.0f} s after deleting it")
        time.sleep(0.5)


def end_offset(settings: KafkaSettings, topic: str) -> int | None:
    """Records in partition 0 of a one-partition topic, or None when the topic is absent or differs."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {**settings.client_config(), "group.id": "uxstream-tools", "enable.auto.commit": False}
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None or len(described.partitions) != 1:
            return None
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        return int(high) if low == 0 else None
    finally:
        consumer.close()
