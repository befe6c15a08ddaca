"""Anomaly detection on finalized metric windows (SEMANTICS.md, Anomalies): pure rules, no pyflink.

One **series** is (source, metric, window kind, dimension, dimension value), e.g. ('kpi', 'error_rate',
'tumbling_1m', 'country', 'DE'). Its windows are fed in window order (`Detector.observe`); each window is
scored and drives the series' alert lifecycle. Everything is a function of the windows seen, in order,
so the Flink job, the batch oracle and a replay produce the same alerts.

Scoring a window (value x, window [start, end)):

- **Baseline** b and **spread** MAD:
  - *seasonal* (`hour_of_week`): when the hour-of-week slot of `start` (UTC, Monday 00:00 = slot 0)
    holds at least `seasonal_min_samples` values of earlier weeks, b = their median and
    MAD = median |v − b|;
  - else *trailing EWMA* (`ewma`): b = EWMA of the series (alpha `ewma_alpha`), MAD = median of the
    absolute one-step residuals |x_i − b_i| of the last `ewma_window` windows; not scored before the
    series has seen `min_history` windows.
  - MAD floor: MAD ≥ max(`mad_floor_relative` · |b|, `mad_floor_absolute`).
  For counts also MAD ≥ 0.6745 · sqrt(b) (Poisson noise); for proportions (error_rate, conversion_rate)
  MAD ≥ 0.6745 · sqrt(p(1 − p)/n) with
  p = max(b, 1/n) and n the window's volume: a window cannot be read more precisely than its sampling
  noise, so one error among a few page views is not an anomaly.
- **Robust z** = (x − b) / (1.4826 · MAD).
- **Floors**: a window is scored only when its volume (page views; entered attempts for funnels) is at
  least `min_volume` — for count metrics (page views, active users, …) the floor applies to the
  *expected* count b instead, so a traffic drop to zero is still scored; and a window is anomalous only
  when |x − b| ≥ `min_relative_change` · |b| as well as |z| ≥ `threshold` (in the metric's direction).
- History (**baseline protection**, issue 21): the windows of an incident — an anomalous or *suspect*
  window (|z| ≥ `cusum_k` in the metric's direction, with the relative change: a drop that is half-way
  there must not drag the baseline down after it), and every window while an alert is open (the resolving
  ones included) — do not feed the baseline at all
  (EWMA, residuals, seasonal slots), for at most `baseline_hold` windows in a row (`SeriesState.held`;
  a normal window outside an alert ends the incident and resets it). So the alert is judged, and
  resolves, against the pre-incident baseline: a 15-minute spike cannot become its own baseline. Every
  other window updates the EWMA and the residuals with its value clipped, once the series has a baseline
  (scored or not), to b ± threshold · 1.4826 · MAD, or — an anomalous window once the hold is used up —
  b ± `anomalous_learning` · 1.4826 · MAD: a lasting level shift is learnt slowly after the hold, and
  its alert resolves once the baseline has caught up; only non-anomalous windows enter the seasonal slot
  history (at most `seasonal_max_samples` per slot, newest kept).
- Gaps: for count metrics of tumbling windows, missing windows between two windows of a series are
  zero-count windows
  (sessionize emits no row for a segment without events); up to `max_gap_fill` of them are scored.

Optional **CUSUM** (`cusum_h` > 0; off by default, see NOTES.md for the measured trade-off): one-sided sums
of |z| − `cusum_k` over suspect windows (a non-suspect window subtracts `cusum_k`, floored at 0) also open
an alert when a suspect window brings one to `cusum_h`; its id uses the first window of that sum's run.

Lifecycle: an alert **opens** when `open_after` consecutive scored windows are anomalous (outside the
cooldown) — or at once (**fast open**, issue 21) on an anomalous window with |z| ≥ `fast_open_z`, for count
and proportion metrics only (their spread is floored at the Poisson / binomial sampling noise, so one
window's z is calibrated; a p75 of a few samples has single-window outliers beyond any z); its id is a hash
of (source, metric, window kind, dimension, dimension value, start of the first window of that run). Each
further anomalous window in the same direction while open is an **update**; after `resolve_after`
consecutive normal scored windows (neither anomalous nor suspect in the alert's direction) it is
**resolved** (windows that are not scored count neither way), and the same series cannot open again until
`cooldown_ms` of event time after the end of the resolving window. Severity: `critical` when |z| ≥
`critical_z`, else `warning` (the alert keeps the highest severity and the z of its most extreme window).
**Series expiry** (issue 16, state bound): the series of one job key (source, window kind, dimension,
dimension value: every metric of one Kafka key of ux.kpi / ux.funnel, a *group*) expire together when no
window of the group has arrived for the series TTL of event time: a window ending more than TTL after the
group's last window end finds the group expired (a gap of exactly TTL keeps it), and the group starts
anew (warm-up, warm start and all). At expiry an open alert is resolved (`expiry_message`): status
`resolved`, `consecutive_windows` 0, `resolved_at` = last window end + TTL, the window and score fields
of its last message. The job also expires a group when the watermark passes last window end + TTL (an
event-time timer; at the end of a bounded input every group), which emits the same messages, so the
outputs depend only on each group's own window sequence.

Every message carries what the alert looked like when it opened (`opened_baseline`, `opened_z`) and at its
worst (`peak_value`, `peak_z`: the window of highest |z| from the opening one on), so the resolved row still
reads "peak vs baseline".
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal, Protocol

MINUTE_MS: Final = 60_000
HOUR_MS: Final = 60 * MINUTE_MS
WEEK_MS: Final = 7 * 24 * HOUR_MS
MONDAY_OFFSET_MS: Final = 4 * 24 * HOUR_MS
"""1970-01-01 was a Thursday: the first Monday 00:00 UTC is 4 days after the epoch."""
MAD_SCALE: Final = 1.4826
"""Makes the MAD a consistent estimator of the standard deviation for normal data."""
NORMAL_MAD: Final = 1 / MAD_SCALE
"""MAD of a normal distribution per unit of standard deviation (0.6745)."""

Direction = Literal["up", "down", "both"]
MetricKind = Literal["count", "rate"]
Source = Literal["kpi", "funnel"]

DEFAULT_SERIES_TTL_MS: Final = 8 * 24 * HOUR_MS
"""A group of series expires after this much event time without a window: longer than a week, so the
hour-of-week baseline of a weekly segment (e.g. traffic only on Mondays) survives from one week to the
next, with a day to spare for a late or missing window."""
EXPIRED: Final = "expired"
"""Status of the job's internal output row that counts an expired group (never an alert message)."""

