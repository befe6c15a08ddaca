"""Session rules of SEMANTICS.md ("Sessions") as a streaming state machine. Pure Python, no pyflink.

The job feeds each user's clean events (valid, first occurrence, not late, not future) in event-time
order, a batch at a time, to `SessionState.add`; it calls `SessionState.expire` when the watermark passes
the open session's end + gap. Closed sessions come back as final `SessionRow`s with the reason the next
session started; the open one can be snapshotted as a provisional row (`is_final=False`, reason `open`).

Rules, applied to each event `e` after the open session's last event `p` (start `S`), first match wins:
1. `gap`: e.ts - p.ts > gap (a gap of exactly `gap` stays in the session);
2. `midnight`: e falls on a later local day than p in the session time zone (when enabled);
3. `max_duration`: e.ts - S > max duration (the session would exceed it).
A session that ends because the watermark passed end + gap is final with reason `gap`.

Identity (README "Identity: one visitor across a login"): sessions run per device key (anonymous_id, else
user_id). A session's user key is the user id of its earliest event that carries one (ties: the least user
id); a session without any belongs to the user the device was last linked to (the latest earlier event
carrying a user id; ties: the greatest) when that event is at most `identity_ttl_ms` before the session's
start, else to the device key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final, Literal
from zoneinfo import ZoneInfo

from jobs.common.settings import DEFAULT_IDENTITY_TTL_MS

SplitReason = Literal["gap", "midnight", "max_duration", "open"]

MINUTE_MS: Final = 60_000
DEFAULT_GAP_MS: Final = 30 * MINUTE_MS
DEFAULT_MAX_DURATION_MS: Final = 24 * 60 * MINUTE_MS
ENGAGED_MIN_DURATION_MS: Final = 10_000
"""GA4: an engaged session has more than 10 seconds of engaged time (`engaged_time`) …"""
ENGAGED_MIN_PAGE_VIEWS: Final = 2
"""… or has at least 2 page views (or at least one conversion)."""
FEEDBACK_EVENT: Final = "feedback"
"""The event type of a survey answer (jobs.common.contract.FEEDBACK; logic.py imports nothing of jobs)."""
MAX_SESSION_FEEDBACK: Final = 20
"""Most feedback entries a session row lists (the first, in time order); `feedback_responses` counts all."""


@dataclass(frozen=True)
class SessionRules:
    gap_ms: int = DEFAULT_GAP_MS
    timezone: str = "UTC"
    split_at_midnight: bool = True
    max_duration_ms: int = DEFAULT_MAX_DURATION_MS
    conversion_events: frozenset[str] = frozenset({"order_completed", "signup_completed"})
    identity_ttl_ms: int = DEFAULT_IDENTITY_TTL_MS

    def __post_init__(self) -> None:
        if self.identity_ttl_ms < 0:
            raise ValueError(f"identity TTL must not be negative, got {self.identity_ttl_ms} ms")
        if self.gap_ms <= 0:
            raise ValueError(f"session gap must be positive, got {self.gap_ms} ms")
        if self.max_duration_ms <= 0:
            raise ValueError(f"max session duration must be positive, got {self.max_duration_ms} ms")
        ZoneInfo(self.timezone)  # raises ZoneInfoNotFoundError for an unknown zone

    def next_midnight_ms(self, ts: int) -> int:
        """Epoch ms of the first local midnight after `ts` in the session time zone."""
        zone = ZoneInfo(self.timezone)
        local = datetime.fromtimestamp(ts / 1000, zone)
        next_day = (local + timedelta(days=1)).date()
        midnight = datetime(next_day.year, next_day.month, next_day.day, tzinfo=zone)
        return int(midnight.timestamp() * 1000)


@dataclass(frozen=True)
class SessionEvent:
    """What the sessionizer needs of one event."""

    ts: int
    event_id: str
    event_type: str
    event_name: str
    page_path: str | None = None
    referrer: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    device_type: str | None = None
    browser: str | None = None
    country: str | None = None
    engagement_time_ms: int | None = None
    """Foreground time the client reports (heartbeats, page pings); None when it reports none."""
    survey_id: str | None = None
    feedback_scale: str | None = None
    feedback_score: int | None = None
    feedback_comment: str | None = None
    """Of a feedback event (schema v3): its survey, scale, score and comment (scrubbed by the decode step)."""
    user_id: str | None = None
    """The event's user id (None: anonymous); what attributes the session to a user (identity)."""


