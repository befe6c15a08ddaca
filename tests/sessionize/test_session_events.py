"""The session rules in the JVM (`session_events`, jvm/udf io.uxstream.udf.SessionEvents): a process table
function with keyed state and one event-time timer per user, run from PyFlink SQL on a MiniCluster
(tests/support/session_events.py), then the Python finaliser (jobs/sessionize/logic.py
`split_gap_session`), against the rules applied to each user's whole timeline (`sessionize_batch`).

SEMANTICS.md, Sessions: a new session starts when the gap since the user's previous event is greater than
the session gap (a gap of exactly the session gap stays, whatever the watermark did in between), at local
midnight, and when the session would exceed the max duration. A user who never goes idle is emitted
session by session while still active, so its state holds about one day of events, not all of them.

Identity (README "Identity: one visitor across a login"): the function runs per device key and carries the
device's link (the user id of its latest identified event) from one emitted row to the next, forgetting it
after the identity TTL; the finaliser attributes each session with it. The random timelines log in, log
out and switch users on their devices, so the JVM's link must equal the rules applied to the whole
timeline."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jobs.sessionize.logic import (
    SESSION_EVENT_FIELDS,
    SessionEvent,
    SessionRow,
    SessionRules,
    sessionize_batch,
    split_gap_session,
)
from uxstream.paths import ROOT

pytestmark = [pytest.mark.services, pytest.mark.flink]

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
GAP = 30 * MINUTE
BOUND = 5_000
T0 = int(datetime(2026, 10, 24, 20, 0, tzinfo=UTC).timestamp() * 1000)
"""Saturday evening before Europe/Berlin leaves daylight saving time (a 25-hour local day follows)."""


@dataclass(frozen=True)
class Call:
    """One call of the function in the run: its max duration and midnight time zone ('' = none)."""

    name: str
    max_duration_ms: int
    timezone: str
    identity_ttl_ms: int = 30 * 24 * 3_600_000

    @property
    def rules(self) -> SessionRules:
        return SessionRules(
            gap_ms=GAP,
            timezone=self.timezone or "UTC",
            split_at_midnight=bool(self.timezone),
            max_duration_ms=self.max_duration_ms,
            identity_ttl_ms=self.identity_ttl_ms,
        )


@dataclass(frozen=True)
class Emitted:
    call: str
    user: str
    events: list[int]
    end_reason: str
    at: int
    """The row's time (epoch ms): the timer's time, or the event whose arrival let a walk close sessions."""
    linked_user: str | None = None
    linked_ts: int | None = None
    """The device's identity link before the row."""


def event(user: str, number: int, ts: int, user_id: str | None = None) -> SessionEvent:
    """Event `number` of device `user`: a page view of one of seven pages, every fifth one an error."""
    kind = "error" if number % 5 == 4 else "page_view"
    values: dict[str, Any] = dict.fromkeys(SESSION_EVENT_FIELDS)
    values.update(ts=ts, event_id=f"{user}-{number:05d}", event_type=kind, event_name=kind,
                  page_path=f"/p{number % 7}", country="DE", device_type="desktop")  # fmt: skip
    values["user_id"] = user_id
    return SessionEvent(**values)


Row = tuple[str, int, int, str | None]
"""(device, ts, event number, user id or None) in arrival order."""


def run(rows: list[Row], calls: list[Call], folder: Path) -> list[Emitted]:
    """Rows (device, ts, event number, user id) in arrival order through every call of the function."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "spec.json"
    spec.write_text(json.dumps({
        "rows": rows, "gap_ms": GAP, "bound_ms": BOUND,
        "calls": [{"name": c.name, "max_duration_ms": c.max_duration_ms, "timezone": c.timezone,
                   "identity_ttl_ms": c.identity_ttl_ms} for c in calls],
    }))  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.session_events", str(spec), str(folder)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-5000:]
    return [Emitted(*json.loads(line)) for line in proc.stdout.splitlines()]


def finalised(
    emitted: list[Emitted], call: Call, events: dict[tuple[str, int], SessionEvent]
) -> dict[str, list[SessionRow]]:
    """The session rows the job writes: the finaliser applied to each emitted row of `call`."""
    rows: dict[str, list[SessionRow]] = defaultdict(list)
    for e in emitted:
        if e.call == call.name:
            packed = json.dumps(
                [[getattr(events[e.user, n], f) for f in SESSION_EVENT_FIELDS] for n in e.events]
            )
            rows[e.user].extend(
                split_gap_session(
                    e.user, call.rules, packed, e.end_reason,  # type: ignore[arg-type]
                    linked_user=e.linked_user, linked_ts=e.linked_ts,
                )
            )  # fmt: skip
    return {user: sorted(found, key=lambda r: r.session_start) for user, found in rows.items()}


def expected(call: Call, events: dict[tuple[str, int], SessionEvent]) -> dict[str, list[SessionRow]]:
    """The rules applied to each user's whole timeline."""
    timelines: dict[str, list[SessionEvent]] = defaultdict(list)
    for (user, _), e in events.items():
        timelines[user].append(e)
    return {user: sessionize_batch(user, call.rules, timeline) for user, timeline in timelines.items()}


