"""Evaluation harness of the anomaly detector: recall and false alerts on simulated traffic.

    uxstream anomaly-eval --days 14 --events-per-day 300000 --seed 7

1. Traffic: `uxstream.contract.generator` with daily and weekly seasonality (`daily_amplitude`,
   `weekend_factor`), no faults, and a schedule of injected anomalies (`scenario`): error-rate spikes,
   traffic drops and latency spikes, each on one segment (global, a country, a device type or a page)
   for 20–45 minutes, starting on the second simulated day.
2. KPI windows: tumbling 1-minute windows per dimension computed from the events exactly as the
   sessionize oracle does (`kpi_windows`; tests/anomaly check it equals `jobs.sessionize.oracle.expected`
   on a small stream) — the oracle itself also builds sessions, sliding and cumulative windows, far too
   slow for millions of events.
3. The detector (`logic.MemoryDetector`, the code the job runs) over the windows in order.
4. Scores: an injected anomaly is **recalled** when an alert opens on its segment for a metric its kind
   moves (error_spike → error_rate, traffic_drop → page_views / active_users, latency_spike →
   lcp_p75_ms) with its first anomalous window between the anomaly's start − 5 min and its end + 10 min.
   An opened alert is **explained** when some injected anomaly of a kind that moves its metric overlaps
   it in that time range (on any segment: a country's error spike also raises the global error rate);
   every other opened alert is a **false alert**, reported per simulated day.
5. Time to detect (TTD): for every recalled anomaly, the delay from its start to `opened_at` (event time:
   the end of the window that opened the alert) of the earliest alert that recalls it; median / p90 / max
   per anomaly kind and magnitude, and for the issue-21 target group (error spikes ≥ 5× and traffic drops
   ≥ 50 % on global and country segments). A detection before the start counts as 0.
6. NAB-style score (Numenta Anomaly Benchmark, standard profile) as one number: each anomaly's window is
   [start, end]; its earliest recalling alert scores A_TP · σ(y) with y = (opened_at − end) / (end −
   start) ∈ [−1, 0] and σ(y) = 2 / (1 + e^(5y)) − 1 (≈ 0.99 at onset, 0 at the end); no alert opened by the
   end costs A_FN (a late alert is a miss here, whatever the recall rule says); every false alert costs
   A_FP. Normalised to 100 · (raw − null) / (perfect − null), null = every anomaly missed, no alert;
   perfect = every anomaly detected at its start.
"""

from __future__ import annotations

import json
import math
import pickle
import random
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from jobs.anomaly.logic import DEFAULT_SERIES_TTL_MS, MINUTE_MS, OPEN, Alert, DetectorSettings, MemoryDetector
from jobs.sessionize.oracle import percentile_linear

DAY_MS: Final = 86_400_000
KIND_METRICS: Final = {
    "error_spike": frozenset({"error_rate"}),
    "traffic_drop": frozenset({"page_views", "active_users", "events"}),
    "latency_spike": frozenset({"lcp_p75_ms", "inp_p75_ms"}),
}
"""Which metrics each injected anomaly kind moves."""
EARLY_MS: Final = 5 * MINUTE_MS
LATE_MS: Final = 10 * MINUTE_MS
NAB_TP: Final = 1.0
NAB_FP: Final = 0.11
NAB_FN: Final = 1.0
"""NAB's standard application profile: weights of a detection, a false alert and a miss."""
TARGET_KINDS: Final = {"error_spike": (5.0, math.inf), "traffic_drop": (0.0, 0.5)}
"""Issue 21's time-to-detect target group: error spikes of ≥ 5× and traffic drops to ≤ 50 % (magnitude =
the generator's: error probability factor, share of traffic kept) ..."""
TARGET_DIMENSIONS: Final = frozenset({"global", "country"})
"""... on global and country segments."""
DIMENSIONS: Final = ("page_path", "country", "device_type")
CONVERSIONS: Final = ("order_completed", "signup_completed")
SEGMENTS: Final = (
    "global",
    "device_type=mobile",
    "device_type=desktop",
    "country=US",
    "country=IN",
    "page_path=/",
    "page_path=/products",
)


# ------------------------------------------------------------------------------- KPI windows


@dataclass
class _Bucket:
    events: int = 0
    page_views: int = 0
    errors: int = 0
    conversions: int = 0
    users: set[str] = field(default_factory=set)
    lcp: list[float] = field(default_factory=list)
    inp: list[float] = field(default_factory=list)
    cls: list[float] = field(default_factory=list)