OPEN: Final = "open"
UPDATE: Final = "update"
RESOLVED: Final = "resolved"
SEASONAL: Final = "hour_of_week"
EWMA: Final = "ewma"
WARNING: Final = "warning"
CRITICAL: Final = "critical"

KPI_COUNT_METRICS: Final = frozenset({"events", "page_views", "active_users", "error_events", "conversions"})
"""kpi_window fields that count something (volume floor on the expected count, gaps are zeros)."""
FUNNEL_COUNT_METRICS: Final = frozenset({"entered", "converted", "dropped"})
PROPORTION_METRICS: Final = frozenset({"error_rate", "conversion_rate"})
"""Share-of-volume metrics: their MAD is floored at the binomial sampling noise of the window."""


class DetectorError(ValueError):
    """A detector setting or metric specification is invalid. The message names it."""


@dataclass(frozen=True)
class MetricSpec:
    """A metric to score: `source:window_kind:metric[:direction]` in settings.

    For funnels the metric is a funnel_window field applied to every funnel (alerts name it
    `<funnel>.<field>`), and window_kind is `*` (funnel windows are named `tumbling_<length>`).
    """

    source: Source
    window_kind: str
    metric: str
    direction: Direction = "both"

    @property
    def kind(self) -> MetricKind:
        counts = KPI_COUNT_METRICS if self.source == "kpi" else FUNNEL_COUNT_METRICS
        return "count" if self.metric in counts else "rate"

    @classmethod
    def parse(cls, text: str) -> MetricSpec:
        parts = text.strip().split(":")
        if len(parts) not in (3, 4) or not all(parts):
            raise DetectorError(f"metric {text!r}: expected SOURCE:WINDOW_KIND:METRIC[:DIRECTION]")
        source, window_kind, metric = parts[:3]
        direction = parts[3] if len(parts) == 4 else "both"
        if source not in ("kpi", "funnel"):
            raise DetectorError(f"metric {text!r}: source must be kpi or funnel")
        if direction not in ("up", "down", "both"):
            raise DetectorError(f"metric {text!r}: direction must be up, down or both")
        return cls(source, window_kind, metric, direction)  # type: ignore[arg-type]

    def label(self) -> str:
        return f"{self.source}:{self.window_kind}:{self.metric}:{self.direction}"


DEFAULT_METRICS: Final = (
    MetricSpec("kpi", "tumbling_1m", "error_rate", "up"),
    MetricSpec("kpi", "tumbling_1m", "page_views", "down"),
    MetricSpec("kpi", "tumbling_1m", "active_users", "both"),
    MetricSpec("kpi", "tumbling_1m", "lcp_p75_ms", "up"),
    MetricSpec("funnel", "*", "conversion_rate", "down"),
)