GAP_ONLY, UTC_DAY = Call("gap_only", 30 * DAY, ""), Call("utc", DAY, "UTC")
BERLIN = Call("berlin", 3 * HOUR, "Europe/Berlin")
NO_MIDNIGHT = Call("no_midnight", 2 * HOUR, "", identity_ttl_ms=3 * HOUR)
"""A 3-hour identity TTL: the random timelines' links both expire and carry over."""
CALLS = [GAP_ONLY, UTC_DAY, BERLIN, NO_MIDNIGHT]

SEEDS = (20261205, 4242)
"""The random scenarios: seed `SEEDS[i]` drives the timelines and the arrival order of 40 users."""
YEAR_OF_WEEKS = 52 * 7 * DAY
"""The random scenarios lie one and two years of whole weeks before T0 (Saturday evenings before Europe's
clocks go back: 2024-10-26 and 2025-10-25), the fixed one at T0: one job run reads all three, one after
the other in event time, so no scenario moves another's watermark while it runs."""

SPECIAL_DELTAS = (0, 1, 1_000, GAP - 1, GAP, GAP + 1, 2 * HOUR)
"""Gaps that matter: ties, exactly one session gap and one millisecond either side, a long pause."""

# A bot active for 48 hours without a gap: from 2026-10-25 06:00 UTC, one event every 10 minutes.
MIDNIGHT_1, MIDNIGHT_2 = T0 + 4 * HOUR + DAY, T0 + 4 * HOUR + 2 * DAY  # 2026-10-26 and -27 00:00 UTC
BOT_EVERY_10_MIN: list[Row] = [
    ("bot", MIDNIGHT_1 - 18 * HOUR + n * 10 * MINUTE, n, None) for n in range(6 * 48)
]
FIXED_ROWS: list[Row] = [
    ("exact", T0, 1, None),
    # Another user moves the watermark to one millisecond before `exact`'s session could close ...
    ("other", T0 + GAP - 1 + BOUND, 9, None),
    # ... and `exact`'s next event, exactly one gap later, still belongs to the session.
    ("exact", T0 + GAP, 2, None),
    ("exact", T0 + 2 * GAP + 1, 3, None),  # one millisecond more than a gap: a new session
    # Out of order within the bound: one session, its events in event-time order.
    ("shuffled", T0 + 3 * GAP + 10_000, 5, None),
    ("shuffled", T0 + 3 * GAP + 6_000, 4, None),
    ("shuffled", T0 + 3 * GAP + 10_000 + GAP, 6, None),
    *BOT_EVERY_10_MIN,
]
FIXED_USERS = {"exact", "other", "shuffled", "bot"}


def timelines(rng: random.Random, users: int) -> list[tuple[int, list[int]]]:
    """Per user a start within two days and up to 150 gaps: one in ten from SPECIAL_DELTAS, the others
    uniform up to 20 minutes (so hours pass without a gap of more than 30 minutes)."""
    return [
        (rng.randrange(2 * DAY), [
            rng.choice(SPECIAL_DELTAS) if rng.random() < 0.1 else rng.randrange(1, 20 * MINUTE)
            for _ in range(rng.randrange(1, 150))
        ])
        for _ in range(users)
    ]  # fmt: skip


@dataclass(frozen=True)
class Scenario:
    events: dict[tuple[str, int], SessionEvent]
    rows: list[Row]


def random_scenario(index: int) -> Scenario:
    """Random timelines (gaps of exactly the session gap and one more, midnights of a 25-hour local day,
    days of activity without a gap) in a random arrival order within the out-of-orderness bound. A third
    of the devices stay anonymous, a third log in at a random event (and out again at another), a third
    switch between two users at random (ties in event time included)."""
    rng = random.Random(SEEDS[index])
    base = T0 - (len(SEEDS) - index) * YEAR_OF_WEEKS
    events: dict[tuple[str, int], SessionEvent] = {}
    arrivals = []
    for u, (offset, deltas) in enumerate(timelines(rng, 40)):
        user, ts = f"s{index}u{u:02d}", base + offset
        mode = u % 3
        login, logout = sorted(rng.randrange(len(deltas) + 1) for _ in range(2))
        for n, delta in enumerate(deltas):
            ts += delta
            if mode == 1:
                user_id = f"{user}-login" if login <= n < logout else None
            elif mode == 2:
                user_id = rng.choice([None, None, f"{user}-a", f"{user}-b"])
            else:
                user_id = None
            events[user, n] = event(user, n, ts, user_id)
            arrivals.append((ts + rng.randrange(BOUND), rng.random(), user, ts, n, user_id))  # never late
    return Scenario(events, [(user, ts, n, uid) for *_, user, ts, n, uid in sorted(arrivals)])


