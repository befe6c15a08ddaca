"""Series expiry (issue 16: the anomaly job's state is bounded in event time), as specifications.

A series group (one job key: every metric of one ux.kpi / ux.funnel message key) expires when no window of
it has arrived for the series TTL of event time. The rule is applied by the oracle and the job alike:
a window ending more than TTL after the group's last window end starts the group anew; at the end, the
groups whose expiry the final watermark has reached expire (all of them at the end of a bounded input).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from jobs.anomaly.logic import (
    DEFAULT_SERIES_TTL_MS,
    OPEN,
    RESOLVED,
    Alert,
    DetectorError,
    DetectorSettings,
    MemoryDetector,
    SeriesKey,
    arrives_expired,
    expires_at,
    group_key,
)
from jobs.anomaly.oracle import expected
from jobs.anomaly.settings import PREFIX, AnomalySettings
from jobs.common import tables
from jobs.common.settings import SettingsError, parse_duration_ms
from tests.support.anomaly import DAY, HOUR, MINUTE, T0, WEEK, kpi_record

TTL = 2 * HOUR
SETTINGS = DetectorSettings(min_history=5, ewma_window=10, open_after=2, resolve_after=2, min_volume=10)
PAGE = (tables.DIM_PAGE_PATH, "/checkout")
ERRORS = SeriesKey("kpi", "error_rate", "tumbling_1m", *PAGE)


def calm(start: int, minutes: int, page: tuple[str, str] = PAGE) -> list[dict[str, object]]:
    return [kpi_record(start + m * MINUTE, *page, errors=2 + m % 2) for m in range(minutes)]


def spike(start: int, minutes: int, page: tuple[str, str] = PAGE) -> list[dict[str, object]]:
    return [kpi_record(start + m * MINUTE, *page, errors=40) for m in range(minutes)]


def feed(memory: MemoryDetector, records: list[dict[str, object]]) -> list[Alert]:
    return [alert for record in records for alert in memory.feed("kpi", record)]


def seen(memory: MemoryDetector, key: SeriesKey = ERRORS) -> int:
    return memory.series[key].state.seen


# ------------------------------------------------------------------------------------ the rule

LAST_END = T0 + 10 * MINUTE


@pytest.mark.parametrize(
    ("last_end", "window_end", "expired"),
    [
        (None, T0 + MINUTE, False),  # a new group has nothing to expire
        (LAST_END, LAST_END + MINUTE, False),  # the next window
        (LAST_END, LAST_END + TTL, False),  # a gap of exactly TTL keeps the group
        (LAST_END, LAST_END + TTL + 1, True),  # one millisecond more: expired
        (LAST_END, LAST_END + 3 * TTL, True),
    ],
)
def test_a_window_ending_more_than_ttl_after_the_last_window_end_finds_the_group_expired(
    last_end: int | None, window_end: int, expired: bool
) -> None:
    assert arrives_expired(last_end, window_end, TTL) is expired


def test_the_expiry_timer_is_due_at_last_window_end_plus_ttl() -> None:
    assert expires_at(LAST_END, TTL) == LAST_END + TTL


def test_the_group_is_the_job_key_source_and_kafka_message_key() -> None:
    assert group_key("kpi", kpi_record(T0, *PAGE)) == "kpi|tumbling_1m|page_path|/checkout"
    funnel = {"funnel": "signup", "dimension": "country", "dimension_value": "DE"}
    assert group_key("funnel", funnel) == "funnel|signup|country|DE"


# ------------------------------------------------------------------------------ the detector


def test_a_gap_of_exactly_ttl_keeps_the_series_and_its_baseline() -> None:
    memory = MemoryDetector(SETTINGS, TTL)
    feed(memory, calm(T0, 10))
    back = T0 + 10 * MINUTE + TTL - MINUTE  # ends exactly TTL after the last window end
    feed(memory, calm(back, 1))
    assert (seen(memory), memory.expired) == (11, 0)


def test_a_series_back_after_more_than_ttl_starts_anew_with_every_metric_of_its_key() -> None:
    memory = MemoryDetector(SETTINGS, TTL)
    feed(memory, calm(T0, 10))
    back = T0 + 10 * MINUTE + TTL  # ends TTL + 1 min after the last window end
    feed(memory, calm(back, 1))
    assert memory.expired == 1, "one expiry per group, not per metric"
    keys = [k for k in memory.series if (k.dimension, k.dimension_value) == PAGE]
    assert len(keys) == len(SETTINGS.metrics) - 1  # every kpi metric (the funnel one is not a kpi series)
    assert all(memory.series[k].state.seen == 1 for k in keys), "warm-up again, no gap filled"
    # Without the TTL the same gap is filled with zero windows (count metrics) and the series goes on.
    endless = MemoryDetector(SETTINGS)
    feed(endless, [*calm(T0, 10), *calm(back, 1)])
    assert seen(endless) == 11 and endless.expired == 0


def test_a_series_back_after_the_ttl_warms_up_again_so_a_spike_cannot_alert_at_once() -> None:
    memory = MemoryDetector(SETTINGS, TTL)
    feed(memory, calm(T0, 10))
    assert statuses(feed(memory, spike(T0 + 10 * MINUTE, 2))) == [OPEN, "update"]
    memory = MemoryDetector(SETTINGS, TTL)
    feed(memory, calm(T0, 10))
    assert feed(memory, spike(T0 + 10 * MINUTE + TTL, 2)) == []


def statuses(alerts: list[Alert]) -> list[str]:
    return [a.status for a in alerts]


def test_an_alert_open_at_expiry_is_resolved_with_zero_windows_at_last_window_end_plus_ttl() -> None:
    memory = MemoryDetector(SETTINGS, TTL)
    feed(memory, calm(T0, 10))
    opened = feed(memory, spike(T0 + 10 * MINUTE, 3))
    assert statuses(opened) == [OPEN, "update", "update"]
    feed(memory, calm(T0 + 13 * MINUTE, 1))  # one normal window: still open (resolve_after 2)
    last_end = T0 + 14 * MINUTE
    out = feed(memory, calm(last_end + TTL, 1))
    (expiry,) = [a for a in out if a.metric == "error_rate"]
    last = opened[-1]
    assert (expiry.status, expiry.alert_id, expiry.consecutive_windows, expiry.resolved_at) == (
        RESOLVED, last.alert_id, 0, last_end + TTL,
    )  # fmt: skip
    # The window and score of its last message; the opening and peak as they were.
    assert (expiry.window_start, expiry.window_end, expiry.value, expiry.baseline, expiry.z_score) == (
        last.window_start, last.window_end, last.value, last.baseline, last.z_score,
    )  # fmt: skip
    assert (expiry.opened_window_start, expiry.peak_z, expiry.anomalous_windows) == (
        last.opened_window_start, last.peak_z, last.anomalous_windows,
    )  # fmt: skip
    assert expiry.row()["status"] == RESOLVED


def test_at_the_end_the_groups_the_final_watermark_has_passed_expire_and_a_bounded_end_expires_all() -> None:
    other = (tables.DIM_PAGE_PATH, "/other")
    records = [*calm(T0, 10), *calm(T0 + HOUR, 10, other)]
    checkout_expiry = T0 + 10 * MINUTE + TTL
    for watermark, want in (
        (checkout_expiry - 1, 0),
        (checkout_expiry, 1),  # a timer fires when the watermark reaches its time
        (T0 + HOUR + 10 * MINUTE + TTL, 2),
        (None, 2),  # the end of a bounded input passes every expiry
    ):
        memory = MemoryDetector(SETTINGS, TTL)
        feed(memory, records)
        memory.finish(watermark)
        assert memory.expired == want, watermark


def test_an_alert_open_at_the_end_of_a_bounded_input_is_resolved_as_expired() -> None:
    records = [*calm(T0, 10), *spike(T0 + 10 * MINUTE, 3)]
    bounded = expected((("kpi", r) for r in records), SETTINGS, series_ttl_ms=TTL)
    assert [(m["status"], m["consecutive_windows"]) for _, m in bounded["messages"]] == [
        (OPEN, 1), ("update", 2), ("update", 3), (RESOLVED, 0),
    ]  # fmt: skip
    assert bounded["expired"] == 1
    (row,) = bounded["anomalies"]
    assert (row["status"], row["resolved_at"]) == (RESOLVED, T0 + 13 * MINUTE + TTL)
    # Without a TTL (the evaluation and the older oracle calls) nothing expires: the alert stays open.
    endless = expected((("kpi", r) for r in records), SETTINGS)
    assert [r["status"] for r in endless["anomalies"]] == [OPEN] and endless["expired"] == 0


def test_a_flood_of_one_off_dimension_values_leaves_no_state_behind() -> None:
    """Hostile input: 1,000 page paths seen once each. After the TTL they are gone from memory and
    counted; a series that keeps reporting is untouched."""
    memory = MemoryDetector(SETTINGS, TTL)
    flood = [
        kpi_record(T0 + (i % 60) * MINUTE, tables.DIM_PAGE_PATH, f"/x/{i}", page_views=3) for i in range(1000)
    ]
    feed(memory, [*flood, *calm(T0, 60)])
    assert len(memory.groups) == 1001
    feed(memory, calm(T0 + 60 * MINUTE, 2 * 60 + 2))  # event time moves on past every flood expiry
    memory.finish(T0 + 3 * HOUR + MINUTE)
    assert list(memory.groups) == [group_key("kpi", kpi_record(T0, *PAGE))]
    assert memory.expired == 1000
    assert seen(memory) == 60 + 2 * 60 + 2


def test_expiry_does_not_change_a_stream_without_gaps_longer_than_the_ttl() -> None:
    records = [*calm(T0, 10), *spike(T0 + 10 * MINUTE, 3), *calm(T0 + 13 * MINUTE, 30)]
    with_ttl = expected((("kpi", r) for r in records), SETTINGS, series_ttl_ms=DAY, final_watermark=T0)
    assert with_ttl == {**expected((("kpi", r) for r in records), SETTINGS), "expired": 0}
    assert with_ttl["anomalies"], "the stream must alert"


def test_the_ttl_must_be_positive() -> None:
    with pytest.raises(DetectorError, match="series_ttl_ms must be positive"):
        MemoryDetector(SETTINGS, 0)


# -------------------------------------------------------------------------------------- settings


def test_the_default_ttl_keeps_a_weekly_series_and_its_hour_of_week_baseline() -> None:
    """A segment with traffic one hour a week (e.g. a Monday report page) keeps its seasonal history."""
    assert AnomalySettings().series_ttl_ms == DEFAULT_SERIES_TTL_MS == 8 * DAY
    memory = MemoryDetector(replace(SETTINGS, seasonal_min_samples=3), DEFAULT_SERIES_TTL_MS)
    for week in range(4):
        feed(memory, calm(T0 + week * WEEK, 60))
    assert memory.expired == 0 and seen(memory) == 4 * 60


@pytest.mark.parametrize(
    ("raw", "ms"),
    [
        ("8d", 8 * DAY),
        ("36h", 36 * HOUR),
        ("90m", 90 * MINUTE),
        ("30s", 30_000),
        ("500ms", 500),
        ("1000", 1000),
    ],
)
def test_the_series_ttl_setting_takes_a_duration(raw: str, ms: int) -> None:
    assert parse_duration_ms(PREFIX + "SERIES_TTL", raw) == ms
    assert AnomalySettings.from_env({PREFIX + "SERIES_TTL": raw}).series_ttl_ms == ms


@pytest.mark.parametrize("raw", ["0d", "-1d", "8 days", "1.5h", "d", "eight"])
def test_a_bad_series_ttl_is_refused_naming_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match=f"{PREFIX}SERIES_TTL"):
        AnomalySettings.from_env({PREFIX + "SERIES_TTL": raw})
    with pytest.raises(SettingsError, match="SERIES_TTL must be positive"):
        AnomalySettings(series_ttl_ms=0)
