"""The Snowplow tracker protocol (what @snowplow/browser-tracker sends), pure: no I/O, no clock.

- `decode_post`: the body of `POST /com.snowplowanalytics.snowplow/tp2` (a `payload_data` JSON object:
  `{"schema": "iglu:…/payload_data/…", "data": [{…}, …]}`, every value a string) → its events.
- `GET /i`: the query string is one event (the pixel).
- `map_event`: one tracker event → the native event object (README, "Snowplow mapping"), or a `Rejected`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from uxstream.collector.logic import MALFORMED_JSON, BodyLimits, Refusal, Rejected, read_body
from uxstream.collector.sdk_common import (
    compact,
    impossible,
    missing,
    number,
    properties,
    url_parts,
)

POST_PATH: Final = "/com.snowplowanalytics.snowplow/tp2"
PIXEL_PATH: Final = "/i"
PAYLOAD_SCHEMA: Final = "iglu:com.snowplowanalytics.snowplow/payload_data/"
PIXEL: Final = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
"""A transparent 1×1 GIF: the answer to `GET /i`."""

_URLSAFE: Final = str.maketrans("-_", "+/")
UNKNOWN_EVENT: Final = "unknown_event"
"""Reason: an `e` the mapping does not know (the README's table lists those it does)."""

LINK_CLICK: Final = "iglu:com.snowplowanalytics.snowplow/link_click/"
BUTTON_CLICK: Final = "iglu:com.snowplowanalytics.snowplow/button_click/"
APPLICATION_ERROR: Final = "iglu:com.snowplowanalytics.snowplow/application_error/"
WEB_VITALS: Final = "iglu:com.snowplowanalytics.snowplow/web_vitals/"

STRUCT_PROPERTIES: Final = (
    ("se_ca", "category"), ("se_la", "label"), ("se_pr", "property"), ("se_va", "value"),
)  # fmt: skip
PING_PROPERTIES: Final = (("pp_mix", "min_x"), ("pp_max", "max_x"), ("pp_miy", "min_y"), ("pp_may", "max_y"))


def decode_post(raw: bytes, content_encoding: str | None, limits: BodyLimits) -> list[Any] | Refusal:
    body = read_body(raw, content_encoding, limits)
    if isinstance(body, Refusal):
        return body
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        return Refusal(400, MALFORMED_JSON, f"the body is not valid JSON ({exc})")
    if (
        not isinstance(value, dict)
        or not str(value.get("schema", "")).startswith(PAYLOAD_SCHEMA)
        or not isinstance(value.get("data"), list)
    ):
        return Refusal(400, "not_payload_data", f'expected {{"schema": "{PAYLOAD_SCHEMA}…", "data": [...]}}')
    events: list[Any] = value["data"]
    if len(events) > limits.max_batch_events:
        detail = f"{len(events)} events in one batch, limit {limits.max_batch_events}"
        return Refusal(413, "batch_too_large", detail)
    return events


def app_id(events: list[Any]) -> str | None:
    """The first `aid` (the tracker's appId) of a request: the write key when no other is sent."""
    for event in events:
        if isinstance(event, dict) and isinstance(event.get("aid"), str) and event["aid"]:
            return str(event["aid"])
    return None


def map_event(event: Any, *, ping_interval_ms: int) -> dict[str, Any] | Rejected:
    """One tracker event → the native event object. A page ping is a heartbeat whose engaged time is
    the tracker's heartbeat interval (`ping_interval_ms`: the collector's setting, which must equal the
    page's `enableActivityTracking({heartbeatDelay})`: the tracker does not send it)."""
    if not isinstance(event, dict):
        return impossible("a Snowplow event must be a JSON object")
    e = event.get("e")
    if not isinstance(e, str) or not e:
        return missing("e", " (the Snowplow event type)")
    ts = _ms(event.get("ttm")) or _ms(event.get("dtm"))
    if ts is None:
        return missing("dtm", " (the tracker's creation time, epoch ms)")
    anonymous_id = _str(event.get("duid"))
    user_id = _str(event.get("uid"))
    if not anonymous_id and not user_id:
        return missing("duid", " and 'uid' is missing: no user key")
    url = _str(event.get("url"))
    path, utm = url_parts(url) if url else (None, {})
    width, height = _resolution(event.get("res"))
    record: dict[str, Any] = {
        "event_id": _str(event.get("eid")),
        "user_id": user_id,
        "anonymous_id": anonymous_id or user_id,
        "ts": ts,
        "page_url": url,
        "page_path": path,
        "page_title": _str(event.get("page")),
        "referrer": _str(event.get("refr")),
        "utm_source": utm.get("utm_source"),
        "utm_medium": utm.get("utm_medium"),
        "utm_campaign": utm.get("utm_campaign"),
        "user_agent": _str(event.get("ua")),
        "app_version": _str(event.get("tv")),
        "session_hint": _str(event.get("sid")),
        "screen_width": width,
        "screen_height": height,
    }
    extra: list[tuple[str, Any]] = []
    if e == "pv":
        record.update(event_type="page_view", event_name="page_view")
    elif e == "pp":
        record.update(event_type="heartbeat", event_name="page_ping", engagement_time_ms=ping_interval_ms)
        extra += [(name, event.get(key)) for key, name in PING_PROPERTIES]
    elif e == "se":
        action = _str(event.get("se_ac"))
        if not action:
            return missing("se_ac", " (a structured event names its action)")
        record.update(event_type="custom", event_name=action)
        extra += [(name, event.get(key)) for key, name in STRUCT_PROPERTIES]
    elif e == "ue":
        placed = _self_describing(event)
        if isinstance(placed, Rejected):
            return placed
        fields, extra = placed
        record.update(fields)
    else:
        return Rejected(UNKNOWN_EVENT, f"field 'e' is {e!r}: the collector maps pv, pp, se and ue")
    record["properties"] = properties(extra)
    return compact(record)


def _self_describing(event: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, Any]]] | Rejected:
    envelope = _unstruct(event)
    if isinstance(envelope, Rejected):
        return envelope
    schema, data = envelope
    pairs: list[tuple[str, Any]] = [("schema", schema), *data.items()]
    if schema.startswith((LINK_CLICK, BUTTON_CLICK)):
        name = "link_click" if schema.startswith(LINK_CLICK) else "button_click"
        return {"event_type": "click", "event_name": name}, pairs
    if schema.startswith(APPLICATION_ERROR):
        kind = data.get("exceptionName")
        if not isinstance(kind, str) or not kind:
            return missing("exceptionName", " (an application_error names its error type)")
        message = data.get("message")
        rest = [(k, v) for k, v in pairs if k not in ("exceptionName", "message")]
        fields = {
            "event_type": "error", "event_name": "error", "error_type": kind,
            "error_message": message if isinstance(message, str) else None,
        }  # fmt: skip
        return fields, rest
    if schema.startswith(WEB_VITALS):
        vitals = {"lcp_ms": number(data.get("lcp")), "inp_ms": number(data.get("inp")),
                  "cls": number(data.get("cls"))}  # fmt: skip
        if all(value is None for value in vitals.values()):
            return missing("lcp", ": a web_vitals event carries no lcp, inp or cls")
        rest = [(k, v) for k, v in pairs if k not in ("lcp", "inp", "cls")]
        return {"event_type": "web_vital", "event_name": "web_vital", **vitals}, rest
    parts = schema.removeprefix("iglu:").split("/")
    if len(parts) < 2 or not parts[1]:
        return impossible(f"self-describing schema {schema!r} is not iglu:vendor/name/format/version")
    return {"event_type": "custom", "event_name": parts[1]}, pairs


