"""Funnels per SEMANTICS.md, rule by rule: the streaming state machine (logic) and the batch oracle.

Every case runs through both implementations; they must agree with each other and with the expectation.
"""

from __future__ import annotations

import pickle
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.funnels import oracle
from jobs.funnels.logic import (
    Attempt,
    Funnel,
    FunnelEvent,
    Step,
    UserFunnels,
    attempt_id,
    attributes_of,
    relevant_event_names,
    run_user,
    summary,
    window_rows,
)

USER = "user-1"
SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
T0 = int(datetime(2026, 3, 2, 1, 0, tzinfo=UTC).timestamp() * 1000)  # 01:00 UTC


def at(clock: str) -> int:
    """Epoch ms of 'H:MM' on the test day (T0 is 1:00)."""
    hours, minutes = clock.split(":")
    return T0 + (int(hours) - 1) * HOUR + int(minutes) * MINUTE


_ids = iter(range(10**9))


def ev(name: str, ts: int, **attrs: str) -> dict[str, Any]:
    """An event as the job sees it (event dict: columns + properties)."""
    properties = {k[len("p_") :]: v for k, v in attrs.items() if k.startswith("p_")}
    columns = {k: v for k, v in attrs.items() if not k.startswith("p_")}
    return {
        "event_id": f"e{next(_ids):09d}",
        "event_name": name,
        "ts": ts,
        "anonymous_id": USER,
        "properties": properties,
        **columns,
    }


def funnel(*steps: str | Step, **options: Any) -> Funnel:
    return Funnel(
        name=options.pop("name", "f"),
        steps=tuple(s if isinstance(s, Step) else Step(s) for s in steps),
        **options,
    )


ABC = funnel("A", "B", "C")


def as_logic_event(f: Sequence[Funnel], event: dict[str, Any]) -> FunnelEvent:
    attrs = {a: oracle.attribute(event, a) for a in attributes_of(f)}
    return FunnelEvent(event["ts"], event["event_id"], event["event_name"], attrs)


