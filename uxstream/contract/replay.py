"""`uxstream replay`: a JSON Lines file of events → Kafka. Also the producing loop `generate` shares.

Input lines (blank lines are skipped) are either

- an **event**: a JSON object with the fields of the event schema (`--schema-version`, default the
  latest). `ts` and `received_at` are epoch milliseconds or ISO-8601 timestamps with a UTC offset;
  `received_at` defaults to `ts`; `anonymous_id` defaults to "" (an event with only a user_id); fields
  with an Avro default may be left out. Events are produced as they are, even when the validity rules
  reject them (that is how a user tests the dead-letter path);
- a **ground-truth line** as written by `generate --output` / `replay --output` (`"event"` + `"schema_id"`,
  or `"payload_b64"` + `"expected_reason"`): replayed with the same schema id, bytes, key and timestamp.

A line that cannot be produced stops the replay before anything is sent, with
`FILE:LINE: what is wrong`. Records are produced in file order, keyed by the user key (user_id, else
anonymous_id), to the partition a Java producer would choose, with the Kafka timestamp = received_at.
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TextIO

from jobs.common.contract import (
    EVENT_SUBJECT,
    REASONS,
    Catalog,
    ContractError,
    SchemaEntry,
    encode_body,
    frame,
    load_catalog,
    plain_schema,
    user_key,
)
from jobs.common.settings import KafkaSettings
from uxstream.contract.generator import CATEGORIES, EVENT, MALFORMED, Record, partition_for, truth_line
from uxstream.errors import UserError

_TIMESTAMP_FIELDS: Final = frozenset({"ts", "received_at"})
_LONG_RANGE: Final = (-(2**63), 2**63 - 1)
_INT_RANGE: Final = (-(2**31), 2**31 - 1)


class ReplayError(UserError):
    """A line of the replay file cannot be produced: `FILE:LINE: what is wrong`."""


# ------------------------------------------------------------------------------------ line checking


def _timestamp(name: str, value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if not _LONG_RANGE[0] <= value <= _LONG_RANGE[1]:
            raise ReplayError(f"{where}: field '{name}' is out of the 64-bit range")
        return value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                example = "2025-01-06T09:30:00Z or with +01:00"
                raise ReplayError(f"{where}: field '{name}' has no UTC offset: write it as {example}")
            return int(moment.timestamp() * 1000)
    raise ReplayError(f"{where}: field '{name}' must be an integer (epoch ms) or ISO-8601 timestamp")


def _check(name: str, avro_type: Any, value: Any, where: str) -> Any:
    """The value, checked against a flat Avro type (message names the field and the expected type)."""
    if isinstance(avro_type, list):
        if value is None and "null" in avro_type:
            return None
        branches = [branch for branch in avro_type if branch != "null"]
        if len(branches) == 1:
            try:
                return _check(name, branches[0], value, where)
            except ReplayError as exc:
                raise ReplayError(f"{exc}{' or null' if 'null' in avro_type else ''}") from None
        raise ReplayError(f"{where}: field '{name}' has a union type the replay cannot check")
    kind = avro_type.get("type") if isinstance(avro_type, dict) else avro_type
    if kind == "string":
        if isinstance(value, str):
            return value
        raise ReplayError(f"{where}: field '{name}' must be a string")
    if kind in ("long", "int"):
        low, high = _LONG_RANGE if kind == "long" else _INT_RANGE
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
        raise ReplayError(f"{where}: field '{name}' must be an integer ({kind})")
    if kind in ("double", "float"):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ReplayError(f"{where}: field '{name}' must be a number")
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        raise ReplayError(f"{where}: field '{name}' must be true or false")
    if kind == "map" and isinstance(avro_type, dict) and avro_type.get("values") == "string":
        if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
            return value
        raise ReplayError(f"{where}: field '{name}' must be an object with string values")
    return value  # other types: fastavro judges when encoding


def check_event(raw: Mapping[str, Any], entry: SchemaEntry, where: str, catalog: Catalog) -> dict[str, Any]:
    """An encodable record for `entry` from a JSON event, or ReplayError naming the field."""
    fields = {spec["name"]: spec for spec in plain_schema(entry.definition)["fields"]}
    for name in raw:
        if name not in fields:
            later = [e for e in catalog.versions(entry.subject) if name in e.field_names]
            if later:
                raise ReplayError(
                    f"{where}: field '{name}' is not in {entry.label()} (it is in {later[0].label()}: "
                    f"use --schema-version {later[0].version})"
                )
            raise ReplayError(f"{where}: unknown field '{name}' ({entry.label()} has no such field)")
    record: dict[str, Any] = {}
    for name, spec in fields.items():
        if name in raw:
            value = raw[name]
            if name in _TIMESTAMP_FIELDS:
                record[name] = _timestamp(name, value, where)
            else:
                record[name] = _check(name, spec["type"], value, where)
        elif name == "received_at" and "ts" in record:
            record[name] = record["ts"]
        elif name == "anonymous_id":
            record[name] = ""
        elif "default" in spec:
            default = spec["default"]
            record[name] = dict(default) if isinstance(default, dict) else default
        else:
            raise ReplayError(f"{where}: field '{name}' is required")
    return record


@dataclass(frozen=True)
class ReplayLine:
    """A checked line: what to produce and what to write to the ground truth."""

    value: bytes
    key: str | None
    timestamp: int
    schema_id: int | None
    event: dict[str, Any] | None
    expected_reason: str | None
    tags: tuple[str, ...]


def parse_line(text: str, where: str, entry: SchemaEntry, catalog: Catalog) -> ReplayLine:
    """One input line (see the module docstring)."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReplayError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise ReplayError(f"{where}: expected a JSON object (one event per line), got {type(obj).__name__}")
    if "event" not in obj and "payload_b64" not in obj:
        record = check_event(obj, entry, where, catalog)
        value = frame(entry.id, _encode(record, entry, where))
        return ReplayLine(value, user_key(record) or None, record["received_at"], entry.id, record, None, ())
    reason = obj.get("expected_reason")
    if reason is not None and reason not in REASONS:
        raise ReplayError(f"{where}: 'expected_reason' must be one of {', '.join(REASONS)}")
    tags = obj.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise ReplayError(f"{where}: 'tags' must be a list of strings")
    key = obj.get("key")
    if key is not None and not isinstance(key, str):
        raise ReplayError(f"{where}: 'key' must be a string or null")
    timestamp = obj.get("timestamp")
    if timestamp is not None and (not isinstance(timestamp, int) or isinstance(timestamp, bool)):
        raise ReplayError(f"{where}: 'timestamp' must be an integer (epoch ms)")
    if "payload_b64" in obj:
        if reason is None:
            raise ReplayError(f"{where}: a 'payload_b64' line needs 'expected_reason' ({', '.join(REASONS)})")
        if timestamp is None:
            raise ReplayError(f"{where}: a 'payload_b64' line needs 'timestamp' (epoch ms)")
        try:
            value = base64.b64decode(str(obj["payload_b64"]), validate=True)
        except binascii.Error:
            raise ReplayError(f"{where}: 'payload_b64' is not valid base64") from None
        schema_id = obj.get("schema_id")
        schema_id = schema_id if isinstance(schema_id, int) and not isinstance(schema_id, bool) else None
        return ReplayLine(value, key, timestamp, schema_id, None, reason, tuple(tags))
    schema_id = obj.get("schema_id")
    line_entry = catalog.by_id(schema_id) if isinstance(schema_id, int) else None
    if line_entry is None or line_entry.subject != EVENT_SUBJECT:
        raise ReplayError(f"{where}: 'schema_id' must be the id of a {EVENT_SUBJECT} schema in the catalog")
    if not isinstance(obj["event"], dict):
        raise ReplayError(f"{where}: 'event' must be a JSON object")
    record = check_event(obj["event"], line_entry, where, catalog)
    value = frame(line_entry.id, _encode(record, line_entry, where))
    if key is None and "key" not in obj:
        key = user_key(record) or None
    stamp = timestamp if timestamp is not None else record["received_at"]
    return ReplayLine(value, key, stamp, line_entry.id, record, reason, tuple(tags))


