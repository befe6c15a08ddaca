"""Funnel rules of SEMANTICS.md ("Funnels") as a per-user streaming state machine. Pure Python, no pyflink.

The job hands each user's pre-filtered clean events (valid, first occurrence, not late, not future) to
`UserFunnels.add` in arrival order and calls `UserFunnels.advance(t)` when the watermark reaches `t` (the
event-time timers of the keyed process function). `advance` processes the buffered events with ts <= t in
event-time order ((ts, event_id): arrival order never matters) and then expires attempts whose deadline
is <= t; ended attempts come back as `Attempt` rows. An event with ts <= the watermark cannot arrive any
more (it would be late), so processing up to the watermark is final.

Rules, per funnel, for each event `e` in event-time order:
1. An open attempt whose deadline < e.ts has expired first: `dropped`, ended at its deadline. The deadline
   is entry + conversion window (the window includes its end), or, for ordered/strict funnels with a
   per-step window on the next step, the previous step's time + that window when earlier.
2. With an open attempt: an exclusion event (matching the held properties) ends it as `excluded`.
   `ordered`: e advances the attempt when it matches the next step (other events are ignored, a repeated
   step-1 event does not reset the entry [Mixpanel]); `strict`: e must match the next step, any other
   event of the user ends the attempt as `dropped` (and e may then enter anew); `any`: e marks the first
   not-yet-reached step it matches. Reaching every step ends the attempt as `converted`.
3. Without an open attempt (also right after a strict violation): e enters the funnel when it matches
   step 1 (`any`: any step). The entry event's attributes are the attempt's breakdown values (first
   touch [Amplitude]) and the held values (`hold_constant`): later steps and exclusions count only with
   the same values.
A new attempt can only start after the previous one converted, dropped or was excluded (re-entry).

Attributes are event columns (`country`, `session_hint`, …) or `properties.<key>`; events carry the
values of the attributes the definitions use (`Funnel.attributes`), None when absent.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal, Protocol

Ordering = Literal["ordered", "strict", "any"]
Status = Literal["converted", "dropped", "excluded"]

ORDERINGS: Final[tuple[Ordering, ...]] = ("ordered", "strict", "any")
STATUSES: Final[tuple[Status, ...]] = ("converted", "dropped", "excluded")
HOUR_MS: Final = 3_600_000
DEFAULT_WINDOW_MS: Final = HOUR_MS
"""SEMANTICS.md: conversion window default 1 h."""
DEFAULT_REPORT_WINDOW_MS: Final = HOUR_MS
"""SEMANTICS.md: funnel windows are tumbling windows of entry time, default 1 h."""
PROPERTIES_PREFIX: Final = "properties."
GLOBAL: Final = "global"
ALL_VALUE: Final = "(all)"
NONE_VALUE: Final = "(none)"


# ------------------------------------------------------------------------------------ definitions


@dataclass(frozen=True)
class Step:
    """An event name plus equality filters on attributes (all must hold)."""

    event: str
    where: tuple[tuple[str, str], ...] = ()
    window_ms: int | None = None
    """Per-step window: at most this long after the previous step (ordered/strict funnels)."""

    def matches(self, event: FunnelEvent) -> bool:
        if event.name != self.event:
            return False
        attrs = event.attrs
        return all(attrs.get(name) == value for name, value in self.where)


@dataclass(frozen=True)
class Funnel:
    """A validated funnel definition (`jobs.funnels.definitions` parses and checks the config file)."""

    name: str
    steps: tuple[Step, ...]
    window_ms: int = DEFAULT_WINDOW_MS
    ordering: Ordering = "ordered"
    exclusions: tuple[Step, ...] = ()
    hold_constant: tuple[str, ...] = ()
    breakdowns: tuple[str, ...] = ()

    @property
    def step_names(self) -> tuple[str, ...]:
        return tuple(s.event for s in self.steps)

    @property
    def attributes(self) -> frozenset[str]:
        """Attributes the funnel reads from events (filters, held properties, breakdowns)."""
        names = {n for s in (*self.steps, *self.exclusions) for n, _ in s.where}
        return frozenset(names | set(self.hold_constant) | set(self.breakdowns))

    @property
    def event_names(self) -> frozenset[str]:
        """Event names that can matter to the funnel (steps and exclusions)."""
        return frozenset(s.event for s in (*self.steps, *self.exclusions))


def relevant_event_names(funnels: Iterable[Funnel]) -> frozenset[str] | None:
    """Event names any funnel can react to; None when every event matters (a `strict` funnel: any other
    event between two steps breaks it)."""
    names: set[str] = set()
    for funnel in funnels:
        if funnel.ordering == "strict":
            return None
        names |= funnel.event_names
    return frozenset(names)


def attributes_of(funnels: Iterable[Funnel]) -> tuple[str, ...]:
    """Sorted attributes all funnels read: the columns the job hands to Python besides name and time."""
    return tuple(sorted({a for f in funnels for a in f.attributes}))


# ------------------------------------------------------------------------------------ events, rows


@dataclass(frozen=True, slots=True)
class FunnelEvent:
    ts: int
    event_id: str
    name: str
    attrs: Mapping[str, str | None] = field(default_factory=dict)

    def order(self) -> tuple[int, str]:
        return (self.ts, self.event_id)


def attempt_id(funnel: str, user_key: str, entered_at: int) -> str:
    """Deterministic attempt id: a replay produces the same id for the same attempt."""
    return hashlib.sha256(f"{funnel}\x1f{user_key}\x1f{entered_at}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Attempt:
    """One ended attempt: the `funnel_attempts` row."""

    funnel: str
    user_key: str
    entered_at: int
    ended_at: int
    status: Status
    furthest_step: int
    """Steps reached (1 = entered only; `len(steps)` when converted)."""
    step_times: tuple[int | None, ...]
    """When each step was reached (None: not reached)."""
    breakdown: tuple[tuple[str, str | None], ...]
    """(dimension, value) of the entry event, in the funnel's breakdown order."""

    @property
    def attempt_id(self) -> str:
        return attempt_id(self.funnel, self.user_key, self.entered_at)

    @property
    def time_to_convert_ms(self) -> int | None:
        return self.ended_at - self.entered_at if self.status == "converted" else None

    def step_times_json(self) -> str:
        return json.dumps(list(self.step_times), separators=(",", ":"))

    def breakdown_json(self) -> str:
        return json.dumps(dict(self.breakdown), separators=(",", ":"), sort_keys=True)