@dataclass(frozen=True)
class SessionRow:
    """One row of the sessions table."""

    session_id: str
    user_key: str
    session_start: int
    session_end: int
    duration_ms: int
    event_count: int
    page_views: int
    distinct_pages: int
    entry_page: str | None
    exit_page: str | None
    referrer: str | None
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    device_type: str | None
    browser: str | None
    country: str | None
    error_count: int
    conversions: int
    engaged: bool
    bounce: bool
    split_reason: SplitReason
    is_final: bool
    engaged_time_ms: int
    """Foreground time (README "Engaged time"); after the older fields, as the column V0013 added."""
    feedback_responses: int = 0
    """Feedback events of the session (README "Feedback"; V0014)."""
    feedback: str | None = None
    """The first `MAX_SESSION_FEEDBACK` of them in time order as a JSON array (`feedback_json`); None when
    the session has none."""
    device_key: str | None = None
    """The (stored form of the) device key the session ran under (V0015: erase/export by anonymous id)."""


def feedback_entry(event: SessionEvent) -> dict[str, object]:
    """One entry of `sessions.feedback` (README "Feedback")."""
    return {
        "ts": event.ts,
        "survey_id": event.survey_id,
        "scale": event.feedback_scale,
        "score": event.feedback_score,
        "comment": event.feedback_comment,
    }


def feedback_json(entries: Sequence[dict[str, object]]) -> str | None:
    """The `sessions.feedback` JSON text of a session's entries (None when there are none)."""
    if not entries:
        return None
    return json.dumps(list(entries), ensure_ascii=False, separators=(",", ":"))


def engaged_time(duration_ms: int, reported_ms: int | None) -> int:
    """A session's engaged time (issue 22 item 5, README "Engaged time"): the foreground time its events
    report (`engagement_time_ms` of heartbeats and page pings, summed) when any event reports it, else the
    span between its first and last event (a client that reports nothing)."""
    return duration_ms if reported_ms is None else reported_ms


def session_id(user_key: str, start_ms: int) -> str:
    """Deterministic id: the same user and start give the same id in every run and replay."""
    return hashlib.sha256(f"{user_key}\x1f{start_ms}".encode()).hexdigest()[:32]


@dataclass
class OpenSession:
    """The running summary of a user's open session (kept in Flink state between batches)."""

    start: int
    end: int
    first: SessionEvent
    midnight_ms: int
    """First local midnight after the last event (only meaningful when midnight splits are on)."""
    event_count: int = 0
    page_views: int = 0
    pages: set[str] = field(default_factory=set)
    entry_page: str | None = None
    exit_page: str | None = None
    error_count: int = 0
    conversions: int = 0
    reported_engagement_ms: int | None = None
    """Sum of the events' engagement_time_ms; None while no event of the session carried one."""
    feedback_responses: int = 0
    feedback: list[dict[str, object]] = field(default_factory=list)
    """The first MAX_SESSION_FEEDBACK feedback entries, in time order."""
    first_user: tuple[int, str] | None = None
    """(ts, user id) of the earliest event carrying a user id (ties: the least id): the session's owner."""
    last_user: tuple[int, str] | None = None
    """(ts, user id) of the latest event carrying a user id (ties: the greatest id): the next link."""

    def row(
        self, user_key: str, reason: SplitReason, is_final: bool, device_key: str | None = None
    ) -> SessionRow:
        duration = self.end - self.start
        engaged_ms = engaged_time(duration, self.reported_engagement_ms)
        engaged = (
            engaged_ms > ENGAGED_MIN_DURATION_MS
            or self.page_views >= ENGAGED_MIN_PAGE_VIEWS
            or self.conversions >= 1
        )
        first = self.first
        return SessionRow(
            session_id=session_id(user_key, self.start),
            user_key=user_key,
            session_start=self.start,
            session_end=self.end,
            duration_ms=duration,
            event_count=self.event_count,
            page_views=self.page_views,
            distinct_pages=len(self.pages),
            entry_page=self.entry_page,
            exit_page=self.exit_page,
            referrer=first.referrer,
            utm_source=first.utm_source,
            utm_medium=first.utm_medium,
            utm_campaign=first.utm_campaign,
            device_type=first.device_type,
            browser=first.browser,
            country=first.country,
            error_count=self.error_count,
            conversions=self.conversions,
            engaged_time_ms=engaged_ms,
            engaged=engaged,
            bounce=not engaged,
            split_reason=reason,
            is_final=is_final,
            feedback_responses=self.feedback_responses,
            feedback=feedback_json(self.feedback),
            device_key=device_key,
        )


def event_order(event: SessionEvent) -> tuple[int, str]:
    """Events are ordered by event time, ties broken by event id (deterministic)."""
    return (event.ts, event.event_id)


