"""Active users across a login (issue 22 item 4 rule 2, README "Active users and logins"): the KPI windows
count people. Check tier: the JVM functions themselves (`io.uxstream.udf.UserSet` and `UserSketch`, run as
their command lines, no Flink) and the batch oracle, on the same scenarios, with the exact figures stated.

The rule: an event with a user id counts as that user; an event without one counts as the user id that an
event of the same window row links its anonymous id to (an event carrying both links them; several: the
least user id), else as its anonymous id. The minute rows carry their links, so the sliding and daily
windows built from them apply the links of every minute they cover.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from jobs.common import privacy
from jobs.common.contract import event_reader_schema
from jobs.common.enrichment import EnrichmentSettings, enrich
from jobs.common.oracle import ON_TIME, arrivals, load, reader_view
from jobs.sessionize import job
from jobs.sessionize.oracle import expected, people_of
from jobs.sessionize.settings import SessionizeSettings
from tests.decode.support import jvm_classpath
from tests.sessionize.test_user_sketch import jvm_sketches
from tests.support.identity_streams import (
    ACTIVE_USERS,
    IDS,
    MINUTE,
    PATHS,
    TIMELINE,
    identity_kpi_timeline,
    scenario_active_users,
    with_identity_kpi_events,
)
from tests.support.sessionize import GENERATOR_ARGS
from tests.support.streams import generate_truth

M0 = int(datetime(2025, 1, 6, 9, 0, tzinfo=UTC).timestamp() * 1000)
"""The scenario's first minute in the oracle tests (a 5-minute boundary too)."""
END_OF_DAY = int(datetime(2025, 1, 7, tzinfo=UTC).timestamp() * 1000)

Event = tuple[str | None, str | None]
"""(user_id, anonymous_id) of one event, as the minute aggregate sees it."""

# ------------------------------------------------------------------------------ the JVM functions


def anon(anonymous_id: str) -> Event:
    return (None, anonymous_id)


def login(anonymous_id: str, user_id: str) -> Event:
    return (user_id, anonymous_id)


def user(user_id: str) -> Event:
    return (user_id, None)


class Window:
    """What the JVM functions make of one window given as its minutes' events."""

    def __init__(self, line: str) -> None:
        count, merged, rows, halves, links = line.split("\t")
        self.count = int(count)
        self.count_of_merged_minutes = int(merged)
        self.minutes = [self._row(r) for r in rows.split("\x1e")]
        self.minutes_from_halves = [self._row(r) for r in halves.split("\x1e")]
        self.links = self._links(links)

    @staticmethod
    def _list(text: str) -> list[str]:
        return text.split("\x1f") if text else []

    @classmethod
    def _links(cls, text: str) -> dict[str, str]:
        return dict(pair.split("\x1c") for pair in cls._list(text))

    @classmethod
    def _row(cls, text: str) -> dict[str, Any]:
        users, anonymous, links = text.split("\x1d")
        return {"users": cls._list(users), "anonymous": cls._list(anonymous), "links": cls._links(links)}


def jvm_windows(windows: Sequence[Sequence[Sequence[Event]]]) -> list[Window]:
    """Each window (a list of minutes, each a list of events) through `UserSet`'s command line: the minute
    rows of `user_set` and the window's `user_count`, accumulated one by one and merged (as slices are)."""

    def field(value: str | None) -> str:
        assert value is None or not any(c in value for c in "\x1c\x1d\x1e\x1f\t\n")
        return value or ""

    text = "".join(
        "\x1e".join("\x1f".join(f"{field(u)}\x1d{field(a)}" for u, a in minute) for minute in window) + "\n"
        for window in windows
    )
    command = ["java", "-Xmx256m", "-cp", jvm_classpath(table=True), "io.uxstream.udf.UserSet"]
    done = subprocess.run(command, input=text, capture_output=True, text=True, timeout=120, check=True)
    lines = done.stdout.split("\n")[:-1]  # not splitlines(): it also splits at U+001C-U+001E
    assert len(lines) == len(windows), done.stderr
    results = [Window(line) for line in lines]
    for result in results:  # merging accumulators never changes a figure
        assert result.count_of_merged_minutes == result.count
        assert result.minutes_from_halves == result.minutes
    return results


