"""The KPI identity scenarios (issue 22 item 4 rule 2; README "Active users and logins") for the shared
sessionize stream: visitors who log in, seen by the KPI windows. Page paths under `/identity-kpi/` and ids
`identity-kpi-…` belong to nobody else, so each scenario has KPI rows of its own (the page-path dimension)
whose active users a test can state exactly, next to the oracle comparison of every row.

`with_identity_kpi_events(truth_lines)` inserts them into a generated stream (as `with_identity_events` of
tests/support/streams.py does for the sessions); `identity_kpi_timeline(minute)` is the same scenario as
event fields, for the check tier."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from jobs.sessionize.settings import SessionizeSettings

SECOND: Final = 1_000
MINUTE: Final = 60 * SECOND

PATHS: Final = {
    "login": "/identity-kpi/login-in-a-minute",
    "earlier": "/identity-kpi/login-a-minute-later",
    "devices": "/identity-kpi/two-devices",
    "kiosk": "/identity-kpi/kiosk",
    "return": "/identity-kpi/return",
}
"""The page path of each scenario (its own KPI rows)."""

IDS: Final = {
    "visitor": "identity-kpi-anon-visitor",
    "visitor_user": "identity-kpi-user-visitor",
    "earlier": "identity-kpi-anon-earlier",
    "earlier_user": "identity-kpi-user-earlier",
    "phone": "identity-kpi-anon-phone",
    "laptop": "identity-kpi-anon-laptop",
    "owner": "identity-kpi-user-owner",
    "kiosk": "identity-kpi-anon-kiosk",
    "kiosk_first": "identity-kpi-user-a-kiosk",
    "kiosk_second": "identity-kpi-user-b-kiosk",
    "returner": "identity-kpi-anon-returner",
    "returner_user": "identity-kpi-user-returner",
}
"""The raw ids of the scenario (`kiosk_first` < `kiosk_second` in string order)."""

TIMELINE: Final = (
    # (ms after the scenario's first minute, anonymous id, user id, scenario)
    # 1. Anonymous for 30 s, then logged in, all within one minute: ONE active user in that minute.
    (5 * SECOND, "visitor", None, "login"),
    (20 * SECOND, "visitor", None, "login"),
    (35 * SECOND, "visitor", "visitor_user", "login"),
    (50 * SECOND, "visitor", "visitor_user", "login"),
    # 2. Anonymous in one minute, logged in the next: 1 + 1 in the minutes, ONE in the sliding windows
    #    and the day that cover both.
    (40 * SECOND, "earlier", None, "earlier"),
    (MINUTE + 10 * SECOND, "earlier", "earlier_user", "earlier"),
    # 3. Two devices (anonymous ids) of one user, each logged in a few minutes after its anonymous page
    #    view: ONE daily user.
    (2 * MINUTE + 5 * SECOND, "phone", None, "devices"),
    (3 * MINUTE + 5 * SECOND, "phone", "owner", "devices"),
    (6 * MINUTE + 5 * SECOND, "laptop", None, "devices"),
    (8 * MINUTE + 5 * SECOND, "laptop", "owner", "devices"),
    # 4. One anonymous id linked to two users in one minute (a shared kiosk): it counts as the least user
    #    id, so the minute has 2 people, not 3.
    (10 * SECOND, "kiosk", None, "kiosk"),
    (30 * SECOND, "kiosk", "kiosk_second", "kiosk"),
    (45 * SECOND, "kiosk", "kiosk_first", "kiosk"),
    # 5. Logged in, then anonymous again 14 minutes later without a link in its sliding windows: the
    #    minute and the sliding windows count the anonymous id, the day counts one person.
    (MINUTE, "returner", None, "return"),
    (MINUTE + 30 * SECOND, "returner", "returner_user", "return"),
    (15 * MINUTE, "returner", None, "return"),
)

ACTIVE_USERS: Final = {
    # scenario: (kpi_1m rows in time order, kpi_sliding_5m rows in time order, every kpi_daily_cumulative row)
    "login": ([1], [1] * 5, 1),  # without stitching: [2], [2] * 5, 2
    "earlier": ([1, 1], [1] * 6, 1),  # the four sliding windows that cover both minutes: 1, not 2
    "devices": ([1, 1, 1, 1], [1, 1, 1, 1, 2, 2, 1, 1, 1, 1, 1], 1),  # 2: the laptop's login is outside
    "kiosk": ([2], [2] * 5, 2),  # not 3
    "return": ([1, 1], [1] * 10, 1),  # the return's sliding windows have no link: the anonymous id
}
"""The active users of each scenario's page-path rows, by rule 2 (the same in every stream that carries
the scenario: its ids and paths are its own)."""


def scenario_active_users(
    rows: Mapping[str, Sequence[Mapping[str, Any]]],
) -> dict[str, tuple[list[int], list[int], int]]:
    """{scenario: (kpi_1m active users in time order, kpi_sliding_5m likewise, the daily active users of
    every kpi_daily_cumulative row)} of the scenario's page-path rows, in the shape of ACTIVE_USERS."""

    def of(table: str, column: str, path: str) -> list[int]:
        mine = [r for r in rows[table] if r["dimension"] == "page_path" and r["dimension_value"] == path]
        return [int(r[column]) for r in sorted(mine, key=lambda r: r["window_end"])]

    result: dict[str, tuple[list[int], list[int], int]] = {}
    for name, path in PATHS.items():
        daily = set(of("kpi_daily_cumulative", "daily_active_users", path))
        assert len(daily) == 1, (name, daily)
        result[name] = (
            of("kpi_1m", "active_users", path),
            of("kpi_sliding_5m", "active_users", path),
            daily.pop(),
        )
    return result


