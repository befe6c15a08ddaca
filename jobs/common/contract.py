"""The event contract shared by jobs, tools and oracles: schemas, wire format, validity rules.

Pure Python (fastavro only, no pyflink import): the jobs' decode step, the generator, `replay` and the
oracles all call the same functions, so they cannot disagree about what a valid event is.

- **Catalog**: `schemas/avro/catalog.json` maps every schema id to (subject, version, file). The `.avsc`
  files are the single source of record types; `load_catalog()` parses them once (cached).
- **Wire format** (Confluent): magic byte 0x00, 4-byte big-endian schema id, Avro binary body.
  `encode(record, schema_id)` frames a record; `decode(payload)` returns a `DecodedEvent` (the record
  resolved to the reader schema = the latest `ux.events-value` version, every field present) or an
  `Invalid` carrying a reason code and a detail naming the field or byte at fault.
- **Schema resolution** goes through a `SchemaResolver`: `CatalogResolver` (default, no server) or
  `SchemaRegistryResolver` (confluent-kafka's Schema Registry client, imported lazily).
- **Validity** (SEMANTICS.md, "Validity and duplicates"): `validate(event)` applies the rules below to a
  decoded record or to a JSON event of the ground truth. The first failing rule decides the reason:

  0. `impossible_value`, the limits of `jobs.common.limits` (the sinks' hard limits, so no record that
     decodes can fail a write): every field in reader-schema order, a string field longer than its
     character limit, then containing NUL (U+0000), then a lone surrogate; `properties` with more than
     64 entries, then per entry (map order) key length, key content, value length, value content. The
     detail names field, measure and limit: `field 'page_path': 5000 characters, limit 512`.
  1. `missing_field`: event_id, event_type or event_name missing or empty; no user key (user_id and
     anonymous_id both missing or empty); ts or received_at missing.
  2. `impossible_value`: event_type not one of `EVENT_TYPES`.
  3. `missing_field`: page_view without page_path, error without error_type, web_vital without any of
     lcp_ms, inp_ms, cls.
  4. `impossible_value`: ts or received_at before 2000-01-01T00:00:00Z or after 9999-12-31 (not
     representable as a timestamp); lcp_ms, inp_ms, cls, page_load_ms or engagement_time_ms negative,
     NaN or infinite; ip present but not an IPv4/IPv6 address.
  5. feedback events (schema v3, issue 22 item 6): `missing_field` when survey_id is missing or empty, then
     when feedback_scale is missing or empty, then when feedback_score is missing; `impossible_value` when
     feedback_scale is not one of `FEEDBACK_SCALES`, then when feedback_score lies outside its scale.
     (Feedback fields on other event types are not checked and not used.)

  A valid event's `feedback_comment` is PII-scrubbed (`scrub_comment`) by both decoders before anything
  downstream sees it; the limits apply to the comment as sent.

  Before any of these, `EventDecoder.decode` checks the size of the raw Kafka value (the Confluent header
  included, before the header is read): more than `limits.MAX_RECORD_BYTES` is `impossible_value`
  (`record_size_problem`; its dead letter has no schema id). The oracle applies it to the encoded bytes.

  Future timestamps are not a dead-letter reason: the job sends them to the late ledger
  (`is_future(ts, received_at)`).

Timestamps are plain integers (UTC epoch milliseconds) everywhere in this module: schemas are parsed with
their `timestamp-millis` logical types removed (same bytes on the wire, no datetime conversion cost).
"""

from __future__ import annotations

import io
import ipaddress
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, Literal, Protocol, cast

import fastavro

from jobs.common.limits import (
    MAX_PROPERTIES,
    MAX_PROPERTY_KEY,
    MAX_PROPERTY_VALUE,
    MAX_RECORD_BYTES,
    PROPERTIES_FIELD,
    string_limit,
)

SCHEMA_DIR: Final = Path(__file__).resolve().parent.parent.parent / "schemas" / "avro"
"""Where the catalog and `.avsc` files live (same folder as `uxstream.paths.SCHEMAS`)."""

CATALOG_FILE: Final = "catalog.json"
NAMESPACE: Final = "io.uxstream"
EVENT_SUBJECT: Final = "ux.events-value"
EVENT_RECORD: Final = "io.uxstream.UxEvent"

MAGIC_BYTE: Final = 0
HEADER_SIZE: Final = 5
"""Magic byte + 4-byte schema id."""

# --------------------------------------------------------------------------------------- reason codes