def jvm_window(*minutes: Sequence[Event]) -> Window:
    (result,) = jvm_windows([minutes])
    return result


def people(*events: Event) -> set[str]:
    """The oracle's people of a window's events."""
    return people_of({"user_id": u, "anonymous_id": a} for u, a in events)


def test_a_visitor_anonymous_for_30_s_then_logged_in_within_the_minute_is_one_active_user() -> None:
    minute = [anon("a-1"), anon("a-1"), login("a-1", "u-1"), login("a-1", "u-1")]

    result = jvm_window(minute)

    assert result.minutes == [{"users": ["u-1"], "anonymous": [], "links": {"a-1": "u-1"}}]
    assert result.count == 1
    assert people(*minute) == {"u-1"}


def test_pre_login_events_in_an_earlier_minute_count_apart_in_the_minutes_and_once_in_the_longer_window() -> (
    None
):
    before, after = [anon("a-1")], [login("a-1", "u-1")]

    result = jvm_window(before, after)

    assert result.minutes == [
        {"users": ["a-1"], "anonymous": ["a-1"], "links": {}},
        {"users": ["u-1"], "anonymous": [], "links": {"a-1": "u-1"}},
    ]
    assert result.count == 1
    assert people(*before, *after) == {"u-1"}
    # The order of the minutes does not matter either: a link applies to the whole window.
    assert jvm_window(after, before).count == 1


def test_two_anonymous_ids_linked_to_one_user_in_a_day_are_one_daily_user() -> None:
    minutes = [[anon("phone")], [login("phone", "u-1")], [anon("laptop")], [], [login("laptop", "u-1")]]

    result = jvm_window(*minutes)

    assert result.count == 1
    assert result.links == {"phone": "u-1", "laptop": "u-1"}
    assert people(*(e for m in minutes for e in m)) == {"u-1"}


def test_an_anonymous_id_linked_to_two_users_in_one_window_counts_as_the_least_user_id() -> None:
    minute = [anon("kiosk"), login("kiosk", "u-b"), login("kiosk", "u-a")]

    result = jvm_window(minute)

    assert result.minutes == [{"users": ["u-a", "u-b"], "anonymous": [], "links": {"kiosk": "u-a"}}]
    assert result.count == 2
    # The links of different minutes: the least over the window.
    spread = jvm_window([login("kiosk", "u-b")], [anon("kiosk")], [login("kiosk", "u-a")])
    assert (spread.count, spread.links) == (2, {"kiosk": "u-a"})
    assert people(*minute) == {"u-a", "u-b"}


def test_the_least_user_id_is_by_code_point_as_in_python() -> None:
    # U+FF21 (one UTF-16 unit) > U+1F600 (a surrogate pair) by code point; by UTF-16 units it is smaller.
    high, astral = "u-\uff21", "u-\U0001f600"
    assert high < astral

    result = jvm_window([login("a-1", astral), login("a-1", high)])

    assert result.links == {"a-1": high}
    assert result.minutes[0]["users"] == sorted([high, astral])


def test_an_anonymous_id_without_a_link_in_its_window_counts_as_itself() -> None:
    # Logged in at 10:01, anonymous again at 10:15: the 10:15 minute and its sliding windows see no link.
    result = jvm_window([anon("a-1")])

    assert result.count == 1
    assert result.minutes == [{"users": ["a-1"], "anonymous": ["a-1"], "links": {}}]


def test_identified_events_without_an_anonymous_id_and_empty_ids_count_as_expected() -> None:
    minute = [user("u-1"), ("", "a-1"), ("u-2", ""), anon("a-2"), login("a-2", "u-2")]

    result = jvm_window(minute)

    assert result.minutes == [{"users": ["a-1", "u-1", "u-2"], "anonymous": ["a-1"], "links": {"a-2": "u-2"}}]
    assert result.count == 3
    assert people(*[(u or None, a or None) for u, a in minute]) == {"a-1", "u-1", "u-2"}