def identity_kpi_timeline(minute: int) -> list[dict[str, Any]]:
    """The scenario's events (event_id, ts, anonymous_id, user_id, page_path) from epoch-ms `minute`, a
    5-minute boundary (as ACTIVE_USERS assumes), in event-time order."""
    assert minute % (5 * MINUTE) == 0, "the scenario starts at a 5-minute boundary"
    events = [
        {
            "event_id": f"identity-kpi-{n}",
            "ts": minute + offset,
            "anonymous_id": IDS[device],
            "user_id": IDS[user] if user else None,
            "page_path": PATHS[scenario],
        }
        for n, (offset, device, user, scenario) in enumerate(TIMELINE)
    ]
    return sorted(events, key=lambda e: (e["ts"], e["event_id"]))


def with_identity_kpi_events(truth_lines: Sequence[str]) -> list[str]:
    """The ground-truth lines with the scenario inserted in event-time order: its first minute is the first
    5-minute boundary at least a minute after an ordinary on-time page view in the middle of the stream,
    whose other fields the scenario's page views copy; `seq` is renumbered. Every scenario event is on time
    (inserted before the first record with a greater event time; the stream's jitter is seconds, the
    scenario starts a minute or more after its anchor)."""
    lines = [json.loads(line) for line in truth_lines]
    candidates = [
        index
        for index, line in enumerate(lines)
        if line.get("event") is not None
        and line.get("expected_reason") is None
        and not line.get("tags")
        and line["event"]["event_type"] == "page_view"
    ]
    anchor_index = candidates[len(candidates) // 2]
    template = lines[anchor_index]
    anchor = int(template["event"]["ts"])
    # The first minute starts a cumulative step (the daily windows' figures depend on where their 5-minute
    # ends fall, as ACTIVE_USERS states them), at least a minute after the anchor.
    step = SessionizeSettings().cumulative_step_ms
    first_minute = (anchor + MINUTE) - (anchor + MINUTE) % step + step

    def line_of(fields: dict[str, Any]) -> dict[str, Any]:
        event = {
            **{k: v for k, v in template["event"].items() if k != "properties"},
            **fields,
            "event_type": "page_view",
            "event_name": "page_view",
            "page_url": f"https://shop.example.com{fields['page_path']}",
            "received_at": fields["ts"] + 300,
            "properties": {},
        }
        return {
            **template,
            "key": event["user_id"] or event["anonymous_id"],
            "timestamp": event["received_at"],
            "event": event,
            "tags": ["identity-kpi"],
        }

    inserted = [line_of(fields) for fields in identity_kpi_timeline(first_minute)]
    out: list[dict[str, Any]] = lines[: anchor_index + 1]
    for line in lines[anchor_index + 1 :]:
        # Arrival order is the Kafka timestamp's (received_at): a future or late record says nothing of it.
        while inserted and line["timestamp"] > inserted[0]["timestamp"]:
            out.append(inserted.pop(0))
        out.append(line)
    out.extend(inserted)
    return [json.dumps({**line, "seq": seq}, separators=(",", ":")) + "\n" for seq, line in enumerate(out)]
