"""Names of the database tables and views the jobs write and read: one place for every name.

The DDL lives in `migrations/` (V0002__sessionize.sql; Timescale-only parts in migrations/timescaledb/).
Jobs, the data-quality suite (`uxstream validate`), the run-local summary and tests import these names
instead of spelling them out.
"""

from __future__ import annotations

from typing import Final

# --- sessionize: tables (hypertables on TimescaleDB; the time column is part of every unique key) ---
SESSIONS: Final = "sessions"
"""One row per session; key (session_id, session_start); hypertable on session_start."""
KPI_1M: Final = "kpi_1m"
"""Tumbling 1-minute KPI windows per dimension; key (window_start, dimension, dimension_value)."""
KPI_SLIDING_5M: Final = "kpi_sliding_5m"
"""Sliding 5-minute windows every minute; key (window_start, dimension, dimension_value)."""
KPI_DAILY: Final = "kpi_daily_cumulative"
"""Cumulative per local day, one row per 5-minute step; key (window_end, dimension, dimension_value)."""
LATE_EVENTS: Final = "late_events"
"""The late-event ledger (all jobs); key (job, event_id, event_time)."""

SESSIONIZE_TABLES: Final = (SESSIONS, KPI_1M, KPI_SLIDING_5M, KPI_DAILY, LATE_EVENTS)
"""Every table the sessionize job writes, in dependency-free order."""

# --- sessionize: views (plain SQL, identical on PostgreSQL and TimescaleDB) ---
SESSIONS_STARTED_1M: Final = "sessions_started_1m"
"""Sessions started per 1-minute window and dimension (global, entry page, country, device type)."""
LATE_EVENTS_1M: Final = "late_events_1m"
"""Late events (reason 'late', job sessionize) per 1-minute window of their event time and dimension."""
KPI_1M_FULL: Final = "kpi_1m_full"
"""kpi_1m plus `new_sessions` and `late_events` counts for the same window and dimension value."""

SESSIONIZE_VIEWS: Final = (SESSIONS_STARTED_1M, LATE_EVENTS_1M, KPI_1M_FULL)

# --- TimescaleDB only (absent on plain PostgreSQL) ---
KPI_1H: Final = "kpi_1h"
"""Hourly continuous aggregate over kpi_1m (sums of counts; rates recomputed from the sums)."""

# --- dimension values ---
DIM_GLOBAL: Final = "global"
DIM_PAGE_PATH: Final = "page_path"
DIM_COUNTRY: Final = "country"
DIM_DEVICE_TYPE: Final = "device_type"
ALL_VALUE: Final = "(all)"
"""dimension_value of the `global` dimension."""
NONE_VALUE: Final = "(none)"
"""dimension_value when the event (or session) lacks the dimension."""

LATE_JOB_SESSIONIZE: Final = "sessionize"
"""`late_events.job` of the rows the sessionize job writes."""

# --- funnels (migrations/V0003__funnels.sql; hypertables in migrations/timescaledb/T0003__funnels.sql) ---
FUNNEL_ATTEMPTS: Final = "funnel_attempts"
"""One row per ended funnel attempt; key (attempt_id, entered_at); hypertable on entered_at."""
FUNNEL_WINDOWS: Final = "funnel_windows"
"""Funnel metrics per tumbling window of entry time and dimension value; key (funnel, window_start,
dimension, dimension_value); hypertable on window_start."""
FUNNEL_WINDOW_STEPS: Final = "funnel_window_steps"
"""Per-step rows of funnel_windows (reached, conversion from the previous step, drop-off); key (funnel,
window_start, dimension, dimension_value, step); hypertable on window_start."""

FUNNELS_TABLES: Final = (FUNNEL_ATTEMPTS, FUNNEL_WINDOWS, FUNNEL_WINDOW_STEPS)
"""Every table the funnels job writes besides the late-event ledger (rows with job = 'funnels')."""

LATE_JOB_FUNNELS: Final = "funnels"
"""`late_events.job` of the rows the funnels job writes."""

# --- anomaly (migrations/V0004__anomaly.sql) ---
ANOMALIES: Final = "anomalies"
"""One row per alert, upserted per lifecycle message; key (alert_id, opened_window_start)."""

# --- privacy (migrations/V0005__privacy.sql) ---
PRIVACY_REQUESTS: Final = "privacy_requests"
"""Audit trail of erase and export requests (by pseudonym); key request_id."""
ERASED_PSEUDONYMS: Final = "erased_pseudonyms"
"""The erased-pseudonym list (migrations/V0008__erasure.sql): written by `uxstream privacy erase`, read by the
jobs' lookup (io.uxstream.udf.ErasedUser) so the erased users' events are dropped; key pseudonym."""
SMOKE_EVENTS: Final = "smoke_events"
"""Output of the smoke pipeline (jobs/smoke): one row per event with the demo's raw user_id."""
USER_KEYED_TABLES: Final = (
    (SESSIONS, ("user_key", "device_key"), "session_start"),
    (FUNNEL_ATTEMPTS, ("user_key",), "entered_at"),
    (LATE_EVENTS, ("user_key",), "event_time"),
)
"""(table, pseudonymised key columns, time column) of every table that holds rows of one user: what
`uxstream privacy erase` deletes and `export` returns (a row is the user's when any key column names one of
the user's pseudonyms: sessions also by the device they ran on, README "Identity")."""
RAW_USER_KEYED_TABLES: Final = ((SMOKE_EVENTS, ("user_id",), "event_time"),)
"""The same for tables that hold the raw user id (the smoke demo only): erased and exported by raw id."""
