"""Independent batch oracle of the sessionize job: expected rows of every output table.

Written apart from `logic.py` and the job's SQL on purpose (no shared code).

- `expected_sessions`: SEMANTICS.md "Sessions" on a finished list of clean events: sorts each user's
  events, finds the split points over neighbour pairs, aggregates every slice from scratch.
- `expected`: the whole job on a ground-truth stream (records in produce order, any number of
  partitions), as the job's semantics define it:
  1. valid events only (the oracle base decides validity; invalid ones are dead letters);
  2. future: ts > Kafka timestamp (= received_at) + max_future_skew → ledger `future_timestamp`; future
     events never move the watermark;
  3. watermark before a record = (max ts of the earlier valid, non-future records of its partition) −
     out-of-orderness
     (on-event emission: a record never sees its own watermark); late: ts ≤ that watermark → ledger
     `late` with the watermark and lateness;
  4. the remaining on-time events are numbered per event_id in arrival order: occurrence 1 is counted,
     later ones are duplicates (counted per window in `duplicates`);
  5. KPI windows over on-time events; sessions over each user's counted on-time events by SEMANTICS alone
     (`expected_sessions`: the gap rule on the events in time order, a gap of exactly one session gap
     staying in the session, then midnight and max-duration splits), whatever the arrival order within
     the bound: the job's session function waits until the watermark passes last + gap.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from jobs.common import sketches
from jobs.common.enrichment import BotBehaviour, EnrichmentSettings, enrich
from jobs.common.oracle import FUTURE, ON_TIME, arrivals
from jobs.common.settings import DEFAULT_IDENTITY_TTL_MS
from jobs.sessionize.logic import (
    FIRST_REVISION,
    KPI_METRICS,
    kpi_message_key,
    kpi_window_record,
    window_kinds,
)


def _local_day(ts: int, zone: ZoneInfo) -> tuple[int, int, int]:
    moment = datetime.fromtimestamp(ts / 1000, zone)
    return (moment.year, moment.month, moment.day)


def user_key_of(event: Mapping[str, Any]) -> str:
    user_id = event.get("user_id")
    return str(user_id) if user_id else str(event["anonymous_id"])


def device_key_of(event: Mapping[str, Any]) -> str:
    """README "Identity": the anonymous id, else the user id."""
    anonymous_id = event.get("anonymous_id")
    return str(anonymous_id) if anonymous_id else str(event["user_id"])


def people_of(events: Iterable[Mapping[str, Any]]) -> set[str]:
    """The people of a KPI window row's counted events (README "Active users and logins"; issue 22 item 4
    rule 2), from the whole window at once: an event with a user id counts as that user; an event without
    one counts as the user id that an event of the same window links its anonymous id to (an event carrying
    both ids links them; linked to several: the least user id, Python's string order), else as its
    anonymous id."""
    members = list(events)
    links: dict[str, str] = {}
    for event in members:
        user, anonymous = event.get("user_id"), event.get("anonymous_id")
        if user and anonymous:
            known = links.get(str(anonymous))
            links[str(anonymous)] = str(user) if known is None else min(known, str(user))
    people: set[str] = set()
    for event in members:
        user = event.get("user_id")
        if user:
            people.add(str(user))
        else:
            anonymous = str(event["anonymous_id"])
            people.add(links.get(anonymous, anonymous))
    return people


def expected_sessions(
    events: Iterable[Mapping[str, Any]],
    *,
    gap_ms: int = 30 * 60_000,
    timezone: str = "UTC",
    split_at_midnight: bool = True,
    max_duration_ms: int = 24 * 3_600_000,
    conversion_events: Iterable[str] = ("order_completed", "signup_completed"),
    identity_ttl_ms: int = DEFAULT_IDENTITY_TTL_MS,
) -> list[dict[str, Any]]:
    """Final session rows (as dicts keyed like the `sessions` table) of clean events of a finished stream.

    Sessions run per device key; each is attributed to a user by the identity rule (README "Identity: one
    visitor across a login"), computed here over the device's whole session list: the user id of the
    session's earliest identified event (ties: least id), else the latest identified event of the device's
    earlier sessions (ties: greatest id) if at most `identity_ttl_ms` before the session's start, else the
    device key."""
    zone = ZoneInfo(timezone)
    conversions = set(conversion_events)
    by_device: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for event in events:
        by_device[device_key_of(event)].append(event)

    rows: list[dict[str, Any]] = []
    for device, device_events in by_device.items():
        ordered = sorted(device_events, key=lambda e: (e["ts"], e["event_id"]))
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
        link: tuple[int, str] | None = None  # (ts, user id) of the device's latest identified event so far
        for first, stop, reason in slices:
            members = ordered[first:stop]
            identified = [(int(e["ts"]), str(e["user_id"])) for e in members if e.get("user_id")]
            if identified:
                owner = min(identified)[1]
            elif link is not None and members[0]["ts"] - link[0] <= identity_ttl_ms:
                owner = link[1]
            else:
                owner = device
            if identified and (link is None or max(identified) > link):
                link = max(identified)
            rows.append({**_session_row(owner, members, reason, conversions), "device_key": device})
    rows.sort(key=lambda r: (r["user_key"], r["session_start"]))
    return rows


def _session_id(user: str, start: int) -> str:
    return hashlib.sha256(f"{user}\x1f{start}".encode()).hexdigest()[:32]


def _session_row(
    user: str, events: list[Mapping[str, Any]], reason: str, conversions: set[str]
) -> dict[str, Any]:
    start, end = events[0]["ts"], events[-1]["ts"]
    views = [e for e in events if e["event_type"] == "page_view"]
    paths = [e["page_path"] for e in views if e.get("page_path") is not None]
    n_conversions = sum(1 for e in events if e["event_name"] in conversions)
    # Engaged time (README "Engaged time"): the reported foreground time when any event reports it, else
    # the span between the first and the last event.
    reported = [e["engagement_time_ms"] for e in events if e.get("engagement_time_ms") is not None]
    engaged_time_ms = sum(reported) if reported else end - start
    engaged = engaged_time_ms > 10_000 or len(views) >= 2 or n_conversions >= 1
    # Feedback (README "Feedback"): every feedback event counted, the first 20 listed in time order.
    answers = [e for e in events if e["event_type"] == "feedback"]
    listed = [
        {
            "ts": e["ts"],
            "survey_id": e.get("survey_id"),
            "scale": e.get("feedback_scale"),
            "score": e.get("feedback_score"),
            "comment": e.get("feedback_comment"),
        }
        for e in answers[:20]
    ]
    first = events[0]
    return {
        "session_id": _session_id(user, start),
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
        "engaged_time_ms": engaged_time_ms,
        "engaged": engaged,
        "bounce": not engaged,
        "split_reason": reason,
        "is_final": True,
        "feedback_responses": len(answers),
        "feedback": listed or None,
    }


# ------------------------------------------------------------------------------------ whole job


def percentile_linear(values: list[float], fraction: float) -> float | None:
    """Percentile with linear interpolation between closest ranks (Flink's PERCENTILE)."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _floor(ts: int, size: int) -> int:
    return ts - ts % size


def _dims(event: Mapping[str, Any], dimensions: tuple[str, ...]) -> list[tuple[str, str]]:
    values = [("global", "(all)")]
    for name in dimensions:
        value = event.get(name)
        values.append((name, "(none)" if value is None else str(value)))
    return values


def _local_day_start(ts: int, zone: ZoneInfo) -> int:
    local = datetime.fromtimestamp(ts / 1000, zone)
    start = datetime(local.year, local.month, local.day, tzinfo=zone)
    return int(start.timestamp() * 1000)


def expected(
    events: Iterable[Any],
    *,
    gap_ms: int = 30 * 60_000,
    timezone: str = "UTC",
    split_at_midnight: bool = True,
    max_duration_ms: int = 24 * 3_600_000,
    conversion_events: Iterable[str] = ("order_completed", "signup_completed"),
    dimensions: tuple[str, ...] = ("page_path", "country", "device_type"),
    out_of_orderness_ms: int = 5_000,
    max_future_skew_ms: int = 5 * 60_000,
    tumble_ms: int = 60_000,
    sliding_size_ms: int = 5 * 60_000,
    sliding_step_ms: int = 60_000,
    cumulative_step_ms: int = 5 * 60_000,
    job: str = "sessionize",
    pseudonym: Callable[[str], str] | None = None,
    enrichment: EnrichmentSettings | None = None,
    identity_ttl_ms: int = DEFAULT_IDENTITY_TTL_MS,
) -> dict[str, list[dict[str, Any]]]:
    """Expected rows per table name, from the valid events in produce order (each Kafka partition with its
    own watermark: `jobs.common.oracle.arrivals`).

    `events` are `jobs.common.oracle.OracleEvent`s (any object with `.event` and `.seq`); the Kafka
    timestamp of each is its `received_at`. Times are epoch milliseconds. `pseudonym` maps a raw user key
    to what the sessions table stores (the job's `jobs.common.privacy.Pseudonymizer`); None: raw keys.
    `enrichment`: the decode step's enrichment (device/OS/browser/bot from the user agent, country from the
    IP, `jobs.common.enrichment.enrich`) and whether bots are excluded; None: the defaults (on, excluded).
    Bots' events count in `bot_events` only (or everywhere too when not excluded).
    """
    enrichment = enrichment or EnrichmentSettings()
    zone = ZoneInfo(timezone)
    conversions = set(conversion_events)
    late_rows: list[dict[str, Any]] = []
    on_time: list[tuple[Mapping[str, Any], int]] = []  # (event, occurrence), bots excluded if configured
    bot_events: list[tuple[Mapping[str, Any], int]] = []  # every on-time bot event
    # Per user: every counted on-time event (expected_sessions applies the gap rule).
    gap_sessions: dict[str, list[list[Mapping[str, Any]]]] = defaultdict(lambda: [[]])

    for arrival in arrivals(
        events,
        out_of_orderness_ms=out_of_orderness_ms,
        max_future_skew_ms=max_future_skew_ms,
        bots=BotBehaviour.of(enrichment, out_of_orderness_ms),
    ):
        event, bot = enrich(arrival.event, enrichment)
        bot = bot or arrival.acts_bot
        watermark, occurrence = arrival.watermark, arrival.occurrence
        ts, received = int(event["ts"]), int(event["received_at"])
        if arrival.kind != ON_TIME:
            lateness = None if arrival.kind == FUTURE or watermark is None else watermark - ts
            late_rows.append(
                {
                    "job": job,
                    "event_id": event["event_id"],
                    "event_time": ts,
                    "received_at": received,
                    "page_path": event.get("page_path"),
                    "country": event.get("country"),
                    "device_type": event.get("device_type"),
                    "watermark": watermark,
                    "lateness_ms": lateness,
                    "reason": arrival.kind,
                }
            )
            continue
        if bot:
            bot_events.append((event, occurrence))
            if enrichment.exclude_bots:
                continue
        on_time.append((event, occurrence))
        if occurrence == 1:
            gap_sessions[device_key_of(event)][0].append(event)

    # The late ledger is keyed (job, event_id, event_time): a repeated late record rewrites its row.
    ledger = {(r["job"], r["event_id"], r["event_time"]): r for r in late_rows}

    sessions: list[dict[str, Any]] = []
    for pieces in gap_sessions.values():
        for piece in pieces:
            rows = expected_sessions(
                piece,
                gap_ms=gap_ms,
                timezone=timezone,
                split_at_midnight=split_at_midnight,
                max_duration_ms=max_duration_ms,
                conversion_events=conversions,
                identity_ttl_ms=identity_ttl_ms,
            )
            if pseudonym is not None:
                rows = [
                    {
                        **r,
                        "user_key": pseudonym(r["user_key"]),
                        "device_key": pseudonym(r["device_key"]),
                        "session_id": _session_id(pseudonym(r["user_key"]), r["session_start"]),
                    }
                    for r in rows
                ]
            sessions.extend(rows)
    sessions.sort(key=lambda r: (r["user_key"], r["session_start"]))

    def window_rows(
        assign: Any, members: list[tuple[Mapping[str, Any], int]] | None = None
    ) -> dict[tuple[int, int, str, str], list[tuple[Mapping[str, Any], int]]]:
        groups: dict[tuple[int, int, str, str], list[tuple[Mapping[str, Any], int]]] = defaultdict(list)
        for event, occurrence in on_time if members is None else members:
            for start, end in assign(int(event["ts"])):
                for dimension, value in _dims(event, dimensions):
                    groups[(start, end, dimension, value)].append((event, occurrence))
        if enrichment.exclude_bots and members is None:  # a value with only bots still has a (zero) row
            for k in window_rows(assign, bot_events):
                groups.setdefault(k, [])
        return groups

    def metrics(members: list[tuple[Mapping[str, Any], int]]) -> dict[str, Any]:
        first = [e for e, n in members if n == 1]
        views = sum(1 for e in first if e["event_type"] == "page_view")
        errors = sum(1 for e in first if e["event_type"] == "error")
        vitals = [e for e in first if e["event_type"] == "web_vital"]
        answers = [e for e in first if e["event_type"] == "feedback"]
        nps = [e["feedback_score"] for e in answers if e["feedback_scale"] == "0-10"]
        csat = [e["feedback_score"] for e in answers if e["feedback_scale"] == "1-5"]
        promoters = sum(1 for score in nps if score >= 9)
        detractors = sum(1 for score in nps if score <= 6)
        return {
            "events": len(first),
            "page_views": views,
            "active_users": len(people_of(first)),
            "error_events": errors,
            "conversions": sum(1 for e in first if e["event_name"] in conversions),
            "duplicates": sum(1 for _, n in members if n > 1),
            "error_rate": errors / views if views else None,
            "lcp_p75": percentile_linear([e["lcp_ms"] for e in vitals if e.get("lcp_ms") is not None], 0.75),
            "inp_p75": percentile_linear([e["inp_ms"] for e in vitals if e.get("inp_ms") is not None], 0.75),
            "cls_p75": percentile_linear([e["cls"] for e in vitals if e.get("cls") is not None], 0.75),
            "feedback_responses": len(answers),
            "nps_responses": len(nps),
            "nps_score_sum": sum(nps),
            "nps_promoters": promoters,
            "nps_passives": len(nps) - promoters - detractors,
            "nps_detractors": detractors,
            "nps": 100 * (promoters - detractors) / len(nps) if nps else None,
            "csat_responses": len(csat),
            "csat_score_sum": sum(csat),
        }

    def key(start: int, end: int, dimension: str, value: str) -> dict[str, Any]:
        return {"window_start": start, "window_end": end, "dimension": dimension, "dimension_value": value}

    def users_sketch(members: list[tuple[Mapping[str, Any], int]]) -> bytes:
        # kpi_1m.users_sketch: the DataSketches HLL bytes of the row's people (logins stitched) as stored
        # (their pseudonyms), keys sorted first: exactly what io.uxstream.udf.UserSketch writes
        # (jobs.common.sketches).
        users = people_of(e for e, n in members if n == 1)
        return sketches.user_sketch_bytes(pseudonym(u) if pseudonym else u for u in users)

    def minute(ts: int) -> list[tuple[int, int]]:
        return [(_floor(ts, tumble_ms), _floor(ts, tumble_ms) + tumble_ms)]

    tumbling = window_rows(minute)
    bots = window_rows(minute, bot_events)
    kpi_1m = [
        {
            **key(*k),
            **metrics(v),
            "revision": 1,
            "users_sketch": users_sketch(v),
            "bot_events": sum(1 for _, n in bots.get(k, []) if n == 1),
        }
        for k, v in tumbling.items()
    ]

    def hop(ts: int) -> list[tuple[int, int]]:
        last_start = _floor(ts, sliding_step_ms)
        starts = range(last_start - sliding_size_ms + sliding_step_ms, last_start + 1, sliding_step_ms)
        return [(s, s + sliding_size_ms) for s in starts]

    sliding = []
    for k, members in window_rows(hop).items():
        m = metrics(members)
        sliding.append(
            {**key(*k), **{n: m[n] for n in ("active_users", "page_views", "error_events", "error_rate")}}
        )

    def cumulate(ts: int) -> list[tuple[int, int]]:
        day = _local_day_start(ts, zone)
        next_day = _local_day_start(day + 26 * 3_600_000, zone)
        first_end = day + (_floor(ts - day, cumulative_step_ms) + cumulative_step_ms)
        return [(day, end) for end in range(first_end, next_day + 1, cumulative_step_ms)]

    daily = []
    for (start, end, dimension, value), members in window_rows(cumulate).items():
        m = metrics(members)
        local = datetime.fromtimestamp(start / 1000, zone)
        daily.append(
            {
                "day": local.date(),
                **key(start, end, dimension, value),
                "daily_active_users": m["active_users"],
                "page_views": m["page_views"],
            }
        )

    return {
        "sessions": sessions,
        "kpi_1m": kpi_1m,
        "kpi_sliding_5m": sliding,
        "kpi_daily_cumulative": daily,
        "late_events": list(ledger.values()),
    }


def window_users(
    events: Iterable[Any],
    *,
    dimensions: tuple[str, ...] = ("page_path", "country", "device_type"),
    out_of_orderness_ms: int = 5_000,
    max_future_skew_ms: int = 5 * 60_000,
    tumble_ms: int = 60_000,
    enrichment: EnrichmentSettings | None = None,
) -> dict[tuple[int, str, str], frozenset[str]]:
    """The exact set of (raw) user keys of each kpi_1m row, by (window_start, dimension, dimension_value):
    the people `active_users` counts and `users_sketch` sketches (as pseudonyms; logins stitched within the
    row: `people_of`), after the decode step's enrichment (derived country/device, bots excluded unless
    `enrichment` says otherwise: as `expected`). The exact unique users of a range and segment is the size
    of the union of its rows' sets, what merging their sketches estimates (an anonymous id counted in one
    minute stays counted even if a later minute links it: sketches cannot forget a key)."""
    enrichment = enrichment or EnrichmentSettings()
    users: dict[tuple[int, str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for arrival in arrivals(
        events,
        out_of_orderness_ms=out_of_orderness_ms,
        max_future_skew_ms=max_future_skew_ms,
        bots=BotBehaviour.of(enrichment, out_of_orderness_ms),
    ):
        if arrival.kind != ON_TIME:
            continue
        event, bot = enrich(arrival.event, enrichment)
        bot = bot or arrival.acts_bot
        start = _floor(int(event["ts"]), tumble_ms)
        counted = arrival.occurrence == 1 and not (bot and enrichment.exclude_bots)
        for dimension, value in _dims(event, dimensions):
            # Every on-time event makes its window's row (a duplicate counts in `duplicates`, an excluded
            # bot in `bot_events`), with or without a user in the set.
            members = users[(start, dimension, value)]
            if counted:
                members.append(event)
    return {key: frozenset(people_of(members)) for key, members in users.items()}


def expected_kpi_messages(
    rows: Mapping[str, list[dict[str, Any]]], *, tumble_ms: int = 60_000, sliding_size_ms: int = 5 * 60_000
) -> list[tuple[str, dict[str, Any]]]:
    """The (key, kpi_window.v2 record) messages the job publishes for `expected(...)`'s KPI rows."""
    tumbling, sliding, daily = window_kinds(tumble_ms, sliding_size_ms)
    renamed = {
        "lcp_p75": "lcp_p75_ms",
        "inp_p75": "inp_p75_ms",
        "daily_active_users": "active_users",
    }
    sources = ((tumbling, "kpi_1m"), (sliding, "kpi_sliding_5m"), (daily, "kpi_daily_cumulative"))
    messages = []
    for kind, table in sources:
        for row in rows[table]:
            metrics = {
                renamed.get(name, name): value
                for name, value in row.items()
                if renamed.get(name, name) in KPI_METRICS
            }
            record = kpi_window_record(
                kind,
                row["window_start"],
                row["window_end"],
                row["dimension"],
                row["dimension_value"],
                metrics,
                row.get("revision", FIRST_REVISION),
            )
            messages.append((kpi_message_key(kind, row["dimension"], row["dimension_value"]), record))
    return messages
