"""Dead-lettered records for the pipeline-health chart: the committed records of the dead-letter topic,
counted incrementally (one read_committed consumer keeps its position; a call reads what arrived since the
last one until two polls in a row come back empty, at most every REFRESH_S). Asking the broker for the end
offsets costs ~0.4 s per partition here, more than reading a dead-letter topic's increment."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from jobs.common.settings import KafkaSettings

IDLE_POLLS = 2
REFRESH_S = 5.0
"""Counted at most this often (the page reloads its data on every new window)."""


@dataclass
class DeadLetterCounter:
    kafka: KafkaSettings
    topic: str
    budget_s: float = 3.0
    """Time one call may spend reading; the count is exact once a call reached the end offsets."""
    _consumer: Any = field(default=None, init=False, repr=False)
    _partitions: list[int] = field(default_factory=list, init=False, repr=False)
    _count: int = field(default=0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _read_at: float = field(default=-1e9, init=False, repr=False)

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
            self._consumer = None

    def count(self) -> dict[str, Any]:
        """{"topic", "count", "error"}: the committed records so far, or why they cannot be counted."""
        with self._lock:
            try:
                if time.monotonic() - self._read_at < REFRESH_S:
                    return {"topic": self.topic, "count": self._count, "error": None}
                return {"topic": self.topic, "count": self._read(), "error": None}
            except Exception as exc:  # confluent_kafka.KafkaException and friends: shown on the page
                self._reset()
                return {"topic": self.topic, "count": None, "error": f"cannot count {self.topic}: {exc}"}

    def _reset(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
        self._consumer, self._partitions, self._count = None, [], 0

    def _read(self) -> int:
        from confluent_kafka import Consumer, TopicPartition

        if self._consumer is None:
            consumer = Consumer(
                {
                    **self.kafka.client_config(),
                    "group.id": f"uxstream-dashboard-{uuid.uuid4().hex[:8]}",
                    "isolation.level": "read_committed",
                    "enable.auto.commit": False,
                }
            )
            metadata = consumer.list_topics(self.topic, timeout=3).topics.get(self.topic)
            if metadata is None or metadata.error is not None:
                consumer.close()
                raise RuntimeError("the topic does not exist (yet)")
            self._partitions = sorted(metadata.partitions)
            consumer.assign([TopicPartition(self.topic, p, 0) for p in self._partitions])
            self._consumer = consumer
        deadline = time.monotonic() + self.budget_s
        idle = 0
        while time.monotonic() < deadline and idle < IDLE_POLLS:
            messages = self._consumer.consume(10_000, timeout=0.1)
            idle = 0 if messages else idle + 1
            self._count += sum(1 for m in messages if m.error() is None)
        self._read_at = time.monotonic()
        return self._count