# ------------------------------------------------------------------------------------ state machine


class _Open:
    """An attempt in progress."""

    __slots__ = ("breakdown", "entered_at", "held", "last_ts", "step_times")

    def __init__(self, funnel: Funnel, event: FunnelEvent, step: int) -> None:
        self.entered_at = event.ts
        self.last_ts = event.ts
        self.step_times: list[int | None] = [None] * len(funnel.steps)
        self.step_times[step] = event.ts
        self.held = tuple(event.attrs.get(a) for a in funnel.hold_constant)
        self.breakdown = tuple((d, event.attrs.get(d)) for d in funnel.breakdowns)

    def reached(self) -> int:
        return sum(1 for t in self.step_times if t is not None)

    def deadline(self, funnel: Funnel) -> int:
        deadline = self.entered_at + funnel.window_ms
        if funnel.ordering != "any":
            following = self.reached()
            if following < len(funnel.steps):
                step_window = funnel.steps[following].window_ms
                if step_window is not None:
                    deadline = min(deadline, self.last_ts + step_window)
        return deadline

    def holds(self, funnel: Funnel, event: FunnelEvent) -> bool:
        return all(event.attrs.get(a) == v for a, v in zip(funnel.hold_constant, self.held, strict=True))

    def close(self, funnel: Funnel, user_key: str, status: Status, ended_at: int) -> Attempt:
        return Attempt(
            funnel=funnel.name,
            user_key=user_key,
            entered_at=self.entered_at,
            ended_at=ended_at,
            status=status,
            furthest_step=self.reached(),
            step_times=tuple(self.step_times),
            breakdown=self.breakdown,
        )