def _row(start: int, dimension: str, value: str, bucket: _Bucket) -> dict[str, Any]:
    return {
        "window_kind": "tumbling_1m",
        "window_start": start,
        "window_end": start + MINUTE_MS,
        "dimension": dimension,
        "dimension_value": value,
        "events": bucket.events,
        "page_views": bucket.page_views,
        "active_users": len(bucket.users),
        "error_events": bucket.errors,
        "conversions": bucket.conversions,
        "duplicates": 0,
        "error_rate": bucket.errors / bucket.page_views if bucket.page_views else None,
        "lcp_p75_ms": percentile_linear(bucket.lcp, 0.75),
        "inp_p75_ms": percentile_linear(bucket.inp, 0.75),
        "cls_p75": percentile_linear(bucket.cls, 0.75),
    }


def kpi_windows(events: Iterable[Mapping[str, Any]], *, disorder_ms: int = 5_000) -> Iterator[dict[str, Any]]:
    """Tumbling 1-minute KPI rows (kpi_window field names) of clean, on-time events in arrival order.

    Events must arrive at most `disorder_ms` after their event time (`received_at` ≥ ts); a minute is
    emitted once the arrivals have passed its end by that much, every minute's rows in dimension order.
    """
    buckets: dict[int, dict[tuple[str, str], _Bucket]] = defaultdict(dict)
    for event in events:
        ts = int(event["ts"])
        start = ts - ts % MINUTE_MS
        minute = buckets[start]
        user = event.get("user_id") or event["anonymous_id"]
        event_type = event["event_type"]
        keys = [("global", "(all)")]
        for name in DIMENSIONS:
            value = event.get(name)
            keys.append((name, "(none)" if value is None else str(value)))
        for key in keys:
            bucket = minute.get(key)
            if bucket is None:
                bucket = minute[key] = _Bucket()
            bucket.events += 1
            bucket.users.add(user)
            if event_type == "page_view":
                bucket.page_views += 1
            elif event_type == "error":
                bucket.errors += 1
            elif event_type == "web_vital":
                if event.get("lcp_ms") is not None:
                    bucket.lcp.append(event["lcp_ms"])
                if event.get("inp_ms") is not None:
                    bucket.inp.append(event["inp_ms"])
                if event.get("cls") is not None:
                    bucket.cls.append(event["cls"])
            if event["event_name"] in CONVERSIONS:
                bucket.conversions += 1
        horizon = int(event["received_at"]) - disorder_ms
        for done in sorted(s for s in buckets if s + MINUTE_MS <= horizon):
            for (dimension, value), bucket in sorted(buckets.pop(done).items()):
                yield _row(done, dimension, value, bucket)
    for done in sorted(buckets):
        for (dimension, value), bucket in sorted(buckets[done].items()):
            yield _row(done, dimension, value, bucket)


# ---------------------------------------------------------------------------------- scenario


GRADED: Final = {
    "error_spike": (3.0, 5.0, 10.0),
    "traffic_drop": (0.5, 0.3, 0.2),
    "latency_spike": (1.5, 2.0, 3.0),
}
"""Magnitudes of the `graded` mix, cycled per kind (generator magnitudes: error probability factor,
share of traffic kept, latency factor); the default mix uses the generator's (×10, keep 20 %, ×3)."""
MIXES: Final = ("default", "graded")


def scenario(days: int, seed: int, per_day: int = 2, first_day: int = 1, mix: str = "default") -> list[str]:
    """Anomaly specs (`KIND:SEGMENT:AT:FOR[:MAGNITUDE]`) for the generator: `per_day` on each day from
    `first_day` in distinct hours, cycling through the kinds, on random segments, 20–45 minutes long. The
    `graded` mix has the same times and segments, with weaker magnitudes in the cycle (GRADED)."""
    if mix not in MIXES:
        raise ValueError(f"mix {mix!r}: expected one of {', '.join(MIXES)}")
    rng = random.Random(seed)
    kinds = list(KIND_METRICS)
    specs: list[str] = []
    for day in range(first_day, days):
        for hour in sorted(rng.sample(range(24), per_day)):
            kind = kinds[len(specs) % len(kinds)]
            segment = SEGMENTS[rng.randrange(len(SEGMENTS))]
            minute = day * 1440 + hour * 60 + rng.randrange(0, 15)
            spec = f"{kind}:{segment}:{minute}m:{rng.randrange(20, 46)}m"
            if mix == "graded":
                grades = GRADED[kind]
                spec += f":{grades[(len(specs) // len(kinds)) % len(grades)]:g}"
            specs.append(spec)
    return specs


