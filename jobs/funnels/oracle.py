"""Independent batch oracle of the funnels job: expected rows of every output table and of ux.funnel.

Written apart from `logic.py`'s state machine on purpose (only the validated definitions are shared).
`expected(events, funnels)` replays the job on the valid events of one partition in produce order
(`jobs.common.oracle.load(...).events`), classified on arrival as every job does (`oracle.arrivals`):
1. only events whose name can matter to a funnel (steps, exclusions; every event if a funnel is strict);
2. future: ts > received_at + max_future_skew → ledger `future_timestamp` (never moves the watermark);
3. watermark before a record = max ts of the earlier valid, non-future records − out-of-orderness (the
   source's watermark sees every valid event, relevant or not); ts ≤ watermark → ledger `late`;
4. occurrences of an event_id are numbered among the remaining ones; only the first counts;
   Besides those, the links the identity stage needs (README "Identity in funnels"): an event carrying both
   ids whose ts is at or below every earlier-arrived event of its (anonymous_id, user_id) pair is classified
   too (the earliest link of each pair in event time, whatever the arrival order);
5. identity (issue 22 rule 3): an event with a user id counts for it; an anonymous event counts for the
   latest link of its device at or before it (at most the identity TTL older), else for the first link
   later in its visit (the device's counted events, no gap > visit gap), else for its anonymous id;
6. per user, counted funnel events sorted by (ts, event_id), each funnel walked as a batch: attempts, then
   the window rows of their entry time, per dimension value.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from jobs.common.enrichment import BotBehaviour, EnrichmentSettings, enrich
from jobs.common.oracle import FUTURE, ON_TIME, Arrival, arrivals
from jobs.common.settings import DEFAULT_IDENTITY_TTL_MS
from jobs.funnels.logic import DEFAULT_VISIT_GAP_MS, Funnel, Step

JOB = "funnels"


def attribute(event: Mapping[str, Any], name: str) -> str | None:
    if name.startswith("properties."):
        value = (event.get("properties") or {}).get(name[len("properties.") :])
    else:
        value = event.get(name)
    return None if value is None else str(value)


def _matches(step: Step, event: Mapping[str, Any]) -> bool:
    return event["event_name"] == step.event and all(attribute(event, k) == v for k, v in step.where)


def user_key_of(event: Mapping[str, Any]) -> str:
    return str(event.get("user_id") or event["anonymous_id"])


def links(event: Mapping[str, Any]) -> bool:
    """The event carries both ids: it links its anonymous id to its user id."""
    return bool(event.get("user_id")) and bool(event.get("anonymous_id"))


def relevance(events: Sequence[Any], names: frozenset[str] | None) -> list[bool]:
    """Per valid event (produce order): does the funnels job classify it? Its name matters to a funnel, or
    it is a link at or below the least ts of the earlier arrivals of its (anonymous_id, user_id) pair in
    its Kafka partition (io.uxstream.udf.PairLeast; a pair's events share a partition when keyed by user
    key)."""
    least: dict[tuple[int | None, str, str], int] = {}
    verdicts = []
    for item in events:
        event = item.event
        ts = int(event["ts"])
        candidate = False
        if links(event):
            pair = (getattr(item, "partition", None), str(event["anonymous_id"]), str(event["user_id"]))
            least[pair] = min(least.get(pair, ts), ts)
            candidate = ts <= least[pair]
        verdicts.append(candidate or names is None or event["event_name"] in names)
    return verdicts


def relevant_arrivals(
    events: Iterable[Any],
    names: frozenset[str] | None,
    *,
    out_of_orderness_ms: int = 5_000,
    max_future_skew_ms: int = 5 * 60_000,
    enrichment: EnrichmentSettings | None = None,
) -> list[Arrival]:
    """The arrivals (`jobs.common.oracle.arrivals`) of the events the job classifies (`relevance`), with
    the behavioural bot rule of `enrichment` (None: the defaults) applied to every valid event."""
    enrichment = enrichment or EnrichmentSettings()
    items = list(events)
    # Every valid event is classified here and the irrelevant ones skipped: the numbering of an event_id's
    # copies is the same, since a copy of a link that is no candidate any more only follows candidates.
    return [
        arrival
        for arrival, relevant in zip(
            arrivals(
                items,
                out_of_orderness_ms=out_of_orderness_ms,
                max_future_skew_ms=max_future_skew_ms,
                bots=BotBehaviour.of(enrichment, out_of_orderness_ms),
            ),
            relevance(items, names),
            strict=True,
        )
        if relevant
    ]


def classify(
    events: Iterable[Any],
    names: frozenset[str] | None,
    *,
    out_of_orderness_ms: int = 5_000,
    max_future_skew_ms: int = 5 * 60_000,
    enrichment: EnrichmentSettings | None = None,
) -> tuple[list[dict[str, Any]], list[Mapping[str, Any]]]:
    """(late ledger rows, counted events) of the relevant events, in produce order, as the decode step's
    enrichment leaves them (`enrichment`, None: the defaults); bots are not counted when excluded."""
    enrichment = enrichment or EnrichmentSettings()
    ledger: dict[tuple[str, str, int], dict[str, Any]] = {}
    counted: list[Mapping[str, Any]] = []
    for arrival in relevant_arrivals(
        events,
        names,
        out_of_orderness_ms=out_of_orderness_ms,
        max_future_skew_ms=max_future_skew_ms,
        enrichment=enrichment,
    ):
        event, bot = enrich(arrival.event, enrichment)
        bot = bot or arrival.acts_bot
        watermark = arrival.watermark
        ts = int(event["ts"])
        if arrival.kind != ON_TIME:
            ledger[(JOB, str(event["event_id"]), ts)] = {
                "job": JOB,
                "event_id": event["event_id"],
                "event_time": ts,
                "received_at": int(event["received_at"]),
                "watermark": watermark,
                "lateness_ms": None if arrival.kind == FUTURE or watermark is None else watermark - ts,
                "reason": arrival.kind,
                "page_path": event.get("page_path"),
                "country": event.get("country"),
                "device_type": event.get("device_type"),
            }
        elif arrival.occurrence == 1 and not (bot and enrichment.exclude_bots):
            counted.append(event)
    return list(ledger.values()), counted


def _attempt(funnel: Funnel, user: str, entry: Mapping[str, Any], first: int) -> dict[str, Any]:
    times: list[int | None] = [None] * len(funnel.steps)
    times[first] = int(entry["ts"])
    return {
        "funnel": funnel.name,
        "user_key": user,
        "entered_at": int(entry["ts"]),
        "times": times,
        "last": int(entry["ts"]),
        "held": [attribute(entry, a) for a in funnel.hold_constant],
        "breakdown": {d: attribute(entry, d) for d in funnel.breakdowns},
    }


def _deadline(funnel: Funnel, a: dict[str, Any]) -> int:
    limit = int(a["entered_at"]) + funnel.window_ms
    reached = sum(t is not None for t in a["times"])
    if funnel.ordering != "any" and reached < len(funnel.steps):
        step_window = funnel.steps[reached].window_ms
        if step_window is not None:
            limit = min(limit, int(a["last"]) + step_window)
    return limit


def _row(funnel: Funnel, a: dict[str, Any], status: str, ended: int) -> dict[str, Any]:
    entered = int(a["entered_at"])
    return {
        "attempt_id": hashlib.sha256(f"{funnel.name}\x1f{a['user_key']}\x1f{entered}".encode()).hexdigest()[
            :32
        ],
        "funnel": funnel.name,
        "user_key": a["user_key"],
        "entered_at": entered,
        "ended_at": ended,
        "status": status,
        "furthest_step": sum(t is not None for t in a["times"]),
        "steps": len(funnel.steps),
        "step_times": json.dumps(a["times"], separators=(",", ":")),
        "time_to_convert_ms": ended - entered if status == "converted" else None,
        "breakdown": json.dumps(a["breakdown"], separators=(",", ":"), sort_keys=True),
    }


def attempts_of_user(funnel: Funnel, user: str, events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every attempt of one user in one funnel; `events` sorted by (ts, event_id)."""
    rows: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for event in events:
        ts = int(event["ts"])
        if current is not None and ts > _deadline(funnel, current):
            rows.append(_row(funnel, current, "dropped", _deadline(funnel, current)))
            current = None
        if current is not None:
            held = [attribute(event, a) for a in funnel.hold_constant] == current["held"]
            if held and any(_matches(x, event) for x in funnel.exclusions):
                rows.append(_row(funnel, current, "excluded", ts))
                current = None
                continue
            times = current["times"]
            if funnel.ordering == "any":
                todo = [i for i, s in enumerate(funnel.steps) if times[i] is None and _matches(s, event)]
                if todo and held:
                    times[todo[0]] = ts
                    current["last"] = ts
            else:
                following = sum(t is not None for t in times)
                if held and _matches(funnel.steps[following], event):
                    times[following] = ts
                    current["last"] = ts
                elif funnel.ordering == "strict":
                    rows.append(_row(funnel, current, "dropped", ts))
                    current = None
            if current is not None:
                if all(t is not None for t in times):
                    rows.append(_row(funnel, current, "converted", ts))
                    current = None
                continue
        candidates = range(len(funnel.steps)) if funnel.ordering == "any" else range(1)
        first = next((i for i in candidates if _matches(funnel.steps[i], event)), None)
        if first is not None:
            current = _attempt(funnel, user, event, first)
    if current is not None:
        rows.append(_row(funnel, current, "dropped", _deadline(funnel, current)))
    return rows


