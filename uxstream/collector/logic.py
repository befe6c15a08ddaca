"""The collector's rules, pure (no I/O, no clock, no Kafka): unit-testable in microseconds.

- `read_body`: a request body (plain or gzip) within the size, decompressed-size and ratio caps.
- `parse_batch`: a JSON array of event objects (msgspec), within the batch-length cap.
- `prepare`: one event of a batch → its record for `ux.events` (received_at = the collector's clock, the
  client IP truncated, an event_id when the client sent none) or why it is rejected/skipped. Validation is
  `jobs.common.contract.validate` (the limits of `jobs.common.limits` included) plus the Avro types of the
  reader schema, so nothing the collector accepts can stop a job.
- `TokenBucket` / `RateLimiter`: per write key and per client IP, with the seconds to wait (Retry-After).
- `origin_allowed`: the CORS allow-list.
"""

from __future__ import annotations

import hashlib
import math
import struct
import zlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, Literal, cast

import msgspec

from jobs.common.contract import (
    IMPOSSIBLE_VALUE,
    Invalid,
    event_reader_schema,
    record_size_problem,
    scrubbed,
    validate,
)
from jobs.common.limits import MAX_RECORD_BYTES
from jobs.common.privacy import truncate_ip

# ------------------------------------------------------------------------------------ request errors


@dataclass(frozen=True, slots=True)
class Refusal:
    """A whole request refused: HTTP status, error code and a detail (the JSON body's fields)."""

    status: int
    error: str
    detail: str
    retry_after: int | None = None

    def body(self) -> dict[str, str]:
        return {"error": self.error, "detail": self.detail}


BODY_TOO_LARGE: Final = "body_too_large"
BATCH_TOO_LARGE: Final = "batch_too_large"
DECOMPRESSED_TOO_LARGE: Final = "decompressed_too_large"
COMPRESSION_RATIO: Final = "compression_ratio_too_high"
BAD_GZIP: Final = "bad_gzip"
UNSUPPORTED_ENCODING: Final = "unsupported_content_encoding"
MALFORMED_JSON: Final = "malformed_json"
NOT_AN_ARRAY: Final = "not_an_array"


@dataclass(frozen=True, slots=True)
class BodyLimits:
    max_body_bytes: int
    """Largest request body as sent (compressed or not)."""
    max_decompressed_bytes: int
    """Largest body after gzip decompression."""
    max_ratio: int
    """Largest decompressed/compressed size ratio (a gzip bomb compresses ~1000:1)."""
    max_batch_events: int
    """Most events in one batch."""


def body_too_large(limits: BodyLimits, size: int) -> Refusal:
    return Refusal(413, BODY_TOO_LARGE, f"request body over {limits.max_body_bytes} bytes ({size} read)")


def read_body(raw: bytes, encoding: str | None, limits: BodyLimits) -> bytes | Refusal:
    """The JSON bytes of a request body: `raw` itself, or gunzipped within the caps."""
    if len(raw) > limits.max_body_bytes:
        return body_too_large(limits, len(raw))
    coding = (encoding or "identity").strip().lower()
    if coding in ("identity", ""):
        return raw
    if coding not in ("gzip", "x-gzip"):
        return Refusal(415, UNSUPPORTED_ENCODING, f"Content-Encoding {coding!r}: send identity or gzip")
    # The output is capped before it is produced: never more than max_decompressed_bytes + 1 in memory.
    cap = min(limits.max_decompressed_bytes, limits.max_ratio * max(len(raw), 1))
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(raw, cap + 1)
    except zlib.error as exc:
        return Refusal(400, BAD_GZIP, f"the body is not valid gzip ({exc})")
    if len(out) > cap:
        if cap == limits.max_decompressed_bytes:
            detail = f"gzip body decompresses to more than {limits.max_decompressed_bytes} bytes"
            return Refusal(413, DECOMPRESSED_TOO_LARGE, detail)
        detail = f"gzip body of {len(raw)} bytes expands more than {limits.max_ratio} times"
        return Refusal(413, COMPRESSION_RATIO, detail)
    if not inflater.eof:
        return Refusal(400, BAD_GZIP, "the gzip body is truncated")
    return out


_DECODER: Final = msgspec.json.Decoder()


def parse_batch(body: bytes, limits: BodyLimits) -> list[Any] | Refusal:
    """The events of a JSON array body (each still unchecked: any JSON value)."""
    try:
        value = _DECODER.decode(body)
    except msgspec.DecodeError as exc:
        return Refusal(400, MALFORMED_JSON, f"the body is not valid JSON ({exc})")
    if not isinstance(value, list):
        return Refusal(400, NOT_AN_ARRAY, f"expected a JSON array of events, got a JSON {_json_kind(value)}")
    if len(value) > limits.max_batch_events:
        detail = f"{len(value)} events in one batch, limit {limits.max_batch_events}"
        return Refusal(413, BATCH_TOO_LARGE, detail)
    return value


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else type(value).__name__


