"""The dashboard's query parameters: parsed and validated in one place (pure; a bad value is a BadParameter
whose message the server returns with 400).

    dimension  global | page_path | country | device_type        (default global)
    range      <n>m | <n>h | <n>d, 1 minute to 90 days            (default 2h)
    end        latest (the newest final window) | now | ISO 8601 instant with an offset   (default latest)
    tz         an IANA time zone for the axes and times shown      (default UTC)
    top        how many values of the dimension to chart, 1..10    (default 5)
    token      the access token (checked by the server, not here)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DIMENSIONS = ("global", "page_path", "country", "device_type")
DIMENSION_TITLES = {"global": "global", "page_path": "page", "country": "country", "device_type": "device"}
RANGE_CHOICES = ("15m", "1h", "2h", "6h", "24h", "7d", "30d")
"""Offered by the page's selector; any other <n>m/h/d within the bounds is accepted too."""
DEFAULT_RANGE = "2h"
MAX_RANGE = timedelta(days=90)
KNOWN = frozenset({"dimension", "range", "end", "tz", "top", "token"})
_RANGE = re.compile(r"^([1-9][0-9]{0,5})([mhd])$")
_UNITS = {"m": 60, "h": 3600, "d": 86400}


class BadParameter(ValueError):
    """A query parameter the dashboard cannot use; the message names it and says what is allowed."""


@dataclass(frozen=True)
class Params:
    dimension: str = "global"
    range_text: str = DEFAULT_RANGE
    end: datetime | None = None
    """None: the newest final window ("latest")."""
    end_is_now: bool = False
    tz: str = "UTC"
    top: int = 5

    @property
    def span(self) -> timedelta:
        return parse_range(self.range_text)

    def query(self) -> dict[str, str]:
        """The parameters as the page's URL carries them (defaults included)."""
        end = "now" if self.end_is_now else ("latest" if self.end is None else self.end.isoformat())
        return {
            "dimension": self.dimension,
            "range": self.range_text,
            "end": end,
            "tz": self.tz,
            "top": str(self.top),
        }


def parse_range(text: str) -> timedelta:
    match = _RANGE.match(text)
    if match is None:
        raise BadParameter(f"range={text!r}: expected a number and a unit m, h or d, e.g. 2h or 7d")
    span = timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    if span > MAX_RANGE:
        raise BadParameter(f"range={text!r}: at most 90d")
    return span


def parse_params(query: Mapping[str, str]) -> Params:
    """Params from a query string mapping; BadParameter on an unknown name or a malformed value."""
    unknown = sorted(set(query) - KNOWN)
    if unknown:
        raise BadParameter(
            f"unknown parameter {unknown[0]!r}: the dashboard takes {', '.join(sorted(KNOWN))}"
        )
    dimension = query.get("dimension", "global")
    if dimension not in DIMENSIONS:
        raise BadParameter(f"dimension={dimension!r}: expected one of {', '.join(DIMENSIONS)}")
    range_text = query.get("range", DEFAULT_RANGE)
    parse_range(range_text)
    end_text = query.get("end", "latest")
    end: datetime | None = None
    end_is_now = end_text == "now"
    if end_text not in ("latest", "now"):
        try:
            end = datetime.fromisoformat(end_text)
        except ValueError:
            raise BadParameter(
                f"end={end_text!r}: expected latest, now or an ISO 8601 instant such as 2026-12-05T14:00:00Z"
            ) from None
        if end.tzinfo is None:
            raise BadParameter(f"end={end_text!r}: give the offset (Z or +01:00), the instant is ambiguous")
        end = end.astimezone(UTC)
    tz = query.get("tz", "UTC")
    try:
        if not tz or tz.startswith(("/", ".")):
            raise ValueError(tz)
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadParameter(f"tz={tz!r}: expected an IANA time zone such as UTC or Europe/Berlin") from None
    top_text = query.get("top", "5")
    if not top_text.isdigit() or not 1 <= int(top_text) <= 10:
        raise BadParameter(f"top={top_text!r}: expected a whole number from 1 to 10")
    return Params(dimension, range_text, end, end_is_now, tz, int(top_text))
