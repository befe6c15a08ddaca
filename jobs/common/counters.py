"""The jobs' own counters: one place for their names (job SQL, tests, dashboards).

Each is the counter `total` of the metric group `uxstream.<name>`, incremented in the JVM by the
uxstream-udf functions (`count_when`, `occurrence_count`, `encode_dead_letter`; jvm/udf), because Python
UDF metrics are not reported in thread mode. Flink scopes them per operator; the Prometheus reporter
exports `flink_taskmanager_job_task_operator_uxstream_<name>_total`, labelled with job and operator.
"""

from __future__ import annotations

from typing import Final

EVENTS_IN: Final = "events_in"
"""Every record read from the input topic (valid, dead-lettered, late, duplicate): the source's watermark."""
DEAD_LETTERS: Final = "dead_letters"
"""Records sent to the DLQ (also per reason: `..._dead_letters_reason_count{reason=…}`)."""
DUPLICATES: Final = "duplicates"
"""On-time events whose event_id was seen before (the dedup operator)."""
LATE_EVENTS: Final = "late_events"
"""Late-ledger rows with reason 'late' (at or below the watermark on arrival)."""
FUTURE_EVENTS: Final = "future_events"
"""Late-ledger rows with reason 'future_timestamp'."""
ERASED_EVENTS: Final = "erased_events"
"""Events of erased users dropped by the classification (io.uxstream.udf.ErasedUser; README "Privacy")."""
SESSIONS_CLOSED: Final = "sessions_closed"
"""Final session rows (sessionize)."""
ALERTS_OPENED: Final = "alerts_opened"
"""Alert lifecycles opened (anomaly)."""
ALERTS_RESOLVED: Final = "alerts_resolved"
"""Alert lifecycles resolved (anomaly)."""

ANOMALY_SERIES_EXPIRED: Final = "anomaly_series_expired"
"""Series groups (job keys) of the anomaly detector expired after the series TTL without a window."""

PER_JOB: Final = {
    "sessionize": (EVENTS_IN, DEAD_LETTERS, DUPLICATES, LATE_EVENTS, FUTURE_EVENTS, SESSIONS_CLOSED),
    "funnels": (EVENTS_IN, DEAD_LETTERS, DUPLICATES, LATE_EVENTS, FUTURE_EVENTS),
    "anomaly": (ALERTS_OPENED, ALERTS_RESOLVED, ANOMALY_SERIES_EXPIRED),
}


def prometheus_name(counter: str) -> str:
    """The name the Prometheus reporter gives the counter of a job's operator."""
    return f"flink_taskmanager_job_task_operator_uxstream_{counter}_total"


def ledger_counters(reason: str) -> str:
    """WHERE conjuncts counting late-ledger rows by `reason` ('late' / 'future_timestamp'), for the one
    statement that writes a job's ledger rows (always TRUE)."""
    return (
        f"count_when('{LATE_EVENTS}', {reason} = 'late') "
        f"AND count_when('{FUTURE_EVENTS}', {reason} = 'future_timestamp')"
    )