# -------------------------------------------------------------------------------------- event results

Status = Literal["accepted", "rejected", "skipped"]

SKIP_DNT: Final = "do_not_track"
"""The request carried `DNT: 1` or `Sec-GPC: 1`: nothing of it is written (README, "Collector")."""
SKIP_CONSENT: Final = "consent_denied"
"""The event's `consent` is `denied`: it is not written."""


@dataclass(frozen=True, slots=True)
class Accepted:
    event_id: str
    key: bytes
    """The record key: the user key (SEMANTICS.md, Sessions)."""
    record: dict[str, Any]
    """The event as it is written (every field of the reader schema)."""


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Skipped:
    reason: str


Prepared = Accepted | Rejected | Skipped


Kind = Literal["string", "long", "int", "double", "map"]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    kind: Kind
    nullable: bool


@lru_cache(maxsize=1)
def field_specs() -> tuple[FieldSpec, ...]:
    """The reader schema's fields with their Avro type (what a JSON value must be to encode)."""
    specs = []
    for spec in event_reader_schema().definition["fields"]:
        avro = spec["type"]
        branches = avro if isinstance(avro, list) else [avro]
        nullable = "null" in branches
        if nullable and (len(branches) != 2 or branches[0] != "null"):
            raise ValueError(f'field {spec["name"]!r}: only ["null", T] unions are supported')
        (kind,) = [b for b in branches if b != "null"]
        name = kind.get("type") if isinstance(kind, dict) else kind
        specs.append(FieldSpec(spec["name"], cast(Kind, name), nullable))
    return tuple(specs)


_COLLECTOR_FIELDS: Final = frozenset({"received_at", "ip"})
"""Set by the collector, whatever the client sent."""
_INT32: Final = 2**31


@lru_cache(maxsize=1)
def _client_plan() -> tuple[tuple[str, Kind, str | None], ...]:
    """(field, kind, value when missing) of the fields a client sends, in schema order."""
    return tuple(
        (spec.name, spec.kind, "" if spec.kind == "string" and not spec.nullable else None)
        for spec in field_specs()
        if spec.name not in _COLLECTOR_FIELDS
    )


def _type_problem(kind: Kind, value: Any) -> str | None:
    if kind == "string":
        return None if isinstance(value, str) else "a string"
    if kind in ("long", "int"):
        if not isinstance(value, int) or isinstance(value, bool):
            return "an integer"
        if kind == "int" and not -_INT32 <= value < _INT32:
            return "a 32-bit integer"
        if not -(2**63) <= value < 2**63:
            return "a 64-bit integer"
        return None
    if kind == "double":
        return None if isinstance(value, int | float) and not isinstance(value, bool) else "a number"
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return "an object of strings"
    return None


def content_event_id(project: str, event: Mapping[str, Any]) -> str:
    """The event_id of an event sent without one: a hash of the project and the event's content, so a
    batch the client re-sends (after a 503 or a lost response) gets the same ids and the jobs dedup it."""
    digest = hashlib.sha256(project.encode() + b"\0" + msgspec.json.encode(event, order="sorted"))
    return "c-" + digest.hexdigest()[:32]


def prepare(
    raw: Any,
    *,
    project: str,
    received_at: int,
    client_ip: str | None,
    do_not_track: bool = False,
    truncate: bool = True,
) -> Prepared:
    """One event of a batch → what is written, or why not. `client_ip` is the connection's address (or the
    trusted proxy's X-Forwarded-For); only its truncation (SEMANTICS.md, Privacy) reaches the record
    (`truncate=False`: the caller truncated it already, once per batch)."""
    if do_not_track:
        return Skipped(SKIP_DNT)
    if not isinstance(raw, dict):
        return Rejected(IMPOSSIBLE_VALUE, f"an event must be a JSON object, got a JSON {_json_kind(raw)}")
    record: dict[str, Any] = {}
    get = raw.get
    for name, kind, missing in _client_plan():
        value = get(name)
        if value is None:  # missing: the contract's rules say whether that is allowed, and name it
            record[name] = {} if kind == "map" else missing
            continue
        if type(value) is not str or kind != "string":  # the common case (a string) checked inline
            wanted = _type_problem(kind, value)
            if wanted is not None:
                detail = f"field '{name}' is a JSON {_json_kind(value)}, expected {wanted}"
                return Rejected(IMPOSSIBLE_VALUE, detail)
        record[name] = value
    if record.get("consent") == "denied":
        return Skipped(SKIP_CONSENT)
    if not record["event_id"]:
        record["event_id"] = content_event_id(project, raw)
    record["received_at"] = received_at
    record["ip"] = truncated_ip(client_ip) if truncate else client_ip
    problem: Invalid | None = validate(record)
    if problem is not None:
        return Rejected(problem.reason, problem.detail)
    scrubbed(record)  # a feedback comment reaches Kafka PII-scrubbed already (README "Feedback")
    user = record["user_id"] or record["anonymous_id"]
    return Accepted(record["event_id"], user.encode("utf-8"), record)


