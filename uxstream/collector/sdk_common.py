"""What the PostHog and Snowplow mappings share (pure: no I/O, no clock).

A protocol mapping turns one SDK event into the JSON object `/v1/batch` accepts (the event schema's field
names), or a `Rejected` with a reason code when it cannot place the event: it never guesses. The object
then goes through `logic.prepare` like any native event, so the contract's rules and limits apply
unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import msgspec

from jobs.common.contract import IMPOSSIBLE_VALUE, MISSING_FIELD
from jobs.common.limits import MAX_PROPERTIES, MAX_PROPERTY_KEY, MAX_PROPERTY_VALUE
from uxstream.collector.logic import Rejected

DROPPED_PROPERTIES: Final = "uxstream_dropped_properties"
"""The `properties` key that counts the SDK properties left out (over the contract's limits)."""
UNKNOWN_PROJECT_TOKEN: Final = "unknown_project_token"
"""Reason: an event names another project token than its request (one request, one project)."""

_ENCODE: Final = msgspec.json.Encoder(order="sorted").encode


def missing(field: str, detail: str = "") -> Rejected:
    return Rejected(MISSING_FIELD, f"field '{field}' is missing or empty{detail}")


def impossible(detail: str) -> Rejected:
    return Rejected(IMPOSSIBLE_VALUE, detail)


def iso_to_ms(value: Any) -> int | None:
    """Epoch milliseconds of an ISO 8601 time with a zone (`2025-12-05T10:00:00.123Z`), else None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return math.floor(moment.timestamp() * 1000 + 0.5)


def url_parts(url: str) -> tuple[str | None, dict[str, str]]:
    """The path of a URL and its first UTM query values (`utm_source`, `utm_medium`, `utm_campaign`)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None, {}
    query = parse_qs(parts.query, keep_blank_values=False)
    utm = {name: query[name][0] for name in ("utm_source", "utm_medium", "utm_campaign") if name in query}
    return (parts.path or "/") if parts.scheme or parts.path else None, utm


def text(value: Any) -> str | None:
    """A JSON value as a property/field string: strings as they are, other values as compact JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return _ENCODE(value).decode()


def properties(pairs: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """Free-form properties within the contract's limits: an entry whose key or value is too long, and
    every entry beyond the limit, is left out and counted in `uxstream_dropped_properties`."""
    kept: dict[str, str] = {}
    dropped = 0
    for key, value in pairs:
        rendered = text(value)
        if rendered is None:
            continue
        if (
            len(key) > MAX_PROPERTY_KEY
            or len(rendered) > MAX_PROPERTY_VALUE
            or len(kept) >= MAX_PROPERTIES - 1
        ):
            dropped += 1
            continue
        kept[key] = rendered
    if dropped:
        kept[DROPPED_PROPERTIES] = str(dropped)
    return kept


def major(version: Any) -> str | None:
    """The major part of a version (`131.0.6778` → `131`)."""
    rendered = text(version)
    if not rendered:
        return None
    return rendered.split(".")[0]


def with_major(name: Any, version: Any) -> str | None:
    """`Chrome 131` from a name and a version (the schema's os/browser form), the name alone without one."""
    if not isinstance(name, str) or not name:
        return None
    number = major(version)
    return f"{name} {number}" if number else name


def positive_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


def number(value: Any) -> float | None:
    """A JSON number (or a numeric string, as Snowplow sends every field) as a float, else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def compact(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event without None fields (a missing field is what `prepare` expects)."""
    return {key: value for key, value in event.items() if value is not None}
