"""Data-quality gate for the sessionize output tables (`uxstream validate`): a Great Expectations suite per
table, run against PostgreSQL/TimescaleDB, plus cross-table consistency checks in the same report.

Each suite checks what SEMANTICS.md guarantees for every row: keys unique and not null, counts >= 0, window
ends after starts, durations >= 0 and equal to end - start, set-valued columns in their set, bounce = NOT
engaged, and error rates equal to error events / page views (NULL when there are no page views). Rules GE
cannot express with a built-in expectation are SQL `UnexpectedRowsExpectation`s (the rows that break the
rule), so they are GE results like the others. Cross-table checks compare tables with each other:

- kpi_1m per dimension adds up to the `global` row of the same window (events, page views, errors,
  conversions);
- kpi_sliding_5m and kpi_daily_cumulative equal the sums of the kpi_1m minutes they cover (page views, error
  events) and have at least the active users of their busiest minute;
- sum(sessions.event_count) = sum(kpi_1m.events) and sum(sessions.page_views) = sum(kpi_1m.page_views) over
  the `global` rows.

The cross-table checks hold for settled data: a finished (bounded) run, or a stopped job. While the job runs,
sessions are written only when they close, after the minutes they cover, so pass `--no-cross-table` to
validate a live database. A cross-table check is skipped (and says why) when one of its tables is empty.

Great Expectations runs in an ephemeral context: nothing is written to disk and its analytics are off.
Its import takes several seconds, so it happens inside `validate()`, never at module import.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from jobs.common import tables as t
from jobs.common.settings import PostgresSettings
from jobs.sessionize.logic import ENGAGED_MIN_DURATION_MS, ENGAGED_MIN_PAGE_VIEWS
from uxstream.errors import UserError

SPLIT_REASONS = ("gap", "midnight", "max_duration", "open")
LATE_REASONS = ("late", "future_timestamp")
RATE_TOLERANCE = 1e-9
"""Relative tolerance when comparing a stored rate with the rate recomputed from its counts."""


@dataclass(frozen=True)
class Check:
    """One expectation of a table's suite: a GE expectation class name and its arguments."""

    table: str
    columns: str
    """The column(s) the rule is about, as shown in the report."""
    expectation: str
    """Great Expectations class name, e.g. ExpectColumnValuesToBeBetween."""
    kwargs: Mapping[str, Any]
    rule: str
    """The rule in a few words, e.g. `>= 0`."""
    needs: tuple[str, ...] = ()
    """Other tables the check reads (cross-table): it is skipped when one of them is empty."""


@dataclass(frozen=True)
class CheckResult:
    check: Check
    status: str
    """PASS, FAIL or SKIP."""
    expectation_type: str
    """GE's snake_case name (expect_column_values_to_be_between, unexpected_rows_expectation, …)."""
    observed: str

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"

    def message(self) -> str:
        c = self.check
        return f"{c.table}.{c.columns}: {self.expectation_type} ({c.rule}) failed: {self.observed}"


@dataclass(frozen=True)
class QualityReport:
    target: str
    results: tuple[CheckResult, ...]
    seconds: float
    notes: tuple[str, ...] = field(default=())

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if r.failed)

    @property
    def ok(self) -> bool:
        return not self.failures

    def render(self) -> str:
        """A compact table of the expectations (passing ones that differ only in their column folded into
        one line), a summary line, then one line per failure."""
        header = ("result", "table", "column(s)", "expectation", "rule", "observed")
        rows: list[list[str]] = []
        for r in self.results:
            row = [r.status, r.check.table, r.check.columns, r.expectation_type, r.check.rule, r.observed]
            last = rows[-1] if rows else None
            if (
                r.status == "PASS"
                and last is not None
                and last[0] == "PASS"
                and [last[1], last[3], last[4], last[5]] == [row[1], row[3], row[4], row[5]]
            ):
                last[2] = f"{last[2]}, {row[2]}"
            else:
                rows.append(row)
        limits = (6, 20, 40, 49, 48, 60)
        cells = [tuple(_clip(v, n) for v, n in zip(row, limits, strict=True)) for row in [header, *rows]]
        widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
        lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
        counts = {s: sum(1 for r in self.results if r.status == s) for s in ("PASS", "FAIL", "SKIP")}
        lines.append(
            f"{len(self.results)} expectations on {self.target}: {counts['PASS']} passed, "
            f"{counts['FAIL']} failed, {counts['SKIP']} skipped ({self.seconds:.1f} s)"
        )
        lines.extend(self.notes)
        lines.extend(f"FAILED {r.message()}" for r in self.failures)
        return "\n".join(lines)


