"""Latency mode: sessionize runs unbounded while the generator produces at a fixed rate in real time.

1. A fresh one-partition topic whose records the broker stamps with its own append time
   (`message.timestamp.type=LogAppendTime`): the Kafka timestamp of a record is when it was produced.
2. sessionize starts unbounded on it (fresh database); once every vertex runs, the harness produces the
   generator's simulation (`uxstream.contract.generator`, default knobs, R × S records over S seconds of
   event time starting now) in real time: each record is sent when the wall clock reaches its
   received_at, so events reach Kafka 0–2 s after their event time, as the generator models. (`uxstream
   generate --rate` paces per batch of ≥ 8,192 records, which would deliver records seconds *before*
   their event time and make the window-end latency meaningless.) Meanwhile it tails the topic (append
   time and event time of every record) and polls `kpi_1m` every 100 ms, noting when each row first
   becomes visible.
3. After the generator ends and a grace period, the Flink job is cancelled through its REST endpoint.

Per kpi_1m row (window × dimension value):

- **window end → visible**: visible − window_end (event time). Includes the watermark's 5 s
  out-of-orderness bound by design (a window can only close once an event 5 s past its end arrived).
- **produce → visible**: visible − the append time of the record that closed the window, i.e. the first
  record (in partition order) after which the watermark (max event time − 5 s, future events excluded)
  reaches window_end − 1 ms: the job's own latency from the moment the window could fire.

Windows are 1 minute (the job's own) unless `tumble_ms` shortens them (the smoke run).
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jobs.common import tables, topics
from jobs.common.settings import KafkaSettings, PostgresSettings
from jobs.common.topics import delete_topics
from uxstream.bench.monitor import checkpoint_summary
from uxstream.bench.runner import BenchError, JobProcess, JobSpec, fresh_database
from uxstream.db import connect

OUT_OF_ORDERNESS_MS = 5_000
"""sessionize's watermark bound (SessionizeSettings.out_of_orderness_ms default)."""
MAX_FUTURE_SKEW_MS = 300_000
"""Events further ahead of their Kafka timestamp do not move the watermark."""
JDBC_FLUSH_S = 1.0


@dataclass(frozen=True)
class LatencyConfig:
    seconds: int
    """How long the generator produces (also the event-time span)."""
    rate: int
    """Records per second."""
    tumble_ms: int | None = None
    """sessionize's KPI tumble; None: the job's own 1 minute."""
    warmup_s: int = 180
    """Simulated traffic before the measured part, generated but not sent: the generator's sessions last
    minutes, so its event rate ramps up from ~10 % of `rate` over the first ~3 simulated minutes."""
    checkpoint_interval_ms: int | None = None
    seed: int = 11


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (q in 0..100) of `values`."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def distribution(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 50), 1),
        "p95": round(percentile(values, 95), 1),
        "p99": round(percentile(values, 99), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
        "count": len(values),
    }