def _unstruct(event: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | Rejected:
    raw = event.get("ue_pr")
    if not isinstance(raw, str) or not raw:
        encoded = event.get("ue_px")
        if not isinstance(encoded, str) or not encoded:
            return missing("ue_pr", " and 'ue_px' is missing (a self-describing event carries one)")
        try:
            padded = encoded.translate(_URLSAFE) + "=" * (-len(encoded) % 4)
            raw = base64.b64decode(padded, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return impossible("field 'ue_px' is not base64url JSON")
    try:
        outer = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return impossible("field 'ue_pr' is not JSON")
    inner = outer.get("data") if isinstance(outer, dict) else None
    if not isinstance(inner, dict) or not isinstance(inner.get("schema"), str):
        return impossible("field 'ue_pr' holds no self-describing {schema, data}")
    data = inner.get("data")
    return inner["schema"], data if isinstance(data, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _ms(value: Any) -> int | None:
    parsed = number(value)
    if parsed is None or parsed != parsed or parsed < 0:
        return None
    return int(parsed)


def _resolution(value: Any) -> tuple[int | None, int | None]:
    if not isinstance(value, str) or "x" not in value:
        return None, None
    width, _, height = value.partition("x")
    if width.isdigit() and height.isdigit():
        return int(width), int(height)
    return None, None