Reason = Literal[
    "bad_magic_byte",
    "truncated_frame",
    "unknown_schema_id",
    "undecodable_avro",
    "missing_field",
    "impossible_value",
]
BAD_MAGIC_BYTE: Final = "bad_magic_byte"
"""The first byte is not 0x00: not Confluent-framed (e.g. JSON or random bytes)."""
TRUNCATED_FRAME: Final = "truncated_frame"
"""Fewer than 5 bytes (or a null value): no complete header."""
UNKNOWN_SCHEMA_ID: Final = "unknown_schema_id"
"""The header's schema id is unknown to the resolver, or is not a UX event schema."""
UNDECODABLE_AVRO: Final = "undecodable_avro"
"""The body does not decode with the writer schema: truncated, corrupt, or trailing bytes after it."""
MISSING_FIELD: Final = "missing_field"
"""A required field is missing or empty."""
IMPOSSIBLE_VALUE: Final = "impossible_value"
"""A value no real event can have (ts before 2000, negative duration, CLS < 0, unknown event_type …)."""

REASONS: Final[tuple[Reason, ...]] = (
    BAD_MAGIC_BYTE,
    TRUNCATED_FRAME,
    UNKNOWN_SCHEMA_ID,
    UNDECODABLE_AVRO,
    MISSING_FIELD,
    IMPOSSIBLE_VALUE,
)

# ------------------------------------------------------------------------------------- validity rules

EVENT_TYPES: Final = frozenset(
    {"page_view", "click", "error", "web_vital", "heartbeat", "custom", "feedback"}
)
"""Known event types. A string checked here rather than an Avro enum: adding a type is then a code change
in one place, with no schema version and no reader breaking on an unknown enum symbol."""

