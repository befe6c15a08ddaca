"""Deterministic UX traffic: simulated users and sessions, pre-encoded Confluent-framed Avro, ground truth.

The simulation (all randomness from one `random.Random(seed)`, so a seed and the knobs fix every byte):

- **Users**: a share is anonymous (anonymous_id only), the rest identified (user_id + anonymous_id);
  device type, OS/browser/user agent, country and app version drawn from realistic mixes; a share of the
  users are bots (headless user agents, page views every 0.4–2 s, nothing else; tag `bot`), and with
  `stealth_bot_share` > 0 a share are stealth bots (a browser user agent from the human mix, page views
  every 0.5–1.5 s for 6.5–10 minutes, nothing else; tag `stealth_bot`). An identified user's device keeps
  one anonymous_id; with `login_share` > 0 that share of their sessions starts anonymous (anonymous_id
  only, keyed by it) and logs in on an `/account` page view (tag `login`) inserted after the first page:
  from there on events carry both ids and are keyed by the user_id. v2 fields (session hint,
  engagement time, consent, screen, IP) come from users whose SDK speaks v2 (`v2_share`, `v2_from`).
  With `feedback_share` > 0, that share of the sessions of v2 users ends with a survey answer (a v3
  `feedback` event: NPS 0-10 or CSAT 1-5, sometimes a comment with a fake e-mail or phone number).
- **Sessions** start as a Poisson process sized so the traffic fills `duration` with `events` records;
  each picks a user. A session lands from an acquisition channel (direct, organic, paid, social, email,
  referral: referrer and UTM on the landing page), then browses pages: every page view carries its load
  time, is followed by clicks, heartbeats every 15 s of dwell time, sometimes a JS error, and a web_vital
  event (LCP, CLS, INP when the page had clicks) when the page is left.
- **Funnel journeys** (`FUNNELS`): checkout (product_viewed → add_to_cart → checkout_started →
  order_completed) and signup (signup_started → signup_form_submitted → signup_completed), each step
  continuing with a realistic probability, so attempts convert or drop. `CONVERSION_EVENTS` are the
  final steps.
- **Delivery**: each event reaches the collector 0..`out_of_order_ms` after its event time (its
  `received_at`, also the Kafka timestamp); records are produced in received order, so they are out of
  order by up to that spread. Faults are injected per record: late (delivered `late_delay` after its
  event time), future (client clock 6 min–6 h ahead), duplicate (the same event re-sent later with the
  same event_id and a new received_at), malformed (`MALFORMED_KINDS`), and anomalies on a segment for a
  time span (`Anomaly`).

Speed (fastavro's schemaless_writer costs ~11 µs for one event, too slow for 150k events/s): the Avro
body is the concatenation of field groups (`FieldGroup`); groups constant for a user, a page context or
an event kind are encoded once and reused, per-page measures come from pre-encoded sample pools, and per
event only the id and the two timestamps are encoded. The small encoders are tested against fastavro,
and every generated record against `jobs.common.contract.encode` of its ground-truth event.

A record is `(timestamp_ms, value, key, partition, truth, category)`: `truth` is the ground-truth JSON
line without its leading `{"seq":N,` (the writer adds the produce sequence number), or None when no ground
truth was requested; `category` indexes `CATEGORIES`.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import io
import itertools
import json
import math
import random
import re
import struct
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from operator import itemgetter
from typing import Any, Final

import fastavro

from jobs.common.contract import (
    BAD_MAGIC_BYTE,
    DEFAULT_MAX_FUTURE_SKEW_MS,
    EVENT_SUBJECT,
    IMPOSSIBLE_VALUE,
    MISSING_FIELD,
    TRUNCATED_FRAME,
    UNDECODABLE_AVRO,
    UNKNOWN_SCHEMA_ID,
    Catalog,
    ContractError,
    Reason,
    SchemaEntry,
    header,
    load_catalog,
    plain_schema,
)

DEFAULT_START: Final = "2025-01-06T00:00:00Z"
"""A Monday, midnight UTC: the default start of simulated event time (fixed, so runs are reproducible)."""

MALFORMED_KINDS: Final[Mapping[str, Reason]] = {
    "random_bytes": BAD_MAGIC_BYTE,  # 5..64 random bytes whose first byte is not 0x00
    "truncated_frame": TRUNCATED_FRAME,  # the first 0..4 bytes of a valid record
    "truncated_avro": UNDECODABLE_AVRO,  # a valid header and a body cut short
    "trailing_garbage": UNDECODABLE_AVRO,  # a valid record followed by 1..16 random bytes
    "bad_magic_byte": BAD_MAGIC_BYTE,  # a valid record whose first byte is 0x01..0xff
    "unknown_schema_id": UNKNOWN_SCHEMA_ID,  # a valid body under an unregistered or non-event schema id
    "missing_field": MISSING_FIELD,  # valid Avro, empty event_id or event_name
    "impossible_value": IMPOSSIBLE_VALUE,  # valid Avro, ts in seconds, negative page_load_ms or CLS
}
"""Malformed record kinds the generator injects, with the dead-letter reason each must get."""

FUNNELS: Final[Mapping[str, tuple[str, ...]]] = {
    "checkout": ("product_viewed", "add_to_cart", "checkout_started", "order_completed"),
    "signup": ("signup_started", "signup_form_submitted", "signup_completed"),
}
"""Funnel journeys the simulation plays (event names of the ordered steps)."""

CONVERSION_EVENTS: Final = ("order_completed", "signup_completed")
"""Event names the simulation means as conversions."""

CATEGORIES: Final = ("event", "duplicate", "malformed", "late", "future")
EVENT, DUPLICATE, MALFORMED, LATE, FUTURE = range(5)

Piece = tuple[bytes, str]
"""A group of consecutive fields: (Avro bytes, JSON members without braces)."""
Record = tuple[int, bytes, bytes, int, str | None, int]
"""(timestamp_ms, value, key, partition, ground-truth line tail or None, category)."""

HEARTBEAT_MS: Final = 15_000
LOGIN_PATH: Final = "/account"
"""The page a visitor logs in on (`login_share`)."""
STEALTH_MIN_MS, STEALTH_MAX_MS = 390_000, 600_000
"""A stealth bot session's page views span [6.5, 10) minutes."""
STEALTH_MIN_GAP_MS, STEALTH_MAX_GAP_MS = 500, 1_500
"""Gaps between a stealth bot's page views (both included): >= 40 per minute."""
FUTURE_MAX_AHEAD_MS: Final = 6 * 3_600_000

# ----------------------------------------------------------------------------------- knob parsing

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration_ms(text: str) -> int:
    """`90s`, `10m`, `1h30m`, `3d`, `250ms`, or a plain number of seconds → milliseconds."""
    text = text.strip()
    try:
        return round(float(text) * 1000)
    except ValueError:
        pass
    position, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != position:
            break
        total += float(match[1]) * _UNITS[match[2]]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(f"{text!r} is not a duration (examples: 90s, 10m, 1h30m, 3d, 250ms)")
    return round(total)


def parse_time_ms(text: str, now: Callable[[], float] = time.time) -> int:
    """An ISO-8601 timestamp with a UTC offset (or `Z`), or `now` → epoch milliseconds."""
    if text.strip().lower() == "now":
        return int(now() * 1000)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO-8601 timestamp (example: 2025-01-06T09:30:00Z)") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset: write it as 2025-01-06T09:30:00Z or with +01:00")
    return int(moment.timestamp() * 1000)


ANOMALY_KINDS: Final = {"error_spike": 10.0, "traffic_drop": 0.2, "latency_spike": 3.0}
"""Anomaly kinds and their default magnitude (error probability factor, share of traffic kept, latency
factor)."""
ANOMALY_DIMENSIONS: Final = ("global", "country", "device_type", "page_path")