def truncated_ip(client_ip: str | None) -> str | None:
    """The client address as it may be stored (SEMANTICS.md, Privacy), None when there is none."""
    if client_ip is None:
        return None
    try:
        return truncate_ip(client_ip)
    except ValueError:
        return None  # a unix socket or a test client: no address to keep


def size_problem(framed: bytes) -> Rejected | None:
    """The contract's record-size rule, on the framed bytes (as the jobs' decoder checks it)."""
    if len(framed) <= MAX_RECORD_BYTES:
        return None
    problem = record_size_problem(len(framed))
    assert problem is not None
    return Rejected(problem.reason, problem.detail)


# ---------------------------------------------------------------------------------------- rate limits


@dataclass(slots=True)
class TokenBucket:
    """`rate` tokens per second, at most `burst` saved. Time is passed in (seconds, monotonic)."""

    rate: float
    burst: float
    tokens: float
    updated: float

    def take(self, amount: float, now: float) -> float:
        """Take `amount` tokens; 0.0 when granted, else the seconds until they would be (nothing taken)."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if amount <= self.tokens:
            self.tokens -= amount
            return 0.0
        if amount > self.burst:
            return math.inf
        return (amount - self.tokens) / self.rate


@dataclass(frozen=True, slots=True)
class Limit:
    rate: float
    """Events per second (0 = no limit)."""
    burst: float


class RateLimiter:
    """Token buckets per name (write key or client IP), the least recently used forgotten beyond
    `max_names` (memory stays bounded under many addresses)."""

    def __init__(self, limit: Limit, max_names: int = 100_000) -> None:
        self._limit = limit
        self._max = max_names
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    @property
    def limit(self) -> Limit:
        return self._limit

    def take(self, name: str, amount: int, now: float) -> float:
        """0.0 when `amount` events are allowed for `name` now, else the seconds to wait."""
        if self._limit.rate <= 0:
            return 0.0
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = TokenBucket(self._limit.rate, self._limit.burst, self._limit.burst, now)
            self._buckets[name] = bucket
            if len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(name)
        return bucket.take(amount, now)


def retry_after(wait_seconds: float) -> int:
    """The Retry-After header's whole seconds for a wait (at least 1)."""
    if math.isinf(wait_seconds):
        return 60
    return max(1, math.ceil(wait_seconds))


# ---------------------------------------------------------------------------------------------- CORS


def origin_allowed(origin: str, allowed: Sequence[str]) -> bool:
    """Exact match against the allow-list (scheme, host and port), `*` allowing every origin."""
    return "*" in allowed or origin.rstrip("/") in allowed


# ------------------------------------------------------------------------------------------- encoding

_NULL: Final = b"\x00"
_SECOND_BRANCH: Final = b"\x02"
_pack_double = struct.Struct("<d").pack


def _varint(value: int) -> bytes:
    """Avro long: zig-zag, then base-128 varint."""
    n = (value << 1) ^ (value >> 63)
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _string(value: str) -> bytes:
    data = value.encode("utf-8")
    return _varint(len(data)) + data


def encode_record(record: Mapping[str, Any]) -> bytes:
    """Avro binary body of a prepared record in the reader schema: the bytes fastavro writes
    (`contract.encode_body`), about three times faster; a check-tier test compares the two."""
    parts: list[bytes] = []
    append = parts.append
    for spec in field_specs():
        value = record[spec.name]
        if spec.nullable:
            if value is None:
                append(_NULL)
                continue
            append(_SECOND_BRANCH)  # every nullable field of the event schema is ["null", T]
        kind = spec.kind
        if kind == "string":
            append(_string(value))
        elif kind == "double":
            append(_pack_double(value))
        elif kind == "map":
            if value:
                append(_varint(len(value)))
                for key, item in value.items():
                    append(_string(key))
                    append(_string(item))
            append(_NULL)
        else:
            append(_varint(value))
    return b"".join(parts)