MIN_TS_MS: Final = 946_684_800_000
"""2000-01-01T00:00:00Z: earlier timestamps are impossible (typically seconds sent instead of ms)."""
MAX_TS_MS: Final = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z: later timestamps are not representable as SQL timestamps."""
DEFAULT_MAX_FUTURE_SKEW_MS: Final = 300_000
"""SEMANTICS.md `max_future_skew` default: 5 minutes."""

REQUIRED_STRINGS: Final = ("event_id", "event_type", "event_name")
NON_NEGATIVE_NUMBERS: Final = ("lcp_ms", "inp_ms", "cls", "page_load_ms", "engagement_time_ms")
WEB_VITALS: Final = ("lcp_ms", "inp_ms", "cls")

FEEDBACK: Final = "feedback"
"""The event type of a survey answer (schema v3 fields survey_id, feedback_scale, feedback_score,
feedback_comment)."""
FEEDBACK_SCALES: Final[dict[str, tuple[int, int]]] = {"0-10": (0, 10), "1-5": (1, 5)}
"""Allowed feedback scales and their inclusive score ranges: 0-10 is NPS ("how likely are you to
recommend …"), 1-5 is CSAT. Listed in the order messages name them."""
NPS_SCALE: Final = "0-10"
CSAT_SCALE: Final = "1-5"
NPS_PROMOTER_MIN: Final = 9
"""NPS: 9-10 are promoters, 7-8 passives, 0-6 detractors; NPS = 100 * (promoters - detractors) / responses."""
NPS_DETRACTOR_MAX: Final = 6
COMMENT_FIELD: Final = "feedback_comment"

EMAIL_PATTERN: Final = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
"""An e-mail address (ASCII local part of at most 64 characters, as RFC 5321 allows, and a dotted domain).
Replaced by `[email]` first. The bound keeps the search linear on long runs of letters."""
NUMBER_PATTERN: Final = re.compile(r"[+(]?[0-9](?:[ ().\/-]{0,2}[0-9]){3,}")
"""A phone, card, account or id number: at least 4 ASCII digits, consecutive digits separated by at most
two of space ( ) . / - , optionally led by + or (. Replaced by `[number]` after the e-mails."""
EMAIL_MASK: Final = "[email]"
NUMBER_MASK: Final = "[number]"


def scrub_comment(text: str) -> str:
    """PII scrubbing of a feedback comment (README "Feedback"): every e-mail address → `[email]`, then
    every run of >= 4 digits (with the separators of `NUMBER_PATTERN`) → `[number]`. Leftmost greedy
    matches, no overlap; the JVM's io.uxstream.udf.CommentScrub applies the same two patterns."""
    if "@" in text:
        text = EMAIL_PATTERN.sub(EMAIL_MASK, text)
    return NUMBER_PATTERN.sub(NUMBER_MASK, text)


def scrubbed(event: dict[str, Any]) -> dict[str, Any]:
    """`event` with its feedback comment scrubbed in place (when it has one); returns it."""
    comment = event.get(COMMENT_FIELD)
    if isinstance(comment, str):
        event[COMMENT_FIELD] = scrub_comment(comment)
    return event


class ContractError(ValueError):
    """The schema catalog or a schema is unusable, or a record does not fit its schema."""


@dataclass(frozen=True, slots=True)
class Invalid:
    """Why a record cannot be accepted: a reason code (one of `REASONS`) and a detail naming the field."""

    reason: Reason
    detail: str
    schema_id: int | None = None


@dataclass(frozen=True, slots=True)
class DecodedEvent:
    """A valid event: the record resolved to the reader schema (every field of the latest version)."""

    schema_id: int
    event: dict[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.event["event_id"])

    @property
    def ts(self) -> int:
        return int(self.event["ts"])

    @property
    def user_key(self) -> str:
        return user_key(self.event)


def user_key(event: Mapping[str, Any]) -> str:
    """SEMANTICS.md session key: user_id when present (non-empty), else anonymous_id."""
    user_id = event.get("user_id")
    if user_id:
        return str(user_id)
    return str(event.get("anonymous_id") or "")


def is_future(ts: int, received_at: int, max_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS) -> bool:
    """True when the event time is more than `max_skew_ms` ahead of the receive time (SEMANTICS.md, Time).

    Such an event must not move the watermark; the job ledgers it with reason `future_timestamp`.
    """
    return ts - received_at > max_skew_ms


def iso_ms(ms: int) -> str:
    """UTC ISO-8601 rendering of epoch milliseconds (falls back to the number when out of range)."""
    try:
        moment = datetime.fromtimestamp(ms / 1000, UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (OverflowError, ValueError, OSError):
        return f"{ms} ms since the epoch"


def _missing(name: str) -> Invalid:
    return Invalid(MISSING_FIELD, f"field '{name}' is missing or empty")


_FORBIDDEN: Final = re.compile("[\x00\ud800-\udfff]")
"""Characters no string may contain: NUL (PostgreSQL text cannot hold it) and lone surrogates."""


def record_size_problem(size: int) -> Invalid | None:
    """The record-size limit (checked first, on the raw Kafka value incl. the header); None within it."""
    if size > MAX_RECORD_BYTES:
        return Invalid(IMPOSSIBLE_VALUE, f"record: {size} bytes, limit {MAX_RECORD_BYTES}")
    return None


def _is_string_type(avro_type: Any) -> bool:
    if isinstance(avro_type, list):
        return any(_is_string_type(branch) for branch in avro_type)
    if isinstance(avro_type, dict):
        return bool(avro_type.get("type") == "string")
    return bool(avro_type == "string")


@lru_cache(maxsize=1)
def limit_plan() -> tuple[tuple[str, int], ...]:
    """(field, character limit) of each string field of the reader schema, in schema order, and
    (`properties`, -1) at its position: the order the limits are checked in."""
    plan: list[tuple[str, int]] = []
    for spec in event_reader_schema().definition["fields"]:
        name = spec["name"]
        if name == PROPERTIES_FIELD:
            plan.append((name, -1))
        elif _is_string_type(spec["type"]):
            plan.append((name, string_limit(name)))
    return tuple(plan)


def _text_problem(where: str, value: Any, limit: int) -> Invalid | None:
    if not isinstance(value, str):
        return None  # not a string (a JSON event of the wrong type): encoding it fails, not a limit
    if len(value) > limit:
        return Invalid(IMPOSSIBLE_VALUE, f"{where}: {len(value)} characters, limit {limit}")
    bad = _FORBIDDEN.search(value)
    if bad is not None:
        char = bad.group()
        what = "NUL (U+0000)" if char == "\x00" else f"lone surrogate U+{ord(char):04X}"
        return Invalid(IMPOSSIBLE_VALUE, f"{where}: {what} at position {bad.start()}, not allowed")
    return None


def _first_limit_problem(event: Mapping[str, Any]) -> Invalid | None:
    """The first broken limit in the documented order (the slow, exact path)."""
    for name, limit in limit_plan():
        value = event.get(name)
        if limit >= 0:
            problem = _text_problem(f"field '{name}'", value, limit)
            if problem is not None:
                return problem
            continue
        if not isinstance(value, Mapping):
            continue
        if len(value) > MAX_PROPERTIES:
            return Invalid(IMPOSSIBLE_VALUE, f"field '{name}': {len(value)} entries, limit {MAX_PROPERTIES}")
        for index, (key, item) in enumerate(value.items()):
            problem = _text_problem(f"field '{name}': key #{index}", key, MAX_PROPERTY_KEY)
            if problem is None:
                problem = _text_problem(f"field '{name}': value #{index}", item, MAX_PROPERTY_VALUE)
            if problem is not None:
                return problem
    return None


def _limits_scan_source() -> str:
    """Source of `_limits_scan(event)`: the loop of `limits_problem` unrolled over `limit_plan()`
    (straight-line code per field, the limits as constants). It returns False as soon as a length is
    over its limit, else whether no collected string holds a forbidden character."""
    lines = ["def _limits_scan(event):", "    get = event.get", "    texts = []", "    add = texts.append"]
    for name, limit in limit_plan():
        lines.append(f"    value = get({name!r})")
        if limit >= 0:
            lines += [
                "    if isinstance(value, str):",
                f"        if len(value) > {limit}:",
                "            return False",
                "        add(value)",
            ]
        else:
            lines += [
                "    if (type(value) is dict or isinstance(value, Mapping)) and value:",
                f"        if len(value) > {MAX_PROPERTIES}:",
                "            return False",
                "        for key, item in value.items():",
                "            if isinstance(key, str):",
                f"                if len(key) > {MAX_PROPERTY_KEY}:",
                "                    return False",
                "                add(key)",
                "            if isinstance(item, str):",
                f"                if len(item) > {MAX_PROPERTY_VALUE}:",
                "                    return False",
                "                add(item)",
            ]
    # `in` finds a NUL at memchr speed; strict UTF-8 encoding fails exactly on a lone surrogate (and
    # an ASCII text holds none): both in C, several times faster than the regex over the same text.
    lines += [
        "    joined = ''.join(texts)",
        "    if '\\x00' in joined:",
        "        return False",
        "    if joined.isascii():",
        "        return True",
        "    try:",
        "        joined.encode()",
        "    except UnicodeEncodeError:",
        "        return False",
        "    return True",
    ]
    return "\n".join(lines) + "\n"


@lru_cache(maxsize=1)
def _limits_scan() -> Callable[[Mapping[str, Any]], bool]:
    namespace: dict[str, Any] = {"Mapping": Mapping}
    exec(compile(_limits_scan_source(), "<contract limits scan>", "exec"), namespace)
    return cast(Callable[[Mapping[str, Any]], bool], namespace["_limits_scan"])


def limits_problem(event: Mapping[str, Any]) -> Invalid | None:
    """Rule 0 (module docstring, `jobs.common.limits`): the first broken size or content limit, or None.

    Fast path (`_limits_scan`, generated once from `limit_plan()`): lengths checked inline and every
    string searched at once for a forbidden character; only a record that breaks something is walked
    again in the exact order (`_first_limit_problem`) to name the first problem.
    """
    if _limits_scan()(event):
        return None
    return _first_limit_problem(event)


def _not_an_ip(ip: Any) -> bool:
    """True when `ip` is not an IPv4/IPv6 address (as `ipaddress.ip_address` decides)."""
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        return True
    return False


_not_an_ip_text: Final = lru_cache(maxsize=65_536)(_not_an_ip)
"""`_not_an_ip` of a string, cached: truncated client addresses repeat a lot."""


def validate(event: Mapping[str, Any]) -> Invalid | None:
    """Apply the validity rules (module docstring) to a record; None when the event is valid."""
    limited = limits_problem(event)
    if limited is not None:
        return limited
    get = event.get
    for name in REQUIRED_STRINGS:
        if not get(name):
            return _missing(name)
    if not get("user_id") and not get("anonymous_id"):
        return Invalid(
            MISSING_FIELD, "field 'anonymous_id' is missing or empty and 'user_id' is null: no user key"
        )
    ts = get("ts")
    received_at = get("received_at")
    if not isinstance(ts, int):
        return _missing("ts")
    if not isinstance(received_at, int):
        return _missing("received_at")
    event_type = get("event_type")
    if event_type not in EVENT_TYPES:
        known = ", ".join(sorted(EVENT_TYPES))
        return Invalid(IMPOSSIBLE_VALUE, f"field 'event_type' is {event_type!r}, not one of {known}")
    if event_type == "page_view":
        if not get("page_path"):
            return Invalid(MISSING_FIELD, "field 'page_path' is missing or empty (required for page_view)")
    elif event_type == "error":
        if not get("error_type"):
            return Invalid(MISSING_FIELD, "field 'error_type' is missing or empty (required for error)")
    elif event_type == "web_vital" and get("lcp_ms") is None and get("inp_ms") is None and get("cls") is None:
        return Invalid(
            MISSING_FIELD, "field 'lcp_ms' is missing: a web_vital event carries none of lcp_ms, inp_ms, cls"
        )
    for name, moment in (("ts", ts), ("received_at", received_at)):
        if moment < MIN_TS_MS:
            return Invalid(IMPOSSIBLE_VALUE, f"field '{name}' is {iso_ms(moment)}, before 2000-01-01")
        if moment > MAX_TS_MS:
            return Invalid(IMPOSSIBLE_VALUE, f"field '{name}' is {moment}, after 9999-12-31")
    for name in NON_NEGATIVE_NUMBERS:
        value = get(name)
        if value is not None and not (0 <= value < math.inf):
            return Invalid(IMPOSSIBLE_VALUE, f"field '{name}' is {value!r}, must be a finite number >= 0")
    ip = get("ip")
    if ip is not None and (_not_an_ip_text(ip) if type(ip) is str else _not_an_ip(ip)):
        return Invalid(IMPOSSIBLE_VALUE, f"field 'ip' is {ip!r}, not an IPv4 or IPv6 address")
    if event_type == FEEDBACK:
        return _feedback_problem(event)
    return None


def _feedback_problem(event: Mapping[str, Any]) -> Invalid | None:
    """Rule 5 (module docstring): what a feedback event needs."""
    get = event.get
    for name in ("survey_id", "feedback_scale"):
        if not get(name):
            return Invalid(MISSING_FIELD, f"field '{name}' is missing or empty (required for feedback)")
    score = get("feedback_score")
    if score is None:
        return Invalid(MISSING_FIELD, "field 'feedback_score' is missing (required for feedback)")
    scale = get("feedback_scale")
    bounds = FEEDBACK_SCALES.get(scale) if isinstance(scale, str) else None
    if bounds is None:
        known = ", ".join(FEEDBACK_SCALES)
        return Invalid(IMPOSSIBLE_VALUE, f"field 'feedback_scale' is {scale!r}, not one of {known}")
    if isinstance(score, bool) or not isinstance(score, int) or not bounds[0] <= score <= bounds[1]:
        return Invalid(IMPOSSIBLE_VALUE, f"field 'feedback_score' is {score!r}, outside the {scale} scale")
    return None


# ---------------------------------------------------------------------------------------- the catalog


def plain_schema(schema: Any) -> Any:
    """A copy of a schema definition without `logicalType` annotations (timestamps stay integers)."""
    if isinstance(schema, dict):
        return {key: plain_schema(value) for key, value in schema.items() if key != "logicalType"}
    if isinstance(schema, list):
        return [plain_schema(item) for item in schema]
    return schema


def full_name(definition: Mapping[str, Any]) -> str:
    """Full name of a named schema definition (namespace.name)."""
    name = str(definition.get("name", ""))
    namespace = definition.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


@dataclass(frozen=True, eq=False)
class SchemaEntry:
    """One schema version of the catalog, parsed."""

    id: int
    subject: str
    version: int
    file: str
    path: Path
    definition: dict[str, Any] = field(repr=False)
    """The `.avsc` JSON as written (with logical types and docs)."""
    parsed: Any = field(repr=False)
    """fastavro-parsed plain schema (no logical types): what encode/decode use."""

    @property
    def name(self) -> str:
        """Short name from the file (`ux_event.v2.avsc` → `ux_event`), used in messages."""
        return self.file.split(".v", 1)[0] if ".v" in self.file else self.file.removesuffix(".avsc")

    @property
    def full_name(self) -> str:
        return full_name(self.definition)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f["name"] for f in self.definition.get("fields", ()))

    def label(self) -> str:
        return f"{self.name} v{self.version}"


def parse_definition(definition: Any) -> Any:
    """fastavro-parse a schema definition with logical types removed."""
    return fastavro.parse_schema(plain_schema(definition), named_schemas={})


@dataclass(frozen=True, eq=False)
class Catalog:
    """Every schema version, by id and by subject."""

    directory: Path
    entries: tuple[SchemaEntry, ...]
    _by_id: dict[int, SchemaEntry] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {entry.id: entry for entry in self.entries})

    def by_id(self, schema_id: int) -> SchemaEntry | None:
        return self._by_id.get(schema_id)

    def __getitem__(self, schema_id: int) -> SchemaEntry:
        entry = self._by_id.get(schema_id)
        if entry is None:
            raise ContractError(f"schema id {schema_id} is not in {self.directory / CATALOG_FILE}")
        return entry

    def subjects(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(entry.subject for entry in self.entries))

    def versions(self, subject: str) -> tuple[SchemaEntry, ...]:
        """Versions of a subject, oldest first."""
        return tuple(sorted((e for e in self.entries if e.subject == subject), key=lambda e: e.version))

    def latest(self, subject: str) -> SchemaEntry:
        versions = self.versions(subject)
        if not versions:
            raise ContractError(f"subject {subject} is not in {self.directory / CATALOG_FILE}")
        return versions[-1]

    def version(self, subject: str, version: int) -> SchemaEntry:
        for entry in self.versions(subject):
            if entry.version == version:
                return entry
        known = ", ".join(str(e.version) for e in self.versions(subject)) or "none"
        raise ContractError(f"{subject} has no version {version} (versions: {known})")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContractError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise ContractError(f"{path}: not valid JSON ({exc.msg} at {where})") from None