def _step_event(funnel: Funnel, attempt: _Open, event: FunnelEvent, user_key: str) -> Attempt | None:
    """Apply `event` to an open attempt; the ended attempt if it ended, else None (still open)."""
    if funnel.ordering == "any":
        for index, step in enumerate(funnel.steps):
            if attempt.step_times[index] is None and step.matches(event) and attempt.holds(funnel, event):
                attempt.step_times[index] = event.ts
                attempt.last_ts = event.ts
                break
    else:
        following = attempt.reached()
        if funnel.steps[following].matches(event) and attempt.holds(funnel, event):
            attempt.step_times[following] = event.ts
            attempt.last_ts = event.ts
        elif funnel.ordering == "strict":
            return attempt.close(funnel, user_key, "dropped", event.ts)
    if attempt.reached() == len(funnel.steps):
        return attempt.close(funnel, user_key, "converted", event.ts)
    return None


def _entry_step(funnel: Funnel, event: FunnelEvent) -> int | None:
    if funnel.ordering == "any":
        return next((i for i, s in enumerate(funnel.steps) if s.matches(event)), None)
    return 0 if funnel.steps[0].matches(event) else None


class UserFunnels:
    """Every funnel's state for one user: buffered events and open attempts (picklable)."""

    __slots__ = ("buffer", "open")

    def __init__(self) -> None:
        self.buffer: list[FunnelEvent] = []
        """Events not yet processed (ts above the watermark), sorted by (ts, event_id)."""
        self.open: dict[str, _Open] = {}

    def __getstate__(self) -> tuple[list[FunnelEvent], dict[str, _Open]]:
        return (self.buffer, self.open)

    def __setstate__(self, state: tuple[list[FunnelEvent], dict[str, _Open]]) -> None:
        self.buffer, self.open = state

    @property
    def empty(self) -> bool:
        """Nothing buffered, no attempt open: the job clears the user's state."""
        return not self.buffer and not self.open

    def add(self, event: FunnelEvent) -> None:
        bisect.insort(self.buffer, event, key=FunnelEvent.order)

    def deadlines(self, funnels: Sequence[Funnel]) -> list[int]:
        """When open attempts expire (the job registers event-time timers there)."""
        return [self.open[f.name].deadline(f) for f in funnels if f.name in self.open]

    def process(self, funnels: Sequence[Funnel], user_key: str, event: FunnelEvent) -> list[Attempt]:
        """Apply one event (in event-time order) to every funnel."""
        ended: list[Attempt] = []
        for funnel in funnels:
            attempt = self.open.get(funnel.name)
            if attempt is not None and attempt.deadline(funnel) < event.ts:
                ended.append(attempt.close(funnel, user_key, "dropped", attempt.deadline(funnel)))
                del self.open[funnel.name]
                attempt = None
            if attempt is not None:
                result: Attempt | None
                if any(x.matches(event) for x in funnel.exclusions) and attempt.holds(funnel, event):
                    result = attempt.close(funnel, user_key, "excluded", event.ts)
                else:
                    result = _step_event(funnel, attempt, event, user_key)
                if result is None:
                    continue
                ended.append(result)
                del self.open[funnel.name]
                if not (result.status == "dropped" and funnel.ordering == "strict"):
                    continue  # the event was used; only a strict violation may enter anew
            step = _entry_step(funnel, event)
            if step is not None:
                self.open[funnel.name] = _Open(funnel, event, step)
        return ended

    def advance(self, funnels: Sequence[Funnel], user_key: str, watermark: int) -> list[Attempt]:
        """Process buffered events with ts <= watermark, then expire attempts with deadline <= watermark."""
        ended: list[Attempt] = []
        ready = bisect.bisect_right(self.buffer, watermark, key=lambda e: e.ts)
        for event in self.buffer[:ready]:
            ended.extend(self.process(funnels, user_key, event))
        del self.buffer[:ready]
        for funnel in funnels:
            attempt = self.open.get(funnel.name)
            if attempt is not None and attempt.deadline(funnel) <= watermark:
                ended.append(attempt.close(funnel, user_key, "dropped", attempt.deadline(funnel)))
                del self.open[funnel.name]
        return ended


