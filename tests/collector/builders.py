"""Events as clients send them (JSON field names of the event schema), with named times."""

from __future__ import annotations

from typing import Any, Final

T0: Final = 1_764_892_800_000
"""2025-12-05T00:00:00Z: before any collector clock in these tests (no future timestamps)."""
SECOND: Final = 1_000


def page_view(user: str, ts: int = T0, path: str = "/", **fields: Any) -> dict[str, Any]:
    return {
        "event_type": "page_view", "event_name": "page_view", "anonymous_id": user, "ts": ts,
        "page_path": path, **fields,
    }  # fmt: skip


def feedback(user: str, ts: int = T0, scale: str = "0-10", score: Any = 9, **fields: Any) -> dict[str, Any]:
    """A feedback event (schema v3, README "Feedback") answering survey `nps-2025q1`."""
    return {
        "event_type": "feedback", "event_name": "survey_answered", "anonymous_id": user, "ts": ts,
        "survey_id": "nps-2025q1", "feedback_scale": scale, "feedback_score": score, **fields,
    }  # fmt: skip


def click(user: str, ts: int = T0, **fields: Any) -> dict[str, Any]:
    return {"event_type": "click", "event_name": "click", "anonymous_id": user, "ts": ts, **fields}