def read_catalog(directory: Path | str = SCHEMA_DIR) -> Catalog:
    """Read and parse the catalog and every schema it lists (uncached). Raises ContractError."""
    directory = Path(directory)
    raw = _read_json(directory / CATALOG_FILE)
    rows = raw.get("schemas") if isinstance(raw, dict) else None
    if not isinstance(rows, list) or not rows:
        raise ContractError(f"{directory / CATALOG_FILE}: expected an object with a non-empty 'schemas' list")
    entries: list[SchemaEntry] = []
    seen_ids: dict[int, str] = {}
    seen_versions: dict[tuple[str, int], str] = {}
    for position, row in enumerate(rows, 1):
        where = f"{directory / CATALOG_FILE}: schemas[{position}]"
        if not isinstance(row, dict):
            raise ContractError(f"{where}: expected an object with id, subject, version, file")
        schema_id, subject, version, file = (row.get(k) for k in ("id", "subject", "version", "file"))
        if not isinstance(schema_id, int) or isinstance(schema_id, bool) or not 0 < schema_id < 2**31:
            raise ContractError(f"{where}: 'id' must be a positive 32-bit integer")
        if not isinstance(subject, str) or not subject:
            raise ContractError(f"{where}: 'subject' must be a non-empty string")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ContractError(f"{where}: 'version' must be an integer >= 1")
        if not isinstance(file, str) or not file.endswith(".avsc") or "/" in file:
            raise ContractError(f"{where}: 'file' must be a .avsc file name in {directory}")
        if schema_id in seen_ids:
            raise ContractError(f"{where}: id {schema_id} is already used by {seen_ids[schema_id]}")
        if (subject, version) in seen_versions:
            other = seen_versions[subject, version]
            raise ContractError(f"{where}: {subject} version {version} is already {other}")
        seen_ids[schema_id] = file
        seen_versions[subject, version] = file
        definition = _read_json(directory / file)
        try:
            parsed = parse_definition(definition)
            fastavro.parse_schema(definition, named_schemas={})  # the file as written must parse too
        except Exception as exc:  # fastavro raises SchemaParseException, ValueError, TypeError, KeyError …
            raise ContractError(f"{directory / file}: not a valid Avro schema ({exc})") from None
        entries.append(SchemaEntry(schema_id, subject, version, file, directory / file, definition, parsed))
    return Catalog(directory, tuple(entries))