def _clip(value: str, limit: int) -> str:
    value = " ".join(value.split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------- the suites


def _not_null(table: str, columns: Iterable[str]) -> list[Check]:
    return [Check(table, c, "ExpectColumnValuesToNotBeNull", {"column": c}, "not null") for c in columns]


def _unique(table: str, columns: Sequence[str]) -> Check:
    return Check(
        table,
        ", ".join(columns),
        "ExpectCompoundColumnsToBeUnique",
        {"column_list": list(columns)},
        "key unique",
    )


def _at_least(table: str, columns: Iterable[str], minimum: int = 0) -> list[Check]:
    return [
        Check(table, c, "ExpectColumnValuesToBeBetween", {"column": c, "min_value": minimum}, f">= {minimum}")
        for c in columns
    ]


def _in_set(table: str, column: str, values: Sequence[str]) -> Check:
    return Check(
        table,
        column,
        "ExpectColumnValuesToBeInSet",
        {"column": column, "value_set": list(values)},
        "in {" + ", ".join(values) + "}",
    )


def _greater(table: str, a: str, b: str, *, or_equal: bool) -> Check:
    return Check(
        table,
        f"{a}, {b}",
        "ExpectColumnPairValuesAToBeGreaterThanB",
        {"column_A": a, "column_B": b, "or_equal": or_equal},
        f"{a} {'>=' if or_equal else '>'} {b}",
    )


def _rows(table: str, columns: str, rule: str, query: str, needs: tuple[str, ...] = ()) -> Check:
    """A rule as the SQL query of the rows that break it ({batch} is the table)."""
    return Check(table, columns, "UnexpectedRowsExpectation", {"unexpected_rows_query": query}, rule, needs)


def _rate_rule(table: str) -> Check:
    return _rows(
        table,
        "error_rate",
        "= error_events / page_views; NULL iff page_views = 0",
        f"""SELECT window_start, dimension, dimension_value, error_events, page_views, error_rate
            FROM {{batch}}
            WHERE CASE WHEN page_views = 0 THEN error_rate IS NOT NULL
                       ELSE error_rate IS NULL
                         OR abs(error_rate - CAST(error_events AS DOUBLE PRECISION) / page_views)
                            > {RATE_TOLERANCE} * greatest(1.0, abs(error_rate))
                  END""",
    )


def _covered_minutes(table: str, sums: Sequence[str], peak: str) -> Check:
    """Rows of a longer window (sliding, cumulative) equal the sums of the kpi_1m minutes they cover."""
    sum_cols = ", ".join(f"coalesce(sum(m.{c}), 0) AS minutes_{c}" for c in sums)
    differs = " OR ".join(f"w.{c} <> k.minutes_{c}" for c in sums)
    return _rows(
        table,
        ", ".join([*sums, peak]),
        f"sums of the {t.KPI_1M} minutes covered; {peak} >= busiest minute",
        f"""SELECT w.window_start, w.window_end, w.dimension, w.dimension_value,
                   {", ".join(f"w.{c}" for c in [*sums, peak])}, k.*
            FROM {{batch}} AS w
            CROSS JOIN LATERAL (
              SELECT {sum_cols}, coalesce(max(m.active_users), 0) AS busiest_minute_active_users
              FROM {t.KPI_1M} AS m
              WHERE m.window_start >= w.window_start AND m.window_end <= w.window_end
                AND m.dimension = w.dimension AND m.dimension_value = w.dimension_value
            ) AS k
            WHERE {differs} OR w.{peak} < k.busiest_minute_active_users""",
        needs=(t.KPI_1M,),
    )


def sessions_suite() -> list[Check]:
    s = t.SESSIONS
    return [
        _unique(s, ["session_id", "session_start"]),
        *_not_null(
            s,
            [
                "session_id", "user_key", "session_start", "session_end", "duration_ms", "event_count",
                "page_views", "distinct_pages", "error_count", "conversions", "engaged", "bounce",
                "split_reason", "is_final",
            ],
        ),
        *_at_least(s, ["duration_ms", "page_views", "distinct_pages", "error_count", "conversions"]),
        *_at_least(s, ["event_count"], 1),
        _greater(s, "session_end", "session_start", or_equal=True),
        _greater(s, "event_count", "page_views", or_equal=True),
        _greater(s, "page_views", "distinct_pages", or_equal=True),
        _in_set(s, "split_reason", SPLIT_REASONS),
        _rows(
            s, "duration_ms", "= session_end - session_start",
            """SELECT session_id, session_start, session_end, duration_ms FROM {batch}
               WHERE duration_ms <> round(extract(epoch FROM session_end - session_start) * 1000)""",
        ),
        _rows(
            s, "bounce", "bounce = NOT engaged",
            "SELECT session_id, session_start, engaged, bounce FROM {batch} WHERE bounce = engaged",
        ),
        _rows(
            s, "engaged",
            f"GA4: > {ENGAGED_MIN_DURATION_MS} ms engaged, >= {ENGAGED_MIN_PAGE_VIEWS} views or a conversion",
            # engaged_time_ms is NULL on rows written before V0013, whose rule was the duration.
            f"""SELECT session_id, session_start, duration_ms, engaged_time_ms, page_views, conversions,
                  engaged FROM {{batch}}
                WHERE engaged <> (COALESCE(engaged_time_ms, duration_ms) > {ENGAGED_MIN_DURATION_MS}
                                  OR page_views >= {ENGAGED_MIN_PAGE_VIEWS} OR conversions >= 1)""",
        ),
        _rows(
            s, "is_final", "is_final = (split_reason <> 'open')",
            """SELECT session_id, session_start, split_reason, is_final FROM {batch}
               WHERE is_final = (split_reason = 'open')""",
        ),
    ]  # fmt: skip


def kpi_1m_suite() -> list[Check]:
    k = t.KPI_1M
    counts = ["events", "page_views", "active_users", "error_events", "conversions", "duplicates"]
    return [
        _unique(k, ["window_start", "dimension", "dimension_value"]),
        *_not_null(k, ["window_start", "window_end", "dimension", "dimension_value", *counts, "revision"]),
        _greater(k, "window_end", "window_start", or_equal=False),
        *_at_least(k, counts),
        *_at_least(k, ["revision"], 1),
        *_at_least(k, ["error_rate", "lcp_p75", "inp_p75", "cls_p75"]),
        _rate_rule(k),
        _greater(k, "events", "page_views", or_equal=True),
        _greater(k, "events", "active_users", or_equal=True),
        _greater(k, "events", "error_events", or_equal=True),
        _rows(
            k, "dimension_value", f"'{t.ALL_VALUE}' for dimension '{t.DIM_GLOBAL}'",
            f"""SELECT window_start, dimension, dimension_value FROM {{batch}}
                WHERE dimension = '{t.DIM_GLOBAL}' AND dimension_value <> '{t.ALL_VALUE}'""",
        ),
        _rows(
            k, "events, page_views, error_events, conversions",
            f"each dimension adds up to the '{t.DIM_GLOBAL}' row of its window",
            f"""SELECT d.window_start, d.dimension, d.events, g.events AS global_events,
                       d.page_views, g.page_views AS global_page_views
                FROM (SELECT window_start, dimension, sum(events) AS events, sum(page_views) AS page_views,
                             sum(error_events) AS error_events, sum(conversions) AS conversions
                      FROM {{batch}} WHERE dimension <> '{t.DIM_GLOBAL}'
                      GROUP BY window_start, dimension) AS d
                JOIN {{batch}} AS g ON g.window_start = d.window_start AND g.dimension = '{t.DIM_GLOBAL}'
                WHERE (d.events, d.page_views, d.error_events, d.conversions)
                      IS DISTINCT FROM (g.events, g.page_views, g.error_events, g.conversions)""",
        ),
        *(
            _rows(
                k, column, f"sum over '{t.DIM_GLOBAL}' = sum({t.SESSIONS}.{session_column})",
                f"""SELECT s.total AS sessions_{session_column}, k.total AS kpi_1m_{column}
                    FROM (SELECT sum({session_column}) AS total FROM {t.SESSIONS}) AS s,
                         (SELECT sum({column}) AS total FROM {{batch}}
                          WHERE dimension = '{t.DIM_GLOBAL}') AS k
                    WHERE s.total IS DISTINCT FROM k.total""",
                needs=(t.SESSIONS,),
            )
            for column, session_column in (
                ("events", "event_count"), ("page_views", "page_views"),
                ("feedback_responses", "feedback_responses"),
            )
        ),
        _rows(
            k, "feedback_responses, nps_*, csat_*",
            "feedback parts add up (README Feedback): responses = nps + csat, nps = promoters + passives "
            "+ detractors, nps = 100 (P - D) / N, score sums inside their scales",
            """SELECT window_start, dimension, dimension_value, feedback_responses, nps_responses, nps
               FROM {batch}
               WHERE feedback_responses IS NOT NULL AND (
                 feedback_responses IS DISTINCT FROM nps_responses + csat_responses
                 OR nps_responses IS DISTINCT FROM nps_promoters + nps_passives + nps_detractors
                 OR nps IS DISTINCT FROM
                    (100 * (nps_promoters - nps_detractors))::float8 / NULLIF(nps_responses, 0)
                 OR nps_score_sum NOT BETWEEN 9 * nps_promoters + 7 * nps_passives
                                      AND 10 * nps_promoters + 8 * nps_passives + 6 * nps_detractors
                 OR csat_score_sum NOT BETWEEN csat_responses AND 5 * csat_responses)""",
        ),
    ]  # fmt: skip


def kpi_sliding_5m_suite() -> list[Check]:
    k = t.KPI_SLIDING_5M
    counts = ["active_users", "page_views", "error_events"]
    return [
        _unique(k, ["window_start", "dimension", "dimension_value"]),
        *_not_null(k, ["window_start", "window_end", "dimension", "dimension_value", *counts]),
        _greater(k, "window_end", "window_start", or_equal=False),
        *_at_least(k, [*counts, "error_rate"]),
        _rate_rule(k),
        _covered_minutes(k, ["page_views", "error_events"], "active_users"),
    ]


def kpi_daily_suite() -> list[Check]:
    k = t.KPI_DAILY
    counts = ["daily_active_users", "page_views"]
    return [
        _unique(k, ["window_end", "dimension", "dimension_value"]),
        *_not_null(k, ["day", "window_start", "window_end", "dimension", "dimension_value", *counts]),
        _greater(k, "window_end", "window_start", or_equal=False),
        *_at_least(k, counts),
        _rows(
            k, "window_start, window_end", "the step ends within 25 h of its day's start",
            """SELECT day, window_start, window_end, dimension, dimension_value FROM {batch}
               WHERE window_end - window_start > INTERVAL '25 hours'""",
        ),
        _rows(
            k, "daily_active_users, page_views", "never decrease within a day",
            """SELECT * FROM (
                 SELECT day, window_end, dimension, dimension_value, daily_active_users, page_views,
                        lag(daily_active_users) OVER w AS previous_daily_active_users,
                        lag(page_views) OVER w AS previous_page_views
                 FROM {batch}
                 WINDOW w AS (PARTITION BY window_start, dimension, dimension_value ORDER BY window_end)
               ) AS steps
               WHERE daily_active_users < previous_daily_active_users OR page_views < previous_page_views""",
        ),
        _covered_minutes(k, ["page_views"], "daily_active_users"),
    ]  # fmt: skip


def late_events_suite() -> list[Check]:
    e = t.LATE_EVENTS
    return [
        _unique(e, ["job", "event_id", "event_time"]),
        *_not_null(
            e, ["job", "event_id", "event_time", "received_at", "reason", "source_partition", "source_offset"]
        ),
        _in_set(e, "reason", LATE_REASONS),
        *_at_least(e, ["lateness_ms", "source_partition", "source_offset"]),
        _rows(
            e, "lateness_ms", "= watermark - event_time for reason 'late'",
            """SELECT job, event_id, event_time, watermark, lateness_ms FROM {batch}
               WHERE reason = 'late' AND (watermark IS NULL OR lateness_ms IS NULL
                     OR lateness_ms <> round(extract(epoch FROM watermark - event_time) * 1000))""",
        ),
        _rows(
            e, "event_time", "> received_at for reason 'future_timestamp'",
            """SELECT job, event_id, event_time, received_at FROM {batch}
               WHERE reason = 'future_timestamp' AND event_time <= received_at""",
        ),
    ]  # fmt: skip


SUITES = {
    t.SESSIONS: sessions_suite,
    t.KPI_1M: kpi_1m_suite,
    t.KPI_SLIDING_5M: kpi_sliding_5m_suite,
    t.KPI_DAILY: kpi_daily_suite,
    t.LATE_EVENTS: late_events_suite,
}


# ------------------------------------------------------------------------------------------------ running


def _table_rows(pg: PostgresSettings, names: Iterable[str]) -> dict[str, bool]:
    """Whether each table has rows; a missing table is an error that says how to create it."""
    from psycopg import sql

    from uxstream.db import connect

    state: dict[str, bool] = {}
    with connect(pg, autocommit=True) as conn:
        for name in names:
            if conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is None:
                raise UserError(
                    f"table {name} does not exist in {pg.describe()} (create it with `uxstream db migrate`)"
                )
            query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(name))
            state[name] = bool(conn.execute(query).fetchone()[0])
    return state


