"""Validity rules (SEMANTICS.md, "Validity and duplicates") at their edges, and the future-timestamp rule."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from jobs.common.contract import (
    IMPOSSIBLE_VALUE,
    MISSING_FIELD,
    Invalid,
    is_future,
    user_key,
    validate,
)

from .conftest import T0, EventBuilder

Y2K = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp() * 1000)
MINUTE = 60_000
SKEW = 5 * MINUTE


@pytest.mark.parametrize(
    ("overrides", "reason", "field"),
    [
        # required fields
        ({"event_id": ""}, MISSING_FIELD, "event_id"),
        ({"event_id": None}, MISSING_FIELD, "event_id"),
        ({"event_type": ""}, MISSING_FIELD, "event_type"),
        ({"event_name": ""}, MISSING_FIELD, "event_name"),
        ({"user_id": None, "anonymous_id": ""}, MISSING_FIELD, "anonymous_id"),
        ({"user_id": "", "anonymous_id": ""}, MISSING_FIELD, "anonymous_id"),
        ({"ts": None}, MISSING_FIELD, "ts"),
        ({"received_at": None}, MISSING_FIELD, "received_at"),
        # event types and the fields each one needs
        ({"event_type": "scroll"}, IMPOSSIBLE_VALUE, "event_type"),
        ({"event_type": "PAGE_VIEW"}, IMPOSSIBLE_VALUE, "event_type"),
        ({"page_path": None}, MISSING_FIELD, "page_path"),
        ({"page_path": ""}, MISSING_FIELD, "page_path"),
        ({"event_type": "error", "error_type": None}, MISSING_FIELD, "error_type"),
        ({"event_type": "web_vital"}, MISSING_FIELD, "lcp_ms"),
        # timestamps
        ({"ts": Y2K - 1}, IMPOSSIBLE_VALUE, "ts"),
        ({"ts": T0 // 1000}, IMPOSSIBLE_VALUE, "ts"),  # seconds instead of milliseconds
        ({"ts": -1}, IMPOSSIBLE_VALUE, "ts"),
        ({"ts": 253_402_300_800_000}, IMPOSSIBLE_VALUE, "ts"),  # year 10000
        ({"received_at": Y2K - 1}, IMPOSSIBLE_VALUE, "received_at"),
        # measures
        ({"page_load_ms": -0.1}, IMPOSSIBLE_VALUE, "page_load_ms"),
        ({"page_load_ms": math.inf}, IMPOSSIBLE_VALUE, "page_load_ms"),
        ({"event_type": "web_vital", "lcp_ms": -1.0}, IMPOSSIBLE_VALUE, "lcp_ms"),
        ({"event_type": "web_vital", "inp_ms": math.nan}, IMPOSSIBLE_VALUE, "inp_ms"),
        ({"event_type": "web_vital", "cls": -0.0001}, IMPOSSIBLE_VALUE, "cls"),
        ({"engagement_time_ms": -15_000}, IMPOSSIBLE_VALUE, "engagement_time_ms"),
        ({"ip": "203.0.113.999"}, IMPOSSIBLE_VALUE, "ip"),
        ({"ip": "not an address"}, IMPOSSIBLE_VALUE, "ip"),
    ],
)
def test_an_invalid_event_gets_its_reason_and_a_detail_naming_the_field(
    page_view: EventBuilder, overrides: dict[str, Any], reason: str, field: str
) -> None:
    problem = validate(page_view(**overrides))

    assert isinstance(problem, Invalid)
    assert problem.reason == reason
    assert f"'{field}'" in problem.detail


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"ts": Y2K},  # the first valid millisecond
        {"user_id": None},  # anonymous: anonymous_id is the user key
        {"anonymous_id": ""},  # server-side event: user_id is the user key
        {"page_load_ms": 0.0, "properties": {}},
        {"event_type": "web_vital", "lcp_ms": None, "inp_ms": None, "cls": 0.0},  # any one vital suffices
        {"event_type": "error", "error_type": "TypeError", "error_message": None},
        {"event_type": "click", "page_path": None},  # only page views need a path
        {"event_type": "heartbeat", "engagement_time_ms": 0},
        {"event_type": "custom", "event_name": "signup_completed"},
        {"ts": T0 + 6 * MINUTE},  # a future timestamp is valid here: the job ledgers it
        {"ip": "2001:db8::1"},
        {"ip": None},
    ],
)
def test_a_valid_event_passes(page_view: EventBuilder, overrides: dict[str, Any]) -> None:
    assert validate(page_view(**overrides)) is None


def test_missing_rules_come_before_impossible_values(page_view: EventBuilder) -> None:
    problem = validate(page_view(event_id="", ts=0, cls=-1.0))

    assert problem == Invalid(MISSING_FIELD, "field 'event_id' is missing or empty")


def test_a_json_event_without_optional_keys_is_judged_like_nulls(page_view: EventBuilder) -> None:
    event = {k: v for k, v in page_view().items() if v is not None}

    assert validate(event) is None


@pytest.mark.parametrize(
    ("ahead", "future"),
    [(0, False), (SKEW, False), (SKEW + 1, True), (-MINUTE, False), (6 * 3_600_000, True)],
)
def test_a_timestamp_is_future_when_more_than_the_skew_ahead_of_its_receive_time(
    ahead: int, future: bool
) -> None:
    assert is_future(T0 + ahead, T0) is future


def test_the_future_skew_is_configurable() -> None:
    assert is_future(T0 + 2 * MINUTE, T0, max_skew_ms=MINUTE)


@pytest.mark.parametrize(
    ("user_id", "anonymous_id", "key"),
    [("usr_1", "anon", "usr_1"), (None, "anon", "anon"), ("", "anon", "anon"), ("usr_1", "", "usr_1")],
)
def test_the_user_key_is_user_id_else_anonymous_id(user_id: str | None, anonymous_id: str, key: str) -> None:
    assert user_key({"user_id": user_id, "anonymous_id": anonymous_id}) == key