def test_a_user_id_equal_to_a_linked_anonymous_id_still_counts() -> None:
    # "x" is someone's user id and another visitor's anonymous id, linked to "y": both people count.
    minutes = [[user("x")], [anon("x")], [login("x", "y")]]

    assert jvm_window(*minutes).count == 2
    assert people(*(e for m in minutes for e in m)) == {"x", "y"}


ID_ENDINGS = ("", "", "\u00e9", "\u7528", "\uff21", "\U0001f600")
"""ASCII, Latin-1, beyond Latin-1 (below and above the surrogates) and beyond the BMP: each a different
serialized form of an id (UserSet.writeId), and ids that sort differently by UTF-16 unit and by code point
(UserSet.compareCodePoints: the minute rows' sorted users)."""


def random_window(rng: random.Random) -> list[list[Event]]:
    anonymous_ids = [f"a-{i}{rng.choice(ID_ENDINGS)}" for i in range(rng.randint(1, 6))]
    user_ids = [f"u-{i}{rng.choice(ID_ENDINGS)}" for i in range(rng.randint(1, 4))]
    minutes: list[list[Event]] = []
    for _ in range(rng.randint(1, 6)):
        events: list[Event] = []
        for _ in range(rng.randint(0, 8)):
            kind = rng.random()
            if kind < 0.5:
                events.append(anon(rng.choice(anonymous_ids)))
            elif kind < 0.8:
                events.append(login(rng.choice(anonymous_ids), rng.choice(user_ids)))
            else:
                events.append(user(rng.choice([*user_ids, *anonymous_ids])))  # a colliding id, sometimes
        minutes.append(events)
    return minutes


def test_random_windows_equal_the_oracle_whatever_the_order_of_events_and_minutes() -> None:
    """300 random windows (few ids, so links, relinks, collisions and empty minutes are common): every
    minute row's users are the oracle's people of the minute, the window's count the oracle's people of
    all its events; a shuffled copy (events and minutes) gives the same figures."""
    rng = random.Random(22)
    windows = [random_window(rng) for _ in range(300)]
    shuffled = []
    for window in windows:
        copy = [rng.sample(minute, len(minute)) for minute in window]
        shuffled.append(rng.sample(copy, len(copy)))

    results = jvm_windows([*windows, *shuffled])

    for window, result in zip(windows, results[: len(windows)], strict=True):
        assert [m["users"] for m in result.minutes] == [sorted(people(*m)) for m in window]
        assert result.count == len(people(*(e for m in window for e in m)))
    for window, result, again in zip(windows, results[: len(windows)], results[len(windows) :], strict=True):
        assert (again.count, again.links) == (result.count, result.links), window
    assert sum(1 for r in results if r.links) > 100, "too few windows with logins to prove much"


SKETCH_KEY = "uxstream-identity-kpi-test-pseudonym-key-0123456789"


def test_the_users_sketch_estimate_equals_the_resolved_count_on_small_sets(tmp_path: Path) -> None:
    """The minute rows' people through `user_sketch` itself (pseudonyms, then the HLL sketch): on small sets
    the estimate is the exact resolved count, the anonymous ids that a login resolved are not in it."""
    rng = random.Random(4)
    minutes = [minute for _ in range(40) for minute in random_window(rng)]
    rows = [window.minutes[0] for window in jvm_windows([[minute] for minute in minutes])]
    key_file = tmp_path / "key"
    key_file.write_text(SKETCH_KEY)
    key_files = privacy.key_files({privacy.ENV_KEY_FILE: str(key_file)})

    sketched = jvm_sketches([row["users"] for row in rows], key_files=key_files)

    # List mode: the estimate is the count up to float rounding of the coupon estimator.
    counts = [len(people(*minute)) for minute in minutes]
    assert [estimate for _, estimate in sketched] == [pytest.approx(n, rel=1e-6) for n in counts]
    raw_keys = [len({u or a for u, a in minute}) for minute in minutes]
    assert sum(1 for row, n in zip(rows, raw_keys, strict=True) if len(row["users"]) < n) > 20


