"""Flink adapters of the sessionize job: the Python table function that turns gap-sessions into rows."""

from __future__ import annotations

from collections.abc import Iterator

from pyflink.table import DataTypes
from pyflink.table.udf import TableFunction, udtf

from jobs.common.chaos import FailOnce
from jobs.sessionize.logic import SessionRules, split_gap_session

SESSION_ROW_TYPES = [
    DataTypes.STRING(),  # session_id
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
    DataTypes.BOOLEAN(),  # engaged
    DataTypes.BOOLEAN(),  # bounce
    DataTypes.STRING(),  # split_reason
    DataTypes.BOOLEAN(),  # is_final
]


class SplitSessions(TableFunction):  # type: ignore[misc]
    """(user_key, packed events of one gap-session) → one row per final session."""

    def __init__(self, rules: SessionRules) -> None:
        self.rules = rules
        self.chaos: FailOnce | None = None

    def eval(self, user_key: str, packed: str) -> Iterator[tuple[object, ...]]:
        if self.chaos is None:
            self.chaos = FailOnce()  # reads the environment of the worker, not the client
        self.chaos("sessionize.split_sessions")
        for row in split_gap_session(user_key, self.rules, packed):
            yield (
                row.session_id,
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
                row.engaged,
                row.bounce,
                row.split_reason,
                row.is_final,
            )


def split_sessions(rules: SessionRules) -> object:
    """The UDTF to register as `split_sessions`."""
    return udtf(SplitSessions(rules), result_types=SESSION_ROW_TYPES)
