"""Identity (issue 22 item 4; README "Identity: one visitor across a login"), in the session state machine
(jobs/sessionize/logic.py) and the whole-stream oracle (jobs/sessionize/oracle.py) at once: sessions run per
device and belong to the user a login on the device names."""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.sessionize.logic import (
    SESSION_EVENT_FIELDS,
    SessionEvent,
    SessionRow,
    SessionRules,
    SessionState,
    session_id,
    sessionize_batch,
    split_gap_session,
)
from jobs.sessionize.oracle import expected_sessions

DEVICE = "anon-7"
SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
GAP = 30 * MINUTE
T0 = int(datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp() * 1000)
_ids = itertools.count()


def ev(ts: int, user_id: str | None = None, path: str = "/") -> SessionEvent:
    return SessionEvent(ts=ts, event_id=f"e{next(_ids):09d}", event_type="page_view", event_name="page_view",
                        page_path=path, user_id=user_id)  # fmt: skip


def sessions(events: Sequence[SessionEvent], rules: SessionRules | None = None) -> list[SessionRow]:
    """The state machine over the device's events; the oracle must agree row for row."""
    rules = rules or SessionRules()
    rows = sessionize_batch(DEVICE, rules, events)
    dicts = [{**dataclasses.asdict(e), "anonymous_id": DEVICE} for e in events]
    want = expected_sessions(
        dicts,
        gap_ms=rules.gap_ms,
        timezone=rules.timezone,
        split_at_midnight=rules.split_at_midnight,
        max_duration_ms=rules.max_duration_ms,
        conversion_events=rules.conversion_events,
        identity_ttl_ms=rules.identity_ttl_ms,
    )
    by_key = sorted(rows, key=lambda r: (r.user_key, r.session_start))  # the oracle's order
    assert [dataclasses.asdict(r) for r in by_key] == want
    return rows


def owners(rows: Sequence[SessionRow]) -> list[tuple[str, int]]:
    return [(r.user_key, r.event_count) for r in rows]


def test_the_anonymous_views_before_a_login_and_the_views_after_it_are_one_session_of_the_user() -> None:
    rows = sessions([ev(T0), ev(T0 + 20 * SECOND), ev(T0 + 40 * SECOND, "u1"), ev(T0 + MINUTE, "u1")])
    assert owners(rows) == [("u1", 4)]
    assert rows[0].device_key == DEVICE
    assert rows[0].session_id == session_id("u1", T0)  # the hash of the user key and the start


def test_the_devices_later_anonymous_visit_belongs_to_the_user_it_logged_in_as() -> None:
    rows = sessions([ev(T0), ev(T0 + MINUTE, "u1"), ev(T0 + MINUTE + GAP + 1), ev(T0 + 3 * HOUR)])
    assert owners(rows) == [("u1", 2), ("u1", 1), ("u1", 1)]


def test_a_session_written_before_the_login_keeps_its_anonymous_key() -> None:
    rows = sessions([ev(T0), ev(T0 + GAP + 1, "u1")])
    assert owners(rows) == [(DEVICE, 1), ("u1", 1)]


def test_the_link_attributes_sessions_that_start_within_the_identity_ttl_of_it_and_no_later() -> None:
    rules = SessionRules(identity_ttl_ms=2 * HOUR)
    link = T0 + MINUTE
    rows = sessions([ev(T0), ev(link, "u1"), ev(link + 2 * HOUR), ev(link + 2 * HOUR + GAP + 1)], rules)
    assert owners(rows) == [("u1", 2), ("u1", 1), (DEVICE, 1)]  # exactly the TTL still counts


def test_two_users_in_one_session_the_first_owns_it_the_last_owns_the_next_anonymous_one() -> None:
    rows = sessions([ev(T0, "alice"), ev(T0 + MINUTE, "bob"), ev(T0 + 2 * MINUTE), ev(T0 + HOUR)])
    assert owners(rows) == [("alice", 3), ("bob", 1)]


def test_ties_in_event_time_are_broken_by_the_user_id() -> None:
    rows = sessions([ev(T0, "zed"), ev(T0, "amy"), ev(T0 + HOUR)])
    assert owners(rows) == [("amy", 2), ("zed", 1)]  # owner: least id; link: greatest id


def pack(events: Sequence[SessionEvent]) -> str:
    """A row of session_events: the events packed as the job packs them."""
    return json.dumps([[getattr(e, f) for f in SESSION_EVENT_FIELDS] for e in events])


def test_the_jvm_rows_link_is_applied_by_the_finaliser_and_carried_across_splits_inside_the_row() -> None:
    rules = SessionRules(max_duration_ms=HOUR)
    events = [
        ev(T0),
        ev(T0 + 20 * MINUTE, "u2"),
        ev(T0 + 40 * MINUTE),
        ev(T0 + 65 * MINUTE),
        ev(T0 + 85 * MINUTE),
    ]
    linked: dict[str, Any] = {"linked_user": "u1", "linked_ts": T0 - DAY}
    # Split by max duration at T0 + 65 min: the first part is u2's (its own login), the second carries u2.
    assert owners(split_gap_session(DEVICE, rules, pack(events), "gap", **linked)) == [("u2", 3), ("u2", 2)]
    # An anonymous row takes the device's link; one too old (beyond the 30-day TTL) leaves it anonymous.
    assert owners(split_gap_session(DEVICE, rules, pack(events[:1]), "gap", **linked)) == [("u1", 1)]
    old: dict[str, Any] = {"linked_user": "u1", "linked_ts": T0 - 31 * DAY}
    assert owners(split_gap_session(DEVICE, rules, pack(events[:1]), "gap", **old)) == [(DEVICE, 1)]


def test_the_stored_keys_are_the_pseudonyms_of_the_user_and_of_the_device() -> None:
    state = SessionState(DEVICE, SessionRules(), key=lambda raw: f"p({raw})")
    state.add([ev(T0), ev(T0 + MINUTE, "u1")])
    row = state.expire()
    assert row is not None
    assert (row.user_key, row.device_key, row.session_id) == (
        "p(u1)",
        f"p({DEVICE})",
        session_id("p(u1)", T0),
    )


@settings(max_examples=120, deadline=None)
@given(
    steps=st.lists(
        st.sampled_from([0, SECOND, 10 * MINUTE, GAP, GAP + 1, 3 * HOUR, DAY]), min_size=1, max_size=40
    ),
    users=st.lists(st.sampled_from([None, None, "u1", "u2", "u3"]), min_size=40, max_size=40),
    ttl=st.sampled_from([HOUR, DAY, 30 * DAY]),
    cuts=st.lists(st.integers(min_value=1, max_value=40), max_size=5),
)
def test_streaming_in_batches_attributes_every_session_as_the_oracle_does(
    steps: list[int], users: list[str | None], ttl: int, cuts: list[int]
) -> None:
    rules = SessionRules(identity_ttl_ms=ttl, max_duration_ms=6 * HOUR)
    ts, events = T0, []
    for i, step in enumerate(steps):
        ts += step
        events.append(ev(ts, users[i]))
    want = sessions(events, rules)
    state, rows = SessionState(DEVICE, rules), []
    bounds = sorted({0, len(events), *(c for c in cuts if c < len(events))})
    for lo, hi in itertools.pairwise(bounds):
        rows.extend(state.add(list(reversed(events[lo:hi]))))
    last = state.expire()
    rows.extend([last] if last else [])
    assert rows == want
