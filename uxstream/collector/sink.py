"""The Kafka side of the collector: one idempotent producer (acks=all), its delivery reports, and whether
Kafka is reachable.

A batch is answered only once every record of it is acknowledged by the broker (`Delivery`): the poll
thread runs librdkafka's delivery callbacks and wakes the batch's event loop when the last one arrived.
Concurrent requests share the producer, so librdkafka batches their records together (linger.ms).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from uxstream.collector.settings import CollectorSettings


class Delivery:
    """The delivery of one batch's records: resolves its future when every record is acknowledged or
    failed. Callbacks come from the poll thread; `seal` from the event loop that produced them."""

    __slots__ = ("_done", "_expected", "_future", "_lock", "_loop", "errors", "started")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._future: asyncio.Future[None] = loop.create_future()
        self._lock = threading.Lock()
        self._done = 0
        self._expected = -1
        self.errors: list[str] = []
        self.started = time.perf_counter()

    def __call__(self, error: Any, message: Any) -> None:
        with self._lock:
            self._done += 1
            if error is not None:
                self.errors.append(str(error))
            fire = self._done == self._expected
        if fire:
            self._loop.call_soon_threadsafe(self._resolve)

    def seal(self, expected: int) -> None:
        """No more records: `expected` were produced."""
        with self._lock:
            self._expected = expected
            fire = self._done == expected
        if fire:
            self._resolve()

    def _resolve(self) -> None:
        if not self._future.done():
            self._future.set_result(None)

    async def wait(self) -> list[str]:
        await self._future
        return self.errors


class KafkaSink:
    """The shared producer, its poll thread and a reachability probe (metadata of the topic every second)."""

    def __init__(
        self, settings: CollectorSettings, on_latency: Callable[[float], None] | None = None
    ) -> None:
        from confluent_kafka import Producer

        self.settings = settings
        self.topic = settings.topic
        self._on_latency = on_latency
        config: dict[str, Any] = {
            **settings.kafka.client_config(),
            "enable.idempotence": True,  # implies acks=all, retries, in-order: nothing lost, no dups
            "acks": "all",
            "linger.ms": settings.linger_ms,
            "message.timeout.ms": settings.delivery_timeout_ms,
            "compression.type": "lz4",
            "partitioner": "murmur2_random",  # the Java client's partition for a key
            "queue.buffering.max.messages": max(1_000_000, settings.queue_high_water * 2),
            "queue.buffering.max.kbytes": 1_048_576,
            "batch.num.messages": 10_000,
            "error_cb": self._on_error,
            "log_level": 3,
        }
        self._producer = Producer(config)
        self._running = True
        self._up = False
        self.fatal: str | None = None
        """A fatal producer error (librdkafka): the producer can write nothing more; /healthz fails so
        the process is restarted."""
        self._checked = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="collector-kafka-poll", daemon=True)
        self._prober = threading.Thread(target=self._probe, name="collector-kafka-probe", daemon=True)
        self._poller.start()
        self._prober.start()

    # ------------------------------------------------------------------------------------ state

    @property
    def up(self) -> bool:
        """The topic's partitions have leaders (checked every second; a lost connection clears it)."""
        return self._up

    def pending(self) -> int:
        """Records in the producer waiting for delivery (queued or in flight)."""
        return len(self._producer)

    def wait_checked(self, timeout: float) -> bool:
        return self._checked.wait(timeout)

    def _on_error(self, error: Any) -> None:
        from confluent_kafka import KafkaError

        if error.fatal():
            self.fatal = str(error)
            self._up = False
        if error.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            self._up = False

    def _poll(self) -> None:
        while self._running:
            self._producer.poll(0.05)

    def _probe(self) -> None:
        while self._running:
            try:
                metadata = self._producer.list_topics(self.topic, timeout=2.0)
                found = metadata.topics.get(self.topic)
                self._up = bool(
                    self.fatal is None
                    and found is not None
                    and found.error is None
                    and found.partitions
                    and all(p.leader >= 0 for p in found.partitions.values())
                )
            except Exception:  # KafkaException when no broker answers in time
                self._up = False
            self._checked.set()
            time.sleep(1.0 if self._up else 0.5)

    # ------------------------------------------------------------------------------------ produce

    def produce(self, delivery: Delivery, key: bytes, value: bytes, timestamp_ms: int) -> None:
        """Queue one record (raises BufferError when librdkafka's queue is full)."""
        self._producer.produce(self.topic, value, key, on_delivery=delivery, timestamp=timestamp_ms)

    def observe(self, delivery: Delivery) -> None:
        if self._on_latency is not None:
            self._on_latency(time.perf_counter() - delivery.started)

    def close(self, timeout: float = 10.0) -> int:
        """Deliver what is queued (up to `timeout`); the number of records left undelivered."""
        left = int(self._producer.flush(timeout))
        self._running = False
        self._poller.join(timeout=1)
        return left