def _encode(record: Mapping[str, Any], entry: SchemaEntry, where: str) -> bytes:
    try:
        return encode_body(record, entry)
    except ContractError as exc:
        raise ReplayError(f"{where}: {exc}") from None


def load_lines(
    path: Path | str, *, schema_version: int | None = None, catalog: Catalog | None = None
) -> list[ReplayLine]:
    """Check every line of a replay file (nothing is produced when one is bad)."""
    catalog = catalog or load_catalog()
    try:
        entry = (
            catalog.version(EVENT_SUBJECT, schema_version)
            if schema_version is not None
            else catalog.latest(EVENT_SUBJECT)
        )
    except ContractError as exc:
        raise UserError(str(exc)) from None
    lines: list[ReplayLine] = []
    try:
        with open(path, encoding="utf-8") as source:
            for number, text in enumerate(source, 1):
                if text.strip():
                    lines.append(parse_line(text, f"{path}:{number}", entry, catalog))
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return lines


def to_records(lines: Iterable[ReplayLine], partitions: int, *, truth: bool = True) -> list[Record]:
    """Records (see `uxstream.contract.generator.Record`) for a topic with `partitions` partitions."""
    records: list[Record] = []
    for line in lines:
        key = line.key.encode() if line.key is not None else None
        partition = partition_for(key, partitions) if key is not None else 0
        tail = None
        if truth:
            members: dict[str, Any] = {
                "schema_id": line.schema_id,
                "partition": partition,
                "key": line.key,
                "timestamp": line.timestamp,
            }
            if line.event is not None:
                members["event"] = line.event
            else:
                members["payload_b64"] = base64.b64encode(line.value).decode()
            if line.expected_reason is not None:
                members["expected_reason"] = line.expected_reason
            if line.tags:
                members["tags"] = list(line.tags)
            tail = json.dumps(members, separators=(",", ":"))[1:] + "\n"
        category = MALFORMED if line.expected_reason is not None else EVENT
        records.append((line.timestamp, line.value, key or b"", partition, tail, category))
    return records


