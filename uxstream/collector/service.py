"""One batch from any endpoint (HTTP, WebSocket, gRPC): authenticate, admit (Kafka reachable, producer
queue under its mark, rate limits), prepare each event (`logic.prepare`), produce, and wait until every
accepted record is acknowledged by Kafka. Nothing is acknowledged that is not on Kafka: a batch with a
record not delivered is answered 503 (retry; the jobs dedup a re-sent event by its event_id)."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from jobs.common.contract import header
from uxstream.collector.completeness import Completeness
from uxstream.collector.logic import (
    Accepted,
    Prepared,
    RateLimiter,
    Refusal,
    Rejected,
    Skipped,
    encode_record,
    prepare,
    retry_after,
    size_problem,
    truncated_ip,
)
from uxstream.collector.metrics import Metrics
from uxstream.collector.settings import CollectorSettings
from uxstream.collector.sink import Delivery, KafkaSink

UNAUTHORIZED: Final = Refusal(401, "unauthorized", "unknown or revoked write key")
KAFKA_UNAVAILABLE_RETRY_S: Final = 5
QUEUE_FULL_RETRY_S: Final = 1


class Preparer(Protocol):
    """One event of a batch → what is written, or why not (`logic.prepare`'s keyword arguments)."""

    def __call__(
        self, raw: Any, /, *, project: str, received_at: int, client_ip: str | None, do_not_track: bool,
        truncate: bool,
    ) -> Prepared: ...  # fmt: skip


@dataclass(frozen=True, slots=True)
class Principal:
    project: str
    bucket: str
    """The rate-limit name: `key:<digest prefix>` for a write key, `jwt:<project>` for a token."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer to a batch: one result per event, in order."""

    results: list[dict[str, str]]
    accepted: int
    rejected: int
    skipped: int

    def body(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "skipped": self.skipped,
            "results": self.results,
        }


@dataclass(slots=True)
class BatchResult:
    """What `prepare_batch` did so far (filled as it goes, so a BufferError mid-batch leaves the count of
    records already handed to the producer)."""

    results: list[dict[str, str]] = field(default_factory=list)
    written: list[dict[str, Any]] = field(default_factory=list)
    produced: int = 0
    rejected: int = 0
    skipped: int = 0
    refused: dict[tuple[str, str], int] = field(default_factory=dict)
    """(status, reason) → events rejected or skipped for it (the metrics' labels)."""


def prepare_batch(
    events: Sequence[Any],
    batch: BatchResult,
    *,
    project: str,
    received_at: int,
    client_ip: str | None,
    do_not_track: bool,
    header: bytes,
    produce: Callable[[bytes, bytes], None],
    prepare_one: Preparer = prepare,
) -> None:
    """Validate and encode each event of a batch and hand the accepted ones to `produce(key, value)`, in
    order (`client_ip` already truncated). The CPU-bound part of `Collector.ingest`, without I/O, so the
    CPU benchmark (`python -m uxstream.bench.collector cpu`) measures exactly this path. `prepare_one`:
    `logic.prepare` for events parsed from JSON, the gRPC endpoint's own for Protocol Buffers."""
    results = batch.results
    written = batch.written
    refused = batch.refused
    for raw in events:
        prepared = prepare_one(
            raw, project=project, received_at=received_at, client_ip=client_ip,
            do_not_track=do_not_track, truncate=False,
        )  # fmt: skip
        if isinstance(prepared, Accepted):
            value = header + encode_record(prepared.record)
            too_big = size_problem(value)
            if too_big is None:
                produce(prepared.key, value)
                written.append(prepared.record)
                batch.produced += 1
                results.append({"status": "accepted", "event_id": prepared.event_id})
                continue
            prepared = too_big
        if isinstance(prepared, Rejected):
            batch.rejected += 1
            label = ("rejected", prepared.reason)
            results.append({"status": "rejected", "reason": prepared.reason, "detail": prepared.detail})
        else:
            assert isinstance(prepared, Skipped)
            batch.skipped += 1
            label = ("skipped", prepared.reason)
            results.append({"status": "skipped", "reason": prepared.reason})
        refused[label] = refused.get(label, 0) + 1


class Collector:
    def __init__(
        self,
        settings: CollectorSettings,
        sink: KafkaSink,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.metrics = metrics
        self._clock = clock
        self._monotonic = monotonic
        self._key_limits = RateLimiter(settings.key_limit)
        self._ip_limits = RateLimiter(settings.ip_limit)
        self._header = header(settings.schema_id)
        self._limits_lock = threading.Lock()  # the gRPC endpoint runs on another thread
        self._completeness = Completeness()
        self._completeness_lock = threading.Lock()

    def now(self) -> float:
        """The collector's clock (epoch seconds): the received_at of a batch."""
        return self._clock()

    # ------------------------------------------------------------------------------------- auth

    def authenticate(self, credential: str | None) -> Principal | Refusal:
        """A write key, or a signed JWT when configured; 401 otherwise (nothing is written)."""
        if not credential:
            return Refusal(401, "unauthorized", "no write key (Authorization: Bearer <key> or ?write_key=)")
        found = self.settings.write_keys.lookup(credential)
        if found is not None:
            name = hashlib.sha256(credential.encode()).hexdigest()[:12]
            return Principal(found.project, f"key:{name}")
        if self.settings.jwt is not None and credential.count(".") == 2:
            return self._verify_jwt(credential)
        return UNAUTHORIZED

    def _verify_jwt(self, token: str) -> Principal | Refusal:
        import jwt

        assert self.settings.jwt is not None
        try:
            claims = jwt.decode(
                token,
                self.settings.jwt.key.reveal(),
                algorithms=list(self.settings.jwt.algorithms),
                audience=self.settings.jwt.audience,
                options={"require": ["exp", "aud"]},
            )
        except jwt.PyJWTError as exc:
            return Refusal(401, "unauthorized", f"invalid token ({type(exc).__name__})")
        project = claims.get("project") or claims.get("sub")
        if not isinstance(project, str) or not project:
            return Refusal(401, "unauthorized", "the token names no project (claim 'project' or 'sub')")
        return Principal(project, f"jwt:{project}")

    # ------------------------------------------------------------------------------------ admit

    def readiness(self) -> Refusal | None:
        """None when the collector can take batches: Kafka reachable and the queue under its mark."""
        if self.sink.fatal is not None:
            return Refusal(503, "producer_failed", "the Kafka producer failed: restart the collector", 60)
        if not self.sink.up:
            return Refusal(503, "kafka_unavailable", "Kafka is unreachable", KAFKA_UNAVAILABLE_RETRY_S)
        pending = self.sink.pending()
        if pending >= self.settings.queue_high_water:
            detail = f"{pending} records waiting for Kafka, high-water mark {self.settings.queue_high_water}"
            return Refusal(503, "overloaded", detail, QUEUE_FULL_RETRY_S)
        return None

    def admit(self, principal: Principal, client_ip: str | None, events: int) -> Refusal | None:
        not_ready = self.readiness()
        if not_ready is not None:
            return not_ready
        with self._limits_lock:
            return self._rate_limits(principal, client_ip, events)

    def _rate_limits(self, principal: Principal, client_ip: str | None, events: int) -> Refusal | None:
        now = self._monotonic()
        wait = self._key_limits.take(principal.bucket, events, now)
        if wait > 0:
            limit = self._key_limits.limit
            return Refusal(
                429, "rate_limited", f"write key over {limit.rate:g} events/s (burst {limit.burst:g})",
                retry_after(wait),
            )  # fmt: skip
        if client_ip is not None:
            wait = self._ip_limits.take(client_ip, events, now)
            if wait > 0:
                limit = self._ip_limits.limit
                return Refusal(
                    429, "rate_limited",
                    f"client address over {limit.rate:g} events/s (burst {limit.burst:g})", retry_after(wait),
                )  # fmt: skip
        return None

    # ------------------------------------------------------------------------------------ ingest

    async def ingest(
        self,
        events: Sequence[Any],
        principal: Principal,
        client_ip: str | None,
        do_not_track: bool = False,
        prepare_one: Preparer = prepare,
    ) -> Outcome | Refusal:
        """Admit, validate, produce and wait for Kafka. Every accepted event of an `Outcome` is on Kafka.
        `prepare_one` turns one of `events` into what is written (`prepare_batch`)."""
        refused = self.admit(principal, client_ip, len(events))
        if refused is not None:
            return refused
        received_at = int(self._clock() * 1000)
        ip = truncated_ip(client_ip)  # once per batch; the raw address goes no further
        dnt = do_not_track and self.settings.honor_dnt
        delivery = Delivery(asyncio.get_running_loop())
        batch = BatchResult()
        try:
            prepare_batch(
                events, batch, project=principal.project, received_at=received_at, client_ip=ip,
                do_not_track=dnt, header=self._header,
                produce=lambda key, value: self.sink.produce(delivery, key, value, received_at),
                prepare_one=prepare_one,
            )  # fmt: skip
        except BufferError:
            delivery.seal(batch.produced)
            await delivery.wait()
            return Refusal(503, "overloaded", "the producer queue is full", QUEUE_FULL_RETRY_S)
        finally:
            events_metric = self.metrics.events
            for (status, reason), count in batch.refused.items():
                events_metric.labels(status, reason).inc(count)
        produced, written = batch.produced, batch.written
        delivery.seal(produced)
        errors = await delivery.wait()
        if produced:
            self.sink.observe(delivery)
        if errors:
            detail = f"{len(errors)} of {produced} events not confirmed by Kafka ({errors[0]}): send it again"
            return Refusal(503, "not_delivered", detail, QUEUE_FULL_RETRY_S)
        if produced:
            events_metric.labels("accepted", "").inc(produced)
            with self._completeness_lock:
                seen = self._completeness.observe(written)
            if seen.duplicates:
                self.metrics.duplicates.inc(seen.duplicates)
            if seen.gaps:
                self.metrics.sequence_gaps.inc(seen.gaps)
            if seen.filled:
                self.metrics.sequence_filled.inc(seen.filled)
        return Outcome(batch.results, produced, batch.rejected, batch.skipped)