class SessionState:
    """One device's sessionizer. `open` is the session state (None between sessions); `link` is the
    device's identity link: (ts, user id) of the latest event carrying a user id of its closed sessions.

    `key` maps a raw id to what the rows store (the job: the pseudonymizer); `user_key` is the device key."""

    def __init__(
        self,
        user_key: str,
        rules: SessionRules,
        open_session: OpenSession | None = None,
        *,
        link: tuple[int, str] | None = None,
        key: Callable[[str], str] | None = None,
    ) -> None:
        self.user_key = user_key
        self.rules = rules
        self.open = open_session
        self.link = link
        self.key: Callable[[str], str] = key or (lambda raw: raw)

    def owner(self, session: OpenSession) -> str:
        """The raw user key of `session` (module docstring, "Identity")."""
        if session.first_user is not None:
            return session.first_user[1]
        link = self.link
        if link is not None and session.start - link[0] <= self.rules.identity_ttl_ms:
            return link[1]
        return self.user_key

    def _close(self, reason: SplitReason, is_final: bool) -> SessionRow:
        session = self.open
        assert session is not None
        row = session.row(self.key(self.owner(session)), reason, is_final, self.key(self.user_key))
        last = session.last_user
        if is_final and last is not None and (self.link is None or last > self.link):
            self.link = last
        return row

    def split_reason(self, event: SessionEvent) -> SplitReason | None:
        """Why `event` starts a new session, or None when it continues the open one."""
        current = self.open
        assert current is not None
        if event.ts - current.end > self.rules.gap_ms:
            return "gap"
        if self.rules.split_at_midnight and event.ts >= current.midnight_ms:
            return "midnight"
        if event.ts - current.start > self.rules.max_duration_ms:
            return "max_duration"
        return None

    def _start(self, event: SessionEvent) -> OpenSession:
        midnight = self.rules.next_midnight_ms(event.ts) if self.rules.split_at_midnight else 0
        return OpenSession(start=event.ts, end=event.ts, first=event, midnight_ms=midnight)

    def _extend(self, session: OpenSession, event: SessionEvent) -> None:
        if event.ts > session.end:
            if self.rules.split_at_midnight and event.ts >= session.midnight_ms:
                session.midnight_ms = self.rules.next_midnight_ms(event.ts)
            session.end = event.ts
        session.event_count += 1
        if event.event_type == "page_view":
            session.page_views += 1
            if event.page_path is not None:
                session.pages.add(event.page_path)
                if session.entry_page is None:
                    session.entry_page = event.page_path
                session.exit_page = event.page_path
        elif event.event_type == "error":
            session.error_count += 1
        if event.event_name in self.rules.conversion_events:
            session.conversions += 1
        if event.engagement_time_ms is not None:
            session.reported_engagement_ms = (session.reported_engagement_ms or 0) + event.engagement_time_ms
        if event.user_id:
            mark = (event.ts, event.user_id)
            if session.first_user is None or mark < session.first_user:
                session.first_user = mark
            if session.last_user is None or mark > session.last_user:
                session.last_user = mark
        if event.event_type == FEEDBACK_EVENT:
            session.feedback_responses += 1
            if len(session.feedback) < MAX_SESSION_FEEDBACK:
                session.feedback.append(feedback_entry(event))

    def add(self, events: Iterable[SessionEvent]) -> list[SessionRow]:
        """Apply a batch of events (any order; they must not be older than the open session's end
        beyond what the watermark allows). Returns the sessions this batch closed, final."""
        closed: list[SessionRow] = []
        for event in sorted(events, key=event_order):
            if self.open is None:
                self.open = self._start(event)
            else:
                reason = self.split_reason(event)
                if reason is not None:
                    closed.append(self._close(reason, is_final=True))
                    self.open = self._start(event)
            self._extend(self.open, event)
        return closed

    def snapshot(self) -> SessionRow | None:
        """The open session as a provisional row (`is_final=False`, reason `open`)."""
        return None if self.open is None else self._close("open", is_final=False)

    def expiry_ms(self) -> int | None:
        """Event time at which the open session becomes final: its end + gap."""
        return None if self.open is None else self.open.end + self.rules.gap_ms

    def expire(self) -> SessionRow | None:
        """Close the open session because the watermark passed end + gap."""
        if self.open is None:
            return None
        row = self._close("gap", is_final=True)
        self.open = None
        return row


def sessionize_batch(
    user_key: str,
    rules: SessionRules,
    events: Sequence[SessionEvent],
    *,
    link: tuple[int, str] | None = None,
    key: Callable[[str], str] | None = None,
) -> list[SessionRow]:
    """All sessions of a complete, finished event list of one device (for tests, backfills and the JVM's
    gap-sessions); `link` is the device's identity link before the first event."""
    state = SessionState(user_key, rules, link=link, key=key)
    rows = state.add(events)
    last = state.expire()
    return [*rows, *([last] if last else [])]