# ---------------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Injected:
    kind: str
    dimension: str
    value: str
    start_ms: int
    end_ms: int
    magnitude: float = 0.0
    """The generator's magnitude: error probability factor, share of traffic kept, latency factor."""

    def magnitude_label(self) -> str:
        if self.kind == "traffic_drop":
            return f"-{round((1 - self.magnitude) * 100)}%"
        return f"x{self.magnitude:g}"

    @property
    def in_target(self) -> bool:
        low, high = TARGET_KINDS.get(self.kind, (math.inf, math.inf))
        return low <= self.magnitude <= high and self.dimension in TARGET_DIMENSIONS


def nab_sigmoid(y: float) -> float:
    """NAB's scaled sigmoid: ≈ 0.99 at y = −1 (the window's start), 0 at y = 0 (its end), → −1 after."""
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def nab_score(injected: list[Injected], detections: list[Alert | None], false_alerts: int) -> float:
    """Normalised NAB-style score (module docstring, item 6): 100 = all detected at onset, no false alert;
    0 = nothing detected and no alert."""
    raw = -NAB_FP * false_alerts
    for anomaly, alert in zip(injected, detections, strict=True):
        length = max(1, anomaly.end_ms - anomaly.start_ms)
        if alert is None or alert.opened_at > anomaly.end_ms:
            raw -= NAB_FN
        else:
            at = max(alert.opened_at, anomaly.start_ms)
            raw += NAB_TP * nab_sigmoid((at - anomaly.end_ms) / length)
    null = -NAB_FN * len(injected)
    perfect = NAB_TP * nab_sigmoid(-1.0) * len(injected)
    return 100.0 * (raw - null) / (perfect - null) if perfect != null else 100.0


def ttd_minutes(anomaly: Injected, alert: Alert) -> float:
    """Time to detect in minutes of event time (0 when the alert opened before the anomaly started)."""
    return max(0, alert.opened_at - anomaly.start_ms) / MINUTE_MS


def ttd_summary(values: list[float]) -> str:
    if not values:
        return "median -    p90 -    max -"
    p50, p90 = percentile_linear(values, 0.5), percentile_linear(values, 0.9)
    assert p50 is not None and p90 is not None
    return f"median {p50:4.1f} p90 {p90:4.1f} max {max(values):4.1f}"


