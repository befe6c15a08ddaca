"""Independent batch oracle of SEMANTICS.md "Sessions": expected session rows from a finished event list.

Written apart from `logic.py` on purpose (no shared code): it sorts each user's events, finds the split
points with a vectorised-style pass over neighbour pairs, and aggregates every slice from scratch. Both
must agree row for row; end-to-end tests compare the database with this.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo


def _local_day(ts: int, zone: ZoneInfo) -> tuple[int, int, int]:
    moment = datetime.fromtimestamp(ts / 1000, zone)
    return (moment.year, moment.month, moment.day)


def user_key_of(event: Mapping[str, Any]) -> str:
    user_id = event.get("user_id")
    return str(user_id) if user_id else str(event["anonymous_id"])


def expected_sessions(
    events: Iterable[Mapping[str, Any]],
    *,
    gap_ms: int = 30 * 60_000,
    timezone: str = "UTC",
    split_at_midnight: bool = True,
    max_duration_ms: int = 24 * 3_600_000,
    conversion_events: Iterable[str] = ("order_completed", "signup_completed"),
) -> list[dict[str, Any]]:
    """Final session rows (as dicts keyed like the `sessions` table) of clean events of a finished stream."""
    zone = ZoneInfo(timezone)
    conversions = set(conversion_events)
    by_user: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for event in events:
        by_user[user_key_of(event)].append(event)

    rows: list[dict[str, Any]] = []
    for user, user_events in by_user.items():
        ordered = sorted(user_events, key=lambda e: (e["ts"], e["event_id"]))
        slices: list[tuple[int, int, str]] = []  # (first index, end index exclusive, reason next started)
        begin = 0
        for i in range(1, len(ordered)):
            prev_ts, ts = ordered[i - 1]["ts"], ordered[i]["ts"]
            reason = None
            if ts - prev_ts > gap_ms:
                reason = "gap"
            elif split_at_midnight and _local_day(ts, zone) != _local_day(prev_ts, zone):
                reason = "midnight"
            elif ts - ordered[begin]["ts"] > max_duration_ms:
                reason = "max_duration"
            if reason is not None:
                slices.append((begin, i, reason))
                begin = i
        slices.append((begin, len(ordered), "gap"))
        for first, stop, reason in slices:
            rows.append(_session_row(user, ordered[first:stop], reason, conversions))
    rows.sort(key=lambda r: (r["user_key"], r["session_start"]))
    return rows


def _session_row(
    user: str, events: list[Mapping[str, Any]], reason: str, conversions: set[str]
) -> dict[str, Any]:
    start, end = events[0]["ts"], events[-1]["ts"]
    views = [e for e in events if e["event_type"] == "page_view"]
    paths = [e["page_path"] for e in views if e.get("page_path") is not None]
    n_conversions = sum(1 for e in events if e["event_name"] in conversions)
    engaged = (end - start) > 10_000 or len(views) >= 2 or n_conversions >= 1
    first = events[0]
    return {
        "session_id": hashlib.sha256(f"{user}\x1f{start}".encode()).hexdigest()[:32],
        "user_key": user,
        "session_start": start,
        "session_end": end,
        "duration_ms": end - start,
        "event_count": len(events),
        "page_views": len(views),
        "distinct_pages": len(set(paths)),
        "entry_page": paths[0] if paths else None,
        "exit_page": paths[-1] if paths else None,
        "referrer": first.get("referrer"),
        "utm_source": first.get("utm_source"),
        "utm_medium": first.get("utm_medium"),
        "utm_campaign": first.get("utm_campaign"),
        "device_type": first.get("device_type"),
        "browser": first.get("browser"),
        "country": first.get("country"),
        "error_count": sum(1 for e in events if e["event_type"] == "error"),
        "conversions": n_conversions,
        "engaged": engaged,
        "bounce": not engaged,
        "split_reason": reason,
        "is_final": True,
    }
