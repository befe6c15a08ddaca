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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
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


def _build_record_source() -> str:
    """Source of `_fast_record(raw)`: the client's fields of a JSON object as a record dict, straight-line
    code per field in schema order (no loop, no spec lookups). It returns None at the first value whose
    type is not exactly what the field takes (a str subclass, a bool, an out-of-range int, …): the caller
    then runs the reference loop (`prepare_reference`), which names the problem. So the fast path only
    ever accepts what the reference accepts, with the same record."""
    lines = ["def _fast_record(raw):", "    get = raw.get"]
    names = []
    for index, (name, kind, missing) in enumerate(_client_plan()):
        if not name.isidentifier():
            raise ValueError(f"field {name!r}: not an identifier")
        var = f"v{index}"
        names.append((name, var))
        lines.append(f"    {var} = get({name!r})")
        default = "{}" if kind == "map" else repr(missing)
        lines.append(f"    if {var} is None:")
        lines.append(f"        {var} = {default}")
        if kind == "string":
            check = f"type({var}) is not str"
        elif kind == "long":
            check = f"type({var}) is not int or not {-(2**63)} <= {var} < {2**63}"
        elif kind == "int":
            check = f"type({var}) is not int or not {-_INT32} <= {var} < {_INT32}"
        elif kind == "double":
            check = f"type({var}) is not float and type({var}) is not int"
        else:
            check = f"type({var}) is not dict or ({var} and not _all_str({var}))"
        lines.append(f"    elif {check}:")
        lines.append("        return None")
    fields = ", ".join(f"{name!r}: {var}" for name, var in names)
    lines.append(f"    return {{{fields}}}")
    return "\n".join(lines) + "\n"


def _all_str(mapping: dict[Any, Any]) -> bool:
    for item in mapping.values():  # noqa: SIM110 (a loop: no generator object per event)
        if type(item) is not str:
            return False
    return True


@lru_cache(maxsize=1)
def _fast_record() -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    namespace: dict[str, Any] = {"_all_str": _all_str}
    exec(compile(_build_record_source(), "<collector fast record>", "exec"), namespace)
    return cast(Callable[[dict[str, Any]], "dict[str, Any] | None"], namespace["_fast_record"])


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
    (`truncate=False`: the caller truncated it already, once per batch).

    The fast path (`_fast_record`) builds the record of a well-typed JSON object; anything else goes to
    `prepare_reference`. Both give the same result for every input (tests/collector/test_fast_path.py)."""
    if do_not_track:
        return Skipped(SKIP_DNT)
    if type(raw) is not dict:
        return prepare_reference(
            raw, project=project, received_at=received_at, client_ip=client_ip, truncate=truncate
        )
    record = _fast_record()(raw)
    if record is None:
        return prepare_reference(
            raw, project=project, received_at=received_at, client_ip=client_ip, truncate=truncate
        )
    return _finish(record, raw, project, received_at, truncated_ip(client_ip) if truncate else client_ip)


@lru_cache(maxsize=1)
def client_defaults() -> Mapping[str, Any]:
    """A record of the client's fields with nothing sent: the value `prepare` gives each missing field. A
    template shared by every caller: copy it, and give the map field a dict of its own."""
    return MappingProxyType(
        {name: ({} if kind == "map" else missing) for name, kind, missing in _client_plan()}
    )


def prepare_typed(
    record: dict[str, Any],
    content: Callable[[], Mapping[str, Any]],
    *,
    project: str,
    received_at: int,
    client_ip: str | None,
) -> Prepared:
    """`prepare` for a record whose values already have exactly the types of its fields (every client
    field present, missing ones as in `client_defaults`, the map a dict of its own), e.g. decoded from
    Protocol Buffers by the gRPC endpoint. `content()` gives the event as the client sent it, by field
    name: what `content_event_id` hashes when the client sent no event_id (only then is it called).
    `client_ip` is already truncated."""
    return _finish(record, content, project, received_at, client_ip)


def prepare_reference(
    raw: Any,
    *,
    project: str,
    received_at: int,
    client_ip: str | None,
    do_not_track: bool = False,
    truncate: bool = True,
) -> Prepared:
    """`prepare` field by field from the schema's specs (the slow, obviously right path)."""
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
    return _finish(record, raw, project, received_at, truncated_ip(client_ip) if truncate else client_ip)


