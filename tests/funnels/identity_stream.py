"""The identity scenarios of the funnels e2e stream (issue 22 item 4, rule 3; README "Identity in funnels").

`with_funnel_identity_events` inserts them into generated ground-truth lines, in event-time order, after
an ordinary on-time event in the middle of the stream (their anchor), all on time, with ids of their own
(`stitchfun-…`) so that no generated user, and so no other assertion on the shared run, is affected.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

ANONYMOUS: Final = None

SCENARIOS: Final[dict[str, tuple[tuple[float, str, str | None, str | None], ...]]] = {
    # (minutes after the anchor, event name, anonymous id, user id)
    # An anonymous first step, a login (a page view: no step) and the rest with both ids: one attempt.
    "login mid-funnel": (
        (0, "signup_started", "stitchfun-anon-login", ANONYMOUS),
        (1, "page_view", "stitchfun-anon-login", "stitchfun-user-login"),
        (2, "signup_form_submitted", "stitchfun-anon-login", "stitchfun-user-login"),
        (3, "signup_completed", "stitchfun-anon-login", "stitchfun-user-login"),
    ),
    # No login: the held events are released under the anonymous id when the visit ends.
    "anonymous visit": (
        (0.5, "signup_started", "stitchfun-anon-only", ANONYMOUS),
        (1.5, "signup_form_submitted", "stitchfun-anon-only", ANONYMOUS),
    ),
    # A login 31 minutes after the last event: a new visit, it does not reach back.
    "login after the gap": (
        (0.25, "signup_started", "stitchfun-anon-gap", ANONYMOUS),
        (31.25, "page_view", "stitchfun-anon-gap", "stitchfun-user-gap"),
        (32, "signup_form_submitted", "stitchfun-anon-gap", "stitchfun-user-gap"),
    ),
    # A login, then a later visit without the user id: the user's.
    "return after login": (
        (0.75, "page_view", "stitchfun-anon-return", "stitchfun-user-return"),
        (35, "signup_started", "stitchfun-anon-return", ANONYMOUS),
        (36, "signup_form_submitted", "stitchfun-anon-return", ANONYMOUS),
        (37, "signup_completed", "stitchfun-anon-return", ANONYMOUS),
    ),
    # An anonymous visitor comes back 31.5 minutes later (a new visit, held until it ends): its events join
    # the attempt still open from the first visit (checkout: no per-step window).
    "anonymous return": (
        (2, "product_viewed", "stitchfun-anon-back", ANONYMOUS),
        (33.5, "add_to_cart", "stitchfun-anon-back", ANONYMOUS),
        (34, "checkout_started", "stitchfun-anon-back", ANONYMOUS),
    ),
    # One identified user on two devices: one cross-device attempt.
    "two devices": (
        (1.25, "signup_started", "stitchfun-anon-phone", "stitchfun-user-multi"),
        (2.25, "signup_form_submitted", "stitchfun-anon-laptop", "stitchfun-user-multi"),
        (3.25, "signup_completed", "stitchfun-anon-laptop", "stitchfun-user-multi"),
    ),
}

EXPECTED: Final[dict[str, tuple[str, str, str, int]]] = {
    # scenario: (funnel, user key, status, steps reached) of its one attempt
    "login mid-funnel": ("signup", "stitchfun-user-login", "converted", 3),
    "anonymous visit": ("signup", "stitchfun-anon-only", "dropped", 2),
    "login after the gap": ("signup", "stitchfun-anon-gap", "dropped", 1),
    "return after login": ("signup", "stitchfun-user-return", "converted", 3),
    "anonymous return": ("checkout", "stitchfun-anon-back", "dropped", 3),
    "two devices": ("signup", "stitchfun-user-multi", "converted", 3),
}
"""What each scenario must give (the oracle must agree; the e2e test checks both)."""


def with_funnel_identity_events(truth_lines: Sequence[str]) -> list[str]:
    """The ground-truth lines with every scenario's events inserted in event-time order (each received
    300 ms after its event time); `seq` is renumbered."""
    lines = [json.loads(line) for line in truth_lines]
    candidates = [
        index
        for index, line in enumerate(lines)
        if line.get("event") is not None
        and line.get("expected_reason") is None
        and not line.get("tags")
        and line["event"]["event_type"] == "page_view"
        and line["event"]["user_id"]  # a logged-in user's page view: never a bot's (they are anonymous)
    ]
    anchor_index = candidates[len(candidates) // 3]
    template = lines[anchor_index]
    anchor = int(template["event"]["ts"])
    inserted = []
    for number, (minutes, name, anonymous, user) in enumerate(
        step for steps in SCENARIOS.values() for step in steps
    ):
        ts = anchor + int(minutes * 60_000) + 11  # never the same instant as a generated event
        event = {
            **{k: v for k, v in template["event"].items() if k != "properties"},
            "event_id": f"stitchfun-{number}",
            "event_type": "page_view" if name == "page_view" else "custom",
            "event_name": name,
            "page_load_ms": template["event"].get("page_load_ms") if name == "page_view" else None,
            "anonymous_id": anonymous,
            "user_id": user,
            "ts": ts,
            "received_at": ts + 300,
            "properties": {},
        }
        line: dict[str, Any] = {
            **template,
            "key": user or anonymous,
            "timestamp": event["received_at"],
            "event": event,
            "tags": ["identity"],
        }
        inserted.append(line)
    inserted.sort(key=lambda x: x["event"]["ts"])
    out: list[dict[str, Any]] = lines[: anchor_index + 1]
    for line in lines[anchor_index + 1 :]:
        while inserted and line.get("event") is not None and line["event"]["ts"] > inserted[0]["event"]["ts"]:
            out.append(inserted.pop(0))
        out.append(line)
    assert not inserted, "the stream is too short for the identity scenarios"
    return [json.dumps({**line, "seq": seq}, separators=(",", ":")) + "\n" for seq, line in enumerate(out)]