@lru_cache(maxsize=8)
def _cached_catalog(directory: Path) -> Catalog:
    return read_catalog(directory)


def load_catalog(directory: Path | str = SCHEMA_DIR) -> Catalog:
    """The catalog of `directory` (default: the project's schemas/avro), parsed once per process."""
    return _cached_catalog(Path(directory).resolve())


def event_reader_schema(catalog: Catalog | None = None) -> SchemaEntry:
    """The reader schema of decoded events: the latest version of ux.events-value."""
    return (catalog or load_catalog()).latest(EVENT_SUBJECT)


# ---------------------------------------------------------------------------------------- resolvers


@dataclass(frozen=True, eq=False)
class WriterSchema:
    """A writer schema found for a schema id."""

    id: int
    full_name: str
    parsed: Any = field(repr=False)
    """fastavro-parsed plain schema (no logical types)."""

    @classmethod
    def from_definition(cls, schema_id: int, definition: Any) -> WriterSchema:
        name = full_name(definition) if isinstance(definition, dict) else str(definition)
        return cls(schema_id, name, parse_definition(definition))


class SchemaResolver(Protocol):
    """Finds the writer schema of a schema id.

    Returns None when the id is unknown (the record then goes to the DLQ as `unknown_schema_id`). Must
    raise, not return None, on a transient failure (registry unreachable): that is not the record's fault.
    """

    def resolve(self, schema_id: int) -> WriterSchema | None: ...