@dataclass(frozen=True)
class DetectorSettings:
    """Thresholds and windows of the detector (defaults = SEMANTICS.md and NOTES.md "Anomaly")."""

    metrics: tuple[MetricSpec, ...] = DEFAULT_METRICS
    threshold: float = 4.0
    critical_z: float = 8.0
    open_after: int = 3
    fast_open_z: float = 8.0
    """A window this extreme (|z| ≥ it, plus the relative change and direction) opens at once."""
    cusum_k: float = 3.0
    """A window beyond this |z|, in the metric's direction and with the relative change, is *suspect*: kept
    out of the baseline (like an anomalous one) and, while an alert is open, not a normal window either.
    Also the CUSUM allowance: a suspect window adds |z| − k to the series' CUSUM of its direction."""
    cusum_h: float = 0.0
    """CUSUM decision level: a suspect window that brings the CUSUM to it opens an alert. 0 (default): off —
    measured (NOTES.md) it catches more weak anomalies but costs false alerts on small segments at night."""
    resolve_after: int = 5
    cooldown_ms: int = 30 * MINUTE_MS
    min_volume: float = 10.0
    min_relative_change: float = 0.2
    mad_floor_relative: float = 0.05
    mad_floor_absolute: float = 1e-6
    ewma_alpha: float = 0.1
    anomalous_learning: float = 1.0
    """Once the hold is over, an anomalous window moves the EWMA by at most this many standard deviations
    (1.4826 · MAD)."""
    baseline_hold: int = 60
    """Windows of an incident (anomalous, or any while an alert is open) kept out of the baseline, at most
    this many in a row; then the series learns again (a lasting level shift is learnt and resolves)."""
    ewma_window: int = 60
    min_history: int = 30
    seasonal_min_samples: int = 30
    seasonal_max_samples: int = 120
    max_gap_fill: int = 60

    def __post_init__(self) -> None:
        positive = (
            "threshold",
            "critical_z",
            "fast_open_z",
            "open_after",
            "resolve_after",
            "ewma_window",
            "min_history",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise DetectorError(f"{name} must be positive, got {getattr(self, name)}")
        non_negative = (
            "cooldown_ms",
            "min_volume",
            "min_relative_change",
            "mad_floor_relative",
            "max_gap_fill",
            "baseline_hold",
            "cusum_k",
            "cusum_h",
        )
        for name in non_negative:
            if getattr(self, name) < 0:
                raise DetectorError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.mad_floor_absolute <= 0:
            raise DetectorError(f"mad_floor_absolute must be positive, got {self.mad_floor_absolute}")
        if not 0 < self.ewma_alpha <= 1:
            raise DetectorError(f"ewma_alpha must be in (0, 1], got {self.ewma_alpha}")
        if self.critical_z < self.threshold:
            raise DetectorError(f"critical_z {self.critical_z} is below the threshold {self.threshold}")
        if self.fast_open_z < self.threshold:
            raise DetectorError(f"fast_open_z {self.fast_open_z} is below the threshold {self.threshold}")
        if not 1 <= self.seasonal_min_samples <= self.seasonal_max_samples:
            raise DetectorError("seasonal_min_samples must be between 1 and seasonal_max_samples")
        if not self.metrics:
            raise DetectorError("no metrics to score")

    def for_source(self, source: str) -> tuple[MetricSpec, ...]:
        return tuple(m for m in self.metrics if m.source == source)


@dataclass(frozen=True)
class Window:
    """One finalized window of one series: the value scored and the volume behind it."""

    start: int
    end: int
    value: float | None
    volume: float | None


@dataclass(frozen=True)
class SeriesKey:
    source: str
    metric: str
    window_kind: str
    dimension: str
    dimension_value: str

    def text(self) -> str:
        return "|".join((self.source, self.metric, self.window_kind, self.dimension, self.dimension_value))


def alert_id(key: SeriesKey, opened_window_start: int) -> str:
    """Deterministic alert id: hash of the series and the start of the window run that opened it."""
    return hashlib.sha256(f"{key.text()}|{opened_window_start}".encode()).hexdigest()[:32]


def hour_of_week(start_ms: int) -> int:
    """0 = Monday 00:00–01:00 UTC … 167 = Sunday 23:00–24:00 UTC."""
    return ((start_ms - MONDAY_OFFSET_MS) // HOUR_MS) % 168


def median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


@dataclass
class SeriesState:
    """Everything the detector remembers about one series, except the seasonal slots (`Slots`)."""

    last_end: int | None = None
    seen: int = 0
    ewma: float | None = None
    residuals: list[float] = field(default_factory=list)
    run: int = 0
    run_start: int = 0
    normal_run: int = 0
    cooldown_until: int = -(2**62)
    cusum_up: float = 0.0
    cusum_down: float = 0.0
    cusum_up_start: int = 0
    cusum_down_start: int = 0
    """One-sided CUSUMs of z (see `DetectorSettings.cusum_k`) and the first window of their current run
    (class defaults: states pickled before them load with 0)."""
    held: int = 0
    """Windows kept out of the baseline in a row (the incident's; see `DetectorSettings.baseline_hold`).
    A class default, so states pickled before it existed load with 0."""
    alert: dict[str, Any] | None = None
    """The open alert's row (see `Alert`), or None."""
    key: SeriesKey | None = None
    """The series this state belongs to (set by the job on every window; None in states pickled before
    it existed until their next window): an expiry timer knows no record."""


class Slots(Protocol):
    """Seasonal history of one series: hour-of-week slot → [(window start, value)], oldest first.

    A dict in memory; Flink MapState in the job (only `get` and item assignment are used)."""

    def get(self, slot: int, default: Any = None, /) -> Any: ...

    def __setitem__(self, slot: int, samples: list[tuple[int, float]], /) -> None: ...


@dataclass(frozen=True)
class Score:
    baseline: float
    mad: float
    method: str
    z: float
    anomalous: bool
    scored: bool = True
    """False below the volume floor: the baseline still clips what the window teaches the EWMA."""
    suspect: bool = False
    """|z| ≥ cusum_k in the metric's direction, with the relative change: kept out of the baseline."""


@dataclass(frozen=True)
class Alert:
    """One lifecycle message (alert.v1) and the anomalies-table row after it."""

    alert_id: str
    status: str
    """Message status: open, update or resolved (the table's status is open or resolved)."""
    source: str
    metric: str
    window_kind: str
    dimension: str
    dimension_value: str
    opened_window_start: int
    opened_at: int
    """End of the window that opened the alert (its `open_after`-th anomalous window)."""
    window_start: int
    window_end: int
    value: float
    baseline: float
    baseline_method: str
    mad: float
    z_score: float
    threshold: float
    severity: str
    consecutive_windows: int
    peak_z: float
    anomalous_windows: int
    resolved_at: int | None
    peak_value: float = math.nan
    """Value of the most extreme window (|z|) since the alert opened (NaN: that window had none)."""
    opened_baseline: float = math.nan
    """Baseline in force for the window that opened the alert (the pre-incident expectation)."""
    opened_z: float = math.nan
    """Robust z of the window that opened the alert."""

    @property
    def table_status(self) -> str:
        return RESOLVED if self.status == RESOLVED else OPEN

    def message(self) -> dict[str, Any]:
        """The alert.v1 record."""
        return {
            "alert_id": self.alert_id,
            "status": self.status,
            "source": self.source,
            "metric": self.metric,
            "window_kind": self.window_kind,
            "dimension": self.dimension,
            "dimension_value": self.dimension_value,
            "opened_window_start": self.opened_window_start,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "value": self.value,
            "baseline": self.baseline,
            "baseline_method": self.baseline_method,
            "mad": self.mad,
            "z_score": self.z_score,
            "threshold": self.threshold,
            "severity": self.severity,
            "consecutive_windows": self.consecutive_windows,
        }

    def row(self) -> dict[str, Any]:
        """The anomalies-table row (upsert on alert_id, opened_window_start)."""
        return {
            "alert_id": self.alert_id,
            "opened_window_start": self.opened_window_start,
            "opened_at": self.opened_at,
            "resolved_at": self.resolved_at,
            "status": self.table_status,
            "source": self.source,
            "metric": self.metric,
            "window_kind": self.window_kind,
            "dimension": self.dimension,
            "dimension_value": self.dimension_value,
            "last_window_start": self.window_start,
            "last_window_end": self.window_end,
            "value": self.value,
            "baseline": self.baseline,
            "baseline_method": self.baseline_method,
            "mad": self.mad,
            "z_score": self.z_score,
            "peak_z": self.peak_z,
            "threshold": self.threshold,
            "severity": self.severity,
            "anomalous_windows": self.anomalous_windows,
            "peak_value": self.peak_value,
            "opened_baseline": self.opened_baseline,
            "opened_z": self.opened_z,
        }


def severity(abs_z: float, settings: DetectorSettings) -> str:
    return CRITICAL if abs_z >= settings.critical_z else WARNING


class Detector:
    """Scores windows of one metric spec and runs the alert lifecycle (stateless: state is passed in)."""

    def __init__(self, settings: DetectorSettings, spec: MetricSpec) -> None:
        self.settings = settings
        self.spec = spec
        self.count_metric = spec.kind == "count"
        self.proportion = spec.metric in PROPORTION_METRICS
        self.fast_open = self.count_metric or self.proportion
        """Only where the spread has a sampling-noise floor (Poisson, binomial) is one window's z trusted
        on its own: a percentile of a few samples (lcp_p75_ms) has single-window outliers of |z| > 8."""

    # ---------------------------------------------------------------------------- scoring

    def baseline(self, state: SeriesState, slots: Slots, start: int) -> tuple[float, float, str] | None:
        """(baseline, raw MAD, method) in force for a window starting at `start`, or None (warming up)."""
        s = self.settings
        hour_start = start - (start - MONDAY_OFFSET_MS) % HOUR_MS
        samples = [v for t, v in (slots.get(hour_of_week(start)) or ()) if t < hour_start]
        if len(samples) >= s.seasonal_min_samples:
            center = median(samples)
            return center, median([abs(v - center) for v in samples]), SEASONAL
        if state.ewma is None or state.seen < s.min_history or not state.residuals:
            return None
        return state.ewma, median([abs(r) for r in state.residuals]), EWMA

    def score(self, state: SeriesState, slots: Slots, window: Window) -> Score | None:
        """The window's score; None while warming up or without a value; `scored=False` below the
        volume floor."""
        s = self.settings
        if window.value is None:
            return None
        found = self.baseline(state, slots, window.start)
        if found is None:
            return None
        baseline, raw_mad, method = found
        mad = max(raw_mad, s.mad_floor_relative * abs(baseline), s.mad_floor_absolute)
        volume = baseline if self.count_metric else window.volume
        if volume is None or volume < s.min_volume:
            return Score(baseline, mad, method, 0.0, False, scored=False)
        if self.count_metric:
            # a count cannot be read more precisely than Poisson noise around its expected value
            mad = max(mad, NORMAL_MAD * math.sqrt(max(baseline, 0.0)))
        if self.proportion and volume > 0:
            # a window of n trials cannot be read more precisely than its sampling noise
            share = min(1.0, max(baseline, 1.0 / volume))
            mad = max(mad, NORMAL_MAD * math.sqrt(share * (1.0 - share) / volume))
        z = (window.value - baseline) / (MAD_SCALE * mad)
        change = abs(window.value - baseline)
        direction_ok = (
            self.spec.direction == "both"
            or (self.spec.direction == "up" and z > 0)
            or (self.spec.direction == "down" and z < 0)
        )
        large = direction_ok and change >= s.min_relative_change * abs(baseline)
        anomalous = large and abs(z) >= s.threshold
        return Score(baseline, mad, method, z, anomalous, suspect=large and abs(z) >= s.cusum_k)

    def holds(self, state: SeriesState, score: Score | None) -> bool:
        """Whether the window is kept out of the baseline: it belongs to an incident (it is anomalous, or
        an alert is open) and the incident has held fewer than `baseline_hold` windows so far."""
        if score is None or state.held >= self.settings.baseline_hold:
            return False
        return state.alert is not None or score.anomalous or score.suspect

    def _learn(self, state: SeriesState, slots: Slots, window: Window, score: Score | None) -> None:
        s = self.settings
        state.seen += 1
        state.last_end = window.end
        if self.holds(state, score):
            state.held += 1
            return
        if state.alert is None and (score is None or not (score.anomalous or score.suspect)):
            state.held = 0  # a normal window outside an alert ends the incident
        if window.value is None:
            return
        value = window.value
        if state.ewma is None:
            state.ewma = value
            return
        residual = value - state.ewma
        if score is not None:  # clip so that a spike does not drag the baseline along
            limit = MAD_SCALE * score.mad * (s.anomalous_learning if score.anomalous else s.threshold)
            residual = max(-limit, min(limit, residual))
        state.ewma += s.ewma_alpha * residual
        state.residuals.append(residual)
        if len(state.residuals) > s.ewma_window:
            del state.residuals[: len(state.residuals) - s.ewma_window]
        if score is None or not score.anomalous:
            slot = hour_of_week(window.start)
            samples = list(slots.get(slot) or ())
            samples.append((window.start, value))
            if len(samples) > s.seasonal_max_samples:
                del samples[: len(samples) - s.seasonal_max_samples]
            slots[slot] = samples

    # -------------------------------------------------------------------------- lifecycle

    def observe(
        self, key: SeriesKey, state: SeriesState, slots: Slots, window: Window, *, alerts: bool = True
    ) -> list[Alert]:
        """Feed one window (and the zero windows of a gap before it, for count metrics).

        Windows that do not end after the last one seen are ignored (a re-delivered or corrected window:
        the series has already moved on). Gaps are filled for tumbling windows only. `alerts=False` only
        learns (warm start from history).
        """
        if state.last_end is not None and window.end <= state.last_end:
            return []
        out: list[Alert] = []
        if (
            self.count_metric
            and self.spec.window_kind.startswith("tumbling")
            and state.last_end is not None
            and window.start > state.last_end
        ):
            length = window.end - window.start
            missing = (window.start - state.last_end) // length if length > 0 else 0
            first = max(0, missing - self.settings.max_gap_fill)
            base = state.last_end
            for i in range(first, missing):
                begin = base + i * length
                out.extend(self._one(key, state, slots, Window(begin, begin + length, 0.0, 0.0), alerts))
        out.extend(self._one(key, state, slots, window, alerts))
        return out

    def _one(
        self, key: SeriesKey, state: SeriesState, slots: Slots, window: Window, alerts: bool
    ) -> list[Alert]:
        score = self.score(state, slots, window)
        self._learn(state, slots, window, score)
        if not alerts:
            return []
        return self._lifecycle(key, state, window, score)

    def _lifecycle(
        self, key: SeriesKey, state: SeriesState, window: Window, score: Score | None
    ) -> list[Alert]:
        s = self.settings
        if score is None or not score.scored:
            return []  # not scored (warming up, no value, below the volume floor): no evidence either way
        anomalous = score.anomalous
        if state.alert is None:
            cusum_start = self._cusum(state, window, score)
            if window.start < state.cooldown_until:
                state.run = 0
                return []
            if anomalous:
                state.run += 1
                if state.run == 1:
                    state.run_start = window.start
            else:
                state.run = 0
            abs_z = abs(score.z)
            by_run = anomalous and (state.run >= s.open_after or (self.fast_open and abs_z >= s.fast_open_z))
            if not by_run and cusum_start is None:
                return []
            start = state.run_start if by_run else cusum_start
            assert start is not None
            state.normal_run = 0
            state.cusum_up = state.cusum_down = 0.0
            state.alert = {
                "alert_id": alert_id(key, start),
                "opened_window_start": start,
                "opened_at": window.end,
                "peak_z": score.z,
                "peak_value": _value(window),
                "opened_baseline": score.baseline,
                "opened_z": score.z,
                "severity": severity(abs_z, s),
                "anomalous_windows": max(1, state.run),
            }
            return [self._message(key, state, window, score, OPEN, max(1, state.run))]
        alert = state.alert
        if anomalous and (score.z > 0) != (alert["peak_z"] > 0):
            anomalous = False  # the other direction (e.g. the rebound after a drop) is not the same anomaly
        if anomalous:
            state.normal_run = 0
            alert["anomalous_windows"] += 1
            if abs(score.z) > abs(alert["peak_z"]):
                alert["peak_z"] = score.z
                alert["peak_value"] = _value(window)
            if severity(abs(score.z), s) == CRITICAL:
                alert["severity"] = CRITICAL
            return [self._message(key, state, window, score, UPDATE, alert["anomalous_windows"])]
        if score.suspect and (score.z > 0) == (alert["peak_z"] > 0):
            state.normal_run = 0  # not anomalous, but not back to normal either
            return []
        state.normal_run += 1
        if state.normal_run < s.resolve_after:
            return []
        message = self._message(key, state, window, score, RESOLVED, state.normal_run)
        state.alert = None
        state.run = 0
        state.normal_run = 0
        state.cooldown_until = window.end + s.cooldown_ms
        return [message]

    def _cusum(self, state: SeriesState, window: Window, score: Score) -> int | None:
        """Update the CUSUMs with a scored window (no alert open); the start of the run that reaches
        `cusum_h` on a suspect window, or None."""
        s = self.settings
        if s.cusum_h <= 0:
            return None
        up = self.spec.direction in ("up", "both")
        down = self.spec.direction in ("down", "both")
        excess = abs(score.z) - s.cusum_k if score.suspect else -s.cusum_k
        rising = score.z > 0
        if up:
            grown = max(0.0, state.cusum_up + (excess if rising else -s.cusum_k))
            if state.cusum_up == 0.0 and grown > 0.0:
                state.cusum_up_start = window.start
            state.cusum_up = grown
        if down:
            grown = max(0.0, state.cusum_down + (excess if not rising else -s.cusum_k))
            if state.cusum_down == 0.0 and grown > 0.0:
                state.cusum_down_start = window.start
            state.cusum_down = grown
        if not score.suspect:
            return None
        if rising and up and state.cusum_up >= s.cusum_h:
            return state.cusum_up_start
        if not rising and down and state.cusum_down >= s.cusum_h:
            return state.cusum_down_start
        return None

    def _message(
        self, key: SeriesKey, state: SeriesState, window: Window, score: Score, status: str, consecutive: int
    ) -> Alert:
        alert = state.alert
        assert alert is not None
        baseline, mad, method, z = score.baseline, score.mad, score.method, score.z
        alert["last"] = (window.start, window.end, _value(window), baseline, method, mad, z)
        return Alert(
            alert_id=alert["alert_id"],
            status=status,
            source=key.source,
            metric=key.metric,
            window_kind=key.window_kind,
            dimension=key.dimension,
            dimension_value=key.dimension_value,
            opened_window_start=alert["opened_window_start"],
            opened_at=alert["opened_at"],
            window_start=window.start,
            window_end=window.end,
            value=_value(window),  # scored: never NaN
            baseline=baseline,
            baseline_method=method,
            mad=mad,
            z_score=z,
            threshold=self.settings.threshold,
            severity=alert["severity"],
            consecutive_windows=consecutive,
            peak_z=alert["peak_z"],
            anomalous_windows=alert["anomalous_windows"],
            resolved_at=window.end if status == RESOLVED else None,
            peak_value=alert.get("peak_value", math.nan),  # .get: alerts opened before these existed
            opened_baseline=alert.get("opened_baseline", math.nan),
            opened_z=alert.get("opened_z", math.nan),
        )


def expiry_message(key: SeriesKey, state: SeriesState, at: int, threshold: float) -> Alert | None:
    """The message that resolves the open alert of a series expiring at `at` (None: no alert open).

    Resolved with `consecutive_windows` 0 (a normal resolution has ≥ 1) and `resolved_at` = `at`; window
    and score fields are those of the alert's last message (an alert opened before they were kept: its
    opening run and opening score)."""
    alert = state.alert
    if alert is None:
        return None
    last = alert.get("last") or (
        alert["opened_window_start"],
        alert["opened_at"],
        alert.get("peak_value", math.nan),
        alert.get("opened_baseline", 0.0),
        EWMA,
        0.0,
        alert.get("opened_z", alert["peak_z"]),
    )
    window_start, window_end, value, baseline, method, mad, z = last
    return Alert(
        alert_id=alert["alert_id"],
        status=RESOLVED,
        source=key.source,
        metric=key.metric,
        window_kind=key.window_kind,
        dimension=key.dimension,
        dimension_value=key.dimension_value,
        opened_window_start=alert["opened_window_start"],
        opened_at=alert["opened_at"],
        window_start=window_start,
        window_end=window_end,
        value=value,
        baseline=baseline,
        baseline_method=method,
        mad=mad,
        z_score=z,
        threshold=threshold,
        severity=alert["severity"],
        consecutive_windows=0,
        peak_z=alert["peak_z"],
        anomalous_windows=alert["anomalous_windows"],
        resolved_at=at,
        peak_value=alert.get("peak_value", math.nan),
        opened_baseline=alert.get("opened_baseline", math.nan),
        opened_z=alert.get("opened_z", math.nan),
    )


def group_last_end(states: Iterable[SeriesState]) -> int | None:
    """End of the last window of a group (the greatest `last_end` of its series), or None."""
    ends = [s.last_end for s in states if s.last_end is not None]
    return max(ends) if ends else None


def expires_at(last_end: int, ttl_ms: int) -> int:
    """Event time at which a group whose last window ended at `last_end` expires (its timer)."""
    return last_end + ttl_ms


def arrives_expired(last_end: int | None, window_end: int, ttl_ms: int) -> bool:
    """A window ending more than `ttl_ms` after the group's last window end finds the group expired
    (exactly `ttl_ms` later: still alive)."""
    return last_end is not None and window_end > expires_at(last_end, ttl_ms)


def expire_group(states: Iterable[SeriesState], at: int, threshold: float) -> list[Alert]:
    """Messages of a group expiring at `at`: one resolution per open alert, in the states' order."""
    out: list[Alert] = []
    for state in states:
        if state.key is not None:
            message = expiry_message(state.key, state, at, threshold)
            if message is not None:
                out.append(message)
    return out


def group_key(source: str, record: Mapping[str, Any]) -> str:
    """The job key of a kpi_window / funnel_window record: its source and its Kafka message key."""
    first = record["window_kind"] if source == "kpi" else record["funnel"]
    return f"{source}|{first}|{record['dimension']}|{record['dimension_value']}"


def _value(window: Window) -> float:
    return window.value if window.value is not None else math.nan


# ------------------------------------------------------------------------- records → windows


def funnel_window_kind(start: int, end: int) -> str:
    length = end - start
    if length % HOUR_MS == 0:
        return f"tumbling_{length // HOUR_MS}h"
    if length % MINUTE_MS == 0:
        return f"tumbling_{length // MINUTE_MS}m"
    return f"tumbling_{length}ms"


def series_windows(
    source: str, record: Mapping[str, Any], specs: Iterable[MetricSpec]
) -> Iterator[tuple[MetricSpec, SeriesKey, Window]]:
    """The (spec, series, window) of every configured metric a decoded kpi_window / funnel_window has."""
    start, end = int(record["window_start"]), int(record["window_end"])
    if source == "kpi":
        kind = str(record["window_kind"])
        volume = record.get("page_views")
        prefix = ""
    else:
        kind = funnel_window_kind(start, end)
        volume = record.get("entered")
        prefix = f"{record['funnel']}."
    for spec in specs:
        if spec.source != source or (spec.window_kind not in ("*", kind)):
            continue
        raw = record.get(spec.metric)
        value = None if raw is None else float(raw)
        if value is not None and not math.isfinite(value):
            value = None
        key = SeriesKey(
            source, prefix + spec.metric, kind, str(record["dimension"]), str(record["dimension_value"])
        )
        yield spec, key, Window(start, end, value, None if volume is None else float(volume))


@dataclass
class SeriesMemory:
    """State of one series in memory (oracle, evaluation, warm start)."""

    state: SeriesState = field(default_factory=SeriesState)
    slots: dict[int, list[tuple[int, float]]] = field(default_factory=dict)


class MemoryDetector:
    """All series in memory: the batch oracle and the evaluation harness use it.

    With `series_ttl_ms`, groups expire as in the job (module docstring, "Series expiry"): `feed` expires
    a group its window finds expired, `finish` those the final watermark has passed; `expired` counts
    the expiries (the job's counter)."""

    def __init__(self, settings: DetectorSettings, series_ttl_ms: int | None = None) -> None:
        if series_ttl_ms is not None and series_ttl_ms <= 0:
            raise DetectorError(f"series_ttl_ms must be positive, got {series_ttl_ms}")
        self.settings = settings
        self.series_ttl_ms = series_ttl_ms
        self.detectors = {spec: Detector(settings, spec) for spec in settings.metrics}
        self.series: dict[SeriesKey, SeriesMemory] = {}
        self.groups: dict[str, list[SeriesKey]] = {}
        """Job key → its series, in the order the job's ValueState dict holds them."""
        self.expired = 0

    def series_of(self, group: str, key: SeriesKey) -> tuple[SeriesMemory, bool]:
        """The series' memory, and whether it is new (the job's warm start reads history then)."""
        memory = self.series.get(key)
        if memory is not None:
            return memory, False
        memory = self.series[key] = SeriesMemory()
        memory.state.key = key
        self.groups.setdefault(group, []).append(key)
        return memory, True

    def expire_if_due(self, source: str, record: Mapping[str, Any]) -> list[Alert]:
        """Expire the record's group first when the record finds it expired."""
        group = group_key(source, record)
        if self.series_ttl_ms is None or group not in self.groups:
            return []
        last_end = self._last_end(group)
        if not arrives_expired(last_end, int(record["window_end"]), self.series_ttl_ms):
            return []
        assert last_end is not None
        return self._expire(group, expires_at(last_end, self.series_ttl_ms))

    def finish(self, watermark: int | None = None) -> list[Alert]:
        """Expire every group whose expiry the final watermark reaches (None: the end of a bounded input,
        which passes every expiry)."""
        if self.series_ttl_ms is None:
            return []
        out: list[Alert] = []
        for group in list(self.groups):
            last_end = self._last_end(group)
            if last_end is None:
                continue
            at = expires_at(last_end, self.series_ttl_ms)
            if watermark is None or at <= watermark:
                out.extend(self._expire(group, at))
        return out

    def _last_end(self, group: str) -> int | None:
        return group_last_end(self.series[k].state for k in self.groups[group])

    def _expire(self, group: str, at: int) -> list[Alert]:
        keys = self.groups.pop(group)
        out = expire_group((self.series[k].state for k in keys), at, self.settings.threshold)
        for key in keys:
            del self.series[key]
        self.expired += 1
        return out

    def feed(self, source: str, record: Mapping[str, Any], *, alerts: bool = True) -> list[Alert]:
        out = self.expire_if_due(source, record)
        group = group_key(source, record)
        for spec, key, window in series_windows(source, record, self.settings.metrics):
            memory, _ = self.series_of(group, key)
            out.extend(self.detectors[spec].observe(key, memory.state, memory.slots, window, alerts=alerts))
        return out


def with_overrides(settings: DetectorSettings, **changes: Any) -> DetectorSettings:
    return replace(settings, **changes)