def run_user(
    funnels: Sequence[Funnel], user_key: str, events: Iterable[FunnelEvent], end: int | None = None
) -> list[Attempt]:
    """A finished stream of one user (any order) → ended attempts; `end` = final watermark (default: the
    end of the stream, where every attempt has expired)."""
    state = UserFunnels()
    for event in events:
        state.add(event)
    return state.advance(funnels, user_key, 2**62 if end is None else end)


# ------------------------------------------------------------------------------------ funnel windows


@dataclass(frozen=True)
class WindowRow:
    """One `funnel_windows` row (and its `funnel_window_steps` rows): attempts entered in the window."""

    funnel: str
    window_start: int
    window_end: int
    dimension: str
    dimension_value: str
    step_names: tuple[str, ...]
    entered: int
    reached: tuple[int, ...]
    converted: int
    dropped: int
    excluded: int
    median_time_to_convert_ms: float | None
    revision: int = 1

    @property
    def conversion_rate(self) -> float | None:
        return self.converted / self.entered if self.entered else None

    @property
    def step_conversion_rates(self) -> tuple[float | None, ...]:
        r = self.reached
        return tuple(r[k + 1] / r[k] if r[k] else None for k in range(len(r) - 1))

    @property
    def drop_off(self) -> tuple[int, ...]:
        r = self.reached
        return tuple(r[k] - r[k + 1] for k in range(len(r) - 1))

    def key(self) -> str:
        """Kafka record key of the ux.funnel message."""
        return f"{self.funnel}|{self.dimension}|{self.dimension_value}"

    def avro(self) -> dict[str, object]:
        """The record of schemas/avro/funnel_window.v1.avsc."""
        return {
            "funnel": self.funnel,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "dimension": self.dimension,
            "dimension_value": self.dimension_value,
            "step_names": list(self.step_names),
            "entered": self.entered,
            "reached": list(self.reached),
            "converted": self.converted,
            "dropped": self.dropped,
            "excluded": self.excluded,
            "conversion_rate": self.conversion_rate,
            "step_conversion_rates": list(self.step_conversion_rates),
            "drop_off": list(self.drop_off),
            "median_time_to_convert_ms": self.median_time_to_convert_ms,
            "revision": self.revision,
        }


def window_start(entered_at: int, size_ms: int = DEFAULT_REPORT_WINDOW_MS) -> int:
    return entered_at - entered_at % size_ms


def dimension_values(breakdown: Iterable[tuple[str, str | None]]) -> list[tuple[str, str]]:
    """The dimension values an attempt counts in: global, then each breakdown ('(none)' when absent)."""
    return [(GLOBAL, ALL_VALUE), *((d, NONE_VALUE if v is None else v) for d, v in breakdown)]


Summary = tuple[str, int, int | None, tuple[tuple[str, str | None], ...]]
"""What a window needs of an attempt: (status, furthest step, time to convert, breakdown)."""


def summary(attempt: Attempt) -> Summary:
    return (attempt.status, attempt.furthest_step, attempt.time_to_convert_ms, attempt.breakdown)


