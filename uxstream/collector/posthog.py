"""The PostHog capture protocol (what posthog-js and PostHog's server SDKs send), pure: no I/O, no clock.

- `decode_request`: a request body of `/e/`, `/batch/`, `/i/v0/e/` or `/capture/` → its project token and
  its events. Bodies: JSON (an event, an array of events, or `{"api_key", "batch": [...]}`), gzip
  (`?compression=gzip-js` or `gzip`, or `Content-Encoding: gzip`), form-encoded `data=<base64 JSON>`
  (`compression=base64`) and `data=<LZ-string base64>` (`compression=lz64`, older posthog-js).
- `map_event`: one PostHog event → the native event object (README, "PostHog mapping"), or a `Rejected`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs

import msgspec

from uxstream.collector.logic import (
    MALFORMED_JSON,
    BodyLimits,
    Refusal,
    Rejected,
    read_body,
)
from uxstream.collector.sdk_common import (
    compact,
    impossible,
    iso_to_ms,
    missing,
    number,
    positive_int,
    properties,
    text,
    url_parts,
    with_major,
)

ROUTES: Final = ("/e/", "/batch/", "/i/v0/e/", "/capture/")
"""The capture paths posthog-js and the server SDKs post to (also without the trailing slash)."""

BAD_ENCODING: Final = "bad_encoding"
NO_EVENTS: Final = "no_events"

EVENT_TYPES: Final[Mapping[str, tuple[str, str]]] = {
    "$pageview": ("page_view", "page_view"),
    "$pageleave": ("heartbeat", "page_leave"),
    "$exception": ("error", "error"),
    "$web_vitals": ("web_vital", "web_vital"),
}
"""PostHog event → (event_type, event_name). `$autocapture` is a click when its `$event_type` is
`click`, else a custom event `autocapture_<$event_type>`; every other event is custom, named as sent."""

DEVICE_TYPES: Final = {"desktop": "desktop", "mobile": "mobile", "tablet": "tablet"}

MAPPED_PROPERTIES: Final = frozenset({
    "token", "distinct_id", "$anon_distinct_id", "$device_id", "$user_state", "$session_id",
    "$current_url", "$pathname", "$referrer", "title", "$title", "utm_source", "utm_medium", "utm_campaign",
    "$device_type", "$os", "$os_version", "$browser", "$browser_version", "$raw_user_agent", "$lib",
    "$lib_version", "$screen_width", "$screen_height", "$exception_list", "$exception_type",
    "$exception_message", "$web_vitals_LCP_value", "$web_vitals_INP_value", "$web_vitals_CLS_value",
    "$event_type", "$el_text", "$elements_chain", "$elements",
})  # fmt: skip
"""Properties that become schema fields (README, "PostHog mapping"). Of the others, those without a `$`
prefix (the page's own) go to `properties`; PostHog's own `$` properties (SDK internals) are dropped."""

KEPT_SDK_PROPERTIES: Final = ("$prev_pageview_duration", "$prev_pageview_max_scroll_percentage")
"""`$` properties worth keeping (page-leave engagement): copied into `properties`."""


@dataclass(frozen=True, slots=True)
class CaptureRequest:
    token: str | None
    """The request's project token (`api_key` or `token` at the top, else the first event's)."""
    events: list[Any]


def decode_request(
    raw: bytes,
    *,
    query: Mapping[str, str],
    content_type: str | None,
    content_encoding: str | None,
    limits: BodyLimits,
) -> CaptureRequest | Refusal:
    compression = (query.get("compression") or "").lower()
    gzipped = compression in ("gzip", "gzip-js") or raw[:2] == b"\x1f\x8b"
    coding = "gzip" if gzipped and (content_encoding or "identity") == "identity" else content_encoding
    body = read_body(raw, coding, limits)
    if isinstance(body, Refusal):
        return body
    form = (content_type or "").split(";")[0].strip().lower() == "application/x-www-form-urlencoded"
    if form or body.startswith(b"data="):
        fields = parse_qs(body.decode("latin-1"), keep_blank_values=True)
        data = (fields.get("data") or [""])[0]
        compression = (fields.get("compression") or [compression])[0].lower()
        decoded = _decode_data(data, compression)
        if isinstance(decoded, Refusal):
            return decoded
        body = decoded
    if len(body) > limits.max_decompressed_bytes:
        detail = f"the body decodes to more than {limits.max_decompressed_bytes} bytes"
        return Refusal(413, "decompressed_too_large", detail)
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        return Refusal(400, MALFORMED_JSON, f"the body is not valid JSON ({exc})")
    token: Any = None
    if isinstance(value, dict) and isinstance(value.get("batch"), list):
        token = value.get("api_key") or value.get("token")
        events = value["batch"]
    elif isinstance(value, dict):
        events = [value]
    elif isinstance(value, list):
        events = value
    else:
        return Refusal(400, NO_EVENTS, "expected a PostHog event, an array of events or a batch object")
    if len(events) > limits.max_batch_events:
        detail = f"{len(events)} events in one batch, limit {limits.max_batch_events}"
        return Refusal(413, "batch_too_large", detail)
    if not isinstance(token, str) or not token:
        token = next((t for t in map(event_token, events) if t), None)
    return CaptureRequest(token, events)


def event_token(event: Any) -> str | None:
    """The project token an event names (`api_key`, `token` or `properties.token`)."""
    if not isinstance(event, dict):
        return None
    props = event.get("properties")
    found = event.get("api_key") or event.get("token")
    if not found and isinstance(props, dict):
        found = props.get("token")
    return found if isinstance(found, str) and found else None


def _decode_data(data: str, compression: str) -> bytes | Refusal:
    if compression == "lz64":
        text_ = lz_decompress_base64(data)
        if text_ is None:
            return Refusal(400, BAD_ENCODING, "the data= field is not LZ-string base64 (compression=lz64)")
        return text_.encode("utf-8", "surrogatepass")
    try:
        return base64.b64decode(data + "=" * (-len(data) % 4), validate=False)
    except (binascii.Error, ValueError) as exc:
        return Refusal(400, BAD_ENCODING, f"the data= field is not base64 ({exc})")


# ---------------------------------------------------------------------------------------------- mapping


def map_event(event: Any, *, received_at: int) -> dict[str, Any] | Rejected:
    """One PostHog event → the native event object, or why it cannot be placed. `received_at` serves
    only events that carry an `offset` (ms before sending) instead of a `timestamp` (server SDKs)."""
    if not isinstance(event, dict):
        return impossible("a PostHog event must be a JSON object")
    name = event.get("event")
    if not isinstance(name, str) or not name:
        return missing("event", " (the PostHog event name)")
    props = event.get("properties") or {}
    if not isinstance(props, dict):
        return impossible("field 'properties' of a PostHog event must be an object")
    ts = iso_to_ms(event.get("timestamp"))
    if ts is None:
        offset = positive_int(event.get("offset"))
        if offset is None:
            return missing("timestamp", " (an ISO 8601 time with a zone, or an offset in ms)")
        ts = received_at - offset
    kind = _kind(name, props)
    if isinstance(kind, Rejected):
        return kind
    event_type, event_name = kind
    distinct = event.get("distinct_id") or props.get("distinct_id")
    if not isinstance(distinct, str) or not distinct:
        return missing("distinct_id")
    user_id, anonymous_id = _identity(distinct, props)
    url = props.get("$current_url")
    path = props.get("$pathname")
    utm: dict[str, str] = {}
    if isinstance(url, str) and url:
        parsed, utm = url_parts(url)
        if not isinstance(path, str) or not path:
            path = parsed
    referrer = props.get("$referrer")
    record: dict[str, Any] = {
        "event_id": event.get("uuid") if isinstance(event.get("uuid"), str) else None,
        "event_type": event_type,
        "event_name": event_name,
        "user_id": user_id,
        "anonymous_id": anonymous_id,
        "ts": ts,
        "page_url": url if isinstance(url, str) and url else None,
        "page_path": path if isinstance(path, str) and path else None,
        "page_title": text(props.get("title") or props.get("$title")),
        "referrer": referrer if isinstance(referrer, str) and referrer and referrer != "$direct" else None,
        "utm_source": text(props.get("utm_source")) or utm.get("utm_source"),
        "utm_medium": text(props.get("utm_medium")) or utm.get("utm_medium"),
        "utm_campaign": text(props.get("utm_campaign")) or utm.get("utm_campaign"),
        "device_type": DEVICE_TYPES.get(str(props.get("$device_type", "")).lower()),
        "os": with_major(props.get("$os"), props.get("$os_version")),
        "browser": with_major(props.get("$browser"), props.get("$browser_version")),
        "user_agent": text(props.get("$raw_user_agent")),
        "app_version": with_lib(props.get("$lib"), props.get("$lib_version")),
        "session_hint": text(props.get("$session_id")),
        "screen_width": positive_int(props.get("$screen_width")),
        "screen_height": positive_int(props.get("$screen_height")),
    }
    if event_type == "error":
        error = _exception(props)
        if isinstance(error, Rejected):
            return error
        record["error_type"], record["error_message"] = error
    elif event_type == "web_vital":
        record["lcp_ms"] = number(props.get("$web_vitals_LCP_value"))
        record["inp_ms"] = number(props.get("$web_vitals_INP_value"))
        record["cls"] = number(props.get("$web_vitals_CLS_value"))
        if record["lcp_ms"] is None and record["inp_ms"] is None and record["cls"] is None:
            return missing("$web_vitals_LCP_value", ": a $web_vitals event carries no LCP, INP or CLS value")
    elif event_type == "page_view" and not record["page_path"]:
        return missing("$current_url", " (a $pageview needs the page's URL or $pathname)")
    extra: list[tuple[str, Any]] = []
    if name == "$autocapture":
        extra += [("element_text", props.get("$el_text")), ("element", _first_element(props))]
    extra += [(key, props[key]) for key in KEPT_SDK_PROPERTIES if key in props]
    extra += [
        (key, value)
        for key, value in props.items()
        if key not in MAPPED_PROPERTIES and not key.startswith("$")
    ]
    record["properties"] = properties(extra)
    return compact(record)


def with_lib(lib: Any, version: Any) -> str | None:
    if not isinstance(lib, str) or not lib:
        return None
    return f"{lib} {version}" if isinstance(version, str) and version else lib


def _kind(name: str, props: Mapping[str, Any]) -> tuple[str, str] | Rejected:
    if name in EVENT_TYPES:
        return EVENT_TYPES[name]
    if name == "$autocapture":
        action = props.get("$event_type")
        if not isinstance(action, str) or not action:
            return missing("$event_type", " (an $autocapture event names its DOM event)")
        return ("click", "click") if action == "click" else ("custom", f"autocapture_{action}")
    return "custom", name


def _identity(distinct: str, props: Mapping[str, Any]) -> tuple[str | None, str]:
    """(user_id, anonymous_id): an identified user (`$user_state` identified, or an `$identify` with
    `$anon_distinct_id`) is user_id = distinct_id; the anonymous id is then `$anon_distinct_id` or
    `$device_id`. Anonymous: anonymous_id = distinct_id."""
    anon = props.get("$anon_distinct_id")
    device = props.get("$device_id")
    if props.get("$user_state") == "identified" or (isinstance(anon, str) and anon and anon != distinct):
        for candidate in (anon, device, distinct):
            if isinstance(candidate, str) and candidate and candidate != distinct:
                return distinct, candidate
        return distinct, distinct
    return None, distinct


def _exception(props: Mapping[str, Any]) -> tuple[str, str | None] | Rejected:
    listed = props.get("$exception_list")
    if isinstance(listed, list) and listed and isinstance(listed[0], dict):
        kind, message = listed[0].get("type"), listed[0].get("value")
    else:
        kind, message = props.get("$exception_type"), props.get("$exception_message")
    if not isinstance(kind, str) or not kind:
        return missing("$exception_list", " (an $exception names its type)")
    return kind, text(message)


def _first_element(props: Mapping[str, Any]) -> str | None:
    chain = props.get("$elements_chain")
    if isinstance(chain, str) and chain:
        return chain.split(";")[0].split(":")[0].split(".")[0] or None
    elements = props.get("$elements")
    if isinstance(elements, list) and elements and isinstance(elements[0], dict):
        return text(elements[0].get("tag_name"))
    return None


# --------------------------------------------------------------------------------------------- LZ-string

_BASE64: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_BASE64_INDEX: Final = {char: index for index, char in enumerate(_BASE64)}


def lz_decompress_base64(data: str) -> str | None:
    """LZ-string's `decompressFromBase64` (the `lz64` compression of older posthog-js), None when the
    input is not such a string."""
    if not data:
        return ""
    try:
        values = [_BASE64_INDEX[char] for char in data]
    except KeyError:
        return None
    return _lz_decompress(len(values), 32, values.__getitem__)


class _Bits:
    def __init__(self, length: int, reset: int, value_at: Callable[[int], int]) -> None:
        self.length, self.reset, self.value_at = length, reset, value_at
        self.value = value_at(0)
        self.position = reset
        self.index = 1

    def read(self, count: int) -> int:
        bits = 0
        for shift in range(count):
            bit = 1 if self.value & self.position else 0
            self.position >>= 1
            if self.position == 0:
                self.position = self.reset
                self.value = self.value_at(self.index) if self.index < self.length else 0
                self.index += 1
            bits |= bit << shift
        return bits


def _lz_decompress(length: int, reset: int, value_at: Callable[[int], int]) -> str | None:
    bits = _Bits(length, reset, value_at)
    dictionary: dict[int, str] = {}
    first = bits.read(2)
    if first == 2:
        return ""
    if first > 2:
        return None
    word = chr(bits.read(8 if first == 0 else 16))
    dictionary[3] = word
    size, width, enlarge_in = 4, 3, 4
    out = [word]
    while True:
        if bits.index > length + 1:
            return None
        code = bits.read(width)
        if code in (0, 1):
            dictionary[size] = chr(bits.read(8 if code == 0 else 16))
            code = size
            size += 1
            enlarge_in -= 1
        elif code == 2:
            return "".join(out)
        if enlarge_in == 0:
            enlarge_in = 1 << width
            width += 1
        if code in dictionary:
            entry = dictionary[code]
        elif code == size:
            entry = word + word[0]
        else:
            return None
        out.append(entry)
        dictionary[size] = word + entry[0]
        size += 1
        enlarge_in -= 1
        word = entry
        if enlarge_in == 0:
            enlarge_in = 1 << width
            width += 1