def test_the_job_feeds_the_minute_people_to_every_kpi_figure() -> None:
    sql = "\n".join(job.statements(SessionizeSettings()))
    # kpi_cells collects the people of the first occurrences of humans (as user_set did per GROUPING SETS
    # row: tests/sessionize/test_kpi_cells_parity.py), the minute rows unnest them as `people`
    assert "kpi_cells(dim_page_path, dim_country, dim_device_type, occurrence = 1 AND NOT is_bot," in sql
    assert "\n    user_id, anonymous_id, lcp_ms, inp_ms, cls,\n" in sql
    assert "c.events, c.page_views, c.people," in sql
    assert "CAST(CARDINALITY(people.users) AS BIGINT) AS active_users" in sql
    assert f"user_sketch(people.users, '{privacy.key_files()}', 12, 'HLL_4') AS users_sketch" in sql
    assert sql.count("user_count(people) AS active_users") == 1
    assert sql.count("user_count(people) AS daily_active_users") == 1


# ------------------------------------------------------------------------------ the oracle


NO_ENRICHMENT = EnrichmentSettings(user_agents=False, geoip_db=None)


def oracle_events(fields: Sequence[dict[str, Any]]) -> list[SimpleNamespace]:
    base = {"event_type": "page_view", "event_name": "page_view", "country": "DE", "device_type": "mobile"}
    return [
        SimpleNamespace(
            seq=seq,
            partition=0,
            event=reader_view({**base, **f, "received_at": f["ts"]}, event_reader_schema()),
        )
        for seq, f in enumerate(fields)
    ]


@pytest.fixture(scope="module")
def scenario() -> dict[str, dict[tuple[Any, ...], int]]:
    """The oracle's active users of the scenario's page rows, per table: {(window start, window end or
    None, path): active users}."""
    rows = expected(
        oracle_events(identity_kpi_timeline(M0)), enrichment=NO_ENRICHMENT, dimensions=("page_path",)
    )
    paths = set(PATHS.values())
    return {
        "kpi_1m": {
            (r["window_start"], r["dimension_value"]): r["active_users"]
            for r in rows["kpi_1m"]
            if r["dimension_value"] in paths
        },
        "kpi_sliding_5m": {
            (r["window_start"], r["dimension_value"]): r["active_users"]
            for r in rows["kpi_sliding_5m"]
            if r["dimension_value"] in paths
        },
        "kpi_daily_cumulative": {
            (r["window_end"], r["dimension_value"]): r["daily_active_users"]
            for r in rows["kpi_daily_cumulative"]
            if r["dimension_value"] in paths
        },
        "global": {
            (r["window_start"], "global"): r["active_users"]
            for r in rows["kpi_1m"]
            if r["dimension"] == "global"
        },
    }


def minutes_of(table: dict[tuple[Any, ...], int], path: str) -> dict[int, int]:
    return {start: n for (start, p), n in table.items() if p == PATHS[path]}


def test_oracle_a_login_within_the_minute_is_one_active_user_in_its_rows(scenario: Any) -> None:
    assert minutes_of(scenario["kpi_1m"], "login") == {M0: 1}
    assert set(minutes_of(scenario["kpi_sliding_5m"], "login").values()) == {1}
    assert set(minutes_of(scenario["kpi_daily_cumulative"], "login").values()) == {1}


def test_oracle_a_login_a_minute_later_is_one_user_in_the_sliding_and_daily_windows(scenario: Any) -> None:
    assert minutes_of(scenario["kpi_1m"], "earlier") == {M0: 1, M0 + MINUTE: 1}
    sliding = minutes_of(scenario["kpi_sliding_5m"], "earlier")
    # The windows starting M0 - 3 min … M0 cover both minutes (one person, not 2); M0 - 4 min covers the
    # anonymous view alone, M0 + 1 min the login alone.
    assert sliding == {M0 + i * MINUTE: 1 for i in range(-4, 2)}
    assert set(minutes_of(scenario["kpi_daily_cumulative"], "earlier").values()) == {1}