def window_rows(funnel: Funnel, start: int, size_ms: int, attempts: Iterable[Summary]) -> list[WindowRow]:
    """Final rows of one funnel window (attempts that entered in [start, start + size))."""
    groups: dict[tuple[str, str], list[Summary]] = {}
    for item in attempts:
        for key in dimension_values(item[3]):
            groups.setdefault(key, []).append(item)
    rows = []
    steps = len(funnel.steps)
    for (dimension, value), members in sorted(groups.items()):
        counted = [m for m in members if m[0] != "excluded"]
        times = [m[2] for m in counted if m[0] == "converted" and m[2] is not None]
        rows.append(
            WindowRow(
                funnel=funnel.name,
                window_start=start,
                window_end=start + size_ms,
                dimension=dimension,
                dimension_value=value,
                step_names=funnel.step_names,
                entered=len(counted),
                reached=tuple(sum(1 for m in counted if m[1] >= k) for k in range(1, steps + 1)),
                converted=sum(1 for m in counted if m[0] == "converted"),
                dropped=sum(1 for m in counted if m[0] == "dropped"),
                excluded=len(members) - len(counted),
                median_time_to_convert_ms=float(statistics.median(times)) if times else None,
            )
        )
    return rows


# ------------------------------------------------------------------------------------ identity (issue 22)

DEFAULT_VISIT_GAP_MS: Final = 30 * 60_000
"""A device's visit ends after this long without an event (the session gap of SEMANTICS.md, 30 min)."""


@dataclass(frozen=True, slots=True)
class Sighting:
    """One event of a device as the identity stage sees it: an anonymous event (`user_id` None, `event`
    the funnel event) or a link (an event carrying both ids: `user_id` set; `event` is None when the event
    is no funnel step, i.e. it only links)."""

    ts: int
    event_id: str
    user_id: str | None
    event: FunnelEvent | None

    def order(self) -> tuple[int, int, str, str]:
        """Event-time order; at equal ts links come first (a link at the same ts is "at or before" an
        anonymous event), by user id, then by event id."""
        return (self.ts, 0 if self.user_id is not None else 1, self.user_id or "", self.event_id)


Resolved = tuple[str, FunnelEvent]
"""(user key the event counts for, the event)."""


class DeviceIdentity:
    """The identity state of one device (device key = anonymous_id): rule 3 of README "Identity in
    funnels". Pending sightings wait for the watermark (`advance`), so resolution follows event time only:

    - a link sets the device's link to its user id (the latest in event time wins) and resolves the events
      held so far in the visit to that user;
    - an anonymous event resolves to the device's link when there is one (at or before it, at most
      `ttl_ms` older), else it is held;
    - held events are released under the device key once the visit ends: no sighting within `gap_ms`
      after the last one (a link after a longer gap does not reach back);
    - the link is forgotten `ttl_ms` of event time after it was made.

    Events with a user id are not held at all: the job forwards them at once (`jobs.funnels.functions`);
    only their link (ts, user id) comes here."""

    __slots__ = ("held", "last_ts", "link", "pending")

    def __init__(self) -> None:
        self.pending: list[Sighting] = []
        """Sightings above the watermark, sorted by `Sighting.order`."""
        self.held: list[FunnelEvent] = []
        """Anonymous events of the current visit waiting for a link (in event-time order)."""
        self.last_ts: int | None = None
        """Time of the last processed sighting (the visit's last event)."""
        self.link: tuple[int, str] | None = None
        """(ts, user id) of the latest link."""

    def __getstate__(self) -> tuple[object, ...]:
        return (self.pending, self.held, self.last_ts, self.link)

    def __setstate__(self, state: tuple[object, ...]) -> None:
        self.pending, self.held, self.last_ts, self.link = state  # type: ignore[assignment]

    @property
    def empty(self) -> bool:
        """Nothing pending, held or linked: the job clears the device's state."""
        return not self.pending and not self.held and self.link is None

    def add(self, sighting: Sighting) -> None:
        bisect.insort(self.pending, sighting, key=Sighting.order)

    def timers(self, gap_ms: int, ttl_ms: int) -> list[int]:
        """Event times at which `advance` may release or forget something (besides pending sightings)."""
        times = []
        if self.held and self.last_ts is not None:
            times.append(self.last_ts + gap_ms)
        if self.link is not None:
            times.append(self.link[0] + ttl_ms)
        return times

    def _release(self, device_key: str) -> list[Resolved]:
        released = [(device_key, e) for e in self.held]
        self.held = []
        return released

    def advance(self, device_key: str, watermark: int, gap_ms: int, ttl_ms: int) -> list[Resolved]:
        """Process the sightings with ts <= watermark in event-time order; then release the held events of
        an ended visit and forget an expired link. Returns the resolved funnel events, in order."""
        out: list[Resolved] = []
        ready = bisect.bisect_right(self.pending, watermark, key=lambda s: s.ts)
        for s in self.pending[:ready]:
            if self.held and self.last_ts is not None and s.ts - self.last_ts > gap_ms:
                out.extend(self._release(device_key))
            if self.link is not None and s.ts - self.link[0] > ttl_ms:
                self.link = None
            if s.user_id is not None:
                self.link = (s.ts, s.user_id)
                out.extend((s.user_id, e) for e in self.held)
                self.held = []
            elif s.event is not None:
                if self.link is not None:
                    out.append((self.link[1], s.event))
                else:
                    self.held.append(s.event)
            self.last_ts = s.ts
        del self.pending[:ready]
        if self.held and self.last_ts is not None and self.last_ts + gap_ms <= watermark:
            out.extend(self._release(device_key))
        if self.link is not None and self.link[0] + ttl_ms <= watermark:
            self.link = None
        if not self.held and not self.pending:
            self.last_ts = None
        return out


