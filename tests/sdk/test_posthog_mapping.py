"""The PostHog mapping (README, "PostHog mapping"), row by row, on posthog-js payloads (fixtures)."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from jobs.common.contract import IMPOSSIBLE_VALUE, MISSING_FIELD
from jobs.common.limits import MAX_PROPERTIES, MAX_PROPERTY_VALUE
from uxstream.collector.logic import BodyLimits, Refusal, Rejected, prepare
from uxstream.collector.posthog import (
    CaptureRequest,
    decode_request,
    lz_decompress_base64,
    map_event,
)
from uxstream.collector.sdk_common import DROPPED_PROPERTIES

FIXTURES = Path(__file__).parent / "fixtures"
EVENTS: list[dict[str, Any]] = json.loads((FIXTURES / "posthog_events.json").read_text("utf-8"))
PAGEVIEW, CLICK, EXCEPTION, VITALS, PAGELEAVE, IDENTIFY, CUSTOM = EVENTS
TOKEN = "wk_test_shop_0123456789abcdef"
RECEIVED = 1_764_928_900_000
LIMITS = BodyLimits(1_048_576, 4_194_304, 100, 500)


def mapped(event: dict[str, Any]) -> dict[str, Any]:
    result = map_event(event, received_at=RECEIVED)
    assert not isinstance(result, Rejected), result
    return result


def decoded(body: bytes, query: dict[str, str] | None = None, **headers: str) -> CaptureRequest:
    result = decode_request(
        body, query=query or {}, content_type=headers.get("content_type"),
        content_encoding=headers.get("content_encoding"), limits=LIMITS,
    )  # fmt: skip
    assert isinstance(result, CaptureRequest), result
    return result


# ------------------------------------------------------------------------------------------ bodies

BODY = json.dumps(EVENTS).encode()


def test_plain_json_array_with_the_token_of_its_events() -> None:
    assert decoded(BODY) == CaptureRequest(TOKEN, EVENTS)


def test_gzip_js_body_as_posthog_js_sends_it() -> None:
    assert (
        decoded(gzip.compress(BODY), {"compression": "gzip-js", "ver": "1.449.2", "_": "1"}).events == EVENTS
    )


def test_content_encoding_gzip() -> None:
    assert decoded(gzip.compress(BODY), content_encoding="gzip").events == EVENTS


def test_base64_form_body() -> None:
    body = b"data=" + quote(base64.b64encode(BODY).decode(), safe="").encode()
    request = decoded(body, {"compression": "base64"}, content_type="application/x-www-form-urlencoded")
    assert request.events == EVENTS


def test_lz64_form_body_decodes_like_lz_string() -> None:
    fixture = json.loads((FIXTURES / "posthog_lz64.json").read_text("utf-8"))
    assert lz_decompress_base64(fixture["lz64"]) == fixture["json"]
    body = b"data=" + quote(fixture["lz64"], safe="").encode() + b"&compression=lz64"
    request = decoded(body, content_type="application/x-www-form-urlencoded")
    assert request.events == json.loads(fixture["json"])
    assert request.token == TOKEN


def test_batch_object_of_the_server_sdks_names_its_token() -> None:
    body = json.dumps({"api_key": "phc_other", "batch": [CUSTOM]}).encode()
    assert decoded(body) == CaptureRequest("phc_other", [CUSTOM])


def test_single_event_object() -> None:
    assert decoded(json.dumps(PAGEVIEW).encode()).events == [PAGEVIEW]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "malformed_json"),
        (b"42", 400, "no_events"),
        (b"data=%%%%", 400, "malformed_json"),
        (b"\x1f\x8b\x08garbage", 400, "bad_gzip"),
    ],
)
def test_bodies_that_are_not_posthog_are_refused(body: bytes, status: int, error: str) -> None:
    result = decode_request(body, query={}, content_type=None, content_encoding=None, limits=LIMITS)
    assert isinstance(result, Refusal)
    assert (result.status, result.error) == (status, error)


def test_lz64_garbage_is_refused() -> None:
    result = decode_request(
        b"data=!!!&compression=lz64", query={}, content_type=None, content_encoding=None, limits=LIMITS
    )
    assert isinstance(result, Refusal) and (result.status, result.error) == (400, "bad_encoding")


# ----------------------------------------------------------------------------------------- mapping


def test_pageview_row_by_row() -> None:
    assert mapped(PAGEVIEW) == {
        "event_id": "019aee3a-7a10-7000-8000-00000000a001",  # uuid
        "event_type": "page_view",  # $pageview
        "event_name": "page_view",
        "anonymous_id": "0193a1b2-anon-0001",  # distinct_id (anonymous)
        "ts": 1_764_928_800_123,  # timestamp
        "page_url": PAGEVIEW["properties"]["$current_url"],  # $current_url
        "page_path": "/pricing",  # $pathname
        "page_title": "Pricing",  # title
        "referrer": "https://www.google.com/",  # $referrer
        "utm_source": "newsletter",
        "utm_medium": "email",
        "utm_campaign": "winter",
        "device_type": "desktop",  # $device_type lower-cased
        "os": "Linux",  # $os (+ major of $os_version when there is one)
        "browser": "Chrome 131",  # $browser + major of $browser_version
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0",  # $raw_user_agent
        "app_version": "web 1.449.2",  # $lib $lib_version
        "session_hint": "0193a1b2-sess-0001",  # $session_id
        "screen_width": 1920,
        "screen_height": 1080,
        "properties": {"plan": "pro"},  # the page's own properties; PostHog's $ internals dropped
    }


def test_autocapture_click() -> None:
    event = mapped(CLICK)
    assert (event["event_type"], event["event_name"]) == ("click", "click")
    assert event["properties"] == {"element_text": "Buy now", "element": "button"}
    assert "referrer" not in event  # "$direct" is no referrer


def test_autocapture_other_than_click_is_a_custom_event_named_after_it() -> None:
    submit = {**CLICK, "properties": {**CLICK["properties"], "$event_type": "submit"}}
    assert (mapped(submit)["event_type"], mapped(submit)["event_name"]) == ("custom", "autocapture_submit")


def test_exception_from_exception_list() -> None:
    event = mapped(EXCEPTION)
    assert (event["event_type"], event["error_type"], event["error_message"]) == (
        "error", "TypeError", "x is undefined",
    )  # fmt: skip


def test_exception_from_the_older_flat_properties() -> None:
    props = {"distinct_id": "a", "$exception_type": "RangeError", "$exception_message": "bad"}
    event = mapped({"event": "$exception", "properties": props, "timestamp": "2025-12-05T10:00:00Z"})
    assert (event["error_type"], event["error_message"]) == ("RangeError", "bad")


def test_web_vitals() -> None:
    event = mapped(VITALS)
    assert (event["event_type"], event["lcp_ms"], event["cls"]) == ("web_vital", 812.5, 0.02)
    assert "inp_ms" not in event


def test_pageleave_is_a_heartbeat_keeping_the_page_duration() -> None:
    event = mapped(PAGELEAVE)
    assert (event["event_type"], event["event_name"]) == ("heartbeat", "page_leave")
    assert event["properties"] == {"$prev_pageview_duration": "12.5"}
    assert event["page_path"] == "/pricing"  # from $current_url when $pathname is absent


def test_identify_names_the_user_and_keeps_the_anonymous_id() -> None:
    event = mapped(IDENTIFY)
    assert (event["event_type"], event["event_name"]) == ("custom", "$identify")
    assert (event["user_id"], event["anonymous_id"]) == ("user-42", "0193a1b2-anon-0001")


def test_custom_event_of_an_identified_user_keeps_its_properties_as_strings() -> None:
    event = mapped(CUSTOM)
    assert (event["event_type"], event["event_name"]) == ("custom", "add_to_cart")
    assert (event["user_id"], event["anonymous_id"]) == ("user-42", "0193a1b2-anon-0001")  # $device_id
    assert event["properties"] == {"sku": "A-1", "qty": "2", "gift": "false"}


def test_offset_instead_of_timestamp_counts_back_from_receipt() -> None:
    event = {"event": "x", "distinct_id": "a", "offset": 1500}
    assert mapped(event)["ts"] == RECEIVED - 1500


def test_properties_over_the_contract_limits_are_left_out_and_counted() -> None:
    props: dict[str, Any] = {"distinct_id": "a", "long": "v" * (MAX_PROPERTY_VALUE + 1)}
    props.update({f"p{i:03}": i for i in range(MAX_PROPERTIES + 10)})
    event = mapped({"event": "x", "properties": props, "timestamp": "2025-12-05T10:00:00Z"})
    assert len(event["properties"]) == MAX_PROPERTIES
    assert event["properties"][DROPPED_PROPERTIES] == str(1 + 10 + 1)
    assert "long" not in event["properties"]


def test_every_fixture_event_is_accepted_by_the_contract() -> None:
    for raw in EVENTS:
        prepared = prepare(mapped(raw), project="shop", received_at=RECEIVED, client_ip=None)
        assert type(prepared).__name__ == "Accepted", (raw["event"], prepared)


def without(event: dict[str, Any], *path: str) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(event))
    target = copy
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return copy


@pytest.mark.parametrize(
    ("event", "reason", "detail"),
    [
        (without(CUSTOM, "event"), MISSING_FIELD, "field 'event' is missing"),
        (without(CUSTOM, "timestamp"), MISSING_FIELD, "field 'timestamp' is missing"),
        ({**CUSTOM, "timestamp": "2025-12-05 10:00"}, MISSING_FIELD, "field 'timestamp' is missing"),
        (without(CUSTOM, "properties", "distinct_id"), MISSING_FIELD, "field 'distinct_id' is missing"),
        (without(CLICK, "properties", "$event_type"), MISSING_FIELD, "field '$event_type' is missing"),
        (without(EXCEPTION, "properties", "$exception_list"), MISSING_FIELD, "field '$exception_list'"),
        (without(VITALS, "properties", "$web_vitals_LCP_value"), "", ""),
        (
            without(without(PAGEVIEW, "properties", "$current_url"), "properties", "$pathname"),
            MISSING_FIELD,
            "field '$current_url' is missing",
        ),
        ({**CUSTOM, "properties": "x"}, IMPOSSIBLE_VALUE, "field 'properties' of a PostHog event"),
        ("not an event", IMPOSSIBLE_VALUE, "must be a JSON object"),
    ],
)
def test_events_the_mapping_cannot_place_are_rejected_with_a_reason(
    event: Any, reason: str, detail: str
) -> None:
    result = map_event(event, received_at=RECEIVED)
    if not reason:  # CLS is still there: the event is placed
        assert not isinstance(result, Rejected)
        return
    assert isinstance(result, Rejected)
    assert result.reason == reason
    assert result.detail.startswith(detail) or detail in result.detail


def test_web_vitals_without_any_core_vital_is_rejected() -> None:
    props = {"distinct_id": "a", "$web_vitals_FCP_value": 100}
    result = map_event({"event": "$web_vitals", "properties": props, "timestamp": "2025-12-05T10:00:00Z"},
                       received_at=RECEIVED)  # fmt: skip
    assert result == Rejected(
        MISSING_FIELD,
        "field '$web_vitals_LCP_value' is missing or empty: "
        "a $web_vitals event carries no LCP, INP or CLS value",
    )