def _sqlalchemy_url(pg: PostgresSettings) -> str:
    """The connection URL for GE, without the password (it goes in connect_args, never in a string)."""
    from sqlalchemy.engine import URL

    query = {"sslmode": pg.sslmode, "connect_timeout": "10"}
    if pg.sslrootcert:
        query["sslrootcert"] = pg.sslrootcert
    url = URL.create(
        "postgresql+psycopg2", username=pg.user, host=pg.host, port=pg.port, database=pg.dbname, query=query
    )
    return url.render_as_string(hide_password=False)


def _observed(result: Any) -> str:
    """The observed values of a GE result, in a few words."""
    data: dict[str, Any] = dict(result.result or {})
    if "details" in data or (result.expectation_config.type == "unexpected_rows_expectation"):
        rows = (data.get("details") or {}).get("unexpected_rows") or []
        count = data.get("observed_value", len(rows))
        if not count:
            return "0 rows break it"
        first = ", ".join(f"{k}={_short(v)}" for k, v in dict(rows[0]).items()) if rows else ""
        return f"{count} row(s) break it, e.g. {first}"
    if "unexpected_count" in data:
        count = data.get("unexpected_count") or 0
        total = data.get("element_count", "?")
        if not count:
            return f"0 of {total} rows unexpected"
        sample = data.get("partial_unexpected_list") or []
        return f"{count} of {total} rows unexpected, e.g. {', '.join(_short(v) for v in sample[:3])}"
    if "observed_value" in data:
        return f"observed {_short(data['observed_value'])}"
    return "-"