# ------------------------------------------------------------------------------------------ producing


class Progress:
    """A progress line on stderr, redrawn at most every `interval` seconds (a line every 10 s when
    stderr is not a terminal)."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None, interval: float = 0.5) -> None:
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval = interval if self.tty else 10.0
        self.started = time.monotonic()
        self.last = self.started

    def update(self, done: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < self.interval:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        share = f" ({done / self.total:.0%})" if self.total else ""
        text = f"{self.label}: {done:,}/{self.total:,} records{share}, {done / elapsed:,.0f} records/s"
        if self.tty:
            self.stream.write("\r" + text + ("\n" if final else "\x1b[K"))
        elif final or done:
            self.stream.write(text + "\n")
        self.stream.flush()


@dataclass(frozen=True)
class ProduceResult:
    records: int
    seconds: float
    counts: dict[str, int]
    """Records per category (event, duplicate, malformed, late, future)."""

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


PRODUCER_CONFIG: Final[Mapping[str, Any]] = {
    "enable.idempotence": True,  # acks=all, ordered, no duplicates on retry
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "batch.num.messages": 10_000,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "compression.type": "lz4",
    "partitioner": "murmur2_random",  # Java-compatible (records carry explicit partitions anyway)
    "delivery.report.only.error": True,
}
"""librdkafka settings of the generator/replay producer (measured: see the README's throughput notes)."""


def produce(
    batches: Iterable[Sequence[Record]],
    *,
    total: int,
    settings: KafkaSettings | None,
    topic: str,
    truth: TextIO | None = None,
    rate: float | None = None,
    progress: Progress | None = None,
) -> ProduceResult:
    """Produce batches of records in order (settings None: dry run, nothing sent) and write their
    ground truth. Raises UserError when a record cannot be delivered."""
    failures: list[str] = []
    producer: Any = None
    if settings is not None:
        from confluent_kafka import Producer

        def undelivered(error: Any, message: Any) -> None:  # called for failed deliveries only
            failures.append(str(error))

        def client_error(error: Any) -> None:  # transient errors are retried by librdkafka
            if error.fatal():
                failures.append(str(error))

        producer = Producer(
            {
                **settings.client_config(),
                **PRODUCER_CONFIG,
                "on_delivery": undelivered,
                "error_cb": client_error,
            }
        )
    counts = [0] * len(CATEGORIES)
    started = time.monotonic()
    count = 0
    for batch in batches:
        if producer is not None:
            _produce_batch(producer, topic, batch)
            producer.poll(0)
        if truth is not None:
            truth.writelines([truth_line(count + i, r[4]) for i, r in enumerate(batch) if r[4] is not None])
        for record in batch:
            counts[record[5]] += 1
        count += len(batch)
        if failures:
            break
        if rate:
            ahead = count / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        if progress is not None:
            progress.update(count)
    if producer is not None:
        remaining = producer.flush(120)
        if remaining:
            failures.append(f"{remaining} records were not acknowledged within 120 s")
    if failures:
        where = settings.bootstrap_servers if settings is not None else "?"
        raise UserError(f"producing to {topic} on {where} failed: {failures[0]}")
    seconds = time.monotonic() - started
    if progress is not None:
        progress.update(count, final=True)
    return ProduceResult(count, seconds, dict(zip(CATEGORIES, counts, strict=True)))


def _produce_batch(producer: Any, topic: str, batch: Sequence[Record]) -> None:
    produce_one = producer.produce
    for timestamp, value, key, partition, _, _ in batch:
        try:
            # (topic, value, key, partition, callback, on_delivery, timestamp), positional: faster
            produce_one(topic, value, key or None, partition, None, None, timestamp)
        except BufferError:  # the local queue is full: let librdkafka deliver, then retry
            while True:
                producer.poll(0.05)
                try:
                    produce_one(topic, value, key or None, partition, None, None, timestamp)
                    break
                except BufferError:
                    continue