@dataclass(frozen=True)
class Emissions:
    scenarios: list[Scenario]
    emitted: list[Emitted]

    def of(self, users: set[str]) -> list[Emitted]:
        return [e for e in self.emitted if e.user in users]


@pytest.fixture(scope="module")
def emissions(tmp_path_factory: pytest.TempPathFactory) -> Emissions:
    """ONE job run (a MiniCluster start costs more than the function's work): the random scenarios, then
    the fixed one, through every call."""
    scenarios = [random_scenario(i) for i in range(len(SEEDS))]
    fixed = {(user, n): event(user, n, ts) for user, ts, n, _ in FIXED_ROWS}
    rows = [row for s in scenarios for row in s.rows] + FIXED_ROWS
    emitted = run(rows, CALLS, tmp_path_factory.mktemp("session-events"))
    return Emissions([*scenarios, Scenario(fixed, FIXED_ROWS)], emitted)


def test_gap_sessions_follow_the_gap_rule_exactly_whatever_the_watermark_did_in_between(
    emissions: Emissions,
) -> None:
    emitted = emissions.of(FIXED_USERS)
    assert sorted((e.user, e.events, e.end_reason) for e in emitted if e.call == "gap_only") == [
        ("bot", [n for _, _, n, _ in BOT_EVERY_10_MIN], "gap"),
        ("exact", [1, 2], "gap"),
        ("exact", [3], "gap"),
        ("other", [9], "gap"),
        ("shuffled", [4, 5, 6], "gap"),
    ]
    # With midnight splits the bot's first two days are emitted while it is still active, one session each
    # (closed by midnight), within minutes of the watermark passing midnight; the last part when it goes
    # idle. So its state never holds more than a day of events.
    bot = [e for e in emitted if e.call == "utc" and e.user == "bot"]
    last = BOT_EVERY_10_MIN[-1][1]
    assert [(e.end_reason, len(e.events)) for e in bot] == [("midnight", 108), ("midnight", 144), ("gap", 36)]
    assert MIDNIGHT_1 < bot[0].at < MIDNIGHT_1 + GAP
    assert MIDNIGHT_2 < bot[1].at < MIDNIGHT_2 + GAP
    # The rest closes once the watermark reaches last + gap (here the end of the input, which moves the
    # watermark past it in one step: the row then carries the time of the close timer that fired, which
    # the function set at an earlier event + gap and moves on lazily).
    assert bot[2].at <= last + GAP
    events = emissions.scenarios[-1].events
    for call in (GAP_ONLY, UTC_DAY):
        assert finalised(emitted, call, events) == expected(call, events)


# No shrinking (a job run per step is too slow): the failure message names the user and the first session
# that differs instead.
@pytest.mark.parametrize("index", range(len(SEEDS)), ids=[f"seed{s}" for s in SEEDS])
def test_sessions_equal_the_rules_for_any_timeline_and_arrival_order_within_the_bound(
    emissions: Emissions, index: int
) -> None:
    """Random timelines through two calls: midnight splits in Europe/Berlin with a 3-hour max duration,
    and no midnight splits with a 2-hour one."""
    events = emissions.scenarios[index].events
    emitted = emissions.of({user for user, _ in events})
    for call in (BERLIN, NO_MIDNIGHT):
        want = expected(call, events)
        reasons = {r.split_reason for rows_ in want.values() for r in rows_}
        assert reasons >= {"gap", "max_duration"} | ({"midnight"} if call.timezone else set()), reasons
        # The timelines exercise identity: sessions attributed to a user, and anonymous sessions of devices
        # that log in at some point (before the login, or after the link expired or the user logged out).
        rows_all = [r for rows_ in want.values() for r in rows_]
        assert any(r.user_key != r.device_key for r in rows_all)
        logs_in = [r for r in rows_all if r.device_key and int(r.device_key.rsplit("u", 1)[1]) % 3]
        assert any(r.user_key == r.device_key for r in logs_in)
        got = finalised(emitted, call, events)
        for user in sorted(want):
            rows_ = [e for e in emitted if e.call == call.name and e.user == user]
            timeline = [(e.ts, n, e.user_id) for (u, n), e in events.items() if u == user]
            assert got.get(user) == want[user], first_difference(
                call, user, got.get(user, []), want[user], rows_, timeline
            )
        assert set(got) == set(want)


def first_difference(
    call: Call,
    user: str,
    got: list[SessionRow],
    want: list[SessionRow],
    emitted: list[Emitted],
    timeline: list[tuple[int, int, str | None]],
) -> str:
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            rows = [(e.events, e.end_reason, e.at, e.linked_user, e.linked_ts) for e in emitted]
            return f"{call.name} {user}: session {i}: got {g}\nwant {w}\nemitted {rows}\ntimeline {timeline}"
    rows = [(e.events, e.end_reason, e.at, e.linked_user, e.linked_ts) for e in emitted]
    return f"{call.name} {user}: {len(got)} sessions, want {len(want)}; emitted {rows}"
