"""Sessions per SEMANTICS.md, at their edges: the streaming state machine (logic) and the batch oracle.

Every case runs through both implementations; they must agree with each other and with the expectation.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.sessionize.logic import (
    SessionEvent,
    SessionRow,
    SessionRules,
    SessionState,
    session_id,
    sessionize_batch,
)
from jobs.sessionize.oracle import expected_sessions

USER = "user-1"
SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
GAP = 30 * MINUTE
T0 = int(datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp() * 1000)  # a Monday, 09:00 UTC


def at(text: str, zone: str = "UTC") -> int:
    """Epoch ms of a local wall-clock time, e.g. at('2026-03-02 23:50', 'Europe/Berlin')."""
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp() * 1000)


_counter = iter(range(10**9))


def ev(
    ts: int, event_type: str = "page_view", path: str | None = "/", name: str | None = None, **kw: Any
) -> SessionEvent:
    return SessionEvent(
        ts=ts,
        event_id=f"e{next(_counter):09d}",
        event_type=event_type,
        event_name=name or event_type,
        page_path=path if event_type == "page_view" else None,
        **kw,
    )


def as_dict(row: SessionRow) -> dict[str, Any]:
    return dataclasses.asdict(row)


def oracle(events: Sequence[SessionEvent], rules: SessionRules) -> list[dict[str, Any]]:
    dicts = [{**dataclasses.asdict(e), "anonymous_id": USER, "user_id": None} for e in events]
    return expected_sessions(
        dicts,
        gap_ms=rules.gap_ms,
        timezone=rules.timezone,
        split_at_midnight=rules.split_at_midnight,
        max_duration_ms=rules.max_duration_ms,
        conversion_events=rules.conversion_events,
    )


DEFAULT_RULES = SessionRules()


def sessions(events: Sequence[SessionEvent], rules: SessionRules = DEFAULT_RULES) -> list[SessionRow]:
    """Run the state machine, check the oracle agrees, return the rows."""
    rows = sessionize_batch(USER, rules, events)
    assert [as_dict(r) for r in rows] == oracle(events, rules)
    return rows


def spans(rows: Sequence[SessionRow]) -> list[tuple[int, int, str]]:
    return [(r.session_start, r.session_end, r.split_reason) for r in rows]


# ------------------------------------------------------------------------------------------- the gap


def test_a_gap_of_exactly_the_session_gap_stays_in_the_session() -> None:
    rows = sessions([ev(T0), ev(T0 + GAP)])
    assert spans(rows) == [(T0, T0 + GAP, "gap")]


def test_a_gap_just_over_the_session_gap_starts_a_new_session() -> None:
    rows = sessions([ev(T0), ev(T0 + GAP + 1)])
    assert spans(rows) == [(T0, T0, "gap"), (T0 + GAP + 1, T0 + GAP + 1, "gap")]


def test_a_custom_gap_is_honoured() -> None:
    rules = SessionRules(gap_ms=5 * MINUTE)
    rows = sessions([ev(T0), ev(T0 + 5 * MINUTE), ev(T0 + 10 * MINUTE + 1)], rules)
    assert spans(rows) == [(T0, T0 + 5 * MINUTE, "gap"), (T0 + 10 * MINUTE + 1, T0 + 10 * MINUTE + 1, "gap")]


# -------------------------------------------------------------------------------------- midnight


def test_local_midnight_splits_a_session_in_the_session_time_zone() -> None:
    rules = SessionRules(timezone="Europe/Berlin")
    before, after = at("2026-03-02 23:50", "Europe/Berlin"), at("2026-03-03 00:05", "Europe/Berlin")
    rows = sessions([ev(before), ev(after)], rules)
    assert spans(rows) == [(before, before, "midnight"), (after, after, "gap")]


def test_utc_midnight_does_not_split_a_berlin_session() -> None:
    rules = SessionRules(timezone="Europe/Berlin")
    before, after = at("2026-03-02 23:50"), at("2026-03-03 00:05")  # 00:50 and 01:05 in Berlin
    assert spans(sessions([ev(before), ev(after)], rules)) == [(before, after, "gap")]


def test_midnight_split_can_be_disabled() -> None:
    rules = SessionRules(split_at_midnight=False)
    before, after = at("2026-03-02 23:50"), at("2026-03-03 00:05")
    assert spans(sessions([ev(before), ev(after)], rules)) == [(before, after, "gap")]


def test_an_event_exactly_at_midnight_belongs_to_the_new_day() -> None:
    before, midnight = at("2026-03-02 23:59:59.999"), at("2026-03-03 00:00")
    assert spans(sessions([ev(before), ev(midnight)])) == [
        (before, before, "midnight"),
        (midnight, midnight, "gap"),
    ]


def test_midnight_on_a_daylight_saving_day_in_new_york() -> None:
    rules = SessionRules(timezone="America/New_York")
    # 2026-11-01: clocks fall back at 02:00; the day is 25 h long. Midnight of 11-02 is 05:00Z.
    before, after = at("2026-11-01 23:55", "America/New_York"), at("2026-11-02 00:10", "America/New_York")
    assert spans(sessions([ev(before), ev(after)], rules)) == [
        (before, before, "midnight"),
        (after, after, "gap"),
    ]


# ---------------------------------------------------------------------------------- max duration


def test_a_session_that_would_exceed_the_max_duration_is_split() -> None:
    rules = SessionRules(split_at_midnight=False)
    events = [ev(T0 + i * 10 * MINUTE) for i in range(0, 6 * 25)]  # every 10 min for 25 h
    rows = sessions(events, rules)
    first_over = T0 + 24 * HOUR + 10 * MINUTE  # T0 + 24 h exactly is allowed (duration = max)
    assert spans(rows) == [
        (T0, T0 + 24 * HOUR, "max_duration"),
        (first_over, events[-1].ts, "gap"),
    ]


def test_one_user_active_every_ten_seconds_for_three_days_is_split_at_each_midnight() -> None:
    start = at("2026-03-02 00:00")
    events = [ev(start + i * 10 * SECOND, "heartbeat") for i in range(3 * 24 * 360)]
    rows = sessions(events)
    day = 24 * HOUR
    assert spans(rows) == [
        (start, start + day - 10 * SECOND, "midnight"),
        (start + day, start + 2 * day - 10 * SECOND, "midnight"),
        (start + 2 * day, start + 3 * day - 10 * SECOND, "gap"),
    ]
    assert [r.event_count for r in rows] == [8640, 8640, 8640]


# ----------------------------------------------------------------------------- engaged and bounce


@pytest.mark.parametrize(
    ("events", "engaged"),
    [
        pytest.param([ev(T0)], False, id="one page view is a bounce"),
        pytest.param([ev(T0), ev(T0 + SECOND)], True, id="two page views"),
        pytest.param([ev(T0), ev(T0 + 10 * SECOND, "click")], False, id="lasting exactly 10 s is not enough"),
        pytest.param([ev(T0), ev(T0 + 10 * SECOND + 1, "click")], True, id="lasting over 10 s"),
        pytest.param([ev(T0, "custom", name="order_completed")], True, id="a conversion"),
        pytest.param([ev(T0, "custom", name="add_to_cart")], False, id="a non-conversion custom event"),
    ],
)
def test_engaged_and_bounce(events: list[SessionEvent], engaged: bool) -> None:
    (row,) = sessions(events)
    assert (row.engaged, row.bounce) == (engaged, not engaged)


def heartbeat(ts: int, engagement_ms: int) -> SessionEvent:
    return ev(ts, "heartbeat", engagement_time_ms=engagement_ms)


@pytest.mark.parametrize(
    ("events", "engaged_time_ms", "engaged"),
    [
        # A reader who scrolls one page for 40 s: the page reports 40 s of foreground time when it is left
        # (a page ping), though its events span only that one ping.
        pytest.param([ev(T0), heartbeat(T0 + 40 * SECOND, 40 * SECOND)], 40 * SECOND, True,
                     id="a 40 s single-page read reported by a heartbeat is engaged"),
        pytest.param([ev(T0), heartbeat(T0 + 15 * SECOND, 8 * SECOND), heartbeat(T0 + MINUTE, 5 * SECOND)],
                     13 * SECOND, True, id="heartbeats add up"),
        # A tab left open in the background: heartbeats every minute for 25 minutes report no foreground time.
        pytest.param([ev(T0), *(heartbeat(T0 + n * MINUTE, 0) for n in range(1, 26))], 0, False,
                     id="25 min of background heartbeats is a bounce, not 25 min of engagement"),
        pytest.param([ev(T0), heartbeat(T0 + 5 * MINUTE, 10 * SECOND)], 10 * SECOND, False,
                     id="exactly 10 s reported is not enough, whatever the span"),
        pytest.param([ev(T0), ev(T0 + 20 * SECOND, "click")], 20 * SECOND, True,
                     id="without any report the span counts"),
        pytest.param([ev(T0), heartbeat(T0 + MINUTE, 0), ev(T0 + 2 * MINUTE)], 0, True,
                     id="two page views are engaged with no foreground time"),
    ],
)  # fmt: skip
def test_engaged_time_is_the_reported_foreground_time_else_the_span(
    events: list[SessionEvent], engaged_time_ms: int, engaged: bool
) -> None:
    """Issue 22 item 5 (README "Engaged time"): a session's engaged time is the sum of the
    engagement_time_ms its events report (clients report foreground time only) when any does, else the span
    between its first and last event; engaged = engaged time > 10 s, or >= 2 page views, or a conversion."""
    (row,) = sessions(events)
    assert (row.engaged_time_ms, row.engaged, row.bounce) == (engaged_time_ms, engaged, not engaged)


# -------------------------------------------------------------------------------- row contents


def test_a_session_row_summarizes_its_events() -> None:
    events = [
        ev(T0 + 2 * SECOND, "click", country="DE"),
        ev(
            T0,
            path="/landing",
            referrer="https://news.example/",
            utm_source="news",
            utm_medium="referral",
            utm_campaign="spring",
            device_type="mobile",
            browser="Firefox",
            country="DE",
        ),
        ev(T0 + 30 * SECOND, path="/pricing"),
        ev(T0 + 40 * SECOND, "error"),
        ev(T0 + 60 * SECOND, path="/landing"),
        ev(T0 + 90 * SECOND, "custom", name="signup_completed"),
    ]
    (row,) = sessions(events)
    assert row == SessionRow(
        session_id=session_id(USER, T0),
        user_key=USER,
        session_start=T0,
        session_end=T0 + 90 * SECOND,
        duration_ms=90 * SECOND,
        event_count=6,
        page_views=3,
        distinct_pages=2,
        entry_page="/landing",
        exit_page="/landing",
        referrer="https://news.example/",
        utm_source="news",
        utm_medium="referral",
        utm_campaign="spring",
        device_type="mobile",
        browser="Firefox",
        country="DE",
        error_count=1,
        conversions=1,
        engaged_time_ms=90 * SECOND,  # no event reports foreground time: the span
        engaged=True,
        bounce=False,
        split_reason="gap",
        is_final=True,
        device_key=USER,  # anonymous throughout: the device key is the user key
    )


def test_session_ids_are_deterministic_and_differ_by_user_and_start() -> None:
    assert session_id("a", T0) == session_id("a", T0)
    assert len({session_id("a", T0), session_id("b", T0), session_id("a", T0 + 1)}) == 3


def test_the_open_session_is_provisional_until_expired() -> None:
    state = SessionState(USER, SessionRules())
    assert state.add([ev(T0), ev(T0 + MINUTE)]) == []
    snapshot = state.snapshot()
    assert snapshot is not None
    assert (snapshot.split_reason, snapshot.is_final, snapshot.event_count) == ("open", False, 2)
    assert state.expiry_ms() == T0 + MINUTE + GAP
    final = state.expire()
    assert final is not None
    assert (final.split_reason, final.is_final, final.session_id) == ("gap", True, snapshot.session_id)
    assert state.snapshot() is None


# ------------------------------------------------------------------- streaming equals batch oracle

_RULES = st.builds(
    SessionRules,
    gap_ms=st.sampled_from([5 * MINUTE, GAP]),
    timezone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kathmandu"]),
    split_at_midnight=st.booleans(),
    max_duration_ms=st.sampled_from([2 * HOUR, 24 * HOUR]),
)


@settings(max_examples=150, deadline=None)
@given(
    rules=_RULES,
    steps=st.lists(st.integers(min_value=0, max_value=50 * MINUTE), min_size=1, max_size=80),
    kinds=st.lists(st.sampled_from(["page_view", "click", "error", "heartbeat"]), min_size=80, max_size=80),
    cuts=st.lists(st.integers(min_value=1, max_value=80), max_size=6),
)
def test_streaming_in_batches_equals_the_batch_oracle(
    rules: SessionRules, steps: list[int], kinds: list[str], cuts: list[int]
) -> None:
    ts, events = at("2026-10-31 20:00"), []
    for i, step in enumerate(steps):
        ts += step
        events.append(ev(ts, kinds[i], path=f"/p{step % 4}"))
    state, rows = SessionState(USER, rules), []
    bounds = sorted({0, len(events), *(c for c in cuts if c < len(events))})
    for lo, hi in itertools.pairwise(bounds):
        batch = list(reversed(events[lo:hi]))  # a batch may arrive in any order
        rows.extend(state.add(batch))
    last = state.expire()
    rows.extend([last] if last else [])
    assert [as_dict(r) for r in rows] == oracle(events, rules)