def _sighting_order(event: Mapping[str, Any]) -> tuple[int, int, str, str]:
    """A device's events in event time; at one ts links first (least user id first), then by event id."""
    user = event.get("user_id") or ""
    return (int(event["ts"]), 0 if user else 1, str(user), str(event["event_id"]))


def resolve(
    counted: Iterable[Mapping[str, Any]],
    *,
    gap_ms: int = DEFAULT_VISIT_GAP_MS,
    ttl_ms: int = DEFAULT_IDENTITY_TTL_MS,
) -> list[tuple[str, Mapping[str, Any]]]:
    """(user key the event counts for, event) of every counted event, by the whole stream of its device."""
    return [(user, event) for user, event, _ in _resolved(counted, gap_ms, ttl_ms)]


def release_times(
    counted: Iterable[Mapping[str, Any]],
    *,
    gap_ms: int = DEFAULT_VISIT_GAP_MS,
    ttl_ms: int = DEFAULT_IDENTITY_TTL_MS,
) -> dict[str, int]:
    """event_id → the event time the watermark must reach before the event's user is known, for the held
    events only (no link at or before them): the resolving link's ts, else the visit's last event + gap."""
    return {
        str(event["event_id"]): known
        for _, event, known in _resolved(counted, gap_ms, ttl_ms)
        if known != int(event["ts"])
    }


