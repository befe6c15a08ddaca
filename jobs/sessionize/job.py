"""sessionize: event-time sessions, KPI windows and the late-event ledger, from Kafka to PostgreSQL.

    python -m jobs.sessionize.job --bounded     # read what is in ux.events now, then finish
    python -m jobs.sessionize.job               # run unbounded (clusters)

Topology (all of it in Flink's JVM: the job has no Python worker):
decode (Java UDF) ─► DLQ │ future/late flags ─► late ledger │ occurrence per event_id (dedup) ─►
KPI windows (tumble 1 min, every dimension in one Java aggregate kpi_cells, exact user sets; stored as
counts and as HLL sketches of the users' pseudonyms for unique users over any range; hop 5 min/1 min and
cumulate 1 day/5 min cascaded from the minute rows) and
gap-sessions per user (Java process table function session_events: exact gap rule, one timer per user;
a user who never goes idle is emitted session by session at midnight / max-duration splits) ─►
Java table function split_sessions (midnight / max-duration splits, identity, session rows; the twin of
logic.split_gap_session). Final KPI window rows go to ux.kpi through the Java scalar function
encode_kpi_window (the twin of contract.encode of logic.kpi_window_record).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Final

from jobs.common import connectors, counters, decode, privacy, runner, sketches, tables
from jobs.common.contract import (
    CSAT_SCALE,
    FEEDBACK,
    NPS_DETRACTOR_MAX,
    NPS_PROMOTER_MIN,
    NPS_SCALE,
)
from jobs.common.decode import DEVICE_KEY
from jobs.common.pipeline import Pipeline, Step
from jobs.sessionize.logic import (
    DOUBLE_KPI_METRICS,
    FIRST_REVISION,
    KPI_KEY_SEPARATOR,
    KPI_METRICS,
    SESSION_EVENT_FIELDS,
    kpi_window_record,
    window_kinds,
)
from jobs.sessionize.settings import DIMENSIONS, SessionizeSettings

JOB_NAME = "sessionize"
SESSIONS_UID = "sessionize_gap_sessions_v2"
"""The uid of the session_events operator (its keyed state: each user's open gap-session and timer); a PTF
uid must match [a-zA-Z_][a-zA-Z-_0-9]*. v2 (state layout 8): the state has no TTL."""
SQL = Path(__file__).with_name("sessionize.sql")

OPTIONS = runner.event_job_options(
    runner.Option(
        "--input-topic", "input_topic", help="default: UXSTREAM_SESSIONIZE_INPUT_TOPIC or ux.events"
    ),
    runner.Option("--dlq-topic", "dlq_topic"),
    runner.Option(
        "--kpi-topic",
        "kpi_topic",
        help="default: $UXSTREAM_SESSIONIZE_KPI_TOPIC or ux.kpi; '' = off",
        empty_allowed=True,
    ),
)
"""The job's command line: the common options of a job reading ux.events and its own."""
CHECKS = (runner.ensure_pseudonym_key, *runner.CHECKS)
"""Before Flink starts: the local pseudonym key, then those of every job reading ux.events."""
OUTPUTS = ("dlq_topic", "kpi_topic")
"""Settings fields naming the topics the job writes (an empty kpi_topic: none)."""


EVENT_COLUMNS: Final = tuple(
    dict.fromkeys((
        # what the classification and the ledger read
        "event_id", "ts", "received_at", "event_time", "user_id", "anonymous_id", "event_type", "agent_bot",
        "kafka_partition", "kafka_offset", "kafka_timestamp", "page_path", "country", "device_type",
        # the KPI cells
        "event_name", "lcp_ms", "inp_ms", "cls", "feedback_scale", "feedback_score",
    ))
)  # fmt: skip
"""The valid events' columns sessionize reads one by one (the view `EVENTS_VIEW`, the classification's
source); the other fields of a gap-session's events come packed in one column (`PACKED`). The rest (URL,
title, user agent, OS, error text, IP, properties …) stay in the source vertex: every Calc the planner
generates deep-copies each string field it passes on, and every exchange serializes it, so each column
cost a copy per Calc and a (de)serialization per exchange on the per-event path (the planner does not
prune columns through the OVER aggregates; NOTES.md, issue 17)."""
EVENTS_VIEW: Final = "sessionize_events"
PACK_FUNCTION: Final = (
    "CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS pack_session_event "
    "AS 'io.uxstream.udf.PackSessionEvent' LANGUAGE JAVA"
)
"""One event of a gap-session as the JSON array of its SESSION_EVENT_FIELDS (io.uxstream.udf.PackSessionEvent:
what JSON_ARRAY(... NULL ON NULL) gives, written from the fields' UTF-8 bytes)."""
PACKED: Final = "pack_session_event(" + ", ".join(SESSION_EVENT_FIELDS) + ") AS packed"
"""The column `packed` of `EVENTS_VIEW`: computed in the source vertex, so the fields only the sessions read
(referrer, UTM, browser, survey, comment, engagement time) travel as one string, copied once per Calc
instead of one copy each (NOTES.md, issue 17). Late, duplicate, bot and erased events are packed too and
dropped with it; only the first occurrence of a human's on-time event reaches session_events' state."""


def events_view() -> str:
    """The view `EVENTS_VIEW`: `EVENT_COLUMNS` of the decode step's valid events, the packed session event
    (`PACKED`) and the KPI dimension columns `dim_<dimension>` (the value, or tables.NONE_VALUE when the
    event lacks it). The dimension columns come first in the row here, not after the dedup's occurrence
    number: computed above the dedup, the planner pushed them below it anyway and then needed one more Calc
    after it, copying every column of every event only to put them back in the view's order."""
    dims = ", ".join(
        f"COALESCE({d}, {connectors.sql_literal(tables.NONE_VALUE)}) AS dim_{d}" for d in DIMENSIONS
    )
    return (
        f"CREATE TEMPORARY VIEW {EVENTS_VIEW} AS\nSELECT {', '.join(EVENT_COLUMNS)},\n  {PACKED},\n"
        f"  {dims}\nFROM "
    )


KPI_CELL_SLOTS = 3
"""Dimension slots of io.uxstream.udf.KpiCells (`kpi_cells`) besides slot 0, the whole window."""


def _cell_sql(settings: SessionizeSettings) -> tuple[str, str, str]:
    """`kpi_cells`' dimension-value arguments (the configured dimensions' columns in slots 1…, NULL in unused
    slots) and the CASEs giving a cell's dimension name and value from its slot."""
    columns = [f"dim_{d}" for d in settings.dimensions]
    if len(columns) > KPI_CELL_SLOTS:
        raise ValueError(f"at most {KPI_CELL_SLOTS} KPI dimensions, got {len(columns)}")
    values = ", ".join([*columns, *["CAST(NULL AS STRING)"] * (KPI_CELL_SLOTS - len(columns))])
    name = " ".join(f"WHEN {slot} THEN '{d}'" for slot, d in enumerate(settings.dimensions, start=1))
    name_case = f"CASE c.slot {name} ELSE '{tables.DIM_GLOBAL}' END" if columns else f"'{tables.DIM_GLOBAL}'"
    value_case = f"COALESCE(c.dimension_value, '{tables.ALL_VALUE}')"
    return values, name_case, value_case


def _conversions(settings: SessionizeSettings) -> str:
    if not settings.conversion_events:
        return "FALSE"
    return f"event_name IN ({', '.join(connectors.sql_literal(n) for n in settings.conversion_events)})"


def user_sketch(users: str) -> str:
    """SQL: the DataSketches HLL bytes of the pseudonyms of the user set `users` (io.uxstream.udf.UserSketch;
    parameters from jobs.common.sketches, the pseudonym keys of the environment, as the ledger's)."""
    return (
        f"user_sketch({users}, {connectors.sql_literal(privacy.key_files())}, "
        f"{int(sketches.LG_K)}, {connectors.sql_literal(sketches.HLL_TYPE)})"
    )


def finaliser_rules(settings: SessionizeSettings) -> str:
    """SQL: the literal arguments of `split_sessions` after the run's columns (io.uxstream.udf.SplitSessions:
    gap, max duration, time zone ('' = no midnight splits), conversion events as a JSON array, identity TTL,
    the pseudonym key files)."""
    rules = settings.rules
    return ", ".join((
        f"CAST({rules.gap_ms} AS BIGINT)",
        f"CAST({rules.max_duration_ms} AS BIGINT)",
        connectors.sql_literal(rules.timezone if rules.split_at_midnight else ""),
        connectors.sql_literal(json.dumps(sorted(rules.conversion_events), ensure_ascii=False)),
        f"CAST({rules.identity_ttl_ms} AS BIGINT)",
        connectors.sql_literal(privacy.key_files()),
    ))  # fmt: skip


def _human(settings: SessionizeSettings) -> str:
    # Bots (is_bot, from the decode step's enrichment) count in nothing but bot_events unless
    # UXSTREAM_EXCLUDE_BOTS is off; their rows still exist (a window/dimension value with only bots has
    # events = 0 and bot_events > 0), as rows that only have duplicates do.
    return "NOT is_bot" if settings.flink.enrichment.exclude_bots else "TRUE"


def _first(settings: SessionizeSettings) -> str:
    """SQL: the event counts in the KPI windows and sessions (a first occurrence, not an excluded bot)."""
    return f"occurrence = 1 AND {_human(settings)}"


def kpi_minutes_views(settings: SessionizeSettings) -> list[str]:
    """The `kpi_minutes` view over `clean` (one row per 1-minute window and dimension value) and the view of
    its cells it unnests.

    The events are aggregated once, into the tumbling windows (io.uxstream.udf.KpiCells, one aggregate call
    per event for every dimension, with the exact set of the people and the logins linking anonymous ids to
    user ids: io.uxstream.udf.UserSet, README "Active users and logins"); the sliding and cumulative windows
    are built from the minute rows (cascaded on minute_time), applying the links of every minute they cover,
    which needs their steps to be multiples of the tumbling window (settings.py checks it)."""
    cell_values, dim_name, dim_value = _cell_sql(settings)
    human = _human(settings)
    first = _first(settings)
    tumble = f"TUMBLE(TABLE clean, DESCRIPTOR(event_time), {connectors.sql_interval(settings.tumble_ms)})"
    minute_cells = f"""SELECT window_start AS minute_start, window_end AS minute_end,
  window_time AS minute_time,
  kpi_cells({cell_values}, {first}, occurrence > 1 AND {human}, occurrence = 1 AND is_bot,
    event_type = 'page_view', event_type = 'error', event_type = 'web_vital', {_conversions(settings)},
    user_id, anonymous_id, lcp_ms, inp_ms, cls,
    event_type = '{FEEDBACK}', feedback_scale = '{NPS_SCALE}', feedback_scale = '{CSAT_SCALE}',
    feedback_score, feedback_score >= {NPS_PROMOTER_MIN}, feedback_score <= {NPS_DETRACTOR_MAX}) AS cells
FROM TABLE({tumble})
GROUP BY window_start, window_end, window_time"""
    minutes = f"""SELECT minute_start, minute_end, minute_time,
  {dim_name} AS dimension, {dim_value} AS dimension_value,
  c.events, c.page_views, c.people, c.error_events, c.conversions, c.duplicates, c.bot_events,
  c.lcp_p75, c.inp_p75, c.cls_p75, c.feedback_responses, c.nps_responses, c.nps_score_sum,
  c.nps_promoters, c.nps_passives, c.nps_detractors, c.csat_responses, c.csat_score_sum
FROM kpi_minute_cells CROSS JOIN UNNEST(cells) AS c (slot, dimension_value, events, page_views, people,
  error_events, conversions, duplicates, bot_events, lcp_p75, inp_p75, cls_p75, feedback_responses,
  nps_responses, nps_score_sum, nps_promoters, nps_passives, nps_detractors, csat_responses,
  csat_score_sum)"""
    return [
        f"CREATE TEMPORARY VIEW kpi_minute_cells AS\n{minute_cells}",
        f"CREATE TEMPORARY VIEW kpi_minutes AS\n{minutes}",
    ]


def statements(settings: SessionizeSettings) -> list[str]:
    """The job's views and INSERTs over the views of sessionize.sql (topology without connectors)."""
    first = _first(settings)
    hop = (
        f"HOP(TABLE kpi_minutes, DESCRIPTOR(minute_time), "
        f"{connectors.sql_interval(settings.sliding_step_ms)}, "
        f"{connectors.sql_interval(settings.sliding_size_ms)})"
    )
    cumulate = (
        f"CUMULATE(TABLE kpi_minutes, DESCRIPTOR(minute_time), "
        f"{connectors.sql_interval(settings.cumulative_step_ms)}, INTERVAL '1' DAY)"
    )
    kpi_1m = f"""SELECT to_utc(minute_start) AS window_start, to_utc(minute_end) AS window_end,
  dimension, dimension_value, events, page_views,
  CAST(CARDINALITY(people.users) AS BIGINT) AS active_users,
  error_events, conversions, duplicates,
  CAST(error_events AS DOUBLE) / NULLIF(page_views, 0) AS error_rate,
  lcp_p75, inp_p75, cls_p75,
  {FIRST_REVISION} AS revision,
  {user_sketch("people.users")} AS users_sketch,
  bot_events,
  feedback_responses, nps_responses, COALESCE(nps_score_sum, 0) AS nps_score_sum,
  nps_promoters, nps_passives, nps_detractors,
  CAST(100 * (nps_promoters - nps_detractors) AS DOUBLE) / NULLIF(nps_responses, 0) AS nps,
  csat_responses, COALESCE(csat_score_sum, 0) AS csat_score_sum
FROM kpi_minutes"""
    sliding = f"""SELECT to_utc(window_start) AS window_start, to_utc(window_end) AS window_end,
  dimension, dimension_value,
  user_count(people) AS active_users,
  SUM(page_views) AS page_views,
  SUM(error_events) AS error_events,
  CAST(SUM(error_events) AS DOUBLE) / NULLIF(SUM(page_views), 0) AS error_rate
FROM TABLE({hop})
GROUP BY window_start, window_end, dimension, dimension_value"""
    daily = f"""SELECT CAST(window_start AS DATE) AS `day`, to_utc(window_start) AS window_start,
  to_utc(window_end) AS window_end, dimension, dimension_value,
  user_count(people) AS daily_active_users,
  SUM(page_views) AS page_views
FROM TABLE({cumulate})
GROUP BY window_start, window_end, dimension, dimension_value"""
    statements = [
        f"""INSERT INTO late_sink
SELECT '{JOB_NAME}', event_id, to_utc(event_time), to_utc(TO_TIMESTAMP_LTZ(received_at, 3)),
  to_utc(watermark_at_arrival),
  lateness_ms, reason,
  page_path, country, device_type, kafka_partition, kafka_offset, user_pseudonym
FROM ledger
WHERE {counters.ledger_counters("reason")}""",
        *kpi_minutes_views(settings),
        f"CREATE TEMPORARY VIEW session_input AS\nSELECT {DEVICE_KEY} AS device_key, "
        f"NULLIF(user_id, '') AS user_id, event_time, packed\nFROM clean\nWHERE {first}",
        f"CREATE TEMPORARY VIEW kpi_1m_rows AS\n{kpi_1m}",
        f"CREATE TEMPORARY VIEW kpi_sliding_rows AS\n{sliding}",
        f"CREATE TEMPORARY VIEW kpi_daily_rows AS\n{daily}",
        "INSERT INTO kpi_1m_sink SELECT * FROM kpi_1m_rows",
        "INSERT INTO kpi_sliding_sink SELECT * FROM kpi_sliding_rows",
        "INSERT INTO kpi_daily_sink SELECT * FROM kpi_daily_rows",
        f"""INSERT INTO sessions_sink
SELECT s.session_id, s.user_key, to_utc(TO_TIMESTAMP_LTZ(s.session_start, 3)),
  to_utc(TO_TIMESTAMP_LTZ(s.session_end, 3)),
  s.duration_ms, s.event_count, s.page_views, s.distinct_pages, s.entry_page, s.exit_page, s.referrer,
  s.utm_source, s.utm_medium, s.utm_campaign, s.device_type, s.browser, s.country, s.error_count,
  s.conversions, s.engaged_time_ms, s.engaged, s.bounce, s.split_reason, s.is_final,
  s.feedback_responses, s.feedback, s.device_key
FROM session_events(
  input => TABLE session_input PARTITION BY device_key,
  on_time => DESCRIPTOR(event_time),
  gap_ms => CAST({settings.session_gap_ms} AS BIGINT),
  max_duration_ms => CAST({settings.max_session_duration_ms} AS BIGINT),
  timezone => {connectors.sql_literal(settings.session_timezone if settings.split_at_midnight else "")},
  identity_ttl_ms => CAST({settings.identity_ttl_ms} AS BIGINT),
  uid => '{SESSIONS_UID}'
) AS g,
LATERAL TABLE(split_sessions(g.device_key, g.packed, g.end_reason, g.linked_user, g.linked_ts,
  {finaliser_rules(settings)}))
  AS s(session_id, user_key, session_start,
  session_end, duration_ms, event_count, page_views, distinct_pages, entry_page, exit_page, referrer,
  utm_source, utm_medium, utm_campaign, device_type, browser, country, error_count, conversions,
  engaged_time_ms, engaged, bounce, split_reason, is_final, feedback_responses, feedback, device_key)
WHERE count_when('{counters.SESSIONS_CLOSED}', s.is_final)""",
    ]
    if settings.kpi_topic:
        statements.append(kpi_topic_insert(settings))
    return statements


def kpi_topic_insert(settings: SessionizeSettings) -> str:
    """Every final KPI window row, encoded as kpi_window.v2, into the ux.kpi sink (keyed by series)."""
    tumbling, sliding, daily = window_kinds(settings.tumble_ms, settings.sliding_size_ms)
    null = "CAST(NULL AS BIGINT)"
    null_double = "CAST(NULL AS DOUBLE)"

    def select(kind: str, view: str, metrics: dict[str, str]) -> str:
        # io.uxstream.udf.EncodeKpiWindow takes the record's fields after the five key fields in the
        # schema's order, the order kpi_window_record gives them (v1 metrics, revision, v2 metrics).
        expressions = {
            **{m: metrics.get(m, null_double if m in DOUBLE_KPI_METRICS else null) for m in KPI_METRICS},
            "revision": str(FIRST_REVISION),
        }
        fields = list(kpi_window_record(kind, 0, 0, "", "", {}, FIRST_REVISION))[5:]
        values = ", ".join(expressions[f] for f in fields)
        key = f"CONCAT_WS('{KPI_KEY_SEPARATOR}', '{kind}', dimension, dimension_value)"
        return (
            f"SELECT {key}, encode_kpi_window('{kind}', window_start, window_end, dimension, "
            f"dimension_value, {values}) FROM {view}"
        )

    same = {m: m for m in ("events", "page_views", "active_users", "error_events", "conversions")}
    return "INSERT INTO kpi_topic_sink\n" + "\nUNION ALL\n".join(
        [
            select(
                tumbling,
                "kpi_1m_rows",
                {
                    **same,
                    "duplicates": "duplicates",
                    "error_rate": "error_rate",
                    "lcp_p75_ms": "lcp_p75",
                    "inp_p75_ms": "inp_p75",
                    "cls_p75": "cls_p75",
                    # kpi_window.v2 (issue 22): bots and feedback, tumbling windows only
                    "bot_events": "bot_events",
                    "feedback_responses": "feedback_responses",
                    "nps_responses": "nps_responses",
                    "nps": "nps",
                    "csat_responses": "csat_responses",
                    "csat_score_sum": "csat_score_sum",
                },
            ),
            select(
                sliding,
                "kpi_sliding_rows",
                {m: m for m in ("active_users", "page_views", "error_events", "error_rate")},
            ),
            select(
                daily, "kpi_daily_rows", {"active_users": "daily_active_users", "page_views": "page_views"}
            ),
        ]
    )


def decode_spec(settings: SessionizeSettings) -> decode.DecodeSpec:
    return decode.job_event_time_spec(JOB_NAME, settings, f"{settings.transactional_id_prefix}-dlq")


def kpi_topic_options(settings: SessionizeSettings) -> dict[str, str]:
    """The ux.kpi sink: exactly-once, raw key (the series) and raw value (the framed Avro record)."""
    if not settings.kpi_topic:
        return {"connector": "blackhole"}
    options = connectors.kafka_exactly_once_sink_options(
        settings.kafka, settings.kpi_topic, f"{settings.transactional_id_prefix}-kpi", value_format="raw"
    )
    options.update({"key.format": "raw", "key.fields": "kafka_key", "value.fields-include": "EXCEPT_KEY"})
    return options


def sinks_sql(settings: SessionizeSettings) -> list[str]:
    """The job's recipe (sessionize.sql): its functions, the `clean` view and the sink tables."""
    pg = settings.postgres

    def upsert(table: str) -> str:
        return connectors.with_clause(connectors.jdbc_upsert_options(pg, table))

    # sessions.feedback is JSONB and the job sends its JSON as a string: the driver then sends strings
    # untyped so PostgreSQL casts the text to the column's type (text columns are unaffected).
    sessions = connectors.jdbc_upsert_options(pg, tables.SESSIONS)
    sessions["url"] += "&stringtype=unspecified"

    return connectors.render_sql(
        SQL,
        sessions_options=connectors.with_clause(sessions),
        kpi_1m_options=upsert(tables.KPI_1M),
        kpi_sliding_options=upsert(tables.KPI_SLIDING_5M),
        kpi_daily_options=upsert(tables.KPI_DAILY),
        kpi_topic_options=connectors.with_clause(kpi_topic_options(settings)),
    )


def dedup(settings: SessionizeSettings) -> decode.Dedup:
    """How the classification numbers occurrences: per bucket of ids on the heap backend (decode.Dedup)."""
    return decode.Dedup.for_backend(settings.flink.state_backend, settings.dedup_ttl_ms)


def pipeline(settings: SessionizeSettings) -> Pipeline:
    """The job: Kafka → decode → classify → sinks; dead letters; KPI windows and sessions."""
    spec = decode_spec(settings)
    return Pipeline(
        config=(
            # Windows align to local days of the session time zone; all event times are epoch-based (LTZ).
            ("table.local-time-zone", settings.session_timezone),
            # Dedup state (occurrence numbers per event_id) lives for the dedup TTL.
            ("table.exec.state.ttl", f"{settings.dedup_ttl_ms} ms"),
            decode.SHARED_VIEWS,
        ),
        steps=(
            decode.source_step(spec),
            Step("columns read", (PACK_FUNCTION, events_view() + decode.quote(spec.names.valid_view))),
            decode.classify_step(
                EVENTS_VIEW,
                settings.max_future_skew_ms,
                settings.out_of_orderness_ms,
                settings.postgres,
                bots=settings.flink.enrichment,
                dedup=dedup(settings),
            ),
            Step("sinks", tuple(sinks_sql(settings))),
            decode.dead_letter_step(spec),
            # kpi_minutes unnests the minute cells: planned once, so its four readers share one copy
            Step(
                "windows and sessions",
                tuple(statements(settings)),
                planned_views=frozenset({"kpi_minutes"}),
            ),
        ),
    )


STATE_LAYOUT = 15
"""v2 (session 6): the per-partition arrival watermark (an OVER aggregate) before the dedup, the sliding and
cumulative windows cascaded from the minute rows, shared views optimized once. v3 (session 7): gap-sessions
from the session_events process table function (uid SESSIONS_UID) instead of the SESSION window TVF. v4
(issue 22): every event row carries is_bot (the decode step's enrichment); bots excluded, counted as
bot_events. v5 (issue 22 item 6): the minute windows aggregate feedback counts and sums, and the packed
session events carry the feedback fields. v6 (issue 22 item 4): session_events runs per device key with
the device's identity link in its state and the packed events carry user_id; the minute windows' user sets
carry identity links. v7 (issue 22 item 3): the partition watermark's OVER aggregate also holds the
behavioural bot rule's keys (bot_behaviour, README "Bots"); is_bot = agent_bot OR acts_bot. v8 (issue 17):
session_events' state has no TTL (it clears itself; uid SESSIONS_UID v2) and the session rows come from
the JVM finaliser split_sessions instead of a Python table function. v9 (issue 17): the ux.kpi records come
from the Java encode_kpi_window instead of a Python UDF: without the Python calcs the planner numbers the
operators before the ux.kpi sink differently, and the sink's transactional state goes with its uid. v10
(issue 17): the minute windows aggregate every dimension in one kpi_cells call per event (a window aggregate
keyed by the window alone, unnested) instead of a GROUPING SETS expansion keyed by dimension value. v11
(issue 17): user_count's accumulator in the sliding and cumulative windows is a heap object with its own
serializer (io.uxstream.udf.UserSet.PeopleSerializer) instead of map state per person. v12 (issue 17): the job
reads only the columns it uses (EVENT_COLUMNS), computes the KPI dimension columns ahead of the
classification, and the partition watermark's OVER aggregate takes arguments that need no Calc of their
own: two Calcs fewer on the per-event path, so the planner numbers the operators differently. v13 (issue 17):
the people sets of kpi_cells' cells and user_count's accumulators have a new serialized form (ids in one
buffer, UserSet.Accumulator.writeTo). v14 (issue 17): on the heap state backend the dedup keeps its event
ids per bucket (io.uxstream.udf.EventIds; variant "h", `dedup`); on RocksDB per event_id as in v13. v15
(issue 17): the partition watermark's OVER aggregate feeds the ledger and the on-time events without a
classification Calc shared by both (its arguments are columns: no helper columns to drop after it), and the
session fields travel packed from the source vertex (`PACKED`): one Calc fewer on the per-event path, so the
planner numbers the operators differently."""
JOB = runner.JobSpec(
    JOB_NAME,
    __doc__,
    SessionizeSettings.from_env,
    pipeline,
    OPTIONS,
    CHECKS,
    OUTPUTS,
    state_layout=STATE_LAYOUT,
    layout_variant=lambda settings: dedup(settings).layout_variant,
)
main = runner.entry_point(JOB)

if __name__ == "__main__":
    sys.exit(main())
