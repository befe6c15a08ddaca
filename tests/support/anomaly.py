"""Builders for the anomaly tests: named times, synthetic KPI window streams with known anomalies."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any, Final

from jobs.common import tables

T0: Final = 1_736_121_600_000
"""2025-01-06T00:00:00Z, a Monday (hour-of-week slot 0)."""
MINUTE: Final = 60_000
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR
WEEK: Final = 7 * DAY


def kpi_record(
    start: int,
    dimension: str = tables.DIM_GLOBAL,
    value: str = tables.ALL_VALUE,
    *,
    page_views: int = 100,
    errors: int = 2,
    active_users: int = 40,
    lcp: float | None = 1500.0,
    kind: str = "tumbling_1m",
) -> dict[str, Any]:
    """A kpi_window.v1 record (every field present)."""
    return {
        "window_kind": kind,
        "window_start": start,
        "window_end": start + MINUTE,
        "dimension": dimension,
        "dimension_value": value,
        "events": page_views * 4,
        "page_views": page_views,
        "active_users": active_users,
        "new_sessions": None,
        "error_events": errors,
        "error_rate": errors / page_views if page_views else None,
        "conversions": 1,
        "lcp_p75_ms": lcp,
        "inp_p75_ms": None,
        "cls_p75": None,
        "duplicates": 0,
        "late_events": None,
        "revision": 1,
    }


def kpi_key(record: dict[str, Any]) -> str:
    return f"{record['window_kind']}|{record['dimension']}|{record['dimension_value']}"


def synthetic_stream(
    minutes: int, *, seed: int = 5, begin: int = T0, segments: tuple[tuple[str, str], ...] | None = None
) -> Iterator[dict[str, Any]]:
    """Noisy KPI windows for a few segments with a daily cycle and three injected anomalies:
    an error spike on the global segment at minute 60–70, a traffic drop on country=DE at minute 100–115,
    a latency spike on device_type=mobile at minute 140–150 (minutes from `begin`)."""
    rng = random.Random(seed)
    segments = segments or (
        (tables.DIM_GLOBAL, tables.ALL_VALUE),
        (tables.DIM_COUNTRY, "DE"),
        (tables.DIM_DEVICE_TYPE, "mobile"),
    )
    scale = {tables.DIM_GLOBAL: 400, tables.DIM_COUNTRY: 120, tables.DIM_DEVICE_TYPE: 180}
    for m in range(minutes):
        start = begin + m * MINUTE
        cycle = 1 + 0.3 * math.sin(2 * math.pi * (start % DAY) / DAY)
        for dimension, value in segments:
            views = max(1, int(rng.gauss(scale[dimension] * cycle, 0.05 * scale[dimension])))
            rate = 0.02
            lcp = rng.gauss(1500, 60)
            if dimension == tables.DIM_GLOBAL and 60 <= m < 70:
                rate = 0.2
            if value == "DE" and 100 <= m < 115:
                views = max(1, views // 6)
            if value == "mobile" and 140 <= m < 150:
                lcp *= 3
            errors = sum(1 for _ in range(views) if rng.random() < rate)
            users = max(1, int(views * 0.4 + rng.gauss(0, 2)))
            yield kpi_record(
                start,
                dimension,
                value,
                page_views=views,
                errors=errors,
                active_users=users,
                lcp=round(lcp, 1),
            )