def test_oracle_two_devices_linked_to_one_user_are_one_daily_user(scenario: Any) -> None:
    assert minutes_of(scenario["kpi_1m"], "devices") == {
        M0 + 2 * MINUTE: 1,
        M0 + 3 * MINUTE: 1,
        M0 + 6 * MINUTE: 1,
        M0 + 8 * MINUTE: 1,
    }
    daily = minutes_of(scenario["kpi_daily_cumulative"], "devices")
    assert (daily[M0 + 5 * MINUTE], daily[M0 + 10 * MINUTE], daily[END_OF_DAY]) == (1, 1, 1)
    sliding = minutes_of(scenario["kpi_sliding_5m"], "devices")
    # [M0 + 4 min, M0 + 9 min): the laptop's anonymous view and its login: one person. [M0 + 2 min,
    # M0 + 7 min): the phone and its login, and the laptop, whose login is outside the window: two.
    assert (sliding[M0 + 4 * MINUTE], sliding[M0 + 2 * MINUTE]) == (1, 2)


def test_oracle_an_anonymous_id_linked_to_two_users_counts_as_the_least(scenario: Any) -> None:
    assert minutes_of(scenario["kpi_1m"], "kiosk") == {M0: 2}
    assert people(anon("k"), login("k", "b"), login("k", "a")) == {"a", "b"}


def test_oracle_an_anonymous_return_without_a_link_in_its_window_counts_as_the_anonymous_id(
    scenario: Any,
) -> None:
    assert minutes_of(scenario["kpi_1m"], "return") == {M0 + MINUTE: 1, M0 + 15 * MINUTE: 1}
    sliding = minutes_of(scenario["kpi_sliding_5m"], "return")
    assert sliding[M0 + 11 * MINUTE] == 1  # the return alone
    daily = minutes_of(scenario["kpi_daily_cumulative"], "return")
    assert daily[M0 + 20 * MINUTE] == 1, "the day has the link: one person"


def test_oracle_every_row_of_the_scenario_pages_is_as_stated() -> None:
    rows = expected(
        oracle_events(identity_kpi_timeline(M0)), enrichment=NO_ENRICHMENT, dimensions=("page_path",)
    )
    assert scenario_active_users(rows) == ACTIVE_USERS


def test_oracle_the_global_rows_count_the_scenarios_people(scenario: Any) -> None:
    # 09:00: visitor (1) + earlier's anonymous view (1) + kiosk (2) = 4; 09:01: earlier_user, returner_user.
    assert scenario["global"][(M0, "global")] == 4
    assert scenario["global"][(M0 + MINUTE, "global")] == 2


# ------------------------------------------------------------------------------ the shared stream


def test_the_scenario_rides_the_shared_stream_on_time_and_counted(tmp_path: Path) -> None:
    """`with_identity_kpi_events` on the shared sessionize stream's generated lines: every scenario event
    arrives on time (not late, not a duplicate, not a bot) and keeps its ids and path, so the e2e run's
    oracle counts it as the tests above do."""
    lines = generate_truth(GENERATOR_ARGS, tmp_path / "truth.jsonl")
    truth = tmp_path / "with-identity.jsonl"
    truth.write_text("".join(with_identity_kpi_events(lines)), encoding="utf-8")

    events = load(truth).events
    scenario = [a for a in arrivals(events) if str(a.event["event_id"]).startswith("identity-kpi-")]

    assert len(scenario) == len(identity_kpi_timeline(M0))
    assert all(a.kind == ON_TIME and a.occurrence == 1 for a in scenario)
    assert not any(enrich(a.event, EnrichmentSettings())[1] for a in scenario), (
        "a bot's page view as template"
    )
    assert {a.event["page_path"] for a in scenario} == set(PATHS.values())
    assert {a.event["anonymous_id"] for a in scenario} <= set(IDS.values())
    first = min(a.event["ts"] for a in scenario) - min(offset for offset, *_ in TIMELINE)
    assert first % (5 * MINUTE) == 0, "the scenario must start at a 5-minute boundary"
