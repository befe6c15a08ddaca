"""The detector and its alert lifecycle (jobs/anomaly/logic.py), as specifications on named windows."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from jobs.anomaly.logic import (
    CRITICAL,
    EWMA,
    OPEN,
    RESOLVED,
    SEASONAL,
    UPDATE,
    WARNING,
    Alert,
    Detector,
    DetectorError,
    DetectorSettings,
    MetricSpec,
    Score,
    SeriesKey,
    SeriesState,
    Window,
    alert_id,
    hour_of_week,
)
from jobs.anomaly.oracle import expected, replay
from tests.support.anomaly import HOUR, MINUTE, T0, WEEK, kpi_record, synthetic_stream

SETTINGS = DetectorSettings(
    min_history=5,
    ewma_window=10,
    seasonal_min_samples=3,
    open_after=2,
    resolve_after=2,
    cooldown_ms=10 * MINUTE,
    min_volume=10,
)
VIEWS = MetricSpec("kpi", "tumbling_1m", "page_views", "both")
LCP = MetricSpec("kpi", "tumbling_1m", "lcp_p75_ms", "both")
ERRORS = MetricSpec("kpi", "tumbling_1m", "error_rate", "up")
KEY = SeriesKey("kpi", "page_views", "tumbling_1m", "global", "(all)")
NORMAL = (100.0, 104.0, 96.0, 102.0, 98.0)
"""A calm series around ~100 (LCP-like: no Poisson floor on its spread)."""


class Series:
    """One series fed minute by minute from `start`."""

    def __init__(
        self, spec: MetricSpec = LCP, settings: DetectorSettings = SETTINGS, start: int = T0
    ) -> None:
        self.detector = Detector(settings, spec)
        self.state = SeriesState()
        self.slots: dict[int, list[tuple[int, float]]] = {}
        self.key = replace(KEY, metric=spec.metric)
        self.next = start

    def feed(self, *values: float | None, volume: float = 100.0) -> list[Alert]:
        out = []
        for value in values:
            window = Window(self.next, self.next + MINUTE, value, volume)
            out.extend(self.detector.observe(self.key, self.state, self.slots, window))
            self.next += MINUTE
        return out

    def calm(self, windows: int) -> None:
        assert self.feed(*(NORMAL[i % len(NORMAL)] for i in range(windows))) == []

    def score(self, value: float, volume: float = 100.0) -> Score | None:
        window = Window(self.next, self.next + MINUTE, value, volume)
        return self.detector.score(self.state, self.slots, window)

    def anomalous(self, value: float, volume: float = 100.0) -> bool:
        score = self.score(value, volume)
        return score is not None and score.anomalous


def statuses(alerts: list[Alert]) -> list[str]:
    return [a.status for a in alerts]


# ------------------------------------------------------------------------------------ baselines


def test_no_score_before_min_history_windows() -> None:
    series = Series()
    series.calm(SETTINGS.min_history - 1)
    assert series.score(1000.0) is None
    series.calm(1)
    assert series.score(1000.0) is not None


def test_ewma_baseline_until_the_hour_of_week_slot_has_enough_samples_of_earlier_weeks() -> None:
    series = Series()
    series.calm(30)
    score = series.score(100.0)
    assert score is not None and score.method == EWMA
    # a week later, the same hour of week has 30 samples of the previous week: seasonal baseline
    series.next = T0 + WEEK
    score = series.score(100.0)
    assert score is not None and score.method == SEASONAL


def test_samples_of_the_current_hour_of_this_week_do_not_count_as_seasonal_history() -> None:
    series = Series(settings=replace(SETTINGS, seasonal_min_samples=3))
    series.calm(20)  # 20 samples in slot 0, all of this very hour
    score = series.score(100.0)
    assert score is not None and score.method == EWMA


def test_hour_of_week_slots_start_on_monday_midnight_utc() -> None:
    assert hour_of_week(T0) == 0
    assert hour_of_week(T0 + HOUR - 1) == 0
    assert hour_of_week(T0 + 25 * HOUR) == 25
    assert hour_of_week(T0 + WEEK - 1) == 167
    assert hour_of_week(T0 + WEEK) == 0


def test_seasonal_baseline_is_the_median_of_the_slot_and_mad_its_median_absolute_deviation() -> None:
    series = Series(settings=replace(SETTINGS, seasonal_min_samples=5, mad_floor_relative=0.0))
    series.slots[0] = [(T0 + m * MINUTE, v) for m, v in enumerate((10.0, 12.0, 14.0, 30.0, 11.0))]
    series.next = T0 + WEEK
    score = series.score(20.0)
    assert score is not None
    assert (score.baseline, score.mad, score.method) == (
        12.0,
        2.0,
        SEASONAL,
    )
    assert score.z == pytest.approx((20.0 - 12.0) / (1.4826 * 2.0))


# --------------------------------------------------------------------------------------- floors


def test_a_rate_window_below_the_minimum_volume_is_not_scored() -> None:
    series = Series(ERRORS)
    series.feed(*([0.02] * 10), volume=200)
    below = series.score(0.5, volume=SETTINGS.min_volume - 1)
    assert below is not None and not below.scored and not below.anomalous
    at = series.score(0.5, volume=SETTINGS.min_volume)
    assert at is not None and at.scored and at.anomalous


def test_a_count_metric_is_scored_on_its_expected_volume_so_a_drop_to_zero_alerts() -> None:
    series = Series(VIEWS)
    series.calm(20)
    alerts = series.feed(0.0, 0.0, volume=0.0)
    assert statuses(alerts) == [OPEN, UPDATE]  # |z| ≥ fast_open_z: open at once
    assert alerts[0].z_score < -SETTINGS.fast_open_z


def test_missing_windows_of_a_count_metric_are_zero_windows() -> None:
    series = Series(VIEWS)
    series.calm(20)
    series.next += 3 * MINUTE  # three minutes without a row: no page views at all
    alerts = series.feed(100.0)
    assert statuses(alerts) == [OPEN, UPDATE, UPDATE]  # the first zero window opens (fast open)
    assert alerts[0].opened_window_start == series.next - 4 * MINUTE


def test_a_change_below_the_minimum_relative_change_is_not_anomalous_however_large_z() -> None:
    settings = replace(SETTINGS, mad_floor_relative=0.0, min_relative_change=0.2)
    series = Series(settings=settings)
    series.feed(*([100.0, 100.5] * 10))  # MAD 0.25: 110 is z ≈ 26 but only +10 %
    score = series.score(110.0)
    assert score is not None and abs(score.z) > 20 and not score.anomalous
    assert series.anomalous(125.0)


def test_the_mad_floor_keeps_a_constant_series_from_alerting_on_any_wiggle() -> None:
    series = Series(settings=replace(SETTINGS, mad_floor_relative=0.05, min_relative_change=0.0))
    series.feed(*([100.0] * 20))  # MAD 0 → floored at 5 % of the baseline
    score = series.score(110.0)
    assert score is not None and score.mad == 5.0 and not score.anomalous


def test_an_error_rate_cannot_be_read_more_precisely_than_its_binomial_noise() -> None:
    series = Series(ERRORS, settings=replace(SETTINGS, min_volume=5))
    series.feed(*([0.0] * 20), volume=10)
    one_error_in_ten = series.score(0.1, volume=10)
    assert one_error_in_ten is not None and not one_error_in_ten.anomalous
    assert series.anomalous(0.6, volume=10)


def test_direction_up_ignores_drops() -> None:
    series = Series(ERRORS)
    series.feed(*([0.05, 0.06] * 10), volume=1000)
    assert not series.anomalous(0.0, volume=1000)
    assert series.anomalous(0.3, volume=1000)


# ------------------------------------------------------------------------------------ lifecycle


def test_opens_after_n_consecutive_anomalous_windows_updates_while_it_persists_resolves_after_m_normal() -> (
    None
):
    series = Series()
    series.calm(20)
    first = series.next
    assert series.feed(300.0) == []  # one anomalous window: not yet
    opened = series.feed(300.0)
    assert statuses(opened) == [OPEN]
    assert opened[0].opened_window_start == first  # the first window of the run
    assert opened[0].opened_at == first + 2 * MINUTE
    assert statuses(series.feed(320.0)) == [UPDATE]
    assert series.feed(100.0) == []  # one normal window: still open
    assert statuses(series.feed(330.0)) == [UPDATE]  # anomalous again: resets the normal count
    resolved = series.feed(100.0, 101.0)
    assert statuses(resolved) == [RESOLVED]
    alert = resolved[0]
    assert (alert.alert_id, alert.anomalous_windows, alert.consecutive_windows) == (opened[0].alert_id, 4, 2)
    assert alert.resolved_at == series.next
    assert alert.row()["status"] == RESOLVED and opened[0].row()["status"] == OPEN


def test_a_single_anomalous_window_between_normal_ones_never_opens() -> None:
    series = Series()
    series.calm(20)
    for _ in range(5):
        assert series.feed(300.0, 100.0) == []


def test_windows_that_are_not_scored_neither_break_a_run_nor_resolve() -> None:
    series = Series(ERRORS, settings=replace(SETTINGS, fast_open_z=1e9))  # the open_after rule alone
    series.feed(*([0.02, 0.03] * 10), volume=1000)
    assert series.feed(0.5, volume=1000) == []
    assert series.feed(0.5, volume=1) == []  # below the volume floor: no evidence
    assert statuses(series.feed(0.5, volume=1000)) == [OPEN]
    assert series.feed(0.02, volume=1) == [] and series.feed(0.02, volume=1) == []
    assert statuses(series.feed(0.02, 0.02, volume=1000)) == [RESOLVED]


def test_the_rebound_after_a_drop_is_not_an_update_of_the_drop() -> None:
    series = Series()
    series.calm(20)
    assert statuses(series.feed(10.0, 10.0)) == [OPEN]
    assert statuses(series.feed(400.0, 400.0)) == [RESOLVED]


def test_cooldown_after_resolution_before_the_same_series_can_open_again() -> None:
    series = Series()
    series.calm(20)
    assert statuses(series.feed(300.0, 300.0, 100.0, 100.0)) == [OPEN, RESOLVED]
    cooldown_until = series.next + SETTINGS.cooldown_ms
    assert series.feed(300.0, 300.0, 300.0) == []  # inside the cooldown nothing opens
    series.calm((cooldown_until - series.next) // MINUTE)
    assert series.next == cooldown_until
    assert statuses(series.feed(300.0, 300.0)) == [OPEN]


def test_severity_is_critical_from_critical_z_and_keeps_the_highest_level() -> None:
    series = Series(settings=replace(SETTINGS, critical_z=30.0, mad_floor_relative=0.0))
    series.calm(20)
    alerts = series.feed(130.0, 130.0, 300.0, 135.0)
    assert [(a.status, a.severity) for a in alerts] == [
        (OPEN, WARNING),
        (UPDATE, CRITICAL),
        (UPDATE, CRITICAL),
    ]
    assert alerts[-1].peak_z == alerts[1].z_score


# ---------------------------------------------------------------------------------- fast open


def test_one_window_beyond_fast_open_z_opens_at_once_on_a_metric_with_a_noise_floor() -> None:
    series = Series(ERRORS)
    series.feed(*([0.02, 0.03] * 10), volume=1000)
    spike = series.next
    score = series.score(0.3, volume=1000)
    assert score is not None and score.z >= SETTINGS.fast_open_z
    opened = series.feed(0.3, volume=1000)
    assert statuses(opened) == [OPEN]
    alert = opened[0]
    assert (alert.opened_window_start, alert.opened_at, alert.anomalous_windows) == (spike, spike + MINUTE, 1)
    assert alert.alert_id == alert_id(replace(KEY, metric="error_rate"), spike)


def test_an_anomalous_window_below_fast_open_z_still_waits_for_open_after_windows() -> None:
    series = Series(ERRORS)
    series.feed(*([0.02, 0.03] * 10), volume=1000)
    score = series.score(0.06, volume=1000)
    assert score is not None and score.anomalous and score.z < SETTINGS.fast_open_z
    assert series.feed(0.06, volume=1000) == []
    assert statuses(series.feed(0.06, volume=1000)) == [OPEN]  # open_after = 2


def test_a_percentile_metric_never_opens_on_one_window_however_extreme() -> None:
    """lcp_p75_ms has no sampling-noise floor: a p75 of a few samples has single-window outliers."""
    series = Series(LCP)
    series.calm(20)
    score = series.score(1000.0)
    assert score is not None and score.z >= 10 * SETTINGS.fast_open_z
    assert series.feed(1000.0) == []
    assert statuses(series.feed(1000.0)) == [OPEN]


# --------------------------------------------------------------------------- baseline protection


def test_the_windows_of_an_incident_do_not_feed_the_baseline() -> None:
    """Anomalous windows, and every window while an alert is open, leave the EWMA, its residuals and the
    hour-of-week slots as they were before the incident: the alert resolves against that baseline."""
    series = Series(ERRORS)
    series.feed(*([0.02, 0.03] * 10), volume=1000)
    before = (series.state.ewma, list(series.state.residuals), dict(series.slots))
    opened = series.feed(0.3, volume=1000)
    middle = series.feed(0.2, 0.035, 0.25, 0.4, 0.2, volume=1000)  # 0.035: not anomalous, still held
    assert statuses(opened + middle) == [OPEN, UPDATE, UPDATE, UPDATE, UPDATE]
    assert (series.state.ewma, series.state.residuals, series.slots) == before
    resolved = series.feed(0.025, 0.025, volume=1000)
    assert statuses(resolved) == [RESOLVED]
    assert resolved[0].baseline == opened[0].baseline == before[0]
    assert (series.state.ewma, series.state.residuals, series.slots) == before, "resolving windows too"
    series.feed(0.025, volume=1000)  # the first normal window after the alert is learnt again
    assert series.state.ewma != before[0] and series.state.held == 0


def test_a_lasting_level_shift_is_learnt_after_baseline_hold_windows_and_the_alert_resolves() -> None:
    settings = replace(SETTINGS, baseline_hold=10)
    series = Series(settings=settings)
    series.calm(20)
    baseline = series.state.ewma
    alerts = series.feed(*([150.0] * 10))  # the new level: 10 windows held (2 opening it, 8 while open)
    assert statuses(alerts)[0] == OPEN and series.state.ewma == baseline and series.state.held == 10
    for _ in range(500):
        alerts = series.feed(150.0)
        if statuses(alerts) == [RESOLVED]:
            break
    assert statuses(alerts) == [RESOLVED], "the baseline catches up with a lasting shift"
    assert series.state.ewma is not None and baseline is not None and series.state.ewma > baseline


def test_a_suspect_window_is_kept_out_of_the_baseline_and_does_not_resolve_the_alert() -> None:
    """|z| ≥ cusum_k (3) in the alert's direction: not anomalous (< 4), but not back to normal either."""
    series = Series(ERRORS)
    series.feed(*([0.02, 0.03] * 10), volume=1000)
    before = series.state.ewma
    suspect = series.score(0.052, volume=1000)
    assert suspect is not None and suspect.suspect and not suspect.anomalous
    assert series.feed(0.052, volume=1000) == [] and series.state.ewma == before  # outside an alert too
    assert statuses(series.feed(0.3, volume=1000)) == [OPEN]
    assert series.feed(0.052, 0.052, 0.052, volume=1000) == []
    assert series.state.normal_run == 0
    assert statuses(series.feed(0.025, 0.025, volume=1000)) == [RESOLVED]


