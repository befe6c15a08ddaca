"""Oracle base: the clean event set every job oracle starts from (pure Python, no pyflink).

Input is the **ground truth** that `uxstream generate` and `uxstream replay` write (`--output FILE`):
JSON Lines, one line per produced Kafka record, in produce order:

    {"seq": 0, "schema_id": 2, "partition": 1, "key": "usr_3f…", "timestamp": 1736121602420,
     "event": {"event_id": "…", "event_type": "page_view", …every field of the writer schema…},
     "expected_reason": "impossible_value", "tags": ["malformed:impossible_value"]}

    {"seq": 17, "schema_id": null, "partition": 3, "key": "…", "timestamp": 1736121609001,
     "payload_b64": "AQID…", "expected_reason": "bad_magic_byte", "tags": ["malformed:random_bytes"]}

- `seq`: produce order (0, 1, 2, …); `partition`: the partition the record was produced to; `key`: the
  record key (the user key) or null; `timestamp`: the Kafka record timestamp (= `received_at`).
- `event`: an Avro-encodable record, written with `schema_id` (timestamps as epoch-ms integers). Its
  bytes are `jobs.common.contract.encode(event, schema_id)`, exactly.
- `payload_b64`: the exact bytes of a record that is not an encodable event (garbage, truncated, …).
- `expected_reason` (optional on event lines): the dead-letter reason the generator meant. For event
  lines the validity rules decide (the record-size limit on the encoded bytes first, then
  `contract.validate`: the decoder's order); a line whose expected_reason disagrees with them is an error
  here, and so is a payload line over the record-size limit that expects anything but impossible_value.
- `tags` (optional, informative): how the generator made the record (`duplicate`, `late`, `future`,
  `bot`, `stealth_bot`, `login`, `malformed:<kind>`, `anomaly:<kind>`). Oracles must not depend on them.

`load(path)` returns a `CleanEvents`: the valid events in produce order (each marked `duplicate` and
`future`), and one `DeadLetterExpectation` (bytes, reason) per record the jobs must dead-letter.

Duplicates (SEMANTICS.md, "Validity and duplicates"): walking valid events in produce order, an event is
a duplicate when an earlier counted event has the same event_id and the event-time clock has not yet
reached that first event's ts + TTL (default 24 h). The clock is the highest ts of the valid, non-future
events before it (a future timestamp does not move event time). A duplicate is not counted; jobs count
it per window as `duplicates`. An event_id seen again after its TTL is counted anew.

Future timestamps (SEMANTICS.md, Time): `future` marks ts > received_at + max_future_skew (5 min); the
jobs put those in the late ledger with reason `future_timestamp` instead of counting them.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from jobs.common import counters
from jobs.common.contract import (
    DEFAULT_MAX_FUTURE_SKEW_MS,
    EVENT_SUBJECT,
    IMPOSSIBLE_VALUE,
    REASONS,
    Catalog,
    ContractError,
    Reason,
    SchemaEntry,
    encode,
    is_future,
    load_catalog,
    record_size_problem,
    scrubbed,
    user_key,
    validate,
)

if TYPE_CHECKING:
    from jobs.common.enrichment import BotBehaviour

DEFAULT_DEDUP_TTL_MS: Final = 24 * 3_600_000
"""SEMANTICS.md dedup TTL default: 24 hours of event time."""


class GroundTruthError(ValueError):
    """A ground-truth file is malformed or inconsistent. The message names the file and line."""


@dataclass(frozen=True)
class TruthRecord:
    """One line of a ground-truth file: one produced Kafka record."""

    seq: int
    schema_id: int | None
    partition: int | None
    key: str | None
    timestamp: int
    payload: bytes
    """The exact record value produced."""
    event: Mapping[str, Any] | None = field(repr=False)
    """The record as written (writer schema fields), or None for a payload line."""
    expected_reason: Reason | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class OracleEvent:
    """A valid event, as the jobs see it after decoding (every field of the latest schema)."""

    seq: int
    partition: int | None
    schema_id: int
    event: Mapping[str, Any] = field(repr=False)
    duplicate: bool
    """Same event_id as an earlier counted event within the dedup TTL: not counted."""
    future: bool
    """ts more than max_future_skew ahead of received_at: late ledger, reason future_timestamp."""

    @property
    def event_id(self) -> str:
        return str(self.event["event_id"])

    @property
    def ts(self) -> int:
        return int(self.event["ts"])

    @property
    def received_at(self) -> int:
        return int(self.event["received_at"])

    @property
    def user_key(self) -> str:
        return user_key(self.event)


@dataclass(frozen=True)
class DeadLetterExpectation:
    """A record the jobs must dead-letter: its bytes and the reason code."""

    seq: int
    partition: int | None
    key: str | None
    payload: bytes = field(repr=False)
    reason: Reason
    detail: str | None = None
    """The validity rule's detail for event lines (None for payload lines)."""


