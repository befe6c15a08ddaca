"""The "right now" tier: active users in the last 1 and 5 minutes and events per second, fresh to the second.

Final KPI windows are ~65 s behind real time by design (1-minute windows + the 5 s watermark bound), so the
collector also counts what it acknowledged in Redis, and the dashboard reads that. Times here are the
collector's clock when it acknowledged the events (processing time, not event time): this tier answers
"who is on the site now", the final windows answer everything else.

One key layout (prefix `ux:rt` by default; `minute` and `second` are epoch minutes / seconds):

    {prefix}:u:{minute}:{dimension}:{value}   HyperLogLog of user keys (PFADD), expires after USERS_TTL_S
    {prefix}:e:{second}                       events acknowledged in that second (INCRBY), EVENTS_TTL_S
    {prefix}:seen                             epoch ms of the last write (SET), to tell "nobody feeds it"

Dimensions are the KPI dimensions (global/(all), page_path, country, device_type; '(none)' when the event
lacks the value), so a "right now" figure lines up with a final window of the same segment.

    record(client, events, now_ms)           the writer the collector calls after the events are on Kafka
    read(client, now_ms, dimension, value)   active users (PFCOUNT merged over the minute buckets: "1 min" =
                                             this and the previous bucket, "5 min" = this and the 5 before)
                                             and events/s over the last complete seconds
    users_in(client, first, last, ...)       distinct users of any span of minute buckets
    Recorder.from_env().acknowledged(events) the collector's entry point: wall clock, never raises

HyperLogLog in Redis has a standard error of 0.81 % (Redis documentation, PFCOUNT); sparse HLLs of small
sets are exact in practice.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from uxstream.services.redis import RedisClient, RedisError, RedisSettings

DEFAULT_PREFIX = "ux:rt"
USERS_TTL_S = 15 * 60
"""User HLLs outlive the 5-minute read by 10 minutes (a clock skew between collector replicas is harmless)."""
EVENTS_TTL_S = 10 * 60
DIMENSIONS = ("page_path", "country", "device_type")
GLOBAL = ("global", "(all)")
MISSING = "(none)"
HLL_STANDARD_ERROR = 0.0081
"""Redis: "the returned cardinality of the observed set is not exact, but approximated with a standard
error of 0.81%"."""
EVENTS_PER_SECOND_SPAN_S = 5
"""events/s is the mean over this many complete seconds before the current one."""
FEED_STALE_MS = 5 * 60_000
"""No write for this long: nobody feeds the counters (the dashboard says so)."""


@dataclass(frozen=True)
class AckedEvent:
    """What the writer needs of one acknowledged event."""

    user_key: str
    page_path: str | None = None
    country: str | None = None
    device_type: str | None = None

    @classmethod
    def from_event(cls, event: Mapping[str, object]) -> AckedEvent:
        """From a decoded ux event (user_id, else anonymous_id, as the jobs key users)."""

        def text(name: str) -> str | None:
            value = event.get(name)
            return value if isinstance(value, str) and value != "" else None

        return cls(
            user_key=text("user_id") or text("anonymous_id") or "",
            page_path=text("page_path"),
            country=text("country"),
            device_type=text("device_type"),
        )

    def segments(self) -> list[tuple[str, str]]:
        return [
            GLOBAL,
            ("page_path", self.page_path or MISSING),
            ("country", self.country or MISSING),
            ("device_type", self.device_type or MISSING),
        ]


@dataclass(frozen=True)
class RightNow:
    """What the dashboard's "right now" panel shows."""

    active_users_1m: int
    active_users_5m: int
    events_per_second: float
    last_write_ms: int | None
    now_ms: int

    @property
    def fed(self) -> bool:
        """False when no collector wrote within FEED_STALE_MS."""
        return self.last_write_ms is not None and self.now_ms - self.last_write_ms <= FEED_STALE_MS

    def as_json(self) -> dict[str, object]:
        return {
            "active_users_1m": self.active_users_1m,
            "active_users_5m": self.active_users_5m,
            "events_per_second": self.events_per_second,
            "last_write_ms": self.last_write_ms,
            "now_ms": self.now_ms,
            "fed": self.fed,
        }


# ------------------------------------------------------------------------------------- keys (pure)


def users_key(prefix: str, minute: int, dimension: str, value: str) -> str:
    return f"{prefix}:u:{minute}:{dimension}:{value}"


def events_key(prefix: str, second: int) -> str:
    return f"{prefix}:e:{second}"


def seen_key(prefix: str) -> str:
    return f"{prefix}:seen"