def test_with_a_cusum_level_a_lasting_moderate_shift_opens_from_the_first_window_of_its_run() -> None:
    settings = replace(SETTINGS, cusum_k=2.0, cusum_h=4.0, open_after=5)
    series = Series(ERRORS, settings=settings)
    series.feed(*([0.02, 0.03] * 10), volume=1000)
    score = series.score(0.052, volume=1000)
    assert score is not None and settings.cusum_k + 1 < score.z < settings.threshold
    first = series.next
    assert series.feed(0.052, 0.052, volume=1000) == []  # CUSUM 2 · (z − 2) < 4 ≤ 3 · (z − 2)
    opened = series.feed(0.052, volume=1000)
    assert statuses(opened) == [OPEN] and opened[0].opened_window_start == first
    assert opened[0].opened_at == first + 3 * MINUTE and opened[0].anomalous_windows == 1
    off = Series(ERRORS, settings=replace(settings, cusum_h=0.0))
    off.feed(*([0.02, 0.03] * 10), volume=1000)
    assert off.feed(*([0.052] * 10), volume=1000) == [], "cusum_h 0 (the default): no CUSUM"


def test_the_resolved_alert_keeps_its_peak_and_the_baseline_and_z_it_opened_with() -> None:
    series = Series(ERRORS)
    series.feed(*([0.02, 0.03] * 10), volume=1000)
    opened = series.feed(0.3, volume=1000)[0]
    assert (opened.peak_value, opened.opened_z, opened.peak_z) == (0.3, opened.z_score, opened.z_score)
    assert opened.opened_baseline == opened.baseline
    worst = series.feed(0.5, volume=1000)[0]
    series.feed(0.2, volume=1000)
    resolved = series.feed(0.025, 0.025, volume=1000)[0]
    assert resolved.status == RESOLVED and resolved.value == 0.025
    assert (resolved.peak_value, resolved.peak_z) == (0.5, worst.z_score)
    assert (resolved.opened_baseline, resolved.opened_z) == (opened.baseline, opened.z_score)
    row = resolved.row()
    assert (row["peak_value"], row["opened_baseline"], row["opened_z"]) == (
        0.5,
        opened.baseline,
        opened.z_score,
    )


