"""Fixtures of the event-contract tests: the project's catalog and event builders."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from jobs.common.contract import EVENT_SUBJECT, Catalog, SchemaEntry, load_catalog

T0 = int(datetime(2025, 1, 6, 9, 30, tzinfo=UTC).timestamp() * 1000)
"""A Monday morning, UTC epoch ms: the event time of the baseline event."""

EventBuilder = Callable[..., dict[str, Any]]


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="session")
def v1(catalog: Catalog) -> SchemaEntry:
    return catalog.version(EVENT_SUBJECT, 1)


@pytest.fixture(scope="session")
def v2(catalog: Catalog) -> SchemaEntry:
    return catalog.version(EVENT_SUBJECT, 2)


def _page_view(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": "0f8e6b7a3c2d4e5f8a9b0c1d2e3f4a5b",
        "event_type": "page_view",
        "event_name": "page_view",
        "user_id": "usr_000000000042",
        "anonymous_id": "9d2c4b1a0e8f7d6c5b4a39281706f5e4",
        "ts": T0,
        "received_at": T0 + 150,
        "page_url": "https://shop.example.com/pricing?utm_source=newsletter",
        "page_path": "/pricing",
        "page_title": "Membership pricing – Example Shop",
        "referrer": None,
        "utm_source": "newsletter",
        "utm_medium": "email",
        "utm_campaign": "weekly_digest",
        "device_type": "mobile",
        "os": "iOS 17",
        "browser": "Safari 17",
        "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X)",
        "country": "DE",
        "app_version": "web-2025.01.2",
        "lcp_ms": None,
        "inp_ms": None,
        "cls": None,
        "error_type": None,
        "error_message": None,
        "page_load_ms": 1234.5,
        "properties": {"plan": "pro"},
    }
    event.update(overrides)
    return event


@pytest.fixture(scope="session")
def page_view() -> EventBuilder:
    """Builder of a valid v1 page view at T0 (every v1 field present); keyword arguments override fields."""
    return _page_view


V2_FIELDS: dict[str, Any] = {
    "session_hint": "s_00000000000000aa",
    "engagement_time_ms": 15_000,
    "consent": "granted",
    "screen_width": 390,
    "screen_height": 844,
    "ip": "203.0.113.7",
}
V3_FIELDS: dict[str, Any] = dict.fromkeys(
    ("survey_id", "feedback_scale", "feedback_score", "feedback_comment")
)
"""The feedback fields schema v3 adds (issue 22 item 6): None when an older version wrote the event."""


@pytest.fixture(scope="session")
def page_view_v2() -> EventBuilder:
    """Builder of the page view with every v2 field set."""

    def build(**overrides: Any) -> dict[str, Any]:
        return _page_view(**{**V2_FIELDS, **overrides})

    return build