class CatalogResolver:
    """Resolves ids from `schemas/avro/catalog.json`: the local default, no server needed."""

    def __init__(self, catalog: Catalog | None = None) -> None:
        self._catalog = catalog or load_catalog()
        self._schemas = {e.id: WriterSchema(e.id, e.full_name, e.parsed) for e in self._catalog.entries}

    def resolve(self, schema_id: int) -> WriterSchema | None:
        return self._schemas.get(schema_id)


class SchemaRegistryResolver:
    """Resolves ids from a Confluent Schema Registry through confluent-kafka's client.

    The client is imported when the resolver is created: it needs confluent-kafka's `schemaregistry`
    extras (httpx, authlib, …), which uxstream does not install by default. Found schemas are cached;
    unknown ids (HTTP 404) resolve to None; other registry errors propagate. Schema references are not
    supported (the event schemas have none).
    """

    def __init__(self, url: str, config: Mapping[str, Any] | None = None) -> None:
        try:
            from confluent_kafka.schema_registry import SchemaRegistryClient
        except ImportError as exc:
            raise ContractError(
                "resolving schema ids from a Schema Registry needs confluent-kafka's schema-registry extras, "
                f"which are not installed (missing module {exc.name!r}): "
                "install 'confluent-kafka[schemaregistry]' or use the catalog resolver"
            ) from None
        self._client = SchemaRegistryClient({"url": url, **dict(config or {})})
        self._cache: dict[int, WriterSchema] = {}

    def resolve(self, schema_id: int) -> WriterSchema | None:
        cached = self._cache.get(schema_id)
        if cached is not None:
            return cached
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            schema = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return None
            raise
        if (schema.schema_type or "AVRO") != "AVRO":
            return None
        resolved = WriterSchema.from_definition(schema_id, json.loads(schema.schema_str or "null"))
        self._cache[schema_id] = resolved
        return resolved