def both(funnels: Sequence[Funnel], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Attempts from the state machine and from the oracle: asserted equal, returned as rows."""
    logic = run_user(funnels, USER, [as_logic_event(funnels, e) for e in events])
    ordered = sorted(events, key=lambda e: (e["ts"], e["event_id"]))
    batch = [r for f in funnels for r in oracle.attempts_of_user(f, USER, ordered)]
    assert sorted(map(row, logic), key=repr) == sorted(batch, key=repr)
    return sorted(batch, key=lambda r: (r["funnel"], r["entered_at"]))


def row(a: Attempt) -> dict[str, Any]:
    return {
        "attempt_id": a.attempt_id,
        "funnel": a.funnel,
        "user_key": a.user_key,
        "entered_at": a.entered_at,
        "ended_at": a.ended_at,
        "status": a.status,
        "furthest_step": a.furthest_step,
        "steps": len(a.step_times),
        "step_times": a.step_times_json(),
        "time_to_convert_ms": a.time_to_convert_ms,
        "breakdown": a.breakdown_json(),
    }


def outcome(rows: list[dict[str, Any]]) -> list[tuple[str, int, str, int]]:
    """(status, entered_at, step_times, ended_at) per attempt: the short form most cases assert."""
    return [(r["status"], r["entered_at"], r["step_times"], r["ended_at"]) for r in rows]


def times(*values: int | None) -> str:
    return "[" + ",".join("null" if v is None else str(v) for v in values) + "]"


# ------------------------------------------------------------------------------------------- entry


def test_the_semantics_example_later_entries_do_not_reset_the_window_so_b_is_reached_but_not_c() -> None:
    rows = both([ABC], [ev("A", at("1:00")), ev("A", at("1:30")), ev("B", at("1:45")), ev("C", at("2:15"))])
    assert outcome(rows) == [("dropped", at("1:00"), times(at("1:00"), at("1:45"), None), at("2:00"))]
    assert rows[0]["furthest_step"] == 2
    assert rows[0]["time_to_convert_ms"] is None


def test_the_conversion_window_includes_its_end() -> None:
    converted = both([ABC], [ev("A", T0), ev("B", T0 + 30 * MINUTE), ev("C", T0 + HOUR)])
    assert outcome(converted) == [("converted", T0, times(T0, T0 + 30 * MINUTE, T0 + HOUR), T0 + HOUR)]
    assert converted[0]["time_to_convert_ms"] == HOUR
    one_ms_late = both([ABC], [ev("A", T0), ev("B", T0 + 30 * MINUTE), ev("C", T0 + HOUR + 1)])
    assert outcome(one_ms_late) == [("dropped", T0, times(T0, T0 + 30 * MINUTE, None), T0 + HOUR)]


def test_events_before_an_entry_do_not_count() -> None:
    rows = both([ABC], [ev("B", T0), ev("C", T0 + 1), ev("A", T0 + 2), ev("C", T0 + 3)])
    assert outcome(rows) == [("dropped", T0 + 2, times(T0 + 2, None, None), T0 + 2 + HOUR)]


def test_attempt_ids_are_deterministic_hashes_of_funnel_user_and_entry() -> None:
    rows = both([ABC], [ev("A", T0)])
    assert rows[0]["attempt_id"] == attempt_id("f", USER, T0)
    assert len(rows[0]["attempt_id"]) == 32
    assert attempt_id("f", USER, T0) != attempt_id("g", USER, T0) != attempt_id("f", USER, T0 + 1)


# ------------------------------------------------------------------------------------ ordering modes

BETWEEN = [ev("A", T0), ev("X", T0 + MINUTE), ev("B", T0 + 2 * MINUTE), ev("C", T0 + 3 * MINUTE)]


def test_ordered_allows_other_events_between_steps() -> None:
    rows = both([ABC], BETWEEN)
    assert outcome(rows) == [("converted", T0, times(T0, T0 + 2 * MINUTE, T0 + 3 * MINUTE), T0 + 3 * MINUTE)]


def test_strict_ends_the_attempt_at_another_event_between_steps() -> None:
    rows = both([funnel("A", "B", "C", ordering="strict")], BETWEEN)
    assert outcome(rows) == [("dropped", T0, times(T0, None, None), T0 + MINUTE)]


def test_strict_converts_when_the_steps_follow_each_other_directly() -> None:
    rows = both([funnel("A", "B", "C", ordering="strict")], [ev("A", T0), ev("B", T0 + 1), ev("C", T0 + 2)])
    assert outcome(rows) == [("converted", T0, times(T0, T0 + 1, T0 + 2), T0 + 2)]


def test_strict_a_repeated_entry_event_breaks_the_attempt_and_enters_anew() -> None:
    rows = both(
        [funnel("A", "B", "C", ordering="strict")],
        [ev("A", T0), ev("A", T0 + 1), ev("B", T0 + 2), ev("C", T0 + 3)],
    )
    assert outcome(rows) == [
        ("dropped", T0, times(T0, None, None), T0 + 1),
        ("converted", T0 + 1, times(T0 + 1, T0 + 2, T0 + 3), T0 + 3),
    ]


def test_ordered_ignores_steps_out_of_order() -> None:
    rows = both([ABC], [ev("A", T0), ev("C", T0 + 1), ev("B", T0 + 2)])
    assert outcome(rows) == [("dropped", T0, times(T0, T0 + 2, None), T0 + HOUR)]


def test_any_enters_with_any_step_and_converts_once_every_step_was_seen() -> None:
    rows = both([funnel("A", "B", "C", ordering="any")], [ev("C", T0), ev("A", T0 + 1), ev("B", T0 + 2)])
    assert outcome(rows) == [("converted", T0, times(T0 + 1, T0 + 2, T0), T0 + 2)]
    assert rows[0]["time_to_convert_ms"] == 2


def test_any_counts_distinct_steps_as_the_furthest_step() -> None:
    rows = both([funnel("A", "B", "C", ordering="any")], [ev("B", T0), ev("B", T0 + 1), ev("A", T0 + 2)])
    assert outcome(rows) == [("dropped", T0, times(T0 + 2, T0, None), T0 + HOUR)]
    assert rows[0]["furthest_step"] == 2


# ---------------------------------------------------------------------------------------- exclusions

EXCLUDING = funnel("A", "B", "C", exclusions=(Step("X"),))


def test_an_exclusion_event_between_steps_removes_the_attempt() -> None:
    rows = both([EXCLUDING], [ev("A", T0), ev("X", T0 + 1), ev("B", T0 + 2), ev("C", T0 + 3)])
    assert outcome(rows) == [("excluded", T0, times(T0, None, None), T0 + 1)]


def test_an_exclusion_before_entry_or_after_conversion_does_nothing() -> None:
    rows = both(
        [EXCLUDING], [ev("X", T0), ev("A", T0 + 1), ev("B", T0 + 2), ev("C", T0 + 3), ev("X", T0 + 4)]
    )
    assert outcome(rows) == [("converted", T0 + 1, times(T0 + 1, T0 + 2, T0 + 3), T0 + 3)]


def test_a_new_attempt_can_start_after_an_exclusion() -> None:
    rows = both(
        [EXCLUDING],
        [ev("A", T0), ev("B", T0 + 1), ev("X", T0 + 2), ev("A", T0 + 3), ev("B", T0 + 4), ev("C", T0 + 5)],
    )
    assert outcome(rows) == [
        ("excluded", T0, times(T0, T0 + 1, None), T0 + 2),
        ("converted", T0 + 3, times(T0 + 3, T0 + 4, T0 + 5), T0 + 5),
    ]


# --------------------------------------------------------------------------- hold property constant

HELD = funnel("A", "B", "C", hold_constant=("properties.product_id",), exclusions=(Step("X"),))


def test_held_property_steps_count_only_with_the_entry_value() -> None:
    rows = both(
        [HELD],
        [ev("A", T0, p_product_id="1"), ev("B", T0 + 1, p_product_id="2"), ev("B", T0 + 2, p_product_id="1"),
         ev("C", T0 + 3, p_product_id="1")],
    )  # fmt: skip
    assert outcome(rows) == [("converted", T0, times(T0, T0 + 2, T0 + 3), T0 + 3)]


def test_held_property_an_entry_event_with_another_value_does_not_enter_while_an_attempt_is_open() -> None:
    rows = both([HELD], [ev("A", T0, p_product_id="1"), ev("A", T0 + 1, p_product_id="2")])
    assert outcome(rows) == [("dropped", T0, times(T0, None, None), T0 + HOUR)]


def test_held_property_exclusions_with_another_value_are_ignored() -> None:
    rows = both(
        [HELD],
        [ev("A", T0, p_product_id="1"), ev("X", T0 + 1, p_product_id="2"), ev("B", T0 + 2, p_product_id="1"),
         ev("X", T0 + 3, p_product_id="1")],
    )  # fmt: skip
    assert outcome(rows) == [("excluded", T0, times(T0, T0 + 2, None), T0 + 3)]


def test_held_event_column_like_session_hint() -> None:
    f = funnel("A", "B", hold_constant=("session_hint",))
    rows = both([f], [ev("A", T0, session_hint="s1"), ev("B", T0 + 1, session_hint="s2")])
    assert outcome(rows) == [("dropped", T0, times(T0, None), T0 + HOUR)]


# ------------------------------------------------------------------------------------ step filters


def test_step_filters_require_equal_attribute_values() -> None:
    f = funnel("A", Step("B", where=(("properties.currency", "USD"), ("country", "DE"))))
    rows = both(
        [f],
        [ev("A", T0), ev("B", T0 + 1, p_currency="EUR", country="DE"), ev("B", T0 + 2, p_currency="USD"),
         ev("B", T0 + 3, p_currency="USD", country="DE")],
    )  # fmt: skip
    assert outcome(rows) == [("converted", T0, times(T0, T0 + 3), T0 + 3)]


# ------------------------------------------------------------------------------------ per-step windows


def test_a_per_step_window_drops_the_attempt_when_the_next_step_comes_too_late() -> None:
    f = funnel("A", Step("B", window_ms=10 * MINUTE), "C")
    rows = both([f], [ev("A", T0), ev("B", T0 + 11 * MINUTE), ev("C", T0 + 12 * MINUTE)])
    assert outcome(rows) == [("dropped", T0, times(T0, None, None), T0 + 10 * MINUTE)]


def test_a_per_step_window_counts_from_the_previous_step() -> None:
    f = funnel("A", "B", Step("C", window_ms=30 * MINUTE))
    ok = both([f], [ev("A", T0), ev("B", T0 + 20 * MINUTE), ev("C", T0 + 50 * MINUTE)])
    assert outcome(ok)[0][0] == "converted"
    late = both([f], [ev("A", T0), ev("B", T0 + 9 * MINUTE), ev("C", T0 + 40 * MINUTE)])
    assert outcome(late) == [("dropped", T0, times(T0, T0 + 9 * MINUTE, None), T0 + 39 * MINUTE)]


def test_the_global_window_still_bounds_per_step_windows() -> None:
    f = funnel("A", Step("B", window_ms=50 * MINUTE), Step("C", window_ms=50 * MINUTE))
    rows = both([f], [ev("A", T0), ev("B", T0 + 40 * MINUTE), ev("C", T0 + 70 * MINUTE)])
    assert outcome(rows) == [("dropped", T0, times(T0, T0 + 40 * MINUTE, None), T0 + HOUR)]


# ------------------------------------------------------------------------------------------ re-entry


def test_re_entry_after_conversion_and_after_drop() -> None:
    rows = both(
        [ABC],
        [ev("A", T0), ev("B", T0 + 1), ev("C", T0 + 2), ev("A", T0 + 3), ev("B", T0 + 4),
         ev("A", T0 + 2 * HOUR), ev("B", T0 + 2 * HOUR + 1), ev("C", T0 + 2 * HOUR + 2)],
    )  # fmt: skip
    assert [(r["status"], r["entered_at"]) for r in rows] == [
        ("converted", T0),
        ("dropped", T0 + 3),
        ("converted", T0 + 2 * HOUR),
    ]


def test_the_converting_event_does_not_enter_again() -> None:
    f = funnel("A", "A")
    rows = both([f], [ev("A", T0), ev("A", T0 + 1), ev("A", T0 + 2)])
    assert outcome(rows) == [
        ("converted", T0, times(T0, T0 + 1), T0 + 1),
        ("dropped", T0 + 2, times(T0 + 2, None), T0 + 2 + HOUR),
    ]


def test_several_funnels_run_side_by_side_on_the_same_events() -> None:
    rows = both([ABC, funnel("B", "C", name="g")], [ev("A", T0), ev("B", T0 + 1), ev("C", T0 + 2)])
    assert [(r["funnel"], r["status"], r["entered_at"]) for r in rows] == [
        ("f", "converted", T0),
        ("g", "converted", T0 + 1),
    ]


# ------------------------------------------------------------------------------------------ breakdowns


def test_breakdowns_use_the_entry_event_first_touch() -> None:
    f = funnel("A", "B", breakdowns=("country", "properties.plan"))
    rows = both([f], [ev("A", T0, country="DE"), ev("B", T0 + 1, country="FR", p_plan="pro")])
    assert rows[0]["breakdown"] == '{"country":"DE","properties.plan":null}'


# ------------------------------------------------------------------------- streaming and watermarks


def test_events_are_processed_in_event_time_order_whatever_the_arrival_order() -> None:
    state = UserFunnels()
    events = [ev("B", T0 + 2 * SECOND), ev("A", T0), ev("C", T0 + 3 * SECOND)]
    for e in events:
        state.add(as_logic_event([ABC], e))
    assert state.advance([ABC], USER, T0 + SECOND) == [], "B is not processed before the watermark passes it"
    ended = state.advance([ABC], USER, T0 + 3 * SECOND)
    assert [(a.status, a.step_times) for a in ended] == [
        ("converted", (T0, T0 + 2 * SECOND, T0 + 3 * SECOND))
    ]
    assert state.empty, "state is cleared once nothing is buffered or open"


def test_drop_off_is_emitted_when_the_watermark_passes_entry_plus_window() -> None:
    state = UserFunnels()
    state.add(as_logic_event([ABC], ev("A", T0)))
    assert state.advance([ABC], USER, T0 + HOUR - 1) == []
    assert state.deadlines([ABC]) == [T0 + HOUR]
    ended = state.advance([ABC], USER, T0 + HOUR)
    assert [(a.status, a.ended_at, a.furthest_step) for a in ended] == [("dropped", T0 + HOUR, 1)]
    assert state.empty


def test_state_survives_pickling_like_flink_state() -> None:
    import pickle

    state = UserFunnels()
    state.add(as_logic_event([ABC], ev("A", T0)))
    state.add(as_logic_event([ABC], ev("B", T0 + 1)))
    state.advance([ABC], USER, T0)
    restored: UserFunnels = pickle.loads(pickle.dumps(state))
    restored.add(as_logic_event([ABC], ev("C", T0 + 2)))
    assert [a.status for a in restored.advance([ABC], USER, T0 + 5)] == ["converted"]


NAMES = ("A", "B", "C", "X")
BOUND = 5 * SECOND
FUNNELS = (
    ABC,
    funnel("A", Step("B", window_ms=20 * SECOND), "C", name="stepwise", window_ms=MINUTE),
    funnel("A", "B", "C", name="strict", ordering="strict", window_ms=MINUTE),
    funnel("A", "B", "C", name="any", ordering="any", window_ms=MINUTE, exclusions=(Step("X"),)),
    funnel("A", "B", name="held", hold_constant=("properties.k",), breakdowns=("country",), window_ms=MINUTE),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3 * MINUTE),
            st.sampled_from(NAMES),
            st.sampled_from(["1", "2"]),
            st.integers(0, BOUND - 1),
        ),
        max_size=40,
    ),
    st.randoms(use_true_random=False),
)
def test_out_of_order_arrival_within_the_bound_gives_the_batch_result(
    spec: list[tuple[int, str, str, int]], rng: random.Random
) -> None:
    """Arrival = event time + a delay below the watermark bound; the watermark after each arrival is the
    max event time seen − bound. Streaming with those watermarks equals the oracle on the sorted list."""
    events = [(ev(n, T0 + t, p_k=k, country=k), t + delay) for t, n, k, delay in spec]
    rng.shuffle(events)
    events.sort(key=lambda pair: pair[1])  # arrival order (ties in random order)
    state = UserFunnels()
    streamed: list[Attempt] = []
    max_ts: int | None = None
    fed = []
    for e, _ in events:
        watermark = None if max_ts is None else max_ts - BOUND
        assert watermark is None or e["ts"] > watermark, "within the bound nothing is late"
        state.add(as_logic_event(FUNNELS, e))
        fed.append(e)
        max_ts = e["ts"] if max_ts is None else max(max_ts, e["ts"])
        streamed.extend(state.advance(FUNNELS, USER, max_ts - BOUND))
    streamed.extend(state.advance(FUNNELS, USER, 2**62))
    assert state.empty
    ordered = sorted(fed, key=lambda e: (e["ts"], e["event_id"]))
    batch = [r for f in FUNNELS for r in oracle.attempts_of_user(f, USER, ordered)]
    assert sorted(map(row, streamed), key=repr) == sorted(batch, key=repr)


# ------------------------------------------------------------------------------------ funnel windows


def test_window_rows_count_entered_reached_converted_dropped_excluded_and_the_median() -> None:
    f = funnel("A", "B", "C", breakdowns=("country",), exclusions=(Step("X"),))
    users = {
        "u1": [ev("A", T0, country="DE"), ev("B", T0 + 1), ev("C", T0 + 10)],
        "u2": [ev("A", T0 + 5, country="DE"), ev("B", T0 + 6), ev("C", T0 + 25)],
        "u3": [ev("A", T0 + 7), ev("B", T0 + 8)],
        "u4": [ev("A", T0 + 9, country="FR"), ev("X", T0 + 10)],
        "u5": [ev("A", T0 + HOUR + 1, country="DE")],
    }
    attempts = [
        a for user, evs in users.items() for a in run_user([f], user, [as_logic_event([f], e) for e in evs])
    ]
    in_window = [summary(a) for a in attempts if a.entered_at < T0 + HOUR]
    start = T0 - T0 % HOUR
    got = {(w.dimension, w.dimension_value): w for w in window_rows(f, start, HOUR, in_window)}
    assert sorted(got) == [("country", "(none)"), ("country", "DE"), ("country", "FR"), ("global", "(all)")]
    total = got[("global", "(all)")]
    assert (total.entered, total.reached, total.converted, total.dropped, total.excluded) == (
        3,
        (3, 3, 2),
        2,
        1,
        1,
    )
    assert total.conversion_rate == pytest.approx(2 / 3)
    assert list(total.step_conversion_rates) == [1.0, pytest.approx(2 / 3)]
    assert total.drop_off == (0, 1)
    assert total.median_time_to_convert_ms == 15.0, "median of 10 and 20 ms"
    assert (got[("country", "FR")].entered, got[("country", "FR")].excluded) == (0, 1)
    assert got[("country", "FR")].conversion_rate is None
    assert got[("country", "FR")].step_conversion_rates == (None, None)
    assert total.key() == "f|global|(all)"
    # The oracle computes the same rows from the attempt rows.
    rows = oracle.expected_windows([f], [row(a) for a in attempts], HOUR)
    mine: list[dict[str, object]] = []
    for window in (start, start + HOUR):
        members = [summary(a) for a in attempts if a.entered_at - a.entered_at % HOUR == window]
        mine.extend(w.avro() for w in window_rows(f, window, HOUR, members))
    assert sorted(rows, key=repr) == sorted(mine, key=repr)


# ------------------------------------------------------------------------------------ the JVM filter


def test_only_step_and_exclusion_names_matter_unless_a_funnel_is_strict() -> None:
    assert relevant_event_names([ABC, EXCLUDING]) == frozenset({"A", "B", "C", "X"})
    assert relevant_event_names([ABC, funnel("A", "B", ordering="strict")]) is None
    assert attributes_of([HELD, FUNNELS[-1]]) == ("country", "properties.k", "properties.product_id")


def test_a_user_who_enters_every_funnel_thousands_of_times_holds_one_open_attempt_per_funnel() -> None:
    """Issue 16, state bounds: funnel state per user does not grow with the user's activity. The job (
    functions.AttemptsFunction) buffers an event until the watermark passes it, then keeps at most one open
    attempt per funnel with at most one time per step; so a bot looping through the funnels holds
    (funnels × steps) times plus the events within the out-of-orderness bound, however long it runs."""
    funnels = [
        Funnel("signup", (Step("view"), Step("form"), Step("done")), window_ms=30 * MINUTE),
        Funnel("buy", (Step("view"), Step("cart"), Step("pay")), window_ms=HOUR, ordering="strict"),
    ]
    state, ended, sizes = UserFunnels(), 0, []
    names = ["view", "form", "cart", "view", "done", "pay"]
    for n in range(30_000):  # an event every 2 s for 16 hours, never idle
        ts = T0 + n * 2 * SECOND
        state.add(FunnelEvent(ts=ts, event_id=f"e{n:06d}", name=names[n % len(names)], attrs={}))
        ended += len(state.advance(funnels, USER, ts - 5 * SECOND))  # the watermark: 5 s bound
        if n % 1_000 == 999:
            sizes.append((len(state.buffer), len(state.open), len(pickle.dumps(state))))
    assert ended > 9_000, "the loop must end thousands of attempts: the test would prove nothing"
    assert max(b for b, _, _ in sizes) <= 3, sizes  # events within the 5 s bound
    assert max(o for _, o, _ in sizes) <= len(funnels), sizes
    # What the job checkpoints for the user (pickled ValueState): the same few hundred bytes at every sample.
    assert max(p for _, _, p in sizes) <= 2 * min(p for _, _, p in sizes) <= 2_000, sizes
