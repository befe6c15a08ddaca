"""The Snowplow mapping (README, "Snowplow mapping"), row by row, on tracker payloads (fixtures)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from jobs.common.contract import IMPOSSIBLE_VALUE, MISSING_FIELD
from uxstream.collector.logic import BodyLimits, Refusal, Rejected, prepare
from uxstream.collector.snowplow import UNKNOWN_EVENT, app_id, decode_post, map_event

FIXTURES = Path(__file__).parent / "fixtures"
PAYLOAD: dict[str, Any] = json.loads((FIXTURES / "snowplow_payload.json").read_text("utf-8"))
PV, PP, SE, LINK, ERROR, VITALS, CUSTOM = PAYLOAD["data"]
PING_MS = 10_000
LIMITS = BodyLimits(1_048_576, 4_194_304, 100, 500)


def mapped(event: dict[str, Any]) -> dict[str, Any]:
    result = map_event(event, ping_interval_ms=PING_MS)
    assert not isinstance(result, Rejected), result
    return result


def test_payload_data_body_plain_and_gzip() -> None:
    body = json.dumps(PAYLOAD).encode()
    assert decode_post(body, None, LIMITS) == PAYLOAD["data"]
    assert decode_post(gzip.compress(body), "gzip", LIMITS) == PAYLOAD["data"]


@pytest.mark.parametrize(
    ("body", "error"),
    [(b"[1]", "not_payload_data"), (b'{"schema": "iglu:x/y", "data": []}', "not_payload_data"),
     (b"{", "malformed_json")],
)  # fmt: skip
def test_bodies_that_are_not_payload_data_are_refused(body: bytes, error: str) -> None:
    result = decode_post(body, None, LIMITS)
    assert isinstance(result, Refusal) and (result.status, result.error) == (400, error)


def test_the_app_id_names_the_write_key() -> None:
    assert app_id(PAYLOAD["data"]) == "wk_test_shop_0123456789abcdef"


def test_page_view_row_by_row() -> None:
    assert mapped(PV) == {
        "event_id": "7d0e2c3a-0000-4000-8000-00000000b001",  # eid
        "event_type": "page_view",  # e = pv
        "event_name": "page_view",
        "anonymous_id": "3b5c-duid-0001",  # duid ("uid" empty: anonymous)
        "ts": 1_764_928_800_123,  # dtm
        "page_url": PV["url"],  # url
        "page_path": "/pricing",  # path of url
        "page_title": "Pricing",  # page
        "referrer": "https://www.google.com/",  # refr
        "utm_source": "newsletter",  # utm_* of url
        "utm_medium": "email",
        "utm_campaign": "winter",
        "user_agent": PV["ua"],  # ua
        "app_version": "js-4.10.1",  # tv
        "session_hint": "9f1e-sid-0001",  # sid
        "screen_width": 1920,  # res
        "screen_height": 1080,
        "properties": {},
    }


def test_page_ping_is_a_heartbeat_with_the_ping_interval_engaged() -> None:
    event = mapped(PP)
    assert (event["event_type"], event["event_name"], event["engagement_time_ms"]) == (
        "heartbeat", "page_ping", PING_MS,
    )  # fmt: skip
    assert event["properties"] == {"min_x": "0", "max_x": "0", "min_y": "0", "max_y": "640"}


def test_structured_event_is_custom_named_by_its_action() -> None:
    event = mapped(SE)
    assert (event["event_type"], event["event_name"], event["user_id"]) == (
        "custom",
        "add_to_cart",
        "user-42",
    )
    assert event["properties"] == {"category": "shop", "label": "A-1", "value": "2"}


def test_link_click_is_a_click() -> None:
    event = mapped(LINK)
    assert (event["event_type"], event["event_name"]) == ("click", "link_click")
    assert event["properties"] == {
        "schema": "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1",
        "targetUrl": "http://127.0.0.1:8000/docs",
        "elementId": "docs-link",
    }


def test_application_error_is_an_error() -> None:
    event = mapped(ERROR)
    assert (event["event_type"], event["error_type"], event["error_message"]) == (
        "error", "TypeError", "x is undefined",
    )  # fmt: skip
    assert event["properties"]["lineNumber"] == "12"


def test_web_vitals_event() -> None:
    event = mapped(VITALS)
    assert (event["event_type"], event["lcp_ms"], event["cls"]) == ("web_vital", 812.5, 0.02)
    assert event["properties"]["fcp"] == "400.1"


def test_other_self_describing_event_sent_base64url_is_custom_named_by_its_schema() -> None:
    event = mapped(CUSTOM)
    assert (event["event_type"], event["event_name"]) == ("custom", "signup_completed")
    assert event["properties"] == {
        "schema": "iglu:com.acme/signup_completed/jsonschema/1-0-0", "plan": "pro",
    }  # fmt: skip


def test_every_fixture_event_is_accepted_by_the_contract() -> None:
    for raw in PAYLOAD["data"]:
        prepared = prepare(mapped(raw), project="shop", received_at=1_764_929_000_000, client_ip=None)
        assert type(prepared).__name__ == "Accepted", (raw["e"], prepared)


@pytest.mark.parametrize(
    ("event", "reason", "detail"),
    [
        ({**PV, "e": "tr"}, UNKNOWN_EVENT, "field 'e' is 'tr'"),
        ({k: v for k, v in PV.items() if k != "e"}, MISSING_FIELD, "field 'e' is missing"),
        ({k: v for k, v in PV.items() if k != "dtm"}, MISSING_FIELD, "field 'dtm' is missing"),
        ({k: v for k, v in PV.items() if k != "duid"}, MISSING_FIELD, "field 'duid' is missing"),
        ({k: v for k, v in SE.items() if k != "se_ac"}, MISSING_FIELD, "field 'se_ac' is missing"),
        ({k: v for k, v in LINK.items() if k != "ue_pr"}, MISSING_FIELD, "field 'ue_pr' is missing"),
        ({**LINK, "ue_pr": "{"}, IMPOSSIBLE_VALUE, "field 'ue_pr' is not JSON"),
        ({**CUSTOM, "ue_px": "***"}, IMPOSSIBLE_VALUE, "field 'ue_px' is not base64url JSON"),
        ({**ERROR, "ue_pr": ERROR["ue_pr"].replace("exceptionName", "name")}, MISSING_FIELD,
         "field 'exceptionName' is missing"),
        ({**VITALS, "ue_pr": VITALS["ue_pr"].replace('"lcp"', '"x"').replace('"cls"', '"y"')}, MISSING_FIELD,
         "field 'lcp' is missing"),
    ],
)  # fmt: skip
def test_events_the_mapping_cannot_place_are_rejected_with_a_reason(
    event: dict[str, Any], reason: str, detail: str
) -> None:
    result = map_event(event, ping_interval_ms=PING_MS)
    assert isinstance(result, Rejected)
    assert (result.reason, result.detail[: len(detail)]) == (reason, detail)


def test_pixel_query_values_map_like_a_post() -> None:
    assert mapped({k: str(v) for k, v in PV.items()}) == mapped(PV)