def _resolved(
    counted: Iterable[Mapping[str, Any]], gap_ms: int, ttl_ms: int
) -> list[tuple[str, Mapping[str, Any], int]]:
    """(user key, event, event time from which the user key is known) of every counted event."""
    by_device: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for event in counted:
        by_device[str(event.get("anonymous_id") or event["user_id"])].append(event)
    resolved: list[tuple[str, Mapping[str, Any], int]] = []
    for device, device_events in by_device.items():
        ordered = sorted(device_events, key=_sighting_order)
        linking = [e for e in ordered if e.get("user_id")]
        for index, event in enumerate(ordered):
            ts = int(event["ts"])
            if event.get("user_id"):
                resolved.append((str(event["user_id"]), event, ts))
                continue
            before = [
                (int(link["ts"]), str(link["user_id"]))
                for link in linking
                if int(link["ts"]) <= ts and ts - int(link["ts"]) <= ttl_ms
            ]
            if before:
                resolved.append((max(before)[1], event, ts))
                continue
            # No link before: the first link later in the same visit, if any; else the anonymous id.
            user, previous, known = device, ts, None
            for later in ordered[index + 1 :]:
                if int(later["ts"]) - previous > gap_ms:
                    break
                previous = int(later["ts"])
                if later.get("user_id"):
                    user, known = str(later["user_id"]), previous
                    break
            resolved.append((user, event, previous + gap_ms if known is None else known))
    return resolved


def expected_attempts(
    funnels: Sequence[Funnel],
    counted: Iterable[Mapping[str, Any]],
    pseudonym: Callable[[str], str] = str,
    *,
    gap_ms: int = DEFAULT_VISIT_GAP_MS,
    ttl_ms: int = DEFAULT_IDENTITY_TTL_MS,
) -> list[dict[str, Any]]:
    """Attempt rows of the counted events, each counted for the user `resolve` finds; `user_key` (and the
    attempt id built from it) is `pseudonym(user key)`. Events that only link (no step or exclusion of any
    funnel) enter no funnel."""
    from jobs.funnels.logic import relevant_event_names

    names = relevant_event_names(funnels)
    by_user: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for user, event in resolve(counted, gap_ms=gap_ms, ttl_ms=ttl_ms):
        if names is None or event["event_name"] in names:
            by_user[pseudonym(user)].append(event)
    rows: list[dict[str, Any]] = []
    for user, user_events in sorted(by_user.items()):
        ordered = sorted(user_events, key=lambda e: (int(e["ts"]), str(e["event_id"])))
        for funnel in funnels:
            rows.extend(attempts_of_user(funnel, user, ordered))
    return rows


def _median(values: list[int]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[middle])
    return (ordered[middle - 1] + ordered[middle]) / 2