# -------------------------------------------------------------------------------------- wire format


def header(schema_id: int) -> bytes:
    """The 5-byte Confluent header of a schema id."""
    return bytes((MAGIC_BYTE,)) + schema_id.to_bytes(4, "big")


def frame(schema_id: int, body: bytes) -> bytes:
    return header(schema_id) + body


def read_header(payload: bytes | None) -> int | Invalid:
    """The schema id of a framed payload, or why there is none."""
    if payload is None:
        return Invalid(TRUNCATED_FRAME, "null value (tombstone): no wire header")
    if len(payload) < HEADER_SIZE:
        return Invalid(
            TRUNCATED_FRAME, f"{len(payload)} bytes, a Confluent frame needs at least {HEADER_SIZE}"
        )
    if payload[0] != MAGIC_BYTE:
        return Invalid(
            BAD_MAGIC_BYTE, f"first byte is 0x{payload[0]:02x}, expected 0x00 (Confluent wire format)"
        )
    return int.from_bytes(payload[1:HEADER_SIZE], "big")


def encode_body(record: Mapping[str, Any], entry: SchemaEntry) -> bytes:
    """Avro binary body of a record (timestamps as epoch-ms integers). Raises ContractError."""
    out = io.BytesIO()
    try:
        fastavro.schemaless_writer(out, entry.parsed, record, strict_allow_default=True)
    except Exception as exc:  # fastavro raises ValueError/TypeError/AttributeError with terse messages
        raise ContractError(f"record does not fit {entry.label()} (schema id {entry.id}): {exc}") from None
    return out.getvalue()


def encode(record: Mapping[str, Any], schema_id: int, catalog: Catalog | None = None) -> bytes:
    """Confluent-framed Avro of `record` written with the catalog schema `schema_id`."""
    entry = (catalog or load_catalog())[schema_id]
    return frame(schema_id, encode_body(record, entry))


def decode_framed(payload: bytes, catalog: Catalog | None = None) -> tuple[SchemaEntry, dict[str, Any]]:
    """Decode any Confluent-framed record of the catalog with its own (writer) schema.

    For reading what the jobs publish (dead letters, KPI windows, alerts). Raises ContractError.
    """
    schema_id = read_header(payload)
    if isinstance(schema_id, Invalid):
        raise ContractError(schema_id.detail)
    entry = (catalog or load_catalog()).by_id(schema_id)
    if entry is None:
        raise ContractError(f"schema id {schema_id} is not in the catalog")
    body = io.BytesIO(payload[HEADER_SIZE:])
    try:
        record = fastavro.schemaless_reader(body, entry.parsed, None)
    except Exception as exc:  # truncated or garbage bodies
        raise ContractError(f"cannot decode {entry.label()} (schema id {schema_id}): {exc}") from None
    if body.read(1):
        raise ContractError(f"trailing bytes after a {entry.label()} record")
    assert isinstance(record, dict)
    return entry, record


INT_MIN: Final = -(2**31)
INT_MAX: Final = 2**31 - 1


def _int_fields(parsed: Any) -> tuple[str, ...]:
    """Top-level fields of type int or [null, int] (the event schemas nest no ints)."""
    names = []
    for spec in parsed.get("fields", ()) if isinstance(parsed, dict) else ():
        kind = spec.get("type")
        kinds = kind if isinstance(kind, list) else [kind]
        if "int" in kinds:
            names.append(spec["name"])
    return tuple(names)