SESSION_EVENT_FIELDS: Final = (
    "ts",
    "event_id",
    "event_type",
    "event_name",
    "page_path",
    "referrer",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "device_type",
    "browser",
    "country",
    "engagement_time_ms",
    "survey_id",
    "feedback_scale",
    "feedback_score",
    "feedback_comment",
    "user_id",
)
"""The order in which the job packs each event of a gap-session (a JSON array per event). Fields are only
ever appended: an event packed before a field existed unpacks with the field's default (state restored
from an older version keeps working)."""


def events_from_json(packed: str) -> list[SessionEvent]:
    """Unpack a gap-session's events: a JSON array of arrays in `SESSION_EVENT_FIELDS` order."""
    import json

    return [SessionEvent(*values) for values in json.loads(packed)]


def split_gap_session(
    device_key: str,
    rules: SessionRules,
    packed: str,
    end_reason: SplitReason = "gap",
    *,
    linked_user: str | None = None,
    linked_ts: int | None = None,
    key: Callable[[str], str] | None = None,
) -> list[SessionRow]:
    """Final sessions of a run of a device's events that the JVM closed (`session_events`).

    The JVM emits either everything between two gaps > session gap (`end_reason` `gap`) or one session it
    closed early by a midnight or max-duration split (`end_reason` says which: the state bound of a user
    who never goes idle), with the device's identity link before them (`linked_user` at `linked_ts`). This
    applies the midnight and max-duration splits, attributes each session to its user and computes the
    rows; the last session ends with `end_reason`, the others with the reason the next one started.
    """
    link = None if linked_user is None or linked_ts is None else (linked_ts, linked_user)
    rows = sessionize_batch(device_key, rules, events_from_json(packed), link=link, key=key)
    if rows and end_reason != rows[-1].split_reason:
        rows[-1] = replace(rows[-1], split_reason=end_reason)
    return rows


# ------------------------------------------------------------------ KPI windows on Kafka (kpi_window.v2)

KPI_METRICS: Final = (
    "events",
    "page_views",
    "active_users",
    "new_sessions",
    "error_events",
    "error_rate",
    "conversions",
    "lcp_p75_ms",
    "inp_p75_ms",
    "cls_p75",
    "duplicates",
    "late_events",
    "bot_events",
    "feedback_responses",
    "nps_responses",
    "nps",
    "csat_responses",
    "csat_score_sum",
)
"""Metric fields of kpi_window.v2, in schema order (a window kind that does not compute one sends null):
v1's, then v2's bot and feedback counts (tumbling windows only)."""
KPI_V1_METRIC_COUNT: Final = 12
"""KPI_METRICS[:12] are kpi_window.v1's (before `revision` in the schema), the rest v2's (after it)."""
DOUBLE_KPI_METRICS: Final = frozenset({"error_rate", "lcp_p75_ms", "inp_p75_ms", "cls_p75", "nps"})
"""The metrics of type double; the others are long."""
FIRST_REVISION: Final = 1
"""`revision` of a window's first final row (tables and topic alike); each correction increments it."""
KPI_KEY_SEPARATOR: Final = "|"


def duration_label(ms: int) -> str:
    """`60000` → `1m`, `300000` → `5m`, `3600000` → `1h`, `30000` → `30s`, `1500` → `1500ms`."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", MINUTE_MS), ("s", 1_000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def window_kinds(tumble_ms: int, sliding_size_ms: int) -> tuple[str, str, str]:
    """`window_kind` names of the tumbling, sliding and cumulative windows (`tumbling_1m`, …)."""
    tumbling, sliding = duration_label(tumble_ms), duration_label(sliding_size_ms)
    return f"tumbling_{tumbling}", f"sliding_{sliding}", "cumulative_day"


def kpi_message_key(window_kind: str, dimension: str, dimension_value: str) -> str:
    """Kafka key of a KPI window: its series, so one series stays in one partition, in window order."""
    return KPI_KEY_SEPARATOR.join((window_kind, dimension, dimension_value))


def kpi_window_record(
    window_kind: str,
    window_start_ms: int,
    window_end_ms: int,
    dimension: str,
    dimension_value: str,
    metrics: dict[str, int | float | None],
    revision: int,
) -> dict[str, object]:
    """A kpi_window.v2 record; metrics not given are null. Raises ValueError for an unknown metric."""
    unknown = set(metrics) - set(KPI_METRICS)
    if unknown:
        raise ValueError(f"not kpi_window.v2 metrics: {', '.join(sorted(unknown))}")
    v1, v2 = KPI_METRICS[:KPI_V1_METRIC_COUNT], KPI_METRICS[KPI_V1_METRIC_COUNT:]
    return {  # the schema's field order: v2 appends its fields after v1's last one, `revision`
        "window_kind": window_kind,
        "window_start": window_start_ms,
        "window_end": window_end_ms,
        "dimension": dimension,
        "dimension_value": dimension_value,
        **{name: metrics.get(name) for name in v1},
        "revision": revision,
        **{name: metrics.get(name) for name in v2},
    }