def test_a_series_state_pickled_before_the_hold_and_the_opening_columns_still_loads() -> None:
    """Savepoint compatibility: `held` is a class default and older open alerts lack the opening keys."""
    import pickle

    series = Series(ERRORS)
    series.feed(*([0.02, 0.03] * 10), volume=1000)
    series.feed(0.3, volume=1000)
    state = pickle.loads(pickle.dumps(series.state))
    del state.__dict__["held"]
    assert state.alert is not None
    for name in ("peak_value", "opened_baseline", "opened_z"):
        del state.alert[name]
    series.state = state
    update = series.feed(0.4, volume=1000)[0]
    assert update.status == UPDATE and state.held == 1
    assert math.isnan(update.opened_baseline) and update.peak_value == 0.4


# ---------------------------------------------------------------------------------- determinism


def test_alert_ids_are_a_hash_of_the_series_and_the_opening_window() -> None:
    assert alert_id(KEY, T0) == alert_id(SeriesKey("kpi", "page_views", "tumbling_1m", "global", "(all)"), T0)
    assert alert_id(KEY, T0) != alert_id(KEY, T0 + MINUTE)
    assert alert_id(KEY, T0) != alert_id(replace(KEY, dimension_value="DE"), T0)
    assert len(alert_id(KEY, T0)) == 32


