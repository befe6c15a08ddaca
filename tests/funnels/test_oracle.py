"""The oracle's arrival rules (as the job's SQL applies them): relevance, future, late, duplicates."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from jobs.common.enrichment import EnrichmentSettings
from jobs.funnels.oracle import classify
from uxstream.contract import generator

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
SECOND = 1_000


def arrival(event_id: str, name: str, ts: int, received_at: int | None = None) -> SimpleNamespace:
    event: dict[str, Any] = {
        "event_id": event_id,
        "event_name": name,
        "ts": ts,
        "received_at": ts if received_at is None else received_at,
        "anonymous_id": "u",
        "page_path": "/p",
        "country": "DE",
        "device_type": "mobile",
    }
    return SimpleNamespace(event=event)


def test_arrival_rules() -> None:
    stream = [
        arrival("a", "A", T0 + 10 * SECOND),
        arrival("noise", "page_view", T0 + 20 * SECOND),  # irrelevant, but it moves the watermark
        arrival("late", "A", T0 + 14 * SECOND),  # watermark 15 s: late by 1 s
        arrival("edge", "B", T0 + 15 * SECOND),  # exactly at the watermark: late too
        arrival("ok", "B", T0 + 15 * SECOND + 1),
        arrival("future", "B", T0 + 3_600 * SECOND, received_at=T0 + 21 * SECOND),  # never moves it
        arrival("ok2", "B", T0 + 16 * SECOND),
        arrival("a", "A", T0 + 17 * SECOND),  # a re-send of "a": counted once
    ]
    ledger, counted = classify(stream, frozenset({"A", "B"}))
    assert [e["event_id"] for e in counted] == ["a", "ok", "ok2"]
    assert [(r["event_id"], r["reason"], r["watermark"], r["lateness_ms"]) for r in ledger] == [
        ("late", "late", T0 + 15 * SECOND, SECOND),
        ("edge", "late", T0 + 15 * SECOND, 0),
        ("future", "future_timestamp", T0 + 15 * SECOND, None),
    ]
    assert {r["job"] for r in ledger} == {"funnels"}


def test_without_a_filter_every_event_counts() -> None:
    _, counted = classify([arrival("x", "page_view", T0), arrival("y", "click", T0 + 1)], None)
    assert [e["event_id"] for e in counted] == ["x", "y"]


def test_bots_enter_no_funnel_unless_exclusion_is_off_and_late_bots_are_ledgered_all_the_same() -> None:
    """issue 22: is_bot comes from the user agent (the corpus verdict); the SQL side is test_job_sql.py."""
    bot_agent = generator.BOT_AGENTS[1][2]  # YAUAA: Robot
    human_agent = generator.MOBILE_AGENTS[0][2]

    def with_agent(a: SimpleNamespace, agent: str) -> SimpleNamespace:
        return SimpleNamespace(event={**a.event, "user_agent": agent})

    stream = [
        with_agent(arrival("human", "A", T0 + 10 * SECOND), human_agent),
        with_agent(arrival("bot", "A", T0 + 11 * SECOND), bot_agent),
        with_agent(arrival("bot-ahead", "B", T0 + 30 * SECOND), bot_agent),
        with_agent(arrival("bot-late", "B", T0 + 12 * SECOND), bot_agent),  # watermark 25 s
    ]
    ledger, counted = classify(stream, frozenset({"A", "B"}))
    assert [e["event_id"] for e in counted] == ["human"]
    assert [r["event_id"] for r in ledger] == ["bot-late"]
    _, counted = classify(stream, frozenset({"A", "B"}), enrichment=EnrichmentSettings(exclude_bots=False))
    assert [e["event_id"] for e in counted] == ["human", "bot", "bot-ahead"]
