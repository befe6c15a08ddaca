"""Flink adapters of the funnels job: three keyed process functions around `jobs.funnels.logic`.

- `IdentityFunction` (keyed by device key; README "Identity in funnels"): forwards an event carrying a
  user id at once under that user id and records its link; buffers the device's anonymous events to the
  watermark (event-time timers) and resolves each to a user key with `DeviceIdentity`: the device's link,
  or held until a link in the same visit, or released under the anonymous id when the visit ends. Output:
  the event rows the attempts stage reads, now keyed by the resolved user key.
- `AttemptsFunction` (keyed by the resolved user key): buffers the user's pre-filtered events in state,
  registers an event-time timer at each event's ts and at each open attempt's deadline, and on a timer
  advances the user's `UserFunnels` to the timer's time; emits one row per ended attempt. State is cleared
  when nothing is buffered or open; a state TTL is the safety net.
- `WindowsFunction` (keyed by funnel): collects attempt summaries per tumbling window of entry time and,
  once the watermark passed window end + conversion window, emits the final window rows (with the
  Confluent-framed funnel_window record for ux.funnel) and, as a side output, one row per step.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from pyflink.common import Row
from pyflink.common.time import Time
from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, RuntimeContext
from pyflink.datastream.state import StateTtlConfig, ValueStateDescriptor

from jobs.common import topics
from jobs.common.chaos import FailOnce
from jobs.common.contract import encode, load_catalog
from jobs.common.privacy import PrivacySettings, Pseudonymizer
from jobs.funnels.logic import (
    Attempt,
    DeviceFunnels,
    Funnel,
    FunnelEvent,
    Sighting,
    UserFunnels,
    WindowBook,
    relevant_event_names,
)

ATTEMPT_FIELDS = [
    ("attempt_id", Types.STRING()),
    ("funnel", Types.STRING()),
    ("user_key", Types.STRING()),
    ("entered_at", Types.LONG()),
    ("ended_at", Types.LONG()),
    ("status", Types.STRING()),
    ("furthest_step", Types.INT()),
    ("steps", Types.INT()),
    ("step_times", Types.STRING()),
    ("time_to_convert_ms", Types.LONG()),
    ("breakdown", Types.STRING()),
]
WINDOW_FIELDS = [
    ("funnel", Types.STRING()),
    ("window_start", Types.LONG()),
    ("window_end", Types.LONG()),
    ("dimension", Types.STRING()),
    ("dimension_value", Types.STRING()),
    ("steps", Types.INT()),
    ("entered", Types.LONG()),
    ("converted", Types.LONG()),
    ("dropped", Types.LONG()),
    ("excluded", Types.LONG()),
    ("conversion_rate", Types.DOUBLE()),
    ("median_time_to_convert_ms", Types.DOUBLE()),
    ("revision", Types.INT()),
    ("kafka_key", Types.PRIMITIVE_ARRAY(Types.BYTE())),
    ("payload", Types.PRIMITIVE_ARRAY(Types.BYTE())),
]
STEP_FIELDS = [
    ("funnel", Types.STRING()),
    ("window_start", Types.LONG()),
    ("window_end", Types.LONG()),
    ("dimension", Types.STRING()),
    ("dimension_value", Types.STRING()),
    ("step", Types.INT()),
    ("step_name", Types.STRING()),
    ("reached", Types.LONG()),
    ("conversion_from_previous", Types.DOUBLE()),
    ("drop_off", Types.LONG()),
]


def row_type(fields: list[tuple[str, Any]]) -> Any:
    return Types.ROW_NAMED([n for n, _ in fields], [t for _, t in fields])


STEPS_TAG = OutputTag("funnel-window-steps", row_type(STEP_FIELDS))


def event_fields(attributes: Sequence[str]) -> list[tuple[str, Any]]:
    """The event rows the attempts stage reads: (kind, user key, ts, event id, event name, *attributes)."""
    return [
        ("kind", Types.STRING()),
        ("user_key", Types.STRING()),
        ("ts", Types.LONG()),
        ("event_id", Types.STRING()),
        ("event_name", Types.STRING()),
        *((f"attr_{i}", Types.STRING()) for i in range(len(attributes))),
    ]


ANONYMOUS_ATTEMPTS_TAG = OutputTag("funnel-anonymous-attempts", row_type(ATTEMPT_FIELDS))
"""Attempts of anonymous ids, ended in the identity stage (`DeviceFunnels`); joined with the per-user ones."""


def attempt_row(a: Attempt) -> Row:
    return Row(
        a.attempt_id,
        a.funnel,
        a.user_key,
        a.entered_at,
        a.ended_at,
        a.status,
        a.furthest_step,
        len(a.step_times),
        a.step_times_json(),
        a.time_to_convert_ms,
        a.breakdown_json(),
    )


class IdentityFunction(KeyedProcessFunction):  # type: ignore[misc]
    """Input rows: the `routed` view of funnels.sql keyed by device key: (kind, device_key, ts, event_id,
    event_name, *attribute values, late_row, dlq_key, dlq_value, dlq_ts, user_id); only kind 'event'
    concerns it. Events that only link (no funnel step or exclusion) leave nothing but the link behind.
    Output: events resolved to a user id (`event_fields`), and, as the side output
    `ANONYMOUS_ATTEMPTS_TAG`, the ended attempts of the device's anonymous id (`DeviceFunnels`).
    Its state is cleared once nothing is pending, held, linked or open: the link is forgotten by an
    event-time timer `identity_ttl_ms` after it was made, never by a processing-time TTL."""

    def __init__(
        self, funnels: Sequence[Funnel], attributes: Sequence[str], gap_ms: int, identity_ttl_ms: int
    ) -> None:
        self.funnels = tuple(funnels)
        self.relevant = relevant_event_names(funnels)
        self.attributes = tuple(attributes)
        self.gap_ms = gap_ms
        self.ttl_ms = identity_ttl_ms
        self.pseudonym: Pseudonymizer | None = None

    def open(self, runtime_context: RuntimeContext) -> None:
        self.pseudonym = Pseudonymizer(PrivacySettings.from_env())
        descriptor = ValueStateDescriptor("device-funnels", Types.PICKLED_BYTE_ARRAY())
        self.state = runtime_context.get_state(descriptor)

    def _load(self) -> DeviceFunnels:
        current = self.state.value()
        return current if current is not None else DeviceFunnels()

    def _row(self, user_key: str, event: FunnelEvent) -> Row:
        values = (event.attrs[a] for a in self.attributes)
        return Row("event", user_key, event.ts, event.event_id, event.name, *values)

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> Iterator[Row]:
        if value[0] != "event":
            return  # a late-ledger row or a dead letter: written by SQL from the same stream
        names = self.attributes
        n = len(names)
        user_id, device_key = value[5 + n + 4], value[1]
        event: FunnelEvent | None = None
        if self.relevant is None or value[4] in self.relevant:
            attrs = {names[i]: value[5 + i] for i in range(n)}
            event = FunnelEvent(ts=value[2], event_id=value[3], name=value[4], attrs=attrs)
        if user_id is not None:
            if event is not None:
                yield self._row(user_id, event)  # an event with a user id always counts for it
            if device_key == user_id:
                return  # no anonymous id: nothing to link
            event = None
        elif event is None:
            return
        device = self._load()
        device.add(Sighting(ts=value[2], event_id=value[3], user_id=user_id, event=event))
        self.state.update(device)
        ctx.timer_service().register_event_time_timer(value[2])

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Any]:
        assert self.pseudonym is not None
        device = self._load()
        key = ctx.get_current_key()
        resolved, ended = device.advance(
            self.funnels, key, self.pseudonym(key), timestamp, self.gap_ms, self.ttl_ms
        )
        if device.empty:
            self.state.clear()
        else:
            self.state.update(device)
            timers = ctx.timer_service()
            for at in device.timers(self.funnels, self.gap_ms, self.ttl_ms):
                # A deadline at or below the watermark is an anonymous attempt held back by a held event:
                # the visit's end (a timer above) advances it. Re-registering it here would fire it again
                # at once, for ever.
                if at > timestamp:
                    timers.register_event_time_timer(at)
        for user_key, event in resolved:
            yield self._row(user_key, event)
        for attempt in ended:
            yield ANONYMOUS_ATTEMPTS_TAG, attempt_row(attempt)


class AttemptsFunction(KeyedProcessFunction):  # type: ignore[misc]
    """Input rows: `IdentityFunction`'s output (`event_fields`): (kind, user_key, ts, event_id, event_name,
    *attribute values in `attributes` order), the user key resolved by the identity stage."""

    def __init__(self, funnels: Sequence[Funnel], attributes: Sequence[str], state_ttl_ms: int) -> None:
        self.funnels = tuple(funnels)
        self.attributes = tuple(attributes)
        self.relevant = relevant_event_names(funnels)
        self.state_ttl_ms = state_ttl_ms
        self.chaos: FailOnce | None = None
        self.pseudonym: Pseudonymizer | None = None

    def open(self, runtime_context: RuntimeContext) -> None:
        # The key is read where the function runs, never pickled into the job graph (jobs/common/privacy.py).
        self.pseudonym = Pseudonymizer(PrivacySettings.from_env())
        descriptor = ValueStateDescriptor("user-funnels", Types.PICKLED_BYTE_ARRAY())
        descriptor.enable_time_to_live(
            StateTtlConfig.new_builder(Time.milliseconds(self.state_ttl_ms))
            .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
            .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
            .build()
        )
        self.state = runtime_context.get_state(descriptor)
        self.chaos = FailOnce()  # reads the environment of the worker, not the client

    def _load(self) -> UserFunnels:
        current = self.state.value()
        return current if current is not None else UserFunnels()

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> None:
        assert self.chaos is not None
        self.chaos("funnels.attempts")
        if value[0] != "event":
            return  # a late-ledger row or a dead letter: written by SQL from the same stream
        if self.relevant is not None and value[4] not in self.relevant:
            # The JVM filter must keep such events away from Python (DESIGN.md §2): fail loudly if not.
            raise AssertionError(f"the JVM pre-filter let through event {value[3]} named {value[4]!r}")
        names = self.attributes
        attrs = {names[i]: value[5 + i] for i in range(len(names))}
        event = FunnelEvent(ts=value[2], event_id=value[3], name=value[4], attrs=attrs)
        user = self._load()
        user.add(event)
        self.state.update(user)
        ctx.timer_service().register_event_time_timer(event.ts)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Row]:
        assert self.pseudonym is not None
        user = self._load()
        # Rows carry the user key's pseudonym (SEMANTICS.md "Privacy"); the raw key stays in Flink state.
        ended = user.advance(self.funnels, self.pseudonym(ctx.get_current_key()), timestamp)
        if user.empty:
            self.state.clear()
        else:
            self.state.update(user)
            timers = ctx.timer_service()
            for deadline in user.deadlines(self.funnels):
                timers.register_event_time_timer(deadline)
        for a in ended:
            yield attempt_row(a)


class WindowsFunction(KeyedProcessFunction):  # type: ignore[misc]
    """Input: attempt rows keyed by funnel; output: final window rows (+ step rows as a side output)."""

    def __init__(self, funnels: Sequence[Funnel], window_ms: int) -> None:
        self.funnels = {f.name: f for f in funnels}
        self.window_ms = window_ms
        self.schema_id = load_catalog().latest(topics.value_subject(topics.FUNNEL)).id

    def open(self, runtime_context: RuntimeContext) -> None:
        from pyflink.datastream.state import MapStateDescriptor

        # One small entry per attempt (a list per window would be read and rewritten whole for every
        # attempt), plus a written window's revision and late-attempt mark: logic.WindowBook.
        self.attempts = runtime_context.get_map_state(
            MapStateDescriptor("funnel-window-book", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
        )

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> None:
        funnel = self.funnels[value[1]]
        breakdown = json.loads(value[10])
        values = tuple((d, breakdown.get(d)) for d in funnel.breakdowns)
        book = WindowBook(funnel, self.window_ms, self.attempts)
        watermark = ctx.timer_service().current_watermark()
        timer = book.add(value[0], value[3], (value[5], value[6], value[9], values), watermark)
        if timer is not None:
            ctx.timer_service().register_event_time_timer(timer)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Any]:
        funnel = self.funnels[ctx.get_current_key()]
        rows, timers = WindowBook(funnel, self.window_ms, self.attempts).fire(timestamp)
        for timer in timers:
            ctx.timer_service().register_event_time_timer(timer)
        for w in rows:
            yield Row(
                w.funnel,
                w.window_start,
                w.window_end,
                w.dimension,
                w.dimension_value,
                len(w.step_names),
                w.entered,
                w.converted,
                w.dropped,
                w.excluded,
                w.conversion_rate,
                w.median_time_to_convert_ms,
                w.revision,
                w.key().encode(),
                encode(w.avro(), self.schema_id),
            )
            rates, drops = w.step_conversion_rates, w.drop_off
            for k, name in enumerate(w.step_names):
                yield (
                    STEPS_TAG,
                    Row(
                        w.funnel,
                        w.window_start,
                        w.window_end,
                        w.dimension,
                        w.dimension_value,
                        k + 1,
                        name,
                        w.reached[k],
                        rates[k - 1] if k else None,
                        drops[k] if k < len(drops) else None,
                    ),
                )