def test_a_replay_gives_identical_alerts() -> None:
    windows = [("kpi", r) for r in synthetic_stream(200)]
    first = expected(windows)
    assert first["anomalies"], "the synthetic stream must alert"
    assert expected(windows) == first


def test_the_synthetic_stream_alerts_exactly_its_injected_anomalies() -> None:
    opened = [a for a in replay(("kpi", r) for r in synthetic_stream(200)) if a.status == OPEN]
    assert [(a.metric, a.dimension_value, (a.opened_window_start - T0) // MINUTE) for a in opened] == [
        ("error_rate", "(all)", 60),
        ("page_views", "DE", 100),
        ("active_users", "DE", 100),
        ("lcp_p75_ms", "mobile", 140),
    ]


def test_windows_that_do_not_move_forward_are_ignored() -> None:
    record = kpi_record(T0)
    windows = [("kpi", r) for r in synthetic_stream(120)] + [("kpi", record)]
    assert expected(windows) == expected(windows[:-1])


# ------------------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kpi:error_rate", "metric 'kpi:error_rate': expected SOURCE:WINDOW_KIND:METRIC[:DIRECTION]"),
        ("db:tumbling_1m:error_rate", "metric 'db:tumbling_1m:error_rate': source must be kpi or funnel"),
        ("kpi:1m:lcp:up:x", "metric 'kpi:1m:lcp:up:x': expected SOURCE:WINDOW_KIND:METRIC[:DIRECTION]"),
        ("kpi:1m:lcp:sideways", "metric 'kpi:1m:lcp:sideways': direction must be up, down or both"),
    ],
)  # fmt: skip
def test_metric_specs_are_checked(text: str, message: str) -> None:
    with pytest.raises(DetectorError) as error:
        MetricSpec.parse(text)
    assert str(error.value) == message


