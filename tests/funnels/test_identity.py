"""Identity in funnels (issue 22 item 4, rule 3; README "Identity in funnels"), case by case.

Every case runs through the streaming path (`DeviceIdentity` per device, then `UserFunnels` per resolved
user, with the watermark advancing event by event as in the job) and through the batch oracle
(`jobs.funnels.oracle.resolve` + `expected_attempts`); both must give exactly the expected attempts.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from jobs.common.settings import SettingsError
from jobs.funnels import oracle
from jobs.funnels.logic import (
    DeviceFunnels,
    DeviceIdentity,
    Funnel,
    FunnelEvent,
    Sighting,
    Step,
    UserFunnels,
    relevant_event_names,
    resolve_device,
)
from jobs.funnels.settings import FunnelsSettings

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
GAP = 30 * MINUTE
TTL = 24 * 60 * MINUTE
OUT_OF_ORDERNESS = 5 * SECOND

SIGNUP = Funnel("signup", (Step("started"), Step("submitted"), Step("completed")), window_ms=60 * MINUTE)
FUNNELS = (SIGNUP,)


def ev(
    event_id: str, name: str, minute: float, anonymous: str | None, user: str | None = None
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_name": name,
        "ts": T0 + int(minute * MINUTE),
        "anonymous_id": anonymous,
        "user_id": user,
    }


def streamed(
    events: Sequence[dict[str, Any]], funnels: Sequence[Funnel] = FUNNELS, ttl_ms: int = TTL
) -> list[dict[str, Any]]:
    """The job's path: events arrive in ts order (on time), the identity stage forwards events with a user
    id at once and buffers the rest per device (where the anonymous id's attempts run too), the watermark
    (max ts - 5 s) advances both stages after every arrival; the final watermark ends everything. State
    goes through pickle at every step."""
    names = relevant_event_names(funnels)
    devices: dict[str, DeviceFunnels] = {}
    users: dict[str, UserFunnels] = {}
    attempts: list[dict[str, Any]] = []

    def to_user(key: str, event: FunnelEvent) -> None:
        users.setdefault(key, UserFunnels()).add(event)

    def advance(watermark: int) -> None:
        for key in sorted(devices):
            device = pickle.loads(pickle.dumps(devices[key]))
            resolved, ended = device.advance(funnels, key, key, watermark, GAP, ttl_ms)
            for user, event in resolved:
                to_user(user, event)
            attempts.extend(oracle_row(a) for a in ended)
            if not device.empty:  # the job registers only timers above the watermark: one must be there
                assert (
                    any(t > watermark for t in device.timers(funnels, GAP, ttl_ms)) or device.identity.pending
                )
            devices[key] = device
        for key in sorted(users):
            state = pickle.loads(pickle.dumps(users[key]))
            attempts.extend(oracle_row(a) for a in state.advance(funnels, key, watermark))
            users[key] = state

    for e in sorted(events, key=lambda e: e["ts"]):
        step = names is None or e["event_name"] in names
        funnel_event = FunnelEvent(e["ts"], e["event_id"], e["event_name"], {}) if step else None
        device_key = e["anonymous_id"] or e["user_id"]
        if e["user_id"]:
            if funnel_event is not None:
                to_user(e["user_id"], funnel_event)
            if e["anonymous_id"]:
                devices.setdefault(device_key, DeviceFunnels()).add(
                    Sighting(e["ts"], e["event_id"], e["user_id"], None)
                )
        elif funnel_event is not None:
            devices.setdefault(device_key, DeviceFunnels()).add(
                Sighting(e["ts"], e["event_id"], None, funnel_event)
            )
        advance(e["ts"] - OUT_OF_ORDERNESS)
    advance(2**62)
    assert all(d.empty for d in devices.values()), "the identity state must be cleared at the end"
    return sorted(attempts, key=lambda r: (r["user_key"], r["entered_at"]))


def oracle_row(a: Any) -> dict[str, Any]:
    return {
        "user_key": a.user_key,
        "entered_at": a.entered_at,
        "status": a.status,
        "step_times": a.step_times_json(),
    }


def batch(
    events: Sequence[dict[str, Any]], funnels: Sequence[Funnel] = FUNNELS, ttl_ms: int = TTL
) -> list[dict[str, Any]]:
    rows = oracle.expected_attempts(funnels, events, gap_ms=GAP, ttl_ms=ttl_ms)
    return sorted(
        ({k: r[k] for k in ("user_key", "entered_at", "status", "step_times")} for r in rows),
        key=lambda r: (r["user_key"], r["entered_at"]),
    )


def both(events: Sequence[dict[str, Any]], ttl_ms: int = TTL) -> list[tuple[str, str, str]]:
    """(user key, status, step times in minutes after T0) of every attempt; both paths must agree."""
    got = streamed(events, ttl_ms=ttl_ms)
    assert got == batch(events, ttl_ms=ttl_ms)

    def minutes(times: str) -> str:
        return ",".join("-" if t == "null" else f"{(int(t) - T0) / MINUTE:g}" for t in times[1:-1].split(","))

    return [(r["user_key"], r["status"], minutes(r["step_times"])) for r in got]


def test_anonymous_step_then_login_then_steps_with_both_ids_make_one_converted_attempt_of_the_user() -> None:
    events = [
        ev("1", "started", 0, "anon-a"),
        ev("2", "login_page", 2, "anon-a", "alice"),  # links, is no step
        ev("3", "submitted", 3, "anon-a", "alice"),
        ev("4", "completed", 4, "anon-a", "alice"),
    ]
    assert both(events) == [("alice", "converted", "0,3,4")]


def test_held_events_are_released_under_the_anonymous_id_when_the_visit_ends_without_login() -> None:
    events = [ev("1", "started", 0, "anon-a"), ev("2", "submitted", 5, "anon-a")]
    assert both(events) == [("anon-a", "dropped", "0,5,-")]


def test_a_link_after_a_gap_longer_than_the_visit_gap_does_not_reach_back() -> None:
    events = [
        ev("1", "started", 0, "anon-a"),
        ev("2", "submitted", 1, "anon-a"),
        ev("3", "login_page", 1 + 30 + 0.001, "anon-a", "alice"),  # 30 min + 60 ms after: a new visit
        ev("4", "completed", 33, "anon-a", "alice"),
    ]
    assert both(events) == [("anon-a", "dropped", "0,1,-")]


def test_a_link_exactly_one_gap_after_the_last_event_is_still_the_same_visit() -> None:
    events = [ev("1", "started", 0, "anon-a"), ev("2", "login_page", 30, "anon-a", "alice")]
    assert both(events) == [("alice", "dropped", "0,-,-")]


def test_later_anonymous_only_events_after_a_link_resolve_to_the_user_until_the_identity_ttl() -> None:
    events = [
        ev("1", "login_page", 0, "anon-a", "alice"),
        # the next visit, hours later, without the user id: still alice's
        ev("2", "started", 180, "anon-a"),
        ev("3", "submitted", 181, "anon-a"),
        ev("4", "completed", 182, "anon-a"),
        # past the TTL (here 4 h) the link is forgotten: the anonymous id again
        ev("5", "started", 241, "anon-a"),
    ]
    assert both(events, ttl_ms=240 * MINUTE) == [
        ("alice", "converted", "180,181,182"),
        ("anon-a", "dropped", "241,-,-"),
    ]


def test_an_event_exactly_one_ttl_after_the_link_still_resolves_to_the_user() -> None:
    events = [ev("1", "login_page", 0, "anon-a", "alice"), ev("2", "started", 240, "anon-a")]
    assert both(events, ttl_ms=240 * MINUTE) == [("alice", "dropped", "240,-,-")]


def test_two_devices_of_one_identified_user_still_make_a_cross_device_funnel() -> None:
    events = [
        ev("1", "started", 0, "phone", "alice"),
        ev("2", "submitted", 2, "laptop", "alice"),
        ev("3", "completed", 3, "laptop", "alice"),
    ]
    assert both(events) == [("alice", "converted", "0,2,3")]


def test_the_latest_link_wins_for_later_events_and_the_first_link_takes_the_held_ones() -> None:
    events = [
        ev("1", "started", 0, "shared"),
        ev("2", "login_page", 1, "shared", "bob"),  # first link of the visit: takes the held step
        ev("3", "login_page", 2, "shared", "alice"),  # latest link: takes what follows
        ev("4", "started", 3, "shared"),
    ]
    assert both(events) == [("alice", "dropped", "3,-,-"), ("bob", "dropped", "0,-,-")]


def test_ties_in_event_time_go_by_user_id_and_a_link_at_the_same_ts_is_at_or_before() -> None:
    events = [
        ev("h", "started", 0, "shared"),  # held
        ev("z", "login_page", 1, "shared", "zoe"),
        ev("a", "login_page", 1, "shared", "adam"),  # same ts: adam is the earliest, zoe the latest link
        ev("b", "started", 1, "shared"),  # same ts as the links: at or after them, so zoe's
    ]
    assert both(events) == [("adam", "dropped", "0,-,-"), ("zoe", "dropped", "1,-,-")]


def test_ties_between_anonymous_events_go_by_event_id() -> None:
    events = [
        ev("e2", "submitted", 0, "anon-a"),
        ev(
            "e1", "started", 0, "anon-a"
        ),  # same ts, lower event id: first, so the attempt enters and advances
        ev("e3", "login_page", 1, "anon-a", "alice"),
    ]
    assert both(events) == [("alice", "dropped", "0,0,-")]


def test_resolve_device_releases_the_held_events_of_each_ended_visit_in_order() -> None:
    def anonymous(event_id: str, minute: int) -> Sighting:
        return Sighting(
            T0 + minute * MINUTE, event_id, None, FunnelEvent(T0 + minute * MINUTE, event_id, "started")
        )

    sightings = [anonymous("1", 0), anonymous("2", 40), Sighting(T0 + 50 * MINUTE, "3", "alice", None)]
    assert [(user, e.event_id) for user, e in resolve_device("anon-a", sightings)] == [
        ("anon-a", "1"),
        ("alice", "2"),
    ]


def test_the_identity_state_is_bounded_by_event_time_timers() -> None:
    device = DeviceIdentity()
    device.add(Sighting(T0, "1", None, FunnelEvent(T0, "1", "started")))
    assert device.advance("anon-a", T0, GAP, TTL) == []
    assert device.timers(GAP, TTL) == [T0 + GAP]  # the visit's end releases the held event
    assert [u for u, _ in device.advance("anon-a", T0 + GAP, GAP, TTL)] == ["anon-a"]
    assert device.empty
    device.add(Sighting(T0 + HOUR, "2", "alice", None))
    device.advance("anon-a", T0 + HOUR, GAP, TTL)
    assert device.timers(GAP, TTL) == [T0 + HOUR + TTL]  # the link is forgotten then
    device.advance("anon-a", T0 + HOUR + TTL, GAP, TTL)
    assert device.empty


def arrival(
    event_id: str, ts: int, anonymous: str, user: str | None, name: str = "page_view"
) -> SimpleNamespace:
    event = {
        "event_id": event_id,
        "event_name": name,
        "ts": ts,
        "received_at": ts,
        "anonymous_id": anonymous,
        "user_id": user,
    }
    return SimpleNamespace(event=event)


def test_only_the_earliest_link_of_each_pair_in_event_time_reaches_the_identity_stage() -> None:
    """The JVM filter's rule (funnels.sql `relevant`): a link is classified when its ts is at or below every
    earlier arrival of its (anonymous_id, user_id) pair."""
    stream = [
        arrival("first", T0 + 10 * SECOND, "a", "alice"),
        arrival("later", T0 + 12 * SECOND, "a", "alice"),  # the same pair, later: not needed
        arrival("earlier", T0 + 9 * SECOND, "a", "alice"),  # arrives later but is earlier: needed
        arrival("other-user", T0 + 13 * SECOND, "a", "bob"),  # a new pair
        arrival("anonymous", T0 + 14 * SECOND, "a", None),  # no step, no link
        arrival("step", T0 + 15 * SECOND, "a", None, "started"),
    ]
    assert oracle.relevance(stream, frozenset({"started"})) == [True, False, True, True, False, True]
    _, counted = oracle.classify(stream, frozenset({"started"}))
    assert [e["event_id"] for e in counted] == ["first", "earlier", "other-user", "step"]


def test_identity_settings_parse_the_ttl_and_the_visit_gap() -> None:
    settings = FunnelsSettings.from_env({}, funnels=FUNNELS)
    assert (settings.visit_gap_ms, settings.identity_ttl_ms) == (GAP, 30 * 24 * HOUR)
    env = {"UXSTREAM_IDENTITY_TTL": "12h", "UXSTREAM_SESSIONIZE_SESSION_GAP_MS": "600000"}
    settings = FunnelsSettings.from_env(env, funnels=FUNNELS)
    assert (settings.visit_gap_ms, settings.identity_ttl_ms) == (10 * MINUTE, 12 * HOUR)
    settings = FunnelsSettings.from_env({**env, "UXSTREAM_FUNNELS_VISIT_GAP_MS": "60000"}, funnels=FUNNELS)
    assert settings.visit_gap_ms == MINUTE
    with pytest.raises(SettingsError, match="UXSTREAM_IDENTITY_TTL='soon' is not a duration"):
        FunnelsSettings.from_env({"UXSTREAM_IDENTITY_TTL": "soon"}, funnels=FUNNELS)
    with pytest.raises(SettingsError, match="visit_gap_ms must be positive"):
        FunnelsSettings.from_env({"UXSTREAM_FUNNELS_VISIT_GAP_MS": "0"}, funnels=FUNNELS)


@pytest.mark.parametrize("seed", range(200))
def test_the_streaming_stage_equals_the_oracle_on_random_streams_of_single_device_users(seed: int) -> None:
    """Random devices, logins, gaps (some beyond the visit gap), equal timestamps and a short TTL. Each user
    id is used on one device only: across devices a held event can reach the attempts stage after events
    of the same user it precedes (README "Identity in funnels", limits), which this property leaves out."""
    import random

    rng = random.Random(seed)
    events = []
    for device in range(3):
        minute = 0.0
        for n in range(rng.randrange(1, 12)):
            minute += rng.choice((0, 0.5, 1, 5, 20, 31, 45, 90))
            user = f"user-{device}" if rng.random() < 0.3 else None
            name = rng.choice(("started", "submitted", "completed", "login_page"))
            if user is None and name == "login_page":
                name = "started"
            events.append(ev(f"d{device}-{n:02d}", name, minute, f"device-{device}", user))
    both(events, ttl_ms=rng.choice((60 * MINUTE, TTL)))


def test_an_anonymous_attempt_held_back_past_its_deadline_waits_for_the_visit_end_timer() -> None:
    """The anonymous id's attempt may not expire while a held event precedes its deadline; its deadline is
    then at or below the watermark (the job must not re-register it: it would fire for ever) and the
    visit's end is the timer that moves it on."""
    state = DeviceFunnels()
    first = FunnelEvent(T0, "1", "started")
    state.add(Sighting(T0, "1", None, first))
    state.advance(FUNNELS, "anon", "anon", T0 + GAP, GAP, TTL)  # the first visit is released: attempt open
    back = T0 + GAP + 10 * MINUTE
    state.add(Sighting(back, "2", None, FunnelEvent(back, "2", "submitted")))
    watermark = T0 + 61 * MINUTE  # past the attempt's deadline (1 h), the second visit still held
    assert state.advance(FUNNELS, "anon", "anon", watermark, GAP, TTL) == ([], [])
    assert sorted(t > watermark for t in state.timers(FUNNELS, GAP, TTL)) == [False, True]
    _, ended = state.advance(FUNNELS, "anon", "anon", back + GAP, GAP, TTL)
    assert [(a.status, a.step_times) for a in ended] == [("dropped", (T0, back, None))]