class TopicTail(threading.Thread):
    """Reads a one-partition topic from the start: (append time ms, event time ms or None) per record."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        super().__init__(name="bench-latency-tail", daemon=True)
        self.kafka, self.topic = kafka, topic
        self.records: list[tuple[int, int | None]] = []
        self.log_append_time = True
        self.cpu_seconds = 0.0
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)

    def run(self) -> None:
        from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Consumer, TopicPartition

        from jobs.common import contract

        consumer = Consumer(
            {
                **self.kafka.client_config(),
                "group.id": f"bench-latency-{self.topic}",
                "enable.auto.commit": False,
            }
        )
        consumer.assign([TopicPartition(self.topic, 0, 0)])
        try:
            while True:
                messages = consumer.consume(5000, timeout=0.2)
                for message in messages:
                    if message.error() is not None:
                        continue
                    kind, stamp = message.timestamp()
                    if kind != TIMESTAMP_LOG_APPEND_TIME:
                        self.log_append_time = False
                    decoded = contract.decode(message.value())
                    event_ms = (
                        int(decoded.event["ts"]) if isinstance(decoded, contract.DecodedEvent) else None
                    )
                    self.records.append((int(stamp), event_ms))
                if not messages and self._stop_event.is_set():
                    break
        finally:
            self.cpu_seconds = time.thread_time()
            consumer.close()


class RowWatcher(threading.Thread):
    """Polls kpi_1m; the wall-clock time each (window_end, dimension, value) row was first seen."""

    def __init__(self, pg: PostgresSettings, interval: float = 0.1) -> None:
        super().__init__(name="bench-latency-rows", daemon=True)
        self.pg, self.interval = pg, interval
        self.first_seen: dict[tuple[datetime, str, str], float] = {}
        self.polls = 0
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)

    def run(self) -> None:
        since = datetime(1970, 1, 1, tzinfo=UTC)
        with connect(self.pg, autocommit=True) as conn:
            while not self._stop_event.is_set():
                rows = conn.execute(
                    "SELECT window_end, dimension, dimension_value "
                    f"FROM {tables.KPI_1M} WHERE window_end >= %s",
                    (since,),
                ).fetchall()
                now = time.time()
                self.polls += 1
                for window_end, dimension, value in rows:
                    self.first_seen.setdefault((window_end, str(dimension), str(value)), now)
                if rows:  # windows fire in event-time order: older ones are complete
                    since = max(since, max(r[0] for r in rows) - timedelta(minutes=2))
                self._stop_event.wait(self.interval)


def closing_append_times(
    records: Sequence[tuple[int, int | None]], window_ends_ms: Sequence[int]
) -> dict[int, int]:
    """window end → append time of the first record after which the watermark reaches window end − 1 ms."""
    marks: list[int] = []
    watermark = -(2**63)
    for append_ms, event_ms in records:
        if event_ms is not None and event_ms <= append_ms + MAX_FUTURE_SKEW_MS:
            watermark = max(watermark, event_ms - OUT_OF_ORDERNESS_MS)
        marks.append(watermark)
    closing = {}
    for end in window_ends_ms:
        index = bisect.bisect_left(marks, end - 1)
        if index < len(records):
            closing[end] = records[index][0]
    return closing


def produce_real_time(kafka: KafkaSettings, topic: str, config: LatencyConfig) -> dict[str, Any]:
    """The generator's records, each sent when the wall clock reaches its received_at (its Kafka timestamp).

    The simulation starts `warmup_s` before the first sent record (so the rate is steady when sending
    starts); the records of the warm-up are generated and dropped, then `seconds` of traffic are sent.
    """
    from confluent_kafka import Producer

    from uxstream.contract.generator import Generator, GeneratorConfig
    from uxstream.contract.replay import PRODUCER_CONFIG

    lead_s = config.rate * config.warmup_s / 60_000 + 2  # to generate (and drop) the warm-up records
    origin_ms = int((time.time() + lead_s) * 1000)
    until_ms = origin_ms + config.seconds * 1000
    span_s = config.warmup_s + config.seconds
    generator = Generator(
        GeneratorConfig(
            events=config.rate * span_s,
            seed=config.seed,
            start_ms=origin_ms - config.warmup_s * 1000,
            duration_ms=span_s * 1000,
            partitions=1,
        )
    )
    failures: list[str] = []
    producer = Producer(
        {
            **kafka.client_config(),
            **PRODUCER_CONFIG,
            "linger.ms": 5,
            "on_delivery": lambda error, _message: failures.append(str(error)),
        }
    )
    sent, dropped, behind_ms = 0, 0, 0.0
    started = 0.0
    for batch in generator.batches():
        if batch[-1][0] < origin_ms:
            dropped += len(batch)
            continue
        if batch[0][0] >= until_ms:
            break
        for timestamp, value, key, partition, _, _ in batch:
            if timestamp < origin_ms:
                dropped += 1
                continue
            if timestamp >= until_ms:
                break
            wait = timestamp / 1000 - time.time()
            if wait > 0.002:
                time.sleep(wait)
            else:
                behind_ms = max(behind_ms, -wait * 1000)
            producer.produce(topic, value, key or None, partition, timestamp=timestamp)
            producer.poll(0)
            if not sent:
                started = time.monotonic()
            sent += 1
        if failures:
            break
    if producer.flush(60) or failures:
        raise BenchError(
            f"latency: producing to {topic} failed: {failures[:1] or 'records not acknowledged'}"
        )
    seconds = max(time.monotonic() - started, 1e-9)
    return {
        "records": sent,
        "warmup_records_dropped": dropped,
        "seconds": round(seconds, 2),
        "rate": round(sent / seconds, 1),
        "max_behind_schedule_ms": round(behind_ms, 1),
    }


def measure_latency(
    kafka: KafkaSettings,
    pg_admin: PostgresSettings,
    config: LatencyConfig,
    *,
    run_id: str,
    work_dir: Path,
    say: Callable[[str], None],
) -> dict[str, Any]:
    topic = f"ux.bench.latency.{run_id}"
    topics.ensure_topics(kafka, {topic: 1}, config={"message.timestamp.type": "LogAppendTime"})
    spec = JobSpec(
        job="sessionize",
        topic=topic,
        bounded=False,
        run_id=f"{run_id}-latency",
        work_dir=work_dir,
        checkpoint_interval_ms=config.checkpoint_interval_ms,
        tumble_ms=config.tumble_ms,
    )
    try:
        with fresh_database(pg_admin, f"uxstream_bench_{run_id}_latency") as pg:
            spec = dataclasses.replace(spec, database=pg)
            return _run(kafka, pg, config, spec, say)
    finally:
        delete_topics(kafka, [topic, *spec.output_topics])


def _run(
    kafka: KafkaSettings,
    pg: PostgresSettings,
    config: LatencyConfig,
    spec: JobSpec,
    say: Callable[[str], None],
) -> dict[str, Any]:
    job = JobProcess(spec)
    tail = TopicTail(kafka, spec.topic)
    watcher = RowWatcher(pg)
    job.start()
    generated: dict[str, Any] = {}
    try:
        job.wait_running(timeout=300)
        say(
            f"latency: sessionize running (unbounded); producing {config.rate:,} records/s "
            f"in real time for {config.seconds} s"
        )
        tail.start()
        watcher.start()
        generated = produce_real_time(kafka, spec.topic, config)
        time.sleep(OUT_OF_ORDERNESS_MS / 1000 + JDBC_FLUSH_S + 3)  # the last closable windows show up
        deadline = time.monotonic() + 60
        while not watcher.first_seen and time.monotonic() < deadline:  # a job lagging on a loaded box
            time.sleep(0.5)
    finally:
        job.cancel()
        seen = job.finish()
        with contextlib.suppress(RuntimeError):
            tail.stop()
        with contextlib.suppress(RuntimeError):
            watcher.stop()
    rows = watcher.first_seen
    ends = sorted({int(k[0].timestamp() * 1000) for k in rows})
    closing = closing_append_times(tail.records, ends)
    from_end: list[float] = []
    from_produce: list[float] = []
    windows: dict[int, dict[str, Any]] = {}
    for (window_end, dimension, _), visible in rows.items():
        end_ms = int(window_end.timestamp() * 1000)
        visible_ms = visible * 1000
        from_end.append(visible_ms - end_ms)
        window = windows.setdefault(end_ms, {"window_end": window_end.isoformat(), "rows": 0})
        window["rows"] += 1
        if end_ms in closing:
            from_produce.append(visible_ms - closing[end_ms])
        if dimension == tables.DIM_GLOBAL:
            window["end_to_visible_ms"] = round(visible_ms - end_ms, 1)
            if end_ms in closing:
                window["produce_to_visible_ms"] = round(visible_ms - closing[end_ms], 1)
    if not from_end or not from_produce:
        raise BenchError(
            f"latency: no kpi_1m row closed by the generated records "
            f"({len(rows)} rows, {len(tail.records)} records)"
        )
    wall = max(job.exited - job.launched, 1e-9)
    return {
        "window_end_to_visible_ms": distribution(from_end),
        "produce_to_visible_ms": distribution(from_produce),
        "windows": [windows[k] for k in sorted(windows)],
        "rows": len(rows),
        "records": len(tail.records),
        "generator": generated,
        "produce_time": "broker append time" if tail.log_append_time else "producer timestamp (received_at)",
        "checkpoints": checkpoint_summary(seen.checkpoints),
        "peak_rss_mb": round(seen.peak_rss / 2**20, 1),
        "job_cores": round(seen.job_cpu_seconds / wall, 2),
        "tail_cpu_s": round(tail.cpu_seconds, 2),
        "db_polls": watcher.polls,
    }