def test_detector_settings_are_checked() -> None:
    with pytest.raises(DetectorError, match=r"^critical_z 3\.0 is below the threshold 4\.0$"):
        DetectorSettings(critical_z=3.0)
    with pytest.raises(DetectorError, match=r"^open_after must be positive, got 0$"):
        DetectorSettings(open_after=0)


def test_a_burst_in_a_series_below_the_volume_floor_does_not_raise_its_baseline() -> None:
    series = Series(VIEWS)
    series.feed(*([0.0, 1.0] * 20))  # a segment with next to no traffic
    assert series.feed(40.0, 45.0, 50.0, 40.0) == []  # a bot's burst of page views
    assert series.feed(0.0, 0.0, 0.0, 0.0) == []  # and back to nothing: not a traffic drop
    assert series.state.ewma is not None and series.state.ewma < SETTINGS.min_volume


def test_funnel_windows_are_scored_per_funnel_on_their_conversion_rate() -> None:
    def window(hour: int, entered: int, converted: int) -> dict[str, object]:
        start = T0 + hour * HOUR
        return {
            "funnel": "checkout", "window_start": start, "window_end": start + HOUR, "dimension": "global",
            "dimension_value": "(all)", "entered": entered, "converted": converted,
            "conversion_rate": converted / entered if entered else None,
        }  # fmt: skip

    calm = [window(h, 200, 60 + (h % 5) - 2) for h in range(40)]
    broken = [window(40 + h, 200, 10) for h in range(3)]  # checkout breaks: 5 % instead of 30 %
    alerts = replay(("funnel", w) for w in [*calm, *broken])
    assert [(a.status, a.metric, a.window_kind, a.opened_window_start) for a in alerts] == [
        (OPEN, "checkout.conversion_rate", "tumbling_1h", T0 + 40 * HOUR)
    ]