def expected_windows(
    funnels: Sequence[Funnel], attempts: Iterable[Mapping[str, Any]], window_ms: int = 3_600_000
) -> list[dict[str, Any]]:
    """ux.funnel records (funnel_window.v1 fields) of the attempts, one per window and dimension value."""
    by_name = {f.name: f for f in funnels}
    groups: dict[tuple[str, int, str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for a in attempts:
        start = a["entered_at"] - a["entered_at"] % window_ms
        groups[(a["funnel"], start, "global", "(all)")].append(a)
        for dimension, value in json.loads(a["breakdown"]).items():
            groups[(a["funnel"], start, dimension, "(none)" if value is None else value)].append(a)
    rows = []
    for (name, start, dimension, value), members in groups.items():
        funnel = by_name[name]
        counted = [m for m in members if m["status"] != "excluded"]
        reached = [sum(m["furthest_step"] >= k for m in counted) for k in range(1, len(funnel.steps) + 1)]
        converted = [m for m in counted if m["status"] == "converted"]
        rows.append(
            {
                "funnel": name,
                "window_start": start,
                "window_end": start + window_ms,
                "dimension": dimension,
                "dimension_value": value,
                "step_names": [s.event for s in funnel.steps],
                "entered": len(counted),
                "reached": reached,
                "converted": len(converted),
                "dropped": sum(m["status"] == "dropped" for m in counted),
                "excluded": len(members) - len(counted),
                "conversion_rate": len(converted) / len(counted) if counted else None,
                "step_conversion_rates": [
                    reached[k + 1] / reached[k] if reached[k] else None for k in range(len(reached) - 1)
                ],
                "drop_off": [reached[k] - reached[k + 1] for k in range(len(reached) - 1)],
                "median_time_to_convert_ms": _median([m["time_to_convert_ms"] for m in converted]),
                "revision": 1,
            }
        )
    return rows


def table_rows(windows: Iterable[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """ux.funnel records → (`funnel_windows` rows, `funnel_window_steps` rows)."""
    scalars = ("funnel", "window_start", "window_end", "dimension", "dimension_value")
    window_rows, step_rows = [], []
    for w in windows:
        window_rows.append(
            {
                **{k: w[k] for k in scalars},
                "steps": len(w["step_names"]),
                "entered": w["entered"],
                "converted": w["converted"],
                "dropped": w["dropped"],
                "excluded": w["excluded"],
                "conversion_rate": w["conversion_rate"],
                "median_time_to_convert_ms": w["median_time_to_convert_ms"],
                "revision": w["revision"],
            }
        )
        for k, name in enumerate(w["step_names"]):
            step_rows.append(
                {
                    **{c: w[c] for c in scalars},
                    "step": k + 1,
                    "step_name": name,
                    "reached": w["reached"][k],
                    "conversion_from_previous": w["step_conversion_rates"][k - 1] if k else None,
                    "drop_off": w["drop_off"][k] if k < len(w["drop_off"]) else None,
                }
            )
    return window_rows, step_rows


def expected(
    events: Iterable[Any],
    funnels: Sequence[Funnel],
    *,
    window_ms: int = 3_600_000,
    out_of_orderness_ms: int = 5_000,
    max_future_skew_ms: int = 5 * 60_000,
    pseudonym: Callable[[str], str] = str,
    enrichment: EnrichmentSettings | None = None,
    gap_ms: int = DEFAULT_VISIT_GAP_MS,
    ttl_ms: int = DEFAULT_IDENTITY_TTL_MS,
) -> dict[str, list[dict[str, Any]]]:
    """Expected rows per table name (and `ux.funnel` records under "windows"), times in epoch ms; user
    keys as `pseudonym` maps them (the job: jobs.common.privacy.Pseudonymizer); `enrichment` as in
    `classify`; `gap_ms` (visit gap) and `ttl_ms` (identity TTL) as in `resolve`."""
    from jobs.funnels.logic import relevant_event_names

    ledger, counted = classify(
        events,
        relevant_event_names(funnels),
        out_of_orderness_ms=out_of_orderness_ms,
        max_future_skew_ms=max_future_skew_ms,
        enrichment=enrichment,
    )
    attempts = expected_attempts(funnels, counted, pseudonym, gap_ms=gap_ms, ttl_ms=ttl_ms)
    windows = expected_windows(funnels, attempts, window_ms)
    window_rows, step_rows = table_rows(windows)
    return {
        "funnel_attempts": attempts,
        "funnel_windows": window_rows,
        "funnel_window_steps": step_rows,
        "late_events": ledger,
        "windows": windows,
        "counted": [{"event_id": e["event_id"]} for e in counted],
    }