def resolve_device(
    device_key: str,
    sightings: Iterable[Sighting],
    gap_ms: int = DEFAULT_VISIT_GAP_MS,
    ttl_ms: int = 30 * 86_400_000,
    end: int | None = None,
) -> list[Resolved]:
    """A finished stream of one device (any order) → its anonymous funnel events, resolved."""
    state = DeviceIdentity()
    for s in sightings:
        state.add(s)
    return state.advance(device_key, 2**62 if end is None else end, gap_ms, ttl_ms)


class DeviceFunnels:
    """A device's identity (`DeviceIdentity`) and the funnel state of its anonymous id (`UserFunnels`).

    The anonymous id's events all come from this one device: the held events released under it when their
    visit ends. They are run here rather than in the per-user stage, because only here is it known which
    of them are still held: the anonymous id's attempts advance to the watermark, but never past a held
    event (which may still join them when its visit ends without a login), so they take the held events in
    event-time order exactly as the oracle does. Events resolved to a user id go on to the per-user stage."""

    __slots__ = ("anonymous", "identity")

    def __init__(self) -> None:
        self.identity = DeviceIdentity()
        self.anonymous = UserFunnels()

    def __getstate__(self) -> tuple[DeviceIdentity, UserFunnels]:
        return (self.identity, self.anonymous)

    def __setstate__(self, state: tuple[DeviceIdentity, UserFunnels]) -> None:
        self.identity, self.anonymous = state

    @property
    def empty(self) -> bool:
        return self.identity.empty and self.anonymous.empty

    def add(self, sighting: Sighting) -> None:
        self.identity.add(sighting)

    def timers(self, funnels: Sequence[Funnel], gap_ms: int, ttl_ms: int) -> list[int]:
        """When to call `advance` again: the identity's timers and the anonymous attempts' deadlines (one
        at or below the watermark is held back by a held event; the visit's end advances it)."""
        return [*self.identity.timers(gap_ms, ttl_ms), *self.anonymous.deadlines(funnels)]

    def advance(
        self,
        funnels: Sequence[Funnel],
        device_key: str,
        anonymous_key: str,
        watermark: int,
        gap_ms: int,
        ttl_ms: int,
    ) -> tuple[list[Resolved], list[Attempt]]:
        """(events resolved to a user id, ended attempts of the anonymous id — `anonymous_key` in the rows)
        once the watermark reached `watermark`."""
        to_users: list[Resolved] = []
        for user, event in self.identity.advance(device_key, watermark, gap_ms, ttl_ms):
            if user == device_key:
                self.anonymous.add(event)
            else:
                to_users.append((user, event))
        held = self.identity.held
        horizon = watermark if not held else min(watermark, held[0].ts - 1)
        return to_users, self.anonymous.advance(funnels, anonymous_key, horizon)


