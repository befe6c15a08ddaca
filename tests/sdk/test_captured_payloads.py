"""The mappings on payloads captured from the real SDKs in Chromium (tests/sdk/fixtures/captured/, written
by the browser e2e test with UXSTREAM_SAVE_SDK_FIXTURES=1: posthog-js 1.449.2, @snowplow/browser-tracker
4.10.1, uxstream.js). Every captured event is placed and accepted by the contract, and the fields of the
README's tables hold what the page's visit says."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from uxstream.collector import posthog, snowplow
from uxstream.collector.logic import Accepted, BodyLimits, prepare
from uxstream.collector.sdk_common import iso_to_ms

CAPTURED = sorted((Path(__file__).parent / "fixtures" / "captured").glob("*.json"))
LIMITS = BodyLimits(1_048_576, 4_194_304, 100, 500)
RECEIVED = 1_900_000_000_000
PAGE_PATH = "/page/index.html"


def requests(client: str) -> Iterator[dict[str, Any]]:
    for path in CAPTURED:
        entry = json.loads(path.read_text("utf-8"))
        if entry["client"] == client:
            entry["body"] = base64.b64decode(entry["body_base64"])
            yield entry


def posthog_events() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(the SDK's event, its mapping) of every captured PostHog event."""
    out = []
    for entry in requests("posthog"):
        decoded = posthog.decode_request(
            entry["body"], query=entry["query"], content_type=entry["content_type"],
            content_encoding=entry["content_encoding"], limits=LIMITS,
        )  # fmt: skip
        assert isinstance(decoded, posthog.CaptureRequest), decoded
        for event in decoded.events:
            mapped = posthog.map_event(event, received_at=RECEIVED)
            assert isinstance(mapped, dict), (event["event"], mapped)
            out.append((event, mapped))
    return out


def snowplow_events() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    out = []
    for entry in requests("snowplow"):
        events = snowplow.decode_post(entry["body"], entry["content_encoding"], LIMITS)
        assert isinstance(events, list), events
        for event in events:
            mapped = snowplow.map_event(event, ping_interval_ms=1000)
            assert isinstance(mapped, dict), (event["e"], mapped)
            out.append((event, mapped))
    return out


def native_events() -> list[dict[str, Any]]:
    return [event for entry in requests("uxstream") for event in json.loads(entry["body"])]


pytestmark = pytest.mark.skipif(not CAPTURED, reason="no captured payloads")


def test_captured_payloads_cover_every_event_kind_of_the_visit() -> None:
    assert {e["event"] for e, _ in posthog_events()} >= {
        "$pageview", "$autocapture", "$exception", "$web_vitals", "$pageleave",
    }  # fmt: skip
    assert {m["event_type"] for _, m in snowplow_events()} == {
        "page_view", "heartbeat", "click", "error", "web_vital",
    }  # fmt: skip
    assert {e["event_type"] for e in native_events()} == {
        "page_view", "heartbeat", "click", "error", "web_vital",
    }  # fmt: skip


def test_every_captured_event_is_accepted_by_the_contract() -> None:
    mapped = [m for _, m in posthog_events()] + [m for _, m in snowplow_events()] + native_events()
    for event in mapped:
        prepared = prepare(
            {**event, "ts": RECEIVED - 1000}, project="shop", received_at=RECEIVED, client_ip=None
        )
        assert isinstance(prepared, Accepted), (event, prepared)


def test_posthog_fields_from_the_real_sdk() -> None:
    for event, mapped in posthog_events():
        props = event["properties"]
        assert mapped["event_id"] == event["uuid"]
        assert mapped["anonymous_id"] == props["distinct_id"]
        assert "user_id" not in mapped
        assert mapped["session_hint"] == props["$session_id"]
        assert mapped["page_url"] == props["$current_url"]
        assert mapped["page_path"] == PAGE_PATH
        assert mapped["utm_source"] == "newsletter"
        assert mapped["browser"].startswith("Chrome ")
        assert mapped["app_version"] == f"web {props['$lib_version']}"
        assert mapped["ts"] == iso_to_ms(event["timestamp"])
    by_name = {e["event"]: m for e, m in posthog_events()}
    assert by_name["$exception"]["error_type"] == "TypeError"
    assert by_name["$autocapture"]["event_type"] == "click"
    assert by_name["$pageleave"]["event_type"] == "heartbeat"


def test_snowplow_fields_from_the_real_tracker() -> None:
    for event, mapped in snowplow_events():
        assert mapped["event_id"] == event["eid"]
        assert mapped["anonymous_id"] == event["duid"]
        assert mapped["session_hint"] == event["sid"]
        assert mapped["ts"] == int(event.get("ttm") or event["dtm"])
        assert mapped["page_path"] == PAGE_PATH
        assert mapped["utm_source"] == "newsletter"
        assert mapped["app_version"] == event["tv"]
        assert (mapped["screen_width"], mapped["screen_height"]) == tuple(map(int, event["res"].split("x")))
    pings = [m for e, m in snowplow_events() if e["e"] == "pp"]
    assert pings and all(m["engagement_time_ms"] == 1000 for m in pings)


def test_snippet_numbers_its_events_per_page_load_without_gaps() -> None:
    """Refused batches were sent again with the same events: same ids, same numbers."""
    events = {e["event_id"]: e for e in native_events()}.values()
    assert len({e["properties"]["uxs_load"] for e in events}) == 1
    assert sorted(int(e["properties"]["uxs_seq"]) for e in events) == list(range(1, len(events) + 1))


def test_captured_visit_includes_refused_requests_sent_again() -> None:
    statuses: dict[str, set[int]] = {entry["client"]: set() for entry in map(_entry, CAPTURED)}
    for entry in map(_entry, CAPTURED):
        statuses[entry["client"]].add(entry["status"])
    assert statuses == {"posthog": {503, 200}, "snowplow": {429, 200}, "uxstream": {429, 200}}


def _entry(path: Path) -> dict[str, Any]:
    entry: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return entry