def _finish(
    record: dict[str, Any],
    raw: dict[str, Any] | Callable[[], Mapping[str, Any]],
    project: str,
    received_at: int,
    ip: str | None,
) -> Prepared:
    """The collector's fields and the contract's rules on a well-typed record (`raw`: what the client
    sent, or a function giving it)."""
    if record.get("consent") == "denied":
        return Skipped(SKIP_CONSENT)
    if not record["event_id"]:
        record["event_id"] = content_event_id(project, raw if isinstance(raw, dict) else raw())
    record["received_at"] = received_at
    record["ip"] = ip
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


_ONE_BYTE: Final = tuple(bytes((n,)) for n in range(128))


def _varint(value: int) -> bytes:
    """Avro long: zig-zag, then base-128 varint (the common sizes unrolled: 1 and 2 bytes, and the 6 of
    an epoch-millisecond timestamp)."""
    n = (value << 1) ^ (value >> 63)
    if n < 0x80:
        return _ONE_BYTE[n]
    if n < 0x4000:
        return bytes((n & 0x7F | 0x80, n >> 7))
    if 0x8_0000_0000 <= n < 0x400_0000_0000:
        return bytes((
            n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80, n >> 14 & 0x7F | 0x80, n >> 21 & 0x7F | 0x80,
            n >> 28 & 0x7F | 0x80, n >> 35,
        ))  # fmt: skip
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_received_varint: Final = lru_cache(maxsize=16)(_varint)
"""`_varint` of `received_at`: one value per batch, so encoded once per batch."""


def _string(value: str) -> bytes:
    data = value.encode("utf-8")
    return _varint(len(data)) + data


_SMALL_LENGTHS: Final = tuple(bytes(((n << 1),)) for n in range(64))
"""The Avro long of 0..63 (one byte): the length prefix of most strings."""


def _encoder_source() -> str:
    """Source of `_encode(record)`: the Avro binary body in the reader schema as straight-line code per
    field (no loop over the specs, no per-field branching on the type at run time)."""
    lines = ["def _encode(record):", "    out = []", "    add = out.append"]
    for spec in field_specs():
        value = f"record[{spec.name!r}]"
        body: list[str]
        if spec.kind == "string":
            body = ["data = v.encode()", "n = len(data)"]
            body += ["add(SMALL[n] if n < 64 else VARINT(n))", "add(data)"]
        elif spec.kind == "double":
            body = ["add(DOUBLE(v))"]
        elif spec.kind == "map":
            body = [
                "if v:",
                "    add(VARINT(len(v)))",
                "    for key, item in v.items():",
                "        add(STRING(key))",
                "        add(STRING(item))",
                "add(NULL)",
            ]
        elif spec.name == "received_at":
            body = ["add(RECEIVED(v))"]
        else:
            body = ["add(VARINT(v))"]
        lines.append(f"    v = {value}")
        if spec.nullable:
            lines += ["    if v is None:", "        add(NULL)", "    else:", "        add(SECOND)"]
            lines += [f"        {line}" for line in body]
        else:
            lines += [f"    {line}" for line in body]
    lines.append("    return b''.join(out)")
    return "\n".join(lines) + "\n"


@lru_cache(maxsize=1)
def _encoder() -> Callable[[Mapping[str, Any]], bytes]:
    namespace: dict[str, Any] = {
        "SMALL": _SMALL_LENGTHS, "VARINT": _varint, "RECEIVED": _received_varint, "DOUBLE": _pack_double,
        "STRING": _string, "NULL": _NULL, "SECOND": _SECOND_BRANCH,
    }  # fmt: skip
    exec(compile(_encoder_source(), "<collector avro encoder>", "exec"), namespace)
    return cast(Callable[[Mapping[str, Any]], bytes], namespace["_encode"])


def encode_record(record: Mapping[str, Any]) -> bytes:
    """Avro binary body of a prepared record in the reader schema: the bytes fastavro writes
    (`contract.encode_body`), several times faster (a per-schema encoder generated once); the tests compare
    the two (tests/collector/test_logic.py, tests/collector/test_fast_path.py)."""
    return _encoder()(record)