# ------------------------------------------------------------------ window finality with held attempts

WINDOW_RETENTION_MS: Final = 24 * 3_600_000
"""How long (event time) a written window keeps its attempts after it became final: an attempt of an
anonymous visit that the identity stage held until its login or the visit's end can reach the window stage
after the window was written (README "Identity in funnels"); within this retention the window is written
again, complete, with the next revision. Later than that, the attempt is counted in no window."""


class AttemptStore(Protocol):
    """The keyed map the window stage keeps (Flink MapState in the job, a dict wrapper in tests)."""

    def get(self, key: str) -> Any: ...
    def put(self, key: str, value: Any) -> None: ...
    def remove(self, key: str) -> None: ...
    def items(self) -> Iterable[tuple[str, Any]]: ...


class WindowBook:
    """One funnel's windows in the window stage: attempts by window start (`a|<start>|<attempt id>`), the
    revision each written window was written with (`w|<start>`), and which written windows got a late
    attempt since (`d|<start>`). Pure: the adapter feeds it attempts and timer firings."""

    def __init__(self, funnel: Funnel, window_ms: int, store: AttemptStore) -> None:
        self.funnel = funnel
        self.window_ms = window_ms
        self.store = store

    def final_at(self, start: int) -> int:
        """The event time at which window `start` is written: its end + the conversion window."""
        return start + self.window_ms + self.funnel.window_ms

    def add(self, attempt_id: str, entered_at: int, summary: Summary, watermark: int | None) -> int | None:
        """Keep an attempt; returns the timer to register (the window's final time; in the past for a late
        attempt of a written window, which then fires at the next watermark), or None when the window's
        retention has passed (the attempt is counted in no window: its row stays as written)."""
        start = window_start(entered_at, self.window_ms)
        if watermark is not None and self.final_at(start) + WINDOW_RETENTION_MS <= watermark:
            return None
        self.store.put(f"a|{start}|{attempt_id}", summary)
        if self.store.get(f"w|{start}") is not None:
            self.store.put(f"d|{start}", True)
        return self.final_at(start)

    def fire(self, watermark: int) -> tuple[list[WindowRow], list[int]]:
        """At a timer: the rows of every window that became final and of every written window with late
        attempts (complete, next revision), and the cleanup timers to register. Windows past their
        retention are dropped."""
        attempts: dict[int, list[Summary]] = {}
        written: dict[int, int] = {}
        dirty: set[int] = set()
        for key, value in list(self.store.items()):
            kind, start_text, *_ = key.split("|", 2)
            start = int(start_text)
            if kind == "a":
                attempts.setdefault(start, []).append(value)
            elif kind == "w":
                written[start] = int(value)
            else:
                dirty.add(start)
        rows: list[WindowRow] = []
        timers: list[int] = []
        for start in sorted(set(attempts) | set(written)):
            final = self.final_at(start)
            if final > watermark:
                continue
            if final + WINDOW_RETENTION_MS <= watermark:
                for key, _ in list(self.store.items()):
                    if key.split("|", 2)[1] == str(start):
                        self.store.remove(key)
                continue
            if start in written and start not in dirty:
                continue
            revision = written.get(start, 0) + 1
            members = sorted(attempts.get(start, []), key=repr)
            rows.extend(
                replace(w, revision=revision)
                for w in window_rows(self.funnel, start, self.window_ms, members)
            )
            self.store.put(f"w|{start}", revision)
            if start in dirty:
                self.store.remove(f"d|{start}")
            else:
                timers.append(final + WINDOW_RETENTION_MS)
        return rows, timers