@dataclass(frozen=True)
class Anomaly:
    """An injected anomaly: `kind` on the events of a segment during [start_ms, end_ms)."""

    kind: str
    dimension: str
    value: str | None
    start_ms: int
    end_ms: int
    magnitude: float

    @classmethod
    def parse(cls, spec: str, start_ms: int) -> Anomaly:
        """`KIND:SEGMENT:AT:FOR[:MAGNITUDE]`, e.g. `error_spike:country=DE:30m:10m:8`.

        SEGMENT is `global` or `DIMENSION=VALUE` (country, device_type, page_path); AT is an offset from
        the start of the simulation (`30m`) or an ISO-8601 timestamp; FOR is a duration.
        """
        parts = spec.split(":")
        # an ISO timestamp contains colons: re-join AT when it looks like one
        if len(parts) > 5 and "T" in parts[2]:
            parts = [*parts[:2], ":".join(parts[2:5]), *parts[5:]]
        if len(parts) not in (4, 5):
            raise ValueError(f"anomaly {spec!r}: expected KIND:SEGMENT:AT:FOR[:MAGNITUDE]")
        kind, segment, at, length = parts[:4]
        if kind not in ANOMALY_KINDS:
            raise ValueError(f"anomaly {spec!r}: kind must be one of {', '.join(ANOMALY_KINDS)}")
        if segment == "global":
            dimension, value = "global", None
        else:
            dimension, _, value = segment.partition("=")
            if dimension not in ANOMALY_DIMENSIONS[1:] or not value:
                raise ValueError(
                    f"anomaly {spec!r}: segment must be global or DIMENSION=VALUE with DIMENSION one of "
                    f"{', '.join(ANOMALY_DIMENSIONS[1:])}"
                )
        begin = parse_time_ms(at) if "T" in at else start_ms + parse_duration_ms(at)
        magnitude = float(parts[4]) if len(parts) == 5 else ANOMALY_KINDS[kind]
        if magnitude < 0 or (kind == "traffic_drop" and magnitude > 1):
            raise ValueError(f"anomaly {spec!r}: magnitude out of range")
        return cls(kind, dimension, value, begin, begin + parse_duration_ms(length), magnitude)

    def matches(self, ts: int, country: str, device_type: str, path: str) -> bool:
        if not self.start_ms <= ts < self.end_ms:
            return False
        if self.dimension == "global":
            return True
        actual = {"country": country, "device_type": device_type, "page_path": path}[self.dimension]
        return actual == self.value