class EventDecoder:
    """Decodes and validates ux.events payloads. Create one per task and reuse it (plans are cached)."""

    def __init__(self, resolver: SchemaResolver | None = None, reader: SchemaEntry | None = None) -> None:
        self._resolver: SchemaResolver = resolver or CatalogResolver()
        self._reader = reader or event_reader_schema()
        self._reader_name = self._reader.full_name
        self._plans: dict[int, tuple[Any, Any, tuple[str, ...]]] = {}

    @property
    def reader(self) -> SchemaEntry:
        return self._reader

    def _plan(self, schema_id: int) -> tuple[Any, Any, tuple[str, ...]] | Invalid:
        plan = self._plans.get(schema_id)
        if plan is not None:
            return plan
        writer = self._resolver.resolve(schema_id)
        if writer is None:
            return Invalid(UNKNOWN_SCHEMA_ID, f"schema id {schema_id} is not registered", schema_id)
        if writer.full_name != self._reader_name:
            return Invalid(
                UNKNOWN_SCHEMA_ID,
                f"schema id {schema_id} is {writer.full_name}, not a UX event schema ({self._reader_name})",
                schema_id,
            )
        same = writer.parsed == self._reader.parsed
        plan = (writer.parsed, None if same else self._reader.parsed, _int_fields(writer.parsed))
        self._plans[schema_id] = plan
        return plan

    def decode_record(self, payload: bytes | None) -> tuple[int, dict[str, Any]] | Invalid:
        """Framing and Avro only (no validity rules): (schema id, record in the reader schema)."""
        schema_id = read_header(payload)
        if isinstance(schema_id, Invalid):
            return schema_id
        assert payload is not None
        plan = self._plan(schema_id)
        if isinstance(plan, Invalid):
            return plan
        stream = io.BytesIO(payload)
        stream.seek(HEADER_SIZE)
        try:
            record = fastavro.schemaless_reader(stream, plan[0], plan[1])
        except Exception as exc:  # EOFError, UnicodeDecodeError, SchemaResolutionError, IndexError …
            why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            size = len(payload) - HEADER_SIZE
            detail = f"body of {size} bytes does not decode with schema id {schema_id} ({why})"
            return Invalid(UNDECODABLE_AVRO, detail, schema_id)
        trailing = len(payload) - stream.tell()
        if trailing:
            detail = f"{trailing} trailing byte(s) after the record (schema id {schema_id})"
            return Invalid(UNDECODABLE_AVRO, detail, schema_id)
        if not isinstance(record, dict):
            return Invalid(UNDECODABLE_AVRO, f"schema id {schema_id} did not decode to a record", schema_id)
        for name in plan[2]:  # fastavro reads an Avro int as a 64-bit varint; the specification says 32
            value = record.get(name)
            if value is not None and not INT_MIN <= value <= INT_MAX:
                detail = f"field '{name}' holds {value}, which does not fit in 32 bits (Avro int)"
                return Invalid(UNDECODABLE_AVRO, detail, schema_id)
        return schema_id, record

    def decode(self, payload: bytes | None) -> DecodedEvent | Invalid:
        """Decode a ux.events payload and apply the validity rules (the record size first)."""
        if payload is not None:
            too_big = record_size_problem(len(payload))
            if too_big is not None:
                return too_big
        decoded = self.decode_record(payload)
        if isinstance(decoded, Invalid):
            return decoded
        schema_id, record = decoded
        problem = validate(record)
        if problem is not None:
            return Invalid(problem.reason, problem.detail, schema_id)
        return DecodedEvent(schema_id, scrubbed(record))


@lru_cache(maxsize=1)
def default_decoder() -> EventDecoder:
    """A shared decoder over the project's catalog."""
    return EventDecoder()


def decode(payload: bytes | None) -> DecodedEvent | Invalid:
    """Decode and validate one ux.events payload with the project's catalog (see EventDecoder)."""
    return default_decoder().decode(payload)


def dead_letter(
    invalid: Invalid,
    *,
    payload: bytes | None,
    key: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    job: str,
) -> dict[str, Any]:
    """A dead_letter.v1 record for an invalid input record (encode it with the dead letter schema id)."""
    return {
        "original": payload,
        "original_key": key,
        "source_topic": topic,
        "source_partition": partition,
        "source_offset": offset,
        "observed_at": timestamp_ms,
        "reason": invalid.reason,
        "detail": invalid.detail,
        "schema_id": invalid.schema_id,
        "job": job,
    }