def _short(value: Any) -> str:
    if isinstance(value, Mapping):
        return "(" + ", ".join(f"{k}={_short(v)}" for k, v in value.items()) + ")"
    if isinstance(value, list | tuple):
        return "(" + ", ".join(_short(v) for v in value) + ")"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date | Decimal):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value) if isinstance(value, str) else str(value)


def validate(
    pg: PostgresSettings,
    tables: Sequence[str] = t.SESSIONIZE_TABLES,
    *,
    cross_table: bool = True,
) -> QualityReport:
    """Run the suites of `tables` and return every expectation's result (GE is imported here)."""
    started = time.perf_counter()
    unknown = [name for name in tables if name not in SUITES]
    if unknown:
        raise UserError(f"no quality suite for {', '.join(unknown)} (known: {', '.join(SUITES)})")
    checks = {name: SUITES[name]() for name in tables}
    needed = set(tables)
    if cross_table:
        needed |= {n for cs in checks.values() for c in cs for n in c.needs}
    has_rows = _table_rows(pg, sorted(needed))

    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.core.result_format import ResultFormat
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )
    from great_expectations.datasource.fluent.postgres_datasource import PostgresDatasource

    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
            store_backend_defaults=InMemoryStoreBackendDefaults(),
        ),
    )
    connect_args = {"password": pg.password.reveal()} if pg.password is not None else {}
    source = context.data_sources.add_postgres(
        datasource=PostgresDatasource(
            name="uxstream",
            connection_string=_sqlalchemy_url(pg),
            create_temp_table=False,
            kwargs={"connect_args": connect_args},
        )
    )
    results: list[CheckResult] = []
    notes: list[str] = []
    if not cross_table:
        notes.append("cross-table checks not run (--no-cross-table)")
    for name, table_checks in checks.items():
        asset = source.add_table_asset(name, table_name=name)
        batch = asset.add_batch_definition_whole_table("all").get_batch()
        # Two suites per table: column rules report a sample of unexpected values (SUMMARY), SQL rules
        # report the rows that break them (COMPLETE: at most GE's 200 rows).
        suites = {
            ResultFormat.SUMMARY: gx.ExpectationSuite(name=f"uxstream.{name}.columns"),
            ResultFormat.COMPLETE: gx.ExpectationSuite(name=f"uxstream.{name}.rows"),
        }
        by_index: dict[int, CheckResult] = {}
        for index, check in enumerate(table_checks):
            if check.needs and not cross_table:
                continue
            empty = [n for n in (name, *check.needs) if not has_rows[n]] if check.needs else []
            if empty:
                reason = f"skipped: {', '.join(empty)} {'is' if len(empty) == 1 else 'are'} empty"
                by_index[index] = CheckResult(check, "SKIP", _snake(check.expectation), reason)
                continue
            expectation = getattr(gxe, check.expectation)(**check.kwargs, meta={"uxstream_check": index})
            rows_rule = check.expectation == "UnexpectedRowsExpectation"
            suites[ResultFormat.COMPLETE if rows_rule else ResultFormat.SUMMARY].add_expectation(expectation)
        for result_format, suite in suites.items():
            if not suite.expectations:
                continue
            for r in batch.validate(suite, result_format=result_format).results:
                config = r.expectation_config
                assert config is not None and config.meta is not None
                index = int(config.meta["uxstream_check"])
                kind = str(config.type)
                if r.exception_info and r.exception_info.get("raised_exception"):
                    message = (str(r.exception_info.get("exception_message") or "").splitlines() or ["?"])[0]
                    by_index[index] = CheckResult(table_checks[index], "FAIL", kind, f"error: {message}")
                else:
                    status = "PASS" if r.success else "FAIL"
                    by_index[index] = CheckResult(table_checks[index], status, kind, _observed(r))
        results.extend(by_index[i] for i in sorted(by_index))
    return QualityReport(pg.describe(), tuple(results), time.perf_counter() - started, tuple(notes))


def _snake(class_name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in class_name).lstrip("_")


def _cmd_validate(args: argparse.Namespace) -> int:
    pg = PostgresSettings.from_env(role="reader")
    tables = args.tables or list(t.SESSIONIZE_TABLES)
    report = validate(pg, tables, cross_table=not args.no_cross_table)
    print(report.render())
    return 0 if report.ok else 1


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "validate",
        help="data-quality gate: Great Expectations suites on the output tables (exit 1 on a failure)",
        description=(
            "Run the Great Expectations suite of each sessionize output table against the database "
            "(UXSTREAM_PG_*), print every expectation with its observed values, and exit 1 if any fails."
        ),
    )
    p.add_argument(
        "--tables",
        nargs="+",
        choices=list(SUITES),
        metavar="TABLE",
        help=f"tables to validate (default: all of {', '.join(SUITES)})",
    )
    p.add_argument(
        "--no-cross-table",
        action="store_true",
        help="skip the checks that compare tables with each other (they hold once the job has finished "
        "or stopped; use this on a database a running job writes to)",
    )
    p.set_defaults(handler=_cmd_validate)
