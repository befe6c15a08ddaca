"""The JVM session finaliser (io.uxstream.udf.SessionRows behind `split_sessions`) against its specification,
`jobs.sessionize.logic.split_gap_session` (issue 17: the per-session finalisation runs in the JVM).

Check tier: the JVM side runs as a subprocess (`java … io.uxstream.udf.SessionRows KEY_FILES`), one JSON
line per run of a device's events, exactly as `session_events` packs them; every row must equal the
specification's field for field (pseudonyms, session ids and the feedback JSON text included), for fixed
edge cases and for thousands of random runs: arrival orders, gaps of exactly the session gap, midnight
splits in zones with daylight-saving changes, max-duration splits, identity links near their TTL,
feedback text with quotes, control and astral characters, events packed before later fields existed."""

from __future__ import annotations

import dataclasses
import json
import random
import subprocess
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from jobs.common.privacy import PrivacySettings, Pseudonymizer
from jobs.common.settings import Secret
from jobs.sessionize.logic import SESSION_EVENT_FIELDS, SessionRules, SplitReason, split_gap_session
from tests.decode.support import jvm_classpath

KEY = "0123456789abcdef-parity-key"
KEY_ID = "k3"
MINUTE = 60_000
HOUR = 60 * MINUTE
GAP = 30 * MINUTE


@dataclasses.dataclass(frozen=True)
class Run:
    """One row of `session_events`: a device's events (tuples in SESSION_EVENT_FIELDS order, possibly
    shorter: packed before later fields existed), the reason the run ended and the link before it."""

    device_key: str
    events: tuple[tuple[object, ...], ...]
    end_reason: SplitReason
    linked_user: str | None
    linked_ts: int | None
    rules: SessionRules

    @property
    def packed(self) -> str:
        return json.dumps([list(e) for e in self.events], ensure_ascii=False, separators=(",", ":"))

    def line(self) -> str:
        rules = {
            "gap_ms": self.rules.gap_ms,
            "timezone": self.rules.timezone if self.rules.split_at_midnight else "",
            "max_duration_ms": self.rules.max_duration_ms,
            "conversion_events": sorted(self.rules.conversion_events),
            "identity_ttl_ms": self.rules.identity_ttl_ms,
        }
        return json.dumps({
            "rules": rules, "device_key": self.device_key, "packed": self.packed,
            "end_reason": self.end_reason, "linked_user": self.linked_user, "linked_ts": self.linked_ts,
        }, ensure_ascii=False)  # fmt: skip


def specification(run: Run) -> list[dict[str, Any]]:
    key = Pseudonymizer(PrivacySettings(Secret(KEY), key_id=KEY_ID))
    rows = split_gap_session(
        run.device_key, run.rules, run.packed, run.end_reason,
        linked_user=run.linked_user, linked_ts=run.linked_ts, key=key,
    )  # fmt: skip
    return [dataclasses.asdict(r) for r in rows]


def jvm(runs: Sequence[Run], tmp_path: Path) -> list[list[dict[str, Any]]]:
    key_file = tmp_path / "pseudonym.key"
    key_file.write_text(KEY + "\n")
    done = subprocess.run(
        ["java", "-Xmx512m", "-cp", jvm_classpath(table=True), "io.uxstream.udf.SessionRows",
         f"{KEY_ID}={key_file}"],
        input="".join(f"{r.line()}\n" for r in runs), capture_output=True, text=True, encoding="utf-8",
        timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.split("\n")[:-1]]  # not splitlines: U+2028


def assert_parity(runs: Sequence[Run], tmp_path: Path) -> None:
    got = jvm(runs, tmp_path)
    assert len(got) == len(runs)
    for run, rows in zip(runs, got, strict=True):
        assert rows == specification(run), run


def event(ts: int, event_id: str, event_type: str = "page_view", **fields: object) -> tuple[object, ...]:
    values: dict[str, object] = {"ts": ts, "event_id": event_id, "event_type": event_type,
                                 "event_name": fields.pop("event_name", event_type), **fields}  # fmt: skip
    return tuple(values.get(f) for f in SESSION_EVENT_FIELDS)


def at(text: str, zone: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp() * 1000)


BERLIN = SessionRules(timezone="Europe/Berlin")
T0 = at("2026-03-28 22:00", "Europe/Berlin")  # the night before the spring DST change