@dataclass(frozen=True)
class GeneratorConfig:
    """Every knob of the generator (the `uxstream generate` options map one to one)."""

    events: int = 100_000
    """Records to produce in total (events, duplicates and malformed records)."""
    seed: int = 42
    start_ms: int = field(default_factory=lambda: parse_time_ms(DEFAULT_START))
    duration_ms: int = 3_600_000
    """Simulated event-time span the traffic is spread over (approximately)."""
    users: int | None = None
    """Simulated users; None: events // 25 (at least 50)."""
    partitions: int = 4
    anonymous_share: float = 0.4
    bot_share: float = 0.01
    stealth_bot_share: float = 0.0
    """Share of users that are stealth bots: an ordinary browser user agent from the human mix (the user-agent
    rule cannot catch them), anonymous, only page views, one every 0.5-1.5 s for 6.5-10 minutes (so >= 40
    in every event-time minute of at least 5 consecutive ones); tagged `stealth_bot` in the ground truth.
    0 draws nothing, so streams without them stay byte-identical to those of earlier versions."""
    login_share: float = 0.0
    """Share of the sessions of identified users that start anonymous (anonymous_id only, key = anonymous_id,
    as an SDK before `identify`) and log in mid-session: from an `/account` page view inserted after the
    first page on, events carry user_id + the same anonymous_id (key = user_id); that page view is tagged
    `login`. 0 draws nothing, so streams without logins stay byte-identical to those of earlier versions."""
    user_agent_only: bool = False
    """Send what a real SDK sends: user agent and IP, no device_type/os/browser/country (the jobs derive them
    from the user agent and the IP: README "Enrichment"). Every user agent drawn is in the corpus
    tests/fixtures/user_agents.json, so the oracle knows the jobs' verdicts."""
    hot_user_share: float = 0.0
    """Share of sessions that belong to one single user (a hot key)."""
    error_rate: float = 0.02
    """Probability of a JS error per page view."""
    out_of_order_ms: int = 2_000
    late_fraction: float = 0.0
    late_min_delay_ms: int = 10_000
    late_max_delay_ms: int = 600_000
    duplicate_fraction: float = 0.0
    duplicate_max_delay_ms: int = 60_000
    malformed_fraction: float = 0.0
    malformed_kinds: tuple[str, ...] = tuple(MALFORMED_KINDS)
    future_fraction: float = 0.0
    v2_share: float = 0.5
    feedback_share: float = 0.0
    """Share of the sessions of v2 users that end with a feedback event (schema v3); 0 draws nothing, so
    streams without feedback stay byte-identical to those of earlier versions."""
    v2_from_ms: int | None = None
    """Before this event time every event is written with v1 (a producer switching mid-stream)."""
    anomalies: tuple[Anomaly, ...] = ()
    daily_amplitude: float = 0.0
    """Daily seasonality of the session rate: rate × (1 + A·cos(2π(hour − daily_peak_hour)/24)), 0 = flat."""
    daily_peak_hour: float = 15.0
    """UTC hour of the daily traffic peak."""
    weekend_factor: float = 1.0
    """Weekly seasonality: Saturday/Sunday (UTC) session rate relative to weekdays (1 = flat). The weekday
    rate is scaled so that a week keeps the same mean rate. With the defaults the traffic is flat and the
    generator's output is unchanged."""

    @property
    def seasonal(self) -> bool:
        return self.daily_amplitude != 0.0 or self.weekend_factor != 1.0

    def season(self, ts: int) -> float:
        """Relative session rate at event time `ts` (mean 1 over a week)."""
        hour = (ts % 86_400_000) / 3_600_000
        daily = 1.0 + self.daily_amplitude * math.cos(2 * math.pi * (hour - self.daily_peak_hour) / 24)
        weekday = ((ts // 86_400_000) + 3) % 7  # 0 = Monday (1970-01-01 was a Thursday)
        weekday_factor = (7 - 2 * self.weekend_factor) / 5
        return daily * (self.weekend_factor if weekday >= 5 else weekday_factor)

    @property
    def user_count(self) -> int:
        return self.users if self.users is not None else max(50, self.events // 25)

    def check(self) -> None:
        """Raise ValueError naming the knob when a value is out of range."""
        shares = {
            "anonymous_share": self.anonymous_share,
            "bot_share": self.bot_share,
            "stealth_bot_share": self.stealth_bot_share,
            "login_share": self.login_share,
            "hot_user_share": self.hot_user_share,
            "error_rate": self.error_rate,
            "late_fraction": self.late_fraction,
            "duplicate_fraction": self.duplicate_fraction,
            "malformed_fraction": self.malformed_fraction,
            "future_fraction": self.future_fraction,
            "v2_share": self.v2_share,
            "feedback_share": self.feedback_share,
        }
        for name, value in shares.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.bot_share + self.stealth_bot_share > 1.0:
            raise ValueError("bot_share + stealth_bot_share must not exceed 1")
        if self.duplicate_fraction >= 0.5:
            raise ValueError("duplicate_fraction must be below 0.5")
        if self.duplicate_fraction + self.malformed_fraction >= 0.9:
            raise ValueError("duplicate_fraction + malformed_fraction must stay below 0.9")
        if self.late_fraction + self.future_fraction + self.malformed_fraction > 1.0:
            raise ValueError("late_fraction + future_fraction + malformed_fraction must not exceed 1")
        if self.events < 0:
            raise ValueError("events must be >= 0")
        if self.duration_ms <= 0:
            raise ValueError("duration must be positive")
        if self.users is not None and self.users < 1:
            raise ValueError("users must be >= 1")
        if self.partitions < 1:
            raise ValueError("partitions must be >= 1")
        if not 0.0 <= self.daily_amplitude < 1.0:
            raise ValueError("daily_amplitude must be in [0, 1)")
        if not 0.0 < self.weekend_factor < 3.5:
            raise ValueError("weekend_factor must be in (0, 3.5)")
        if self.out_of_order_ms < 0:
            raise ValueError("out_of_order_ms must be >= 0")
        if not self.out_of_order_ms < self.late_min_delay_ms <= self.late_max_delay_ms:
            raise ValueError("late delays must satisfy out_of_order < late_min_delay <= late_max_delay")
        if self.duplicate_max_delay_ms < 1:
            raise ValueError("duplicate_max_delay_ms must be >= 1")
        unknown = [kind for kind in self.malformed_kinds if kind not in MALFORMED_KINDS]
        if unknown or not self.malformed_kinds:
            raise ValueError(
                f"malformed kinds must be a non-empty subset of {', '.join(MALFORMED_KINDS)}; got {unknown}"
            )


# ------------------------------------------------------------------------------- Kafka partitioning


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (Java `Utils.murmur2`): the default partitioner hash, as a signed 32-bit int."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    for i in range(0, length - length % 4, 4):
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    tail = length & ~3
    rest = length % 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h >= 1 << 31 else h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition a Java producer (or librdkafka's murmur2_random partitioner) picks for a key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


# ---------------------------------------------------------------------------------- fast encoders

_BYTE = [bytes((i,)) for i in range(256)]
_LOW14 = [bytes(((i & 0x7F) | 0x80, ((i >> 7) & 0x7F) | 0x80)) for i in range(16384)]
_HIGH: dict[int, bytes] = {}
_DOUBLE = struct.Struct("<d").pack


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def avro_long(value: int) -> bytes:
    """Avro `long` (zig-zag varint). Timestamps hit a cache of their high bits."""
    zigzag = (value << 1) ^ (value >> 63)
    if zigzag < 0x80:
        return _BYTE[zigzag]
    if zigzag < 16384:
        return _varint(zigzag)
    high = zigzag >> 14
    tail = _HIGH.get(high)
    if tail is None:
        if len(_HIGH) > 1_000_000:
            _HIGH.clear()
        tail = _HIGH[high] = _varint(high)
    return _LOW14[zigzag & 0x3FFF] + tail


def avro_times(first: int, second: int) -> bytes:
    """Two non-negative Avro longs (e.g. ts and received_at) in one call: the hot path of the generator."""
    high_cache = _HIGH
    first <<= 1
    second <<= 1
    if first < 16384 or second < 16384 or first >> 63 or second >> 63:
        return avro_long(first >> 1) + avro_long(second >> 1)
    a = high_cache.get(first >> 14)
    if a is None:
        a = avro_long(first >> 1)[2:]
    b = high_cache.get(second >> 14)
    if b is None:
        b = avro_long(second >> 1)[2:]
    return _LOW14[first & 0x3FFF] + a + _LOW14[second & 0x3FFF] + b


def avro_string(value: str) -> bytes:
    data = value.encode()
    return avro_long(len(data)) + data


_JSON: Final = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


def _json_string(value: str) -> str:
    return _JSON(value)


def _encoder_for(avro_type: Any) -> tuple[Callable[[Any], bytes], Callable[[Any], str]]:
    """Avro and JSON encoders of a flat field type (primitive, nullable primitive, map of strings)."""
    if isinstance(avro_type, list):
        if len(avro_type) != 2 or avro_type[0] != "null":
            raise ContractError(f"the generator cannot encode union {avro_type}")
        avro_inner, json_inner = _encoder_for(avro_type[1])

        def avro_optional(value: Any) -> bytes:
            return b"\x00" if value is None else b"\x02" + avro_inner(value)

        def json_optional(value: Any) -> str:
            return "null" if value is None else json_inner(value)

        return avro_optional, json_optional
    if isinstance(avro_type, dict) and avro_type.get("type") == "map" and avro_type.get("values") == "string":

        def avro_map(value: Mapping[str, str]) -> bytes:
            if not value:
                return b"\x00"
            items = [avro_long(len(value))]
            for key, item in value.items():
                items.append(avro_string(key))
                items.append(avro_string(item))
            items.append(b"\x00")
            return b"".join(items)

        return avro_map, _JSON
    if isinstance(avro_type, dict):
        avro_type = avro_type.get("type")
    if avro_type in ("long", "int"):
        return avro_long, str
    if avro_type == "double":
        return (lambda value: _DOUBLE(value)), (lambda value: repr(float(value)))
    if avro_type == "string":
        return avro_string, _json_string
    raise ContractError(f"the generator cannot encode type {avro_type!r}")


class FieldGroup:
    """Consecutive fields of the event schema, encoded together: `fast` (small encoders, per event) and
    `exact` (fastavro + json, the reference `fast` is tested against)."""

    def __init__(self, entry: SchemaEntry, names: Sequence[str]) -> None:
        definitions = {f["name"]: f for f in entry.definition["fields"]}
        self.names = tuple(names)
        self.fields = [plain_schema(definitions[name]) for name in names]
        self._parsed = fastavro.parse_schema(
            {"type": "record", "name": "Segment", "fields": self.fields}, named_schemas={}
        )
        self._coders = [_encoder_for(f["type"]) for f in self.fields]
        self._cache: dict[tuple[Any, ...], Piece] = {}

    def exact(self, values: Sequence[Any]) -> Piece:
        """Encode through fastavro and json."""
        record = dict(zip(self.names, values, strict=True))
        out = io.BytesIO()
        fastavro.schemaless_writer(out, self._parsed, record)
        members = _JSON(record)[1:-1]
        return out.getvalue(), members

    def cached(self, values: tuple[Any, ...]) -> Piece:
        """`fast`, remembered by values (for groups with few distinct values)."""
        piece = self._cache.get(values)
        if piece is None:
            piece = self._cache[values] = self.fast(values)
        return piece

    def fast(self, values: Sequence[Any]) -> Piece:
        """Encode with the small encoders (per-event values)."""
        avro = []
        members = []
        for name, (avro_coder, json_coder), value in zip(self.names, self._coders, values, strict=True):
            avro.append(avro_coder(value))
            members.append(f'"{name}":{json_coder(value)}')
        return b"".join(avro), ",".join(members)


SEGMENTS_V1: Final = (
    ("event_id",),
    ("event_type", "event_name"),
    ("user_id", "anonymous_id"),
    ("ts", "received_at"),
    ("page_url", "page_path", "page_title", "referrer", "utm_source", "utm_medium", "utm_campaign"),
    ("device_type", "os", "browser", "user_agent", "country", "app_version"),
    ("lcp_ms", "inp_ms", "cls", "error_type", "error_message", "page_load_ms"),
    ("properties",),
)
V2_SEGMENTS: Final = (
    ("session_hint",),
    ("engagement_time_ms",),
    ("consent", "screen_width", "screen_height", "ip"),
)
"""Field groups the generator encodes: v1 is SEGMENTS_V1, v2 inserts V2_SEGMENTS before properties."""
V3_SEGMENTS: Final = (("survey_id", "feedback_scale", "feedback_score", "feedback_comment"),)
"""v3 inserts the feedback group after the v2 groups (before properties)."""


def check_layout(entry: SchemaEntry, v2: bool, v3: bool = False) -> None:
    """The generator's field groups must cover the schema's fields exactly, in order."""
    groups = [*SEGMENTS_V1[:-1], *(V2_SEGMENTS if v2 else ()), *(V3_SEGMENTS if v3 else ()), SEGMENTS_V1[-1]]
    expected = tuple(itertools.chain.from_iterable(groups))
    if entry.field_names != expected:
        raise ContractError(
            f"the generator's field layout does not match {entry.label()} ({entry.file}): schema fields "
            f"{list(entry.field_names)}, generator fields {list(expected)}; update {__name__}"
        )


# -------------------------------------------------------------------------------- simulation data

SITE: Final = "https://shop.example.com"


class _Choice:
    """Weighted choice with precomputed cumulative weights."""

    def __init__(self, items: Sequence[Any], weights: Sequence[float]) -> None:
        self.items = list(items)
        self.cumulative = list(itertools.accumulate(weights))
        self.total = self.cumulative[-1]

    def pick(self, rng: random.Random) -> Any:
        return self.items[bisect.bisect_right(self.cumulative, rng.random() * self.total)]


PRODUCTS: Final = tuple(f"/products/p-{n}" for n in range(1, 41))
BLOG: Final = tuple(
    f"/blog/{slug}"
    for slug in ("core-web-vitals", "spring-sale", "new-arrivals", "shipping-update", "gift-guide", "sizing")
)
DOCS: Final = tuple(f"/docs/{slug}" for slug in ("getting-started", "returns", "payments", "faq"))
TITLES: Final = {
    "/": "Example Shop – Home",
    "/products": "All products – Example Shop",
    "/pricing": "Membership pricing – Example Shop",
    "/search": "Search – Example Shop",
    "/cart": "Your cart – Example Shop",
    "/account": "Your account – Example Shop",
    "/blog": "Blog – Example Shop",
    "/docs": "Help center – Example Shop",
    "/signup": "Create your account – Example Shop",
    "/welcome": "Welcome! – Example Shop",
    "/checkout": "Checkout – Example Shop",
    "/checkout/complete": "Thank you for your order – Example Shop",
    **{path: f"Product {path.rsplit('-', 1)[1]} – Example Shop" for path in PRODUCTS},
    **{path: f"{path.rsplit('/', 1)[1].replace('-', ' ').title()} – Blog" for path in BLOG},
    **{path: f"{path.rsplit('/', 1)[1].replace('-', ' ').title()} – Help" for path in DOCS},
}
BROWSE_PATHS: Final = tuple(
    p for p in TITLES if p not in ("/signup", "/welcome", "/checkout", "/checkout/complete")
)
ENTRY: Final = _Choice(
    ["/", "/products", *PRODUCTS, "/pricing", *BLOG, "/docs", *DOCS],
    [30, 8, *[0.6] * len(PRODUCTS), 6, *[2] * len(BLOG), 2, *[1] * len(DOCS)],
)


def _next_choice(path: str) -> _Choice:
    if path.startswith("/products/"):
        return _Choice(
            ["/products", "/cart", "/", "/search", *PRODUCTS], [20, 12, 6, 6, *[1.2] * len(PRODUCTS)]
        )
    if path.startswith("/blog"):
        return _Choice(["/", "/products", "/blog", *BLOG], [25, 20, 10, *[4] * len(BLOG)])
    if path.startswith("/docs"):
        return _Choice(["/", "/docs", "/account", *DOCS], [15, 15, 10, *[8] * len(DOCS)])
    return _Choice(
        ["/", "/products", "/pricing", "/search", "/blog", "/docs", "/account", "/cart", *PRODUCTS],
        [6, 30, 8, 8, 6, 4, 4, 4, *[1] * len(PRODUCTS)],
    )


NEXT: Final = {path: _next_choice(path) for path in TITLES}

CHANNELS: Final = _Choice(
    [
        (None, None, None, None),  # direct
        ("https://www.google.com/", None, None, None),  # organic search
        ("https://www.google.com/", "google", "cpc", "winter_sale"),  # paid search
        ("https://t.co/", "twitter", "social", "launch_week"),  # social
        (None, "newsletter", "email", "weekly_digest"),  # email
        ("https://news.ycombinator.com/", None, None, None),  # referral
    ],
    [38, 27, 15, 8, 7, 5],
)

DESKTOP_AGENTS: Final = [
    (
        "Windows 11",
        "Chrome 131",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
    ),
    (
        "Windows 11",
        "Edge 131",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    ),
    (
        "macOS 14",
        "Safari 17",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.2 Safari/605.1.15",
    ),
    (
        "macOS 14",
        "Chrome 131",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
    ),
    ("Linux", "Firefox 133", "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"),
]
MOBILE_AGENTS: Final = [
    (
        "iOS 17",
        "Safari 17",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
    ),
    (
        "Android 14",
        "Chrome 131",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Mobile Safari/537.36",
    ),
]
TABLET_AGENTS: Final = [
    (
        "iPadOS 17",
        "Safari 17",
        "Mozilla/5.0 (iPad; CPU OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
    ),
    (
        "Android 14",
        "Chrome 131",
        "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
    ),
]
BOT_AGENTS: Final = [
    (
        "Linux",
        "HeadlessChrome 120",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/120.0.0.0 Safari/537.36",
    ),
    ("Linux", "ScraperBot 2", "Mozilla/5.0 (compatible; ScraperBot/2.1; +https://scraper.example.net/bot)"),
]
DEVICES: Final = _Choice(
    [
        ("desktop", _Choice(DESKTOP_AGENTS, [45, 15, 15, 15, 10]), ((1920, 1080), (1440, 900), (2560, 1440))),
        ("mobile", _Choice(MOBILE_AGENTS, [50, 50]), ((390, 844), (412, 915), (375, 667))),
        ("tablet", _Choice(TABLET_AGENTS, [70, 30]), ((820, 1180), (800, 1280))),
    ],
    [52, 43, 5],
)
PERFORMANCE: Final = {
    # device type → (median page load ms, median LCP ms, median INP ms)
    "desktop": (1100.0, 1500.0, 90.0),
    "mobile": (2100.0, 2400.0, 180.0),
    "tablet": (1600.0, 2000.0, 140.0),
}
COUNTRIES: Final = _Choice(
    ["US", "IN", "GB", "DE", "BR", "FR", "JP", "CA", "NL", "ES", "AU", "MX"],
    [32, 12, 9, 9, 8, 6, 5, 5, 4, 4, 3, 3],
)
BOT_COUNTRIES: Final = _Choice(["US", "DE", "NL", "SG"], [4, 2, 2, 1])
APP_VERSIONS: Final = _Choice(["web-2025.01.2", "web-2025.01.1", "web-2024.12.4"], [70, 25, 5])
ERRORS: Final = _Choice(
    [
        ("TypeError", "Cannot read properties of undefined (reading 'price')"),
        ("TypeError", "undefined is not a function"),
        ("ReferenceError", "analytics is not defined"),
        ("ChunkLoadError", "Loading chunk 742 failed."),
        ("NetworkError", "Failed to fetch"),
        ("SecurityError", "The operation is insecure."),
    ],
    [30, 15, 10, 20, 20, 5],
)
CLICK_TARGETS: Final = ("nav_menu", "search_box", "product_card", "cta_banner", "footer_link", "filter")
FEEDBACK_SURVEYS: Final = (("nps-2025q1", "0-10"), ("csat-checkout", "1-5"))
NPS_SCORES: Final = _Choice(list(range(11)), [2, 1, 1, 2, 2, 4, 5, 10, 14, 22, 37])
CSAT_SCORES: Final = _Choice([1, 2, 3, 4, 5], [6, 8, 16, 35, 35])
FEEDBACK_COMMENTS: Final = _Choice(
    [
        None,
        "Great shop, fast delivery.",
        "Checkout was slow on my phone.",
        "Please contact me at jane.doe@example.com about my order.",
        "Order 4411 2233 never arrived, call me on +1 555 010 9999",
        "My card 4111 1111 1111 1111 was charged twice!",
        "Could not find the sizing guide.",
    ],
    [45, 15, 12, 8, 8, 4, 8],
)
"""Feedback comments, some with the PII the decode step scrubs (fake e-mails, phone and card numbers)."""

CLICK_COUNTS: Final = _Choice([0, 1, 2, 3, 4, 6], [35, 30, 15, 10, 6, 4])

# ------------------------------------------------------------------------------------- simulation


@dataclass(slots=True)
class _User:
    key: bytes
    key_json: str
    partition: int
    ids: Piece
    device: Piece
    client: Piece
    v2: bool
    bot: bool
    anonymous: bool
    device_type: str
    country: str
    performance: tuple[float, float, float]
    anonymous_id: str
    stealth: bool = False
    guest: _User | None = None
    """The same device before the login (anonymous_id only), made on first use (`Generator._guest`)."""


# Raw event: (ts, kind, page, measures, engagement, properties, tag); engagement 0: null, 1: heartbeat, a
# Piece: a feedback answer's v3 fields (written with v3).
_Page = tuple[Piece, str]
_Raw = tuple[int, Piece, _Page, Piece, "int | Piece", Piece, str | None]
_Step = tuple[int, Piece, Piece]

_NO_MEASURES: Final = (None, None, None, None, None, None)
_MEASURE_TYPES: Final = ("double", "double", "double", "string", "string", "double")


class _Measures:
    """Encoders of the measures group (lcp_ms, inp_ms, cls, error_type, error_message, page_load_ms)."""

    def __init__(self, segment: FieldGroup) -> None:
        types = tuple(f["type"][1] if isinstance(f["type"], list) else None for f in segment.fields)
        if types != _MEASURE_TYPES:
            raise ContractError(
                f"measure fields {segment.names} must have types {_MEASURE_TYPES}: update {__name__}"
            )
        self.segment = segment
        self.none = segment.fast(_NO_MEASURES)
        names = segment.names
        self._load_json = ",".join(f'"{n}":null' for n in names[:5]) + f',"{names[5]}":'
        self._vital = (
            f'"{names[0]}":',
            f',"{names[1]}":',
            f',"{names[2]}":',
            "," + ",".join(f'"{n}":null' for n in names[3:]),
        )
        self._errors: dict[tuple[str, str], Piece] = {}

    def page_load(self, load: float) -> Piece:
        return b"\x00\x00\x00\x00\x00\x02" + _DOUBLE(load), self._load_json + repr(load)

    def fragment(self, value: float) -> Piece:
        """A present optional double: Avro and JSON (for `vitals_of`)."""
        return b"\x02" + _DOUBLE(value), repr(value)

    def vitals_of(self, lcp: Piece, inp: Piece | None, cls: Piece) -> Piece:
        """`vitals` from pre-encoded fragments."""
        a, b, c, rest = self._vital
        if inp is None:
            return lcp[0] + b"\x00" + cls[0] + b"\x00\x00\x00", f"{a}{lcp[1]}{b}null{c}{cls[1]}{rest}"
        return lcp[0] + inp[0] + cls[0] + b"\x00\x00\x00", f"{a}{lcp[1]}{b}{inp[1]}{c}{cls[1]}{rest}"

    def error(self, error_type: str, message: str) -> Piece:
        piece = self._errors.get((error_type, message))
        if piece is None:
            piece = self._errors[error_type, message] = self.segment.fast(
                (None, None, None, error_type, message, None)
            )
        return piece

    def values(self, piece: Piece) -> list[Any]:
        """The values behind a piece (to alter them for an invalid record)."""
        return list(json.loads("{" + piece[1] + "}").values())


POOL_SIZE: Final = 2048


class _Pools:
    """Pre-drawn samples of the per-page distributions, pre-encoded (drawing and encoding a lognormal per
    page view costs more than the rest of the event). Distributions per device type: page load, LCP and
    INP lognormal around `PERFORMANCE`; CLS 0 for 40 % of pages, else exponential with mean 0.05; dwell
    time lognormal with median 22 s, clipped to 2 s..15 min."""

    def __init__(self, measures: _Measures, rng: random.Random) -> None:
        def lognormal(median: float, sigma: float) -> list[float]:
            return [math.exp(math.log(median) + sigma * rng.gauss()) for _ in range(POOL_SIZE)]

        self.dwell = [int(min(900_000.0, max(2_000.0, v))) for v in lognormal(22_000.0, 0.9)]
        self.cls = [
            measures.fragment(round(rng.expovariate(20.0), 4) if rng.random() < 0.6 else 0.0)
            for _ in range(POOL_SIZE)
        ]
        self.performance: dict[str, tuple[list[Piece], list[Piece], list[Piece]]] = {}
        for device, (load, lcp, inp) in PERFORMANCE.items():
            self.performance[device] = (
                [measures.page_load(round(v, 1)) for v in lognormal(load, 0.45)],
                [measures.fragment(round(v, 1)) for v in lognormal(lcp, 0.5)],
                [measures.fragment(float(round(v))) for v in lognormal(inp, 0.6)],
            )


class Generator:
    """Iterates the records of one simulation (see the module docstring)."""

    def __init__(
        self, config: GeneratorConfig, *, truth: bool = True, catalog: Catalog | None = None
    ) -> None:
        config.check()
        self.config = config
        self.truth = truth
        self.catalog = catalog or load_catalog()
        versions = self.catalog.versions(EVENT_SUBJECT)
        if len(versions) < 3:
            raise ContractError("the generator needs ux.events-value versions 1, 2 and 3")
        self.v1, self.v2, self.v3 = versions[0], versions[1], versions[2]
        check_layout(self.v1, v2=False)
        check_layout(self.v2, v2=True)
        check_layout(self.v3, v2=True, v3=True)
        for name in self.v1.field_names:  # shared groups are encoded once: their types must agree
            if _field(self.v1, name) != _field(self.v2, name):
                raise ContractError(f"field '{name}' differs between ux_event v1 and v2: update {__name__}")
        segments = [FieldGroup(self.v2, names) for names in (*SEGMENTS_V1, *V2_SEGMENTS)]
        (
            _,
            self._s_kind,
            self._s_user,
            _,
            self._s_page,
            self._s_device,
            measures,
            self._s_props,
            self._s_session,
            self._s_engagement,
            self._s_client,
        ) = segments
        self._measures = _Measures(measures)
        self._s_feedback = FieldGroup(self.v3, V3_SEGMENTS[0])
        self._header = {1: header(self.v1.id), 2: header(self.v2.id), 3: header(self.v3.id)}
        self._schema_id = {1: self.v1.id, 2: self.v2.id, 3: self.v3.id}
        self._other_ids = [e.id for e in self.catalog.entries if e.subject != EVENT_SUBJECT]
        self._rng = random.Random(config.seed)
        self._users: dict[int, _User] = {}
        self._pages: dict[tuple[str, str | None, tuple[Any, ...] | None], _Page] = {}
        self._kinds: dict[tuple[str, str], Piece] = {}
        self._props: dict[tuple[tuple[str, str], ...], Piece] = {}
        self._no_props = self.props({})
        self._engagement = (self._s_engagement.fast((None,)), self._s_engagement.fast((HEARTBEAT_MS,)))
        self._click_props = [self.props({"element": target}) for target in CLICK_TARGETS]
        self._drops = [a for a in config.anomalies if a.kind == "traffic_drop"]
        self._pools = _Pools(self._measures, random.Random(config.seed ^ 0xF00D))

    # -------------------------------------------------------------------------------- pieces

    def kind(self, event_type: str, event_name: str) -> Piece:
        piece = self._kinds.get((event_type, event_name))
        if piece is None:
            piece = self._kinds[event_type, event_name] = self._s_kind.fast((event_type, event_name))
        return piece

    def props(self, values: Mapping[str, str]) -> Piece:
        key = tuple(values.items())
        piece = self._props.get(key)
        if piece is None:
            piece = self._props[key] = self._s_props.fast((dict(values),))
        return piece

    def _page(self, path: str, referrer: str | None, utm: tuple[Any, ...] | None) -> _Page:
        key = (path, referrer, utm)
        page = self._pages.get(key)
        if page is None:
            url = SITE + path
            source = medium = campaign = None
            if utm is not None and utm[0] is not None:
                source, medium, campaign = utm
                url += f"?utm_source={source}&utm_medium={medium}&utm_campaign={campaign}"
            values = (url, path, TITLES[path], referrer, source, medium, campaign)
            page = self._pages[key] = (self._s_page.fast(values), path)
        return page

    def _user(self, rng: random.Random) -> _User:
        cfg = self.config
        draw = rng.random()
        bot = draw < cfg.bot_share
        # one draw decides both kinds of bots, so a stealth share of 0 draws nothing more
        stealth = not bot and draw < cfg.bot_share + cfg.stealth_bot_share
        anonymous = bot or stealth or rng.random() < cfg.anonymous_share
        anonymous_id = f"{rng.getrandbits(128):032x}"
        user_id = None if anonymous else f"usr_{rng.getrandbits(48):012x}"
        if bot:
            device_type, (os_name, browser, agent) = "desktop", BOT_AGENTS[rng.randrange(len(BOT_AGENTS))]
            screen: tuple[int, int] = (1280, 720)
            country = BOT_COUNTRIES.pick(rng)
        else:
            device_type, agents, screens = DEVICES.pick(rng)
            os_name, browser, agent = agents.pick(rng)
            screen = screens[rng.randrange(len(screens))]
            country = COUNTRIES.pick(rng)
        key = (user_id or anonymous_id).encode()
        if rng.random() < 0.9:
            ip = f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        else:
            ip = f"2001:db8:{rng.getrandbits(16):x}:{rng.getrandbits(16):x}::{rng.getrandbits(16):x}"
        consent = "granted" if rng.random() < 0.8 else "denied"
        app_version = APP_VERSIONS.pick(rng)
        return _User(
            key=key,
            key_json=_json_string(key.decode()),
            partition=partition_for(key, cfg.partitions),
            ids=self._s_user.fast((user_id, anonymous_id)),
            device=self._s_device.cached(
                (None, None, None, agent, None, app_version)
                if cfg.user_agent_only
                else (device_type, os_name, browser, agent, country, app_version)
            ),
            client=self._s_client.fast((consent, screen[0], screen[1], ip)),
            v2=rng.random() < cfg.v2_share,
            bot=bot,
            anonymous=anonymous,
            device_type=device_type,
            country=country,
            performance=PERFORMANCE[device_type],
            anonymous_id=anonymous_id,
            stealth=stealth,
        )

    def _guest(self, user: _User) -> _User:
        """`user` before logging in: the same device and anonymous_id, no user_id, keyed by anonymous_id."""
        guest = user.guest
        if guest is None:
            key = user.anonymous_id.encode()
            guest = user.guest = replace(
                user,
                key=key,
                key_json=_json_string(user.anonymous_id),
                partition=partition_for(key, self.config.partitions),
                ids=self._s_user.fast((None, user.anonymous_id)),
                anonymous=True,
            )
        return guest

    # ----------------------------------------------------------------------------- sessions

    def _factor(self, kind: str, ts: int, user: _User, path: str) -> float:
        factor = 1.0
        for anomaly in self.config.anomalies:
            if anomaly.kind == kind and anomaly.matches(ts, user.country, user.device_type, path):
                factor *= anomaly.magnitude
        return factor

    def _session(self, rng: random.Random, user: _User, start: int) -> tuple[list[_Raw], int | None]:
        """Raw events of one session (not sorted: records are ordered by arrival later), and the event time
        of its login (None: no login in this session; events before it carry only the anonymous_id)."""
        if user.bot:
            return self._bot_session(rng, user, start), None
        if user.stealth:
            return self._stealth_session(rng, user, start), None
        plan: list[tuple[str, list[_Step]]] = [(ENTRY.pick(rng), [])]
        journey = rng.random()
        keep_browsing = 0.55
        if journey < (0.05 if user.anonymous else 0.16):
            keep_browsing = 0.3
            product = PRODUCTS[int(rng.random() * len(PRODUCTS))]
            product_id = product.rsplit("/", 1)[1]
            props = self.props({"product_id": product_id})
            steps: list[_Step] = [(1500, self.kind("custom", "product_viewed"), props)]
            plan.append((product, steps))
            if rng.random() < 0.45:
                steps.append((8_000 + int(rng.random() * 32_000), self.kind("click", "add_to_cart"), props))
                if rng.random() < 0.6:
                    plan.append(("/checkout", [(1000, self.kind("custom", "checkout_started"), props)]))
                    if rng.random() < 0.7:
                        value = f"{15 + int(rng.random() * 235)}.00"
                        order = self.props({"product_id": product_id, "value": value, "currency": "USD"})
                        plan.append(
                            ("/checkout/complete", [(600, self.kind("custom", "order_completed"), order)])
                        )
        elif user.anonymous and journey < 0.15:
            keep_browsing = 0.3
            signup: list[_Step] = [(2000, self.kind("custom", "signup_started"), self._no_props)]
            plan.append(("/signup", signup))
            if rng.random() < 0.6:
                submitted = self.kind("custom", "signup_form_submitted")
                signup.append((20_000 + int(rng.random() * 70_000), submitted, self._no_props))
                if rng.random() < 0.75:
                    plan.append(
                        ("/welcome", [(800, self.kind("custom", "signup_completed"), self._no_props)])
                    )
        while len(plan) < 30 and rng.random() < keep_browsing:
            plan.append((NEXT[plan[-1][0]].pick(rng), []))
        login = -1
        if self.config.login_share and not user.anonymous and rng.random() < self.config.login_share:
            # anonymous at first, then logs in on the account page, after the first page and before any other
            login = 1 + int(rng.random() * len(plan))
            plan.insert(login, (LOGIN_PATH, []))
        return self._render(rng, user, start, plan, login)

    def _render(
        self,
        rng: random.Random,
        user: _User,
        start: int,
        plan: list[tuple[str, list[_Step]]],
        login: int = -1,
    ) -> tuple[list[_Raw], int | None]:
        out: list[_Raw] = []
        append = out.append
        random_ = rng.random
        gauss = rng.gauss
        exp = math.exp
        referrer, *utm = CHANNELS.pick(rng)
        landing_utm: tuple[Any, ...] | None = tuple(utm)
        log_load, log_lcp, log_inp = (math.log(x) for x in user.performance)
        anomalies = bool(self.config.anomalies)
        measures = self._measures
        page_view = self.kind("page_view", "page_view")
        heartbeat = self.kind("heartbeat", "heartbeat")
        vital_kind = self.kind("web_vital", "web_vitals")
        error_kind = self.kind("error", "js_error")
        click_kind = self.kind("click", "click")
        click_props = self._click_props
        no_props = self._no_props
        no_measures = measures.none
        error_rate = self.config.error_rate
        pools = self._pools
        dwells, clss = pools.dwell, pools.cls
        loads, lcps, inps = pools.performance[user.device_type]
        t = start
        login_at = None
        for number, (path, extras) in enumerate(plan):
            page = self._page(path, referrer, landing_utm)
            landing_utm = None
            dwell = dwells[int(random_() * POOL_SIZE)]
            if extras:
                dwell = max(dwell, max(offset for offset, _, _ in extras) + 2_000)
            latency = self._factor("latency_spike", t, user, path) if anomalies else 1.0
            tag = "anomaly:latency_spike" if latency != 1.0 else None
            view_tag = tag
            if number == login:
                login_at = t  # every event of this page and the later ones is at or after t
                view_tag = "login" if tag is None else f"{tag},login"
            if latency == 1.0:
                load_piece = loads[int(random_() * POOL_SIZE)]
            else:
                load_piece = measures.page_load(round(exp(log_load + 0.45 * gauss()) * latency, 1))
            append((t, page_view, page, load_piece, 0, no_props, view_tag))
            for offset, kind, props in extras:
                append((t + offset, kind, page, no_measures, 0, props, None))
            clicks = CLICK_COUNTS.pick(rng)
            span = dwell - 500
            for _ in range(clicks):
                props = click_props[int(random_() * len(click_props))]
                append((t + 500 + int(random_() * span), click_kind, page, no_measures, 0, props, None))
            beat = t + HEARTBEAT_MS
            end = t + dwell
            while beat < end:
                append((beat, heartbeat, page, no_measures, 1, no_props, None))
                beat += HEARTBEAT_MS
            error_factor = self._factor("error_spike", t, user, path) if anomalies else 1.0
            if random_() < error_rate * error_factor:
                error = measures.error(*ERRORS.pick(rng))
                error_tag = "anomaly:error_spike" if error_factor != 1.0 else None
                append((t + int(random_() * dwell), error_kind, page, error, 0, no_props, error_tag))
            if random_() < 0.92:
                cls = clss[int(random_() * POOL_SIZE)]
                if latency == 1.0:
                    lcp = lcps[int(random_() * POOL_SIZE)]
                    inp = inps[int(random_() * POOL_SIZE)] if clicks else None
                else:
                    lcp = measures.fragment(round(exp(log_lcp + 0.5 * gauss()) * latency, 1))
                    inp = (
                        measures.fragment(float(round(exp(log_inp + 0.6 * gauss()) * latency)))
                        if clicks
                        else None
                    )
                vitals = measures.vitals_of(lcp, inp, cls)
                append((end - 50 - int(random_() * 950), vital_kind, page, vitals, 0, no_props, tag))
            referrer = SITE + path
            t = end + 200 + int(random_() * 1_800)
        if self.config.feedback_share and user.v2 and random_() < self.config.feedback_share:
            append(
                (
                    t,
                    self.kind("feedback", "survey_answered"),
                    page,
                    no_measures,
                    self._answer(rng),
                    no_props,
                    None,
                )
            )
        return out, login_at

    def _answer(self, rng: random.Random) -> Piece:
        """The feedback fields of one survey answer (schema v3)."""
        survey, scale = FEEDBACK_SURVEYS[int(rng.random() * len(FEEDBACK_SURVEYS))]
        score = (NPS_SCORES if scale == "0-10" else CSAT_SCORES).pick(rng)
        return self._s_feedback.fast((survey, scale, score, FEEDBACK_COMMENTS.pick(rng)))

    def _bot_session(self, rng: random.Random, user: _User, start: int) -> list[_Raw]:
        page_view = self.kind("page_view", "page_view")
        out: list[_Raw] = []
        t = start
        for _ in range(rng.randrange(20, 150)):
            page = self._page(BROWSE_PATHS[int(rng.random() * len(BROWSE_PATHS))], None, None)
            load = round(rng.uniform(120.0, 400.0), 1)
            out.append((t, page_view, page, self._measures.page_load(load), 0, self._no_props, "bot"))
            t += 400 + int(rng.random() * 1_600)
        return out

    def _stealth_session(self, rng: random.Random, user: _User, start: int) -> list[_Raw]:
        """A bot behind a browser user agent: page views only, one every 0.5-1.5 s for 6.5-10 minutes, so
        every event-time minute it covers in full has >= 40 of them (60 s / 1.5 s) and it covers at least 5
        consecutive minutes in full."""
        page_view = self.kind("page_view", "page_view")
        loads = self._pools.performance[user.device_type][0]
        no_props = self._no_props
        random_ = rng.random
        out: list[_Raw] = []
        t = start
        end = start + STEALTH_MIN_MS + int(random_() * (STEALTH_MAX_MS - STEALTH_MIN_MS))
        while t < end:
            page = self._page(BROWSE_PATHS[int(random_() * len(BROWSE_PATHS))], None, None)
            out.append((t, page_view, page, loads[int(random_() * POOL_SIZE)], 0, no_props, "stealth_bot"))
            t += STEALTH_MIN_GAP_MS + int(random_() * (STEALTH_MAX_GAP_MS - STEALTH_MIN_GAP_MS + 1))
        return out

    def mean_session_events(self, sessions: int = 400) -> float:
        """Calibration: average raw events per session (own RNG: the main stream stays untouched)."""
        rng = random.Random(self.config.seed ^ 0x5EED)
        total = 0
        for _ in range(sessions):
            total += len(self._session(rng, self._user(rng), self.config.start_ms)[0])
        return total / sessions

    # ------------------------------------------------------------------------------- records

    def records(self) -> Iterator[Record]:
        """The records in produce order (by received_at), exactly `config.events` of them."""
        return itertools.chain.from_iterable(self.batches())

    def batches(self) -> Iterator[list[Record]]:
        """`records()` in consecutive chunks (cheaper to consume)."""
        cfg = self.config
        rng = self._rng
        duplicates_per_good = cfg.duplicate_fraction / (1 - cfg.duplicate_fraction)
        # Per original event: malformed with probability m, else copied with probability d, so that
        # records = originals * (1 + (1 - m) d) with the requested duplicate and malformed shares.
        malformed_share = cfg.malformed_fraction * (1 + duplicates_per_good)
        duplicate_chance = duplicates_per_good / (1 - malformed_share)
        originals = cfg.events / (1 + duplicates_per_good)
        session_rate = originals / max(1.0, self.mean_session_events()) / cfg.duration_ms  # per ms
        user_count = cfg.user_count
        pending: list[Record] = []
        kept = 0
        session_start = float(cfg.start_ms)
        give_up = cfg.start_ms + 100 * cfg.duration_ms + 86_400_000
        emitted = 0
        target = cfg.events
        arrival = itemgetter(0)
        seasonal = cfg.seasonal
        while emitted < target:
            if session_start > give_up:
                raise RuntimeError(
                    "the simulation stopped producing records (check the traffic_drop anomalies)"
                )
            if seasonal:
                session_start += rng.expovariate(session_rate * cfg.season(int(session_start)))
            else:
                session_start += rng.expovariate(session_rate)
            start = int(session_start)
            if cfg.hot_user_share and rng.random() < cfg.hot_user_share:
                index = 0
            else:
                index = rng.randrange(user_count)
            user = self._users.get(index)
            if user is None:
                user = self._users[index] = self._user(rng)
            raw, login_at = self._session(rng, user, start)
            self._emit(rng, user, raw, pending, malformed_share, duplicate_chance, login_at)
            if len(pending) - kept >= max(8192, kept):
                pending.sort(key=arrival)
                cut = min(bisect.bisect_left(pending, start, key=arrival), target - emitted)
                if cut:
                    yield pending[:cut]
                    emitted += cut
                    del pending[:cut]
                kept = len(pending)

    def _emit(
        self,
        rng: random.Random,
        user: _User,
        raw: list[_Raw],
        pending: list[Record],
        malformed_share: float,
        duplicate_chance: float,
        login_at: int | None = None,
    ) -> None:
        """Turn a session's raw events into records (faults injected) appended to `pending`; with `login_at`,
        the events before it are the guest's (`_guest`: anonymous_id only, keyed by it)."""
        cfg = self.config
        truth = self.truth
        random_ = rng.random
        bits = rng.getrandbits
        append = pending.append
        late_edge = malformed_share + cfg.late_fraction
        future_edge = late_edge + cfg.future_fraction
        spread = cfg.out_of_order_ms + 1
        late_min, late_span = cfg.late_min_delay_ms, cfg.late_max_delay_ms - cfg.late_min_delay_ms + 1
        ahead_min = DEFAULT_MAX_FUTURE_SKEW_MS + cfg.out_of_order_ms + 60_000
        ahead_span = FUTURE_MAX_AHEAD_MS - ahead_min
        v2_from = cfg.v2_from_ms if cfg.v2_from_ms is not None else -(2**63)
        drops = self._drops
        guest, login = (None, 0) if login_at is None else (self._guest(user), login_at)
        current = user
        key, partition, ids_avro, ids_json, v1_head, v2_head, v3_head = self._identity(user)
        device_avro, device_json = user.device
        v1_header, v2_header, v3_header = self._header[1], self._header[2], self._header[3]
        no_block: Piece = (b"", "")
        v2_blocks: tuple[Piece, Piece] = (no_block, no_block)
        if user.v2:
            hint = self._s_session.fast((f"s_{bits(64):016x}",))
            client = user.client
            v2_blocks = tuple(  # type: ignore[assignment]
                (hint[0] + engaged[0] + client[0], f",{hint[1]},{engaged[1]},{client[1]}")
                for engaged in self._engagement
            )
        kinds = cfg.malformed_kinds
        event_ids = binascii.hexlify(rng.randbytes(16 * len(raw)))  # 32 hex digits per event
        position = 0
        for ts, kind, page, measures, engagement, props, tag in raw:
            if guest is not None:
                who = guest if ts < login else user
                if who is not current:
                    current = who
                    key, partition, ids_avro, ids_json, v1_head, v2_head, v3_head = self._identity(who)
            if drops and any(
                a.matches(ts, user.country, user.device_type, page[1]) and random_() >= a.magnitude
                for a in drops
            ):
                continue
            draw = random_()
            id_avro = b"@" + event_ids[position : position + 32]  # Avro string: length 32 is the byte '@'
            position += 32
            client_ts = ts
            malformed = ""
            if draw >= future_edge:
                category = EVENT
                received = ts + int(random_() * spread)
            elif draw >= late_edge:
                category = FUTURE
                received = ts + int(random_() * spread)
                client_ts = ts + ahead_min + int(random_() * ahead_span)
            elif draw >= malformed_share:
                category = LATE
                received = ts + late_min + int(random_() * late_span)
            else:
                category = MALFORMED
                received = ts + int(random_() * spread)
                malformed = kinds[int(random_() * len(kinds))]
                if malformed in _CONTENT_KINDS:
                    id_avro, kind, client_ts, measures = self._invalid_content(
                        rng, malformed, id_avro, kind, client_ts, measures
                    )
            if isinstance(engagement, tuple):  # a feedback answer: its SDK speaks v3 (only v2 users answer)
                plain = v2_blocks[0]
                block = (plain[0] + engagement[0], f"{plain[1]},{engagement[1]}")
                header, line_head = v3_header, v3_head
            elif user.v2 and ts >= v2_from:
                header, block, line_head = v2_header, v2_blocks[engagement], v2_head
            else:
                header, block, line_head = v1_header, no_block, v1_head
            page_piece = page[0]
            value = b"".join(
                (
                    header,
                    id_avro,
                    kind[0],
                    ids_avro,
                    avro_times(client_ts, received),
                    page_piece[0],
                    device_avro,
                    measures[0],
                    block[0],
                    props[0],
                )
            )
            if malformed and malformed not in _CONTENT_KINDS:
                self._corrupt(rng, malformed, value, received, current, tag, pending)
                continue
            line = None
            if truth:
                event_id = id_avro[1:].decode()
                tags = ""
                if tag or category:
                    tags = _tags(tag, category, f"malformed:{malformed}" if malformed else "")
                expected = f',"expected_reason":"{MALFORMED_KINDS[malformed]}"' if malformed else ""
                line = (
                    f'{line_head}{received},"event":{{"event_id":"{event_id}",{kind[1]},{ids_json},'
                    f'"ts":{client_ts},"received_at":{received},{page_piece[1]},{device_json},{measures[1]}'
                    f"{block[1]},{props[1]}}}{expected}{tags}}}\n"
                )
            append((received, value, key, partition, line, category))
            if duplicate_chance and not malformed and random_() < duplicate_chance:
                again = received + 1 + int(random_() * cfg.duplicate_max_delay_ms)
                value = b"".join(
                    (
                        header,
                        id_avro,
                        kind[0],
                        ids_avro,
                        avro_times(client_ts, again),
                        page_piece[0],
                        device_avro,
                        measures[0],
                        block[0],
                        props[0],
                    )
                )
                if truth:
                    event_id = id_avro[1:].decode()
                    tags = _tags(tag, category, "duplicate")
                    line = (
                        f'{line_head}{again},"event":{{"event_id":"{event_id}",{kind[1]},{ids_json},'
                        f'"ts":{client_ts},"received_at":{again},{page_piece[1]},{device_json},{measures[1]}'
                        f"{block[1]},{props[1]}}}{tags}}}\n"
                    )
                append((again, value, key, partition, line, DUPLICATE))

    def _identity(self, user: _User) -> tuple[bytes, int, bytes, str, str, str, str]:
        """What the records of `user` carry: key, partition, the ids group (Avro, JSON), and the ground-truth
        line heads for schema v1, v2 and v3."""
        head = f'"partition":{user.partition},"key":{user.key_json},"timestamp":'
        ids_avro, ids_json = user.ids
        return (
            user.key,
            user.partition,
            ids_avro,
            ids_json,
            f'"schema_id":{self._schema_id[1]},{head}',
            f'"schema_id":{self._schema_id[2]},{head}',
            f'"schema_id":{self._schema_id[3]},{head}',
        )

    def _invalid_content(
        self, rng: random.Random, malformed: str, id_avro: bytes, kind: Piece, ts: int, measures: Piece
    ) -> tuple[bytes, Piece, int, Piece]:
        """Valid Avro that breaks a validity rule: an empty required field or an impossible value."""
        if malformed == "missing_field":
            if rng.random() < 0.5:
                return avro_string(""), kind, ts, measures  # empty event_id
            event_type = json.loads("{" + kind[1] + "}")["event_type"]
            return id_avro, self.kind(event_type, ""), ts, measures  # empty event_name
        variant = int(rng.random() * 3)
        if variant == 0:  # seconds sent instead of milliseconds: a 1970 timestamp
            return id_avro, kind, ts // 1000, measures
        values = self._measures.values(measures)
        if variant == 1:
            values[5] = -round(rng.uniform(1.0, 5_000.0), 1)  # negative page_load_ms
        else:
            values[2] = -round(rng.uniform(0.001, 0.5), 4)  # negative CLS
        return id_avro, kind, ts, self._measures.segment.fast(values)

    def _corrupt(
        self,
        rng: random.Random,
        malformed: str,
        valid: bytes,
        received: int,
        user: _User,
        tag: str | None,
        pending: list[Record],
    ) -> None:
        """Append a byte-level malformed record derived from a valid one."""
        schema_id: int | None = int.from_bytes(valid[1:5], "big")
        if malformed == "random_bytes":
            value = _BYTE[rng.randrange(1, 256)] + rng.randbytes(rng.randrange(4, 64))
            schema_id = None
        elif malformed == "truncated_frame":
            value = valid[: rng.randrange(0, 5)]
            schema_id = None
        elif malformed == "truncated_avro":
            value = valid[: 5 + rng.randrange(0, len(valid) - 5)]
        elif malformed == "trailing_garbage":
            value = valid + rng.randbytes(rng.randrange(1, 17))
        elif malformed == "bad_magic_byte":
            value = _BYTE[rng.randrange(1, 256)] + valid[1:]
            schema_id = None
        else:  # unknown_schema_id: a non-event schema of the catalog, or an unregistered id
            known = {e.id for e in self.catalog.entries}
            if self._other_ids and rng.random() < 0.25:
                schema_id = self._other_ids[int(rng.random() * len(self._other_ids))]
            else:
                schema_id = rng.randrange(1_000, 1_000_000)
                while schema_id in known:
                    schema_id += 1
            value = header(schema_id) + valid[5:]
        line = None
        if self.truth:
            line = (
                f'"schema_id":{json.dumps(schema_id)},"partition":{user.partition},"key":{user.key_json},'
                f'"timestamp":{received},"payload_b64":"{base64.b64encode(value).decode()}",'
                f'"expected_reason":"{MALFORMED_KINDS[malformed]}"'
                f"{_tags(tag, MALFORMED, f'malformed:{malformed}')}}}\n"
            )
        pending.append((received, value, user.key, user.partition, line, MALFORMED))


_CONTENT_KINDS: Final = frozenset({"missing_field", "impossible_value"})


def _tags(tag: str | None, category: int, *more: str) -> str:
    """The `,"tags":[…]` member of a ground-truth line ('' when there are none)."""
    tags = tag.split(",") if tag else []
    if category == LATE:
        tags.append("late")
    elif category == FUTURE:
        tags.append("future")
    tags.extend(m for m in more if m)
    return f',"tags":{_JSON(tags)}' if tags else ""


def _field(entry: SchemaEntry, name: str) -> Any:
    for item in entry.definition["fields"]:
        if item["name"] == name:
            return plain_schema(item["type"])
    return None


def truth_line(seq: int, tail: str) -> str:
    """A complete ground-truth line from a record's truth tail."""
    return f'{{"seq":{seq},{tail}'