@dataclass
class Report:
    start_ms: int
    days: int
    events: int
    windows: int
    injected: list[Injected]
    opened: list[Alert]
    recalled: list[bool]
    false_alerts: list[Alert]
    false_per_day: list[int]
    methods: dict[str, int]
    detections: list[Alert | None] = field(default_factory=list)
    """Per injected anomaly: the earliest-opened alert that recalls it (None: missed)."""

    @property
    def ttd(self) -> list[float | None]:
        """Per injected anomaly: minutes from its start to its detection's opened_at (None: missed)."""
        return [
            None if alert is None else ttd_minutes(anomaly, alert)
            for anomaly, alert in zip(self.injected, self.detections, strict=True)
        ]

    @property
    def nab(self) -> float:
        return nab_score(self.injected, self.detections, len(self.false_alerts))

    def target_ttd(self) -> list[float]:
        """TTDs (minutes) of the recalled anomalies of issue 21's target group."""
        return [t for a, t in zip(self.injected, self.ttd, strict=True) if a.in_target and t is not None]

    @property
    def recall(self) -> float:
        return sum(self.recalled) / len(self.recalled) if self.recalled else 1.0

    @property
    def false_alerts_per_day(self) -> float:
        return len(self.false_alerts) / self.days if self.days else 0.0

    def lines(self) -> list[str]:
        out = [
            f"simulated days: {self.days}, events: {self.events}, KPI windows: {self.windows}, "
            f"alerts opened: {len(self.opened)}",
            f"recall: {sum(self.recalled)}/{len(self.recalled)} = {self.recall:.3f}",
            f"false alerts: {len(self.false_alerts)} = {self.false_alerts_per_day:.2f} per simulated day",
            "false alerts per day: " + " ".join(str(n) for n in self.false_per_day),
            "alert messages by baseline method: "
            + ", ".join(f"{k}={v}" for k, v in sorted(self.methods.items())),
            f"NAB-style score (standard profile, 100 = all at onset): {self.nab:.1f}",
            "time to detect (minutes from the anomaly's start to opened_at, event time), recalled only:",
        ]
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, anomaly in enumerate(self.injected):
            groups[(anomaly.kind, anomaly.magnitude_label())].append(i)
        ttd = self.ttd
        for (kind, label), members in sorted(groups.items()):
            values = [t for t in (ttd[i] for i in members) if t is not None]
            out.append(
                f"  {kind:<13} {label:>5}: recalled {len(values)}/{len(members)}  {ttd_summary(values)}"
            )
        target = [i for i, a in enumerate(self.injected) if a.in_target]
        out.append(
            f"  target (error spikes >= 5x, traffic drops >= 50 %, global and country): recalled "
            f"{len(self.target_ttd())}/{len(target)}  {ttd_summary(self.target_ttd())}"
        )
        for anomaly, hit, minutes in zip(self.injected, self.recalled, ttd, strict=True):
            segment = "global" if anomaly.dimension == "global" else f"{anomaly.dimension}={anomaly.value}"
            day, minute = divmod((anomaly.start_ms - self.start_ms) // MINUTE_MS, 1440)
            out.append(
                f"  {'recalled' if hit else 'MISSED  '} {anomaly.kind:<13} {anomaly.magnitude_label():>5} "
                f"{segment:<22} day {day} {minute // 60:02d}:{minute % 60:02d} "
                f"for {(anomaly.end_ms - anomaly.start_ms) // MINUTE_MS} min"
                + ("" if minutes is None else f", detected after {minutes:.0f} min")
            )
        for alert in self.false_alerts:
            out.append(
                f"  false alert: {alert.metric} {alert.dimension}={alert.dimension_value} "
                f"opened {alert.opened_window_start} z={alert.z_score:.1f} ({alert.baseline_method})"
            )
        return out


def _segment(anomaly: Injected) -> tuple[str, str]:
    return ("global", "(all)") if anomaly.dimension == "global" else (anomaly.dimension, anomaly.value)


def near(anomaly: Injected, alert: Alert) -> bool:
    return anomaly.start_ms - EARLY_MS <= alert.opened_window_start < anomaly.end_ms + LATE_MS


def recalls(anomaly: Injected, alert: Alert) -> bool:
    return (
        near(anomaly, alert)
        and alert.metric in KIND_METRICS[anomaly.kind]
        and (alert.dimension, alert.dimension_value) == _segment(anomaly)
    )


def detections(injected: list[Injected], opened: list[Alert]) -> list[Alert | None]:
    """Per anomaly, the earliest-opened alert that recalls it (ties: the first opened), or None."""
    out: list[Alert | None] = []
    for anomaly in injected:
        hits = [alert for alert in opened if recalls(anomaly, alert)]
        out.append(min(hits, key=lambda a: a.opened_at) if hits else None)
    return out


def score(
    injected: list[Injected], opened: list[Alert], start_ms: int, days: int
) -> tuple[list[bool], list[Alert], list[int]]:
    recalled = [any(recalls(anomaly, alert) for alert in opened) for anomaly in injected]
    false_alerts = [
        alert
        for alert in opened
        if not any(near(a, alert) and alert.metric in KIND_METRICS[a.kind] for a in injected)
    ]
    per_day = [0] * days
    for alert in false_alerts:
        day = (alert.opened_window_start - start_ms) // DAY_MS
        if 0 <= day < days:
            per_day[day] += 1
    return recalled, false_alerts, per_day


COMPACT_FIELDS: Final = (
    "window_start",
    "dimension",
    "dimension_value",
    "events",
    "page_views",
    "active_users",
    "error_events",
    "error_rate",
    "lcp_p75_ms",
)
"""The kpi_window fields the default metrics need: the windows are kept (and cached) as tuples of these."""


@dataclass(frozen=True)
class Traffic:
    """The KPI windows of one simulation, compact, with what was injected."""

    start_ms: int
    days: int
    events: int
    injected: list[Injected]
    windows: list[tuple[Any, ...]]
    key: tuple[int, ...] = ()
    """(days, events_per_day, seed, per_day[, 1 for the graded mix]) of the simulation (the cache key)."""

    def records(self) -> Iterator[dict[str, Any]]:
        for values in self.windows:
            row = dict(zip(COMPACT_FIELDS, values, strict=True))
            row["window_kind"] = "tumbling_1m"
            row["window_end"] = row["window_start"] + MINUTE_MS
            yield row


def simulate(
    *,
    days: int,
    events_per_day: int,
    seed: int,
    per_day: int,
    daily_amplitude: float = 0.6,
    weekend_factor: float = 0.6,
    cache: Path | None = None,
    mix: str = "default",
) -> Traffic:
    """Generate the traffic and its KPI windows (or load them from `cache`, written on first use)."""
    from uxstream.contract.generator import Anomaly, Generator, GeneratorConfig, parse_time_ms

    start_ms = parse_time_ms("2025-01-06T00:00:00Z")
    anomalies = tuple(Anomaly.parse(spec, start_ms) for spec in scenario(days, seed, per_day, mix=mix))
    key = (days, events_per_day, seed, per_day) + ((1,) if mix == "graded" else ())
    injected = [
        Injected(a.kind, a.dimension, a.value or "(all)", a.start_ms, a.end_ms, a.magnitude)
        for a in anomalies
    ]
    if cache is not None and cache.exists():
        with cache.open("rb") as handle:
            cached = pickle.load(handle)
        if isinstance(cached, Traffic) and cached.key == key:
            return replace(cached, injected=injected)  # the scenario is a function of the key
    base = GeneratorConfig(daily_amplitude=daily_amplitude, weekend_factor=weekend_factor)
    # events_per_day is the mean over a week. The generator sizes its (flat) session rate as events /
    # duration and stops after `events` records: give it the season-weighted length of the simulated days
    # as both, so the base rate is events_per_day and the traffic spans exactly the simulated days.
    hours = [start_ms + h * 3_600_000 + 1_800_000 for h in range(days * 24)]
    weighted_days = sum(base.season(t) for t in hours) / 24
    config = GeneratorConfig(
        events=round(events_per_day * weighted_days),
        seed=seed,
        start_ms=start_ms,
        duration_ms=round(weighted_days * DAY_MS),
        partitions=1,
        anomalies=anomalies,
        daily_amplitude=daily_amplitude,
        weekend_factor=weekend_factor,
    )
    generator = Generator(config)
    counter = [0]

    def events() -> Iterator[Mapping[str, Any]]:
        for batch in generator.batches():
            for record in batch:
                truth = record[4]
                assert truth is not None
                counter[0] += 1
                yield json.loads("{" + truth)["event"]

    windows = [tuple(row[f] for f in COMPACT_FIELDS) for row in kpi_windows(events())]
    traffic = Traffic(start_ms, days, counter[0], injected, windows, key)
    if cache is not None:
        with cache.open("wb") as output:
            pickle.dump(traffic, output)
    return traffic


def detect(
    traffic: Traffic,
    settings: DetectorSettings | None = None,
    series_ttl_ms: int | None = DEFAULT_SERIES_TTL_MS,
) -> Report:
    """Run the detector over the windows in order and score its alerts (series expire as in the job,
    after `series_ttl_ms` of event time without a window; None: never)."""
    detector = MemoryDetector(settings or DetectorSettings(), series_ttl_ms)
    opened: list[Alert] = []
    methods: dict[str, int] = defaultdict(int)
    for row in traffic.records():
        for alert in detector.feed("kpi", row):
            methods[alert.baseline_method] += 1
            if alert.status == OPEN:
                opened.append(alert)
    recalled, false_alerts, per_day = score(traffic.injected, opened, traffic.start_ms, traffic.days)
    return Report(
        traffic.start_ms,
        traffic.days,
        traffic.events,
        len(traffic.windows),
        traffic.injected,
        opened,
        recalled,
        false_alerts,
        per_day,
        dict(methods),
        detections(traffic.injected, opened),
    )


def evaluate(
    *,
    days: int = 9,
    events_per_day: int = 1_000_000,
    seed: int = 7,
    per_day: int = 2,
    settings: DetectorSettings | None = None,
    cache: Path | None = None,
    mix: str = "default",
) -> Report:
    """Generate, aggregate, detect and score (see the module docstring)."""
    traffic = simulate(
        days=days, events_per_day=events_per_day, seed=seed, per_day=per_day, cache=cache, mix=mix
    )
    return detect(traffic, settings)