def test_fixed_edge_cases_give_the_specifications_rows(tmp_path: Path) -> None:
    exact_gap = Run(
        "dev-1",
        (
            event(T0, "a", page_path="/"),
            event(T0 + GAP, "b", page_path="/x"),
            event(T0 + 2 * GAP + 1, "c", page_path="/y"),
        ),
        "gap",
        None,
        None,
        BERLIN,
    )
    midnight = Run(
        "dev-2",
        (
            event(at("2026-03-28 23:50", "Europe/Berlin"), "a"),
            event(at("2026-03-29 00:05", "Europe/Berlin"), "b"),
        ),
        "gap",
        None,
        None,
        BERLIN,
    )
    feedback = Run(
        "dev-3",
        tuple(
            event(
                T0 + i * MINUTE,
                f"f{i:02d}",
                "feedback",
                survey_id="s1",
                feedback_scale="nps",
                feedback_score=i % 11,
                feedback_comment='say "hi"\n\t\\ \x01 ü € 𝄞 \u2028',
            )
            for i in range(25)
        ),
        "midnight",
        None,
        None,
        BERLIN,
    )
    identity = Run(
        "dev-4",
        (
            event(T0, "a"),
            event(T0 + 5 * MINUTE, "b", user_id="usr-9"),
            event(T0 + 3 * HOUR, "c"),
            event(T0 + 3 * HOUR + 1, "d", user_id=""),
        ),
        "gap",
        "usr-1",
        T0 - 2 * HOUR,
        SessionRules(split_at_midnight=False),
    )
    old_layout = Run(
        "dev-5", (event(T0, "a")[:12], event(T0 + MINUTE, "b")[:17]), "gap", "usr-2", T0, SessionRules()
    )
    ties = Run(
        "dev-6",
        (
            event(T0, "b"),
            event(T0, "a", user_id="z"),
            event(T0, "𝄞", user_id="ｚ"),
            event(T0, "\uffff", user_id="y"),
        ),
        "max_duration",
        None,
        None,
        SessionRules(),
    )
    engaged = Run(
        "dev-7",
        (
            event(T0, "a", "heartbeat", engagement_time_ms=6000),
            event(T0 + 1, "b", "heartbeat", engagement_time_ms=4001),
            event(T0 + 2, "c", "x", event_name="order_completed"),
        ),
        "gap",
        None,
        None,
        SessionRules(max_duration_ms=1),
    )
    assert_parity([exact_gap, midnight, feedback, identity, old_layout, ties, engaged], tmp_path)


ZONES = ("UTC", "Europe/Berlin", "America/Santiago", "Asia/Kolkata", "Australia/Lord_Howe")
TEXT = ("/", "/a", "/b", "/ü", 'q"t', "\\", "\x00x", "𝄞", "\uffff", "e\u0301")


def random_run(rng: random.Random) -> Run:
    rules = SessionRules(
        gap_ms=rng.choice((GAP, 5 * MINUTE)),
        timezone=rng.choice(ZONES),
        split_at_midnight=rng.random() < 0.8,
        max_duration_ms=rng.choice((24 * HOUR, 2 * HOUR, 20 * MINUTE)),
        conversion_events=frozenset(
            rng.sample(("order_completed", "signup_completed", "x"), rng.randint(0, 2))
        ),
        identity_ttl_ms=rng.choice((0, HOUR, 24 * HOUR)),
    )
    start = at(f"2026-{rng.choice(('03-28', '04-04', '09-05', '10-24', '12-31'))} 21:00", rules.timezone)
    ts = start + rng.randint(0, 6 * HOUR)
    events: list[tuple[object, ...]] = []
    for i in range(rng.randint(1, 40)):
        ts += rng.choice(
            (0, 1, 999, MINUTE, rules.gap_ms, rules.gap_ms + 1, rng.randint(0, 3 * rules.gap_ms))
        )
        kind = rng.choice(("page_view", "page_view", "error", "feedback", "heartbeat", "click"))
        events.append(event(
            ts, rng.choice((f"e{i:03d}", f"{rng.choice(TEXT)}{i}")), kind,
            event_name=rng.choice((kind, "order_completed", "signup_completed", "x")),
            page_path=rng.choice((None, *TEXT)), referrer=rng.choice((None, "https://r.example/")),
            utm_source=rng.choice((None, "news")), utm_medium=rng.choice((None, "mail")),
            utm_campaign=rng.choice((None, "c1")), device_type=rng.choice((None, "mobile")),
            browser=rng.choice((None, "Firefox")), country=rng.choice((None, "DE")),
            engagement_time_ms=rng.choice((None, 0, 2500, 11_000)),
            survey_id=rng.choice((None, "s")), feedback_scale=rng.choice((None, "nps", "csat")),
            feedback_score=rng.choice((None, 0, 7, 10)), feedback_comment=rng.choice((None, *TEXT)),
            user_id=rng.choice((None, None, "", "usr-a", "usr-b", "𝄞", "\uffff")),
        ))  # fmt: skip
    rng.shuffle(events)  # the PTF keeps arrival order among equal times; the finaliser orders them
    if rng.random() < 0.1:
        events = [e[: rng.randint(4, len(SESSION_EVENT_FIELDS))] for e in events]
    linked = rng.random() < 0.5
    return Run(
        rng.choice(("dev", "anon-ü", "𝄞")),
        tuple(events),
        rng.choice(("gap", "midnight", "max_duration")),
        rng.choice(("usr-l", "usr-b", "\uffff")) if linked else None,
        start - rng.choice((0, HOUR, 24 * HOUR, 24 * HOUR + 1)) if linked else None,
        rules,
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_random_runs_give_the_specifications_rows(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    assert_parity([random_run(rng) for _ in range(1500)], tmp_path)


def test_bad_input_fails_with_a_message(tmp_path: Path) -> None:
    bad = Run("dev", (), "gap", None, None, SessionRules())
    line = bad.line().replace('"packed": "[]"', '"packed": "[[\\"not a time\\"]]"')
    key_file = tmp_path / "k"
    key_file.write_text(KEY)
    done = subprocess.run(
        ["java", "-cp", jvm_classpath(table=True), "io.uxstream.udf.SessionRows", f"{KEY_ID}={key_file}"],
        input=line + "\n", capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "packed session event field 0 is not an integer" in done.stderr