@dataclass(frozen=True)
class CleanEvents:
    """The oracle base: valid events (produce order) and dead-letter expectations."""

    events: tuple[OracleEvent, ...]
    dead_letters: tuple[DeadLetterExpectation, ...]

    @property
    def counted(self) -> tuple[OracleEvent, ...]:
        """Valid events that are not duplicates (future ones included: see `OracleEvent.future`)."""
        return tuple(e for e in self.events if not e.duplicate)

    @property
    def duplicates(self) -> tuple[OracleEvent, ...]:
        return tuple(e for e in self.events if e.duplicate)

    @property
    def on_time(self) -> tuple[OracleEvent, ...]:
        """Counted events without a future timestamp: what windows and sessions are built from (before
        the jobs' watermark-based lateness, which job oracles decide)."""
        return tuple(e for e in self.events if not e.duplicate and not e.future)


# ------------------------------------------------------------------------------------------ reading


def _fail(where: str, message: str) -> GroundTruthError:
    return GroundTruthError(f"{where}: {message}")


def _int(line: Mapping[str, Any], name: str, where: str, *, optional: bool = False) -> int | None:
    value = line.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(where, f"'{name}' must be an integer")
    return value


def parse_truth_line(text: str, where: str, catalog: Catalog | None = None) -> TruthRecord:
    """One ground-truth line (`where` names it in errors, e.g. `truth.jsonl:7`)."""
    catalog = catalog or load_catalog()
    try:
        line = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(where, f"not valid JSON ({exc.msg})") from None
    if not isinstance(line, dict):
        raise _fail(where, "expected a JSON object")
    seq = _int(line, "seq", where)
    timestamp = _int(line, "timestamp", where)
    schema_id = _int(line, "schema_id", where, optional=True)
    partition = _int(line, "partition", where, optional=True)
    assert seq is not None and timestamp is not None
    key = line.get("key")
    if key is not None and not isinstance(key, str):
        raise _fail(where, "'key' must be a string or null")
    reason = line.get("expected_reason")
    if reason is not None and reason not in REASONS:
        raise _fail(where, f"'expected_reason' must be one of {', '.join(REASONS)}")
    tags = line.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise _fail(where, "'tags' must be a list of strings")
    event = line.get("event")
    if event is not None:
        if not isinstance(event, dict) or schema_id is None:
            raise _fail(where, "'event' must be an object and 'schema_id' an event schema id")
        try:
            payload = encode(event, schema_id, catalog)
        except ContractError as exc:
            raise _fail(where, str(exc)) from None
    else:
        encoded = line.get("payload_b64")
        if not isinstance(encoded, str):
            raise _fail(where, "a line needs 'event' or 'payload_b64'")
        if reason is None:
            raise _fail(where, "a 'payload_b64' line needs 'expected_reason'")
        try:
            payload = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise _fail(where, "'payload_b64' is not valid base64") from None
        too_big = record_size_problem(len(payload))  # checked first by the decoder, whatever the bytes
        if too_big is not None and reason != IMPOSSIBLE_VALUE:
            raise _fail(
                where,
                f"'expected_reason' is {reason} but the decoder gives {too_big.reason}: {too_big.detail}",
            )
    return TruthRecord(seq, schema_id, partition, key, timestamp, payload, event, reason, tuple(tags))


def read_truth(path: Path | str, catalog: Catalog | None = None) -> Iterator[TruthRecord]:
    """The records of a ground-truth file, in file (= produce) order."""
    catalog = catalog or load_catalog()
    with open(path, encoding="utf-8") as lines:
        for number, text in enumerate(lines, 1):
            if text.strip():
                yield parse_truth_line(text, f"{path}:{number}", catalog)


# ------------------------------------------------------------------------------------------ cleaning


def reader_view(event: Mapping[str, Any], reader: SchemaEntry) -> dict[str, Any]:
    """The event as a decoder resolving to `reader` returns it: every reader field, defaults filled,
    doubles as floats."""
    view: dict[str, Any] = {}
    for spec in reader.definition["fields"]:
        name = spec["name"]
        if name in event:
            value = event[name]
        else:
            default = spec.get("default")
            value = (
                dict(default)
                if isinstance(default, dict)
                else list(default)
                if isinstance(default, list)
                else default
            )
        if isinstance(value, int) and not isinstance(value, bool) and _is_double(spec["type"]):
            value = float(value)
        view[name] = value
    return view


def _is_double(avro_type: Any) -> bool:
    if isinstance(avro_type, list):
        return any(_is_double(branch) for branch in avro_type if branch != "null")
    if isinstance(avro_type, dict):
        return avro_type.get("type") in ("double", "float")
    return avro_type in ("double", "float")


