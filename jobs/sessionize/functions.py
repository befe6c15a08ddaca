"""Flink adapters of the sessionize job: the Python table function that turns gap-sessions into rows, and
the scalar function that encodes final KPI windows as kpi_window.v2 records for the ux.kpi topic."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Final, cast

from pyflink.table import DataTypes
from pyflink.table.udf import FunctionContext, ScalarFunction, TableFunction, udf, udtf

from jobs.common import contract, topics
from jobs.common.chaos import FailOnce
from jobs.common.privacy import PrivacySettings, Pseudonymizer
from jobs.sessionize.logic import (
    DOUBLE_KPI_METRICS,
    KPI_METRICS,
    SessionRules,
    SplitReason,
    kpi_window_record,
    split_gap_session,
)

END_REASONS: Final = frozenset({"gap", "midnight", "max_duration"})
"""The reasons session_events (jvm/udf io.uxstream.udf.SessionEvents) gives for the end of what it emits."""

SESSION_ROW_TYPES = [
    DataTypes.STRING(),  # session_id
    DataTypes.STRING(),  # user_key (pseudonym)
    DataTypes.BIGINT(),  # session_start (epoch ms)
    DataTypes.BIGINT(),  # session_end (epoch ms)
    DataTypes.BIGINT(),  # duration_ms
    DataTypes.INT(),  # event_count
    DataTypes.INT(),  # page_views
    DataTypes.INT(),  # distinct_pages
    DataTypes.STRING(),  # entry_page
    DataTypes.STRING(),  # exit_page
    DataTypes.STRING(),  # referrer
    DataTypes.STRING(),  # utm_source
    DataTypes.STRING(),  # utm_medium
    DataTypes.STRING(),  # utm_campaign
    DataTypes.STRING(),  # device_type
    DataTypes.STRING(),  # browser
    DataTypes.STRING(),  # country
    DataTypes.INT(),  # error_count
    DataTypes.INT(),  # conversions
    DataTypes.BIGINT(),  # engaged_time_ms
    DataTypes.BOOLEAN(),  # engaged
    DataTypes.BOOLEAN(),  # bounce
    DataTypes.STRING(),  # split_reason
    DataTypes.BOOLEAN(),  # is_final
    DataTypes.INT(),  # feedback_responses
    DataTypes.STRING(),  # feedback (JSON array text; the sink column is JSONB)
    DataTypes.STRING(),  # device_key (pseudonym)
]


class SplitSessions(TableFunction):  # type: ignore[misc]
    """(raw device key, packed events of one gap-session, end reason, the device's identity link) → one row
    per final session, keyed by its user's pseudonym (jobs/common/privacy.py; the user is resolved by the
    identity rule of logic.py): no raw id leaves this function."""

    def __init__(self, rules: SessionRules) -> None:
        self.rules = rules
        self.chaos: FailOnce | None = None
        self.pseudonym: Pseudonymizer | None = None

    def open(self, function_context: FunctionContext) -> None:
        # The key is read where the function runs (a TaskManager), never shipped inside the job graph.
        self.pseudonym = Pseudonymizer(PrivacySettings.from_env())

    def eval(
        self, device_key: str, packed: str, end_reason: str, linked_user: str | None, linked_ts: int | None
    ) -> Iterator[tuple[object, ...]]:
        if self.chaos is None:
            self.chaos = FailOnce()  # reads the environment of the worker, not the client
        self.chaos("sessionize.split_sessions")
        assert self.pseudonym is not None
        if end_reason not in END_REASONS:
            raise ValueError(f"session_events sent an unknown end reason {end_reason!r}")
        reason = cast(SplitReason, end_reason)
        rows = split_gap_session(
            device_key,
            self.rules,
            packed,
            reason,
            linked_user=linked_user,
            linked_ts=linked_ts,
            key=self.pseudonym,
        )
        for row in rows:
            yield (
                row.session_id,
                row.user_key,
                row.session_start,
                row.session_end,
                row.duration_ms,
                row.event_count,
                row.page_views,
                row.distinct_pages,
                row.entry_page,
                row.exit_page,
                row.referrer,
                row.utm_source,
                row.utm_medium,
                row.utm_campaign,
                row.device_type,
                row.browser,
                row.country,
                row.error_count,
                row.conversions,
                row.engaged_time_ms,
                row.engaged,
                row.bounce,
                row.split_reason,
                row.is_final,
                row.feedback_responses,
                row.feedback,
                row.device_key,
            )


def split_sessions(rules: SessionRules) -> object:
    """The UDTF to register as `split_sessions`."""
    return udtf(SplitSessions(rules), result_types=SESSION_ROW_TYPES)


KPI_SUBJECT = f"{topics.KPI}-value"
"""Catalog subject of the KPI window records (schemas/avro/catalog.json), whatever the topic is called."""


def _epoch_ms(utc_wall_clock: datetime) -> int:
    """A `to_utc(...)` TIMESTAMP (naive, UTC wall clock) as epoch milliseconds."""
    return int(utc_wall_clock.replace(tzinfo=UTC).timestamp() * 1000)


class EncodeKpiWindow(ScalarFunction):  # type: ignore[misc]
    """(window kind, UTC start/end, dimension, value, the metrics of KPI_METRICS, revision) → the
    Confluent-framed kpi_window.v2 record. Called once per final window row, not per event."""

    def open(self, function_context: FunctionContext) -> None:
        self.entry = contract.load_catalog().latest(KPI_SUBJECT)

    def eval(
        self,
        window_kind: str,
        window_start: datetime,
        window_end: datetime,
        dimension: str,
        dimension_value: str,
        *values: int | float | None,
    ) -> bytes:
        *metrics, revision = values
        record = kpi_window_record(
            window_kind,
            _epoch_ms(window_start),
            _epoch_ms(window_end),
            dimension,
            dimension_value,
            dict(zip(KPI_METRICS, metrics, strict=True)),
            int(revision or 0),
        )
        return contract.frame(self.entry.id, contract.encode_body(record, self.entry))


def encode_kpi_window() -> object:
    """The scalar function to register as `encode_kpi_window`."""
    input_types = [
        DataTypes.STRING(),
        DataTypes.TIMESTAMP(3),
        DataTypes.TIMESTAMP(3),
        DataTypes.STRING(),
        DataTypes.STRING(),
        *(DataTypes.DOUBLE() if m in DOUBLE_KPI_METRICS else DataTypes.BIGINT() for m in KPI_METRICS),
        DataTypes.INT(),
    ]
    return udf(EncodeKpiWindow(), input_types=input_types, result_type=DataTypes.BYTES())