def write_commands(
    events: Iterable[AckedEvent], now_ms: int, prefix: str = DEFAULT_PREFIX
) -> list[tuple[str | int, ...]]:
    """The Redis commands that record `events` acknowledged at `now_ms` (one PFADD per segment key, one
    INCRBY, their expiries, the last-write mark). Empty when there are no events."""
    minute, second = now_ms // 60_000, now_ms // 1000
    users: dict[str, set[str]] = defaultdict(set)
    count = 0
    for event in events:
        count += 1
        if not event.user_key:
            continue
        for dimension, value in event.segments():
            users[users_key(prefix, minute, dimension, value)].add(event.user_key)
    if count == 0:
        return []
    commands: list[tuple[str | int, ...]] = []
    for key in sorted(users):
        commands.append(("PFADD", key, *sorted(users[key])))
        commands.append(("EXPIRE", key, USERS_TTL_S))
    counter = events_key(prefix, second)
    commands += [
        ("INCRBY", counter, count),
        ("EXPIRE", counter, EVENTS_TTL_S),
        ("SET", seen_key(prefix), now_ms),
    ]
    return commands


def read_commands(
    now_ms: int, dimension: str = "global", value: str = "(all)", prefix: str = DEFAULT_PREFIX
) -> list[tuple[str | int, ...]]:
    """PFCOUNT over the current and previous minute keys (1 min: this and the last minute bucket, 5 min:
    the last five and this one), MGET of the last complete seconds, GET of the last-write mark."""
    minute, second = now_ms // 60_000, now_ms // 1000
    keys = [users_key(prefix, m, dimension, value) for m in range(minute, minute - 6, -1)]
    seconds = [events_key(prefix, s) for s in range(second - EVENTS_PER_SECOND_SPAN_S, second)]
    return [("PFCOUNT", *keys[:2]), ("PFCOUNT", *keys), ("MGET", *seconds), ("GET", seen_key(prefix))]


def users_in(
    client: RedisClient,
    first_minute: int,
    last_minute: int,
    dimension: str = "global",
    value: str = "(all)",
    prefix: str = DEFAULT_PREFIX,
) -> int:
    """Distinct users of the minute buckets first_minute..last_minute (epoch minutes, both included),
    merged by PFCOUNT."""
    keys = [users_key(prefix, m, dimension, value) for m in range(first_minute, last_minute + 1)]
    reply = client.execute("PFCOUNT", *keys)
    assert isinstance(reply, int)
    return reply


def right_now_of(replies: Sequence[object], now_ms: int) -> RightNow:
    """The panel's figures from the replies to `read_commands`."""
    one, five, seconds, seen = replies
    assert isinstance(one, int) and isinstance(five, int) and isinstance(seconds, list)
    total = sum(int(v) for v in seconds if isinstance(v, bytes))
    last = int(seen) if isinstance(seen, bytes) else None
    return RightNow(one, five, total / EVENTS_PER_SECOND_SPAN_S, last, now_ms)


# ---------------------------------------------------------------------------------------------- I/O


def record(
    client: RedisClient, events: Iterable[AckedEvent], now_ms: int, prefix: str = DEFAULT_PREFIX
) -> None:
    """The writer: count `events` the collector acknowledged at `now_ms` (one pipelined round trip)."""
    commands = write_commands(events, now_ms, prefix)
    if commands:
        client.pipeline(commands)


def read(
    client: RedisClient,
    now_ms: int,
    dimension: str = "global",
    value: str = "(all)",
    prefix: str = DEFAULT_PREFIX,
) -> RightNow:
    """The reader: active users in the last 1 and 5 minutes of `dimension`/`value` and events/s."""
    return right_now_of(client.pipeline(read_commands(now_ms, dimension, value, prefix)), now_ms)


@dataclass
class Recorder:
    """What the collector holds: `acknowledged(events)` after the events are on Kafka. A Redis outage never
    fails the collector's acknowledgement: the call returns False and counts the failure (the dashboard's
    panel then says Redis is unreachable, or that nothing feeds it)."""

    client: RedisClient
    prefix: str = DEFAULT_PREFIX
    clock_ms: Callable[[], int] = field(default=lambda: int(time.time() * 1000))
    failures: int = 0

    @classmethod
    def from_env(cls) -> Recorder:
        return cls(RedisClient(RedisSettings.from_env()))

    def acknowledged(self, events: Iterable[Mapping[str, object]]) -> bool:
        """Count decoded ux events the collector acknowledged just now; False when Redis failed."""
        try:
            record(self.client, [AckedEvent.from_event(e) for e in events], self.clock_ms(), self.prefix)
        except RedisError:
            self.failures += 1
            return False
        return True