def clean(
    records: Iterable[TruthRecord],
    *,
    dedup_ttl_ms: int = DEFAULT_DEDUP_TTL_MS,
    max_future_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS,
    catalog: Catalog | None = None,
) -> CleanEvents:
    """Apply the validity and dedup rules to ground-truth records (see the module docstring)."""
    catalog = catalog or load_catalog()
    reader = catalog.latest(EVENT_SUBJECT)
    events: list[OracleEvent] = []
    dead: list[DeadLetterExpectation] = []
    first_ts: dict[str, int] = {}
    clock: int | None = None
    for record in records:
        if record.event is None:
            assert record.expected_reason is not None
            dead.append(
                DeadLetterExpectation(
                    record.seq, record.partition, record.key, record.payload, record.expected_reason
                )
            )
            continue
        view = reader_view(record.event, reader)
        problem = record_size_problem(len(record.payload)) or validate(view)
        if problem is not None or record.expected_reason is not None:
            found = problem.reason if problem else None
            if record.expected_reason is not None and found != record.expected_reason:
                raise GroundTruthError(
                    f"record seq {record.seq}: expected_reason is {record.expected_reason} but the validity "
                    f"rules give {found or 'valid'}"
                )
            assert problem is not None
            dead.append(
                DeadLetterExpectation(
                    record.seq, record.partition, record.key, record.payload, problem.reason, problem.detail
                )
            )
            continue
        assert record.schema_id is not None
        ts, event_id = view["ts"], view["event_id"]
        future = is_future(ts, view["received_at"], max_future_skew_ms)
        first = first_ts.get(event_id)
        duplicate = first is not None and (clock is None or clock < first + dedup_ttl_ms)
        if not duplicate:
            first_ts[event_id] = ts
        if not future and (clock is None or ts > clock):
            clock = ts
        scrubbed(view)  # the decode step scrubs feedback comments of valid events (README "Feedback")
        events.append(OracleEvent(record.seq, record.partition, record.schema_id, view, duplicate, future))
    return CleanEvents(tuple(events), tuple(dead))


def load(
    path: Path | str,
    *,
    dedup_ttl_ms: int = DEFAULT_DEDUP_TTL_MS,
    max_future_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS,
    catalog: Catalog | None = None,
) -> CleanEvents:
    """`clean(read_truth(path))`: the oracle base of a ground-truth file."""
    catalog = catalog or load_catalog()
    return clean(
        read_truth(path, catalog),
        dedup_ttl_ms=dedup_ttl_ms,
        max_future_skew_ms=max_future_skew_ms,
        catalog=catalog,
    )


FUTURE: Final = "future_timestamp"
LATE: Final = "late"
ON_TIME: Final = "on_time"


@dataclass(frozen=True)
class Arrival:
    """How a job classifies one valid event on arrival (SEMANTICS.md: Time, Late data, duplicates)."""

    event: Mapping[str, Any]
    kind: str
    """FUTURE or LATE (late ledger, with that reason) or ON_TIME."""
    watermark: int | None
    """The watermark when it arrived (max event time so far − out-of-orderness; None before any)."""
    occurrence: int
    """On time: 1 for the first arrival of its event_id, n for the n-th (a duplicate); else 0."""
    acts_bot: bool = False
    """Its user key behaves like a bot (the behavioural rule, `jobs.common.enrichment.BotBehaviour`)."""


def arrivals(
    events: Iterable[Any],
    *,
    relevant: frozenset[str] | None = None,
    out_of_orderness_ms: int = 5_000,
    max_future_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS,
    bots: BotBehaviour | None = None,
) -> Iterator[Arrival]:
    """The jobs' arrival classification of valid events (`OracleEvent`s, or anything with `.event` and
    optionally `.partition`) in produce order. Each Kafka partition has its own watermark: every valid
    non-future event of the partition moves it (per record, before the next arrives); only events whose
    event_name is in `relevant` (None: all) are classified and yielded. Future events never move it; an
    event at or below its partition's watermark is late; on-time events are numbered per event_id (the
    jobs' dedup; a user's events, and so the copies of an event, share a partition). `bots`: the
    behavioural bot rule, fed every valid non-future event (relevant or not) in the same order."""
    occurrences: dict[str, int] = {}
    max_ts: dict[int | None, int] = {}
    for item in events:
        event = item.event
        ts = int(event["ts"])
        partition = getattr(item, "partition", None)
        latest = max_ts.get(partition)
        watermark = None if latest is None else latest - out_of_orderness_ms
        future = is_future(ts, int(event["received_at"]), max_future_skew_ms)
        if not future and (latest is None or ts > latest):
            max_ts[partition] = ts
        acts_bot = bots is not None and not future and bots.verdict(partition, event)
        if relevant is not None and event["event_name"] not in relevant:
            continue
        if future:
            yield Arrival(event, FUTURE, watermark, 0)
        elif watermark is not None and ts <= watermark:
            yield Arrival(event, LATE, watermark, 0, acts_bot)
        else:
            occurrence = occurrences.get(event["event_id"], 0) + 1
            occurrences[event["event_id"]] = occurrence
            yield Arrival(event, ON_TIME, watermark, occurrence, acts_bot)


def arrival_counts(arrived: Iterable[Arrival]) -> dict[str, int]:
    """What the jobs' counters (jobs.common.counters) count of these arrivals: late, future, duplicates."""
    counts = {counters.LATE_EVENTS: 0, counters.FUTURE_EVENTS: 0, counters.DUPLICATES: 0}
    for arrival in arrived:
        if arrival.kind == LATE:
            counts[counters.LATE_EVENTS] += 1
        elif arrival.kind == FUTURE:
            counts[counters.FUTURE_EVENTS] += 1
        elif arrival.occurrence > 1:
            counts[counters.DUPLICATES] += 1
    return counts
