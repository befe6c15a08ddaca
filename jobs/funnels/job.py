"""funnels: streaming conversion funnels with drop-off, from Kafka to PostgreSQL and ux.funnel.

    python -m jobs.funnels.job --bounded     # read what is in ux.events now, then finish
    python -m jobs.funnels.job               # run unbounded (clusters)

Topology: decode (Java UDF) ─► DLQ │ keep events whose name matters to a funnel and the earliest link of
each (anonymous_id, user_id) pair (JVM) ─► future/late flags ─► late ledger │ occurrence per event_id
(dedup) ─► DataStream keyed by device key ─► Python `IdentityFunction` (resolves anonymous events to the
user of the device's login; runs the attempts of anonymous ids; event-time timers) ─► keyed by the
resolved user key ─► Python `AttemptsFunction` (event-time timers; thread mode) ─► funnel_attempts │
keyed by funnel ─► Python `WindowsFunction` ─► funnel_windows, funnel_window_steps, ux.funnel
(exactly-once, Avro).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Final

from jobs.common import connectors, counters, decode, runner, tables
from jobs.common.pipeline import Flow, Pipeline, Step
from jobs.funnels.logic import PROPERTIES_PREFIX, attributes_of, relevant_event_names
from jobs.funnels.settings import FunnelsSettings

JOB_NAME = "funnels"
SQL = Path(__file__).with_name("funnels.sql")
UID_IDENTITY = "funnels.identity.v1"
UID_ATTEMPTS = "funnels.attempts.v1"
UID_WINDOWS = "funnels.windows.v1"

OPTIONS = runner.event_job_options(
    runner.Option("--input-topic", "input_topic", help="default: UXSTREAM_FUNNELS_INPUT_TOPIC or ux.events"),
    runner.Option("--dlq-topic", "dlq_topic"),
    runner.Option("--funnel-topic", "funnel_topic", help="default: ux.funnel"),
    runner.path_option(
        "--config", "config_path", "funnel definitions file (default: UXSTREAM_FUNNELS_CONFIG)"
    ),
    runner.Option("--transactional-id-prefix", "transactional_id_prefix", help="default: funnels"),
)
"""The job's command line: the common options of a job reading ux.events and its own."""
CHECKS = (*runner.CHECKS, runner.ensure_pseudonym_key)
"""Before Flink starts: those of every job reading ux.events, then the local pseudonym key."""
OUTPUTS = ("dlq_topic", "funnel_topic")
"""Settings fields naming the topics the job writes."""


def relevant_condition(settings: FunnelsSettings) -> str:
    """The JVM filter: only event names some funnel can react to (TRUE when a strict funnel needs all)."""
    names = relevant_event_names(settings.funnels)
    if names is None:
        return "TRUE"
    return f"decoded.event_name IN ({', '.join(connectors.sql_literal(n) for n in sorted(names))})"


BASE_COLUMNS = (
    "event_id", "event_type", "event_name", "user_id", "anonymous_id", "ts", "received_at",
    "page_path", "country", "device_type",
)  # fmt: skip
"""Event fields the job always uses (keys, time, ledger dimensions)."""


def relevant_columns(settings: FunnelsSettings) -> str:
    """Fields projected from the decoded record: the base ones and those the attributes read."""
    attributes = attributes_of(settings.funnels)
    columns = list(BASE_COLUMNS)
    columns += [a for a in attributes if not a.startswith(PROPERTIES_PREFIX) and a not in columns]
    if any(a.startswith(PROPERTIES_PREFIX) for a in attributes):
        columns.append("properties")
    return ",\n  ".join(f"decoded.{decode.quote(c)} AS {decode.quote(c)}" for c in columns)


def attribute_expression(name: str) -> str:
    if name.startswith(PROPERTIES_PREFIX):
        return f"properties[{connectors.sql_literal(name[len(PROPERTIES_PREFIX) :])}]"
    return decode.quote(name)


def attribute_columns(settings: FunnelsSettings) -> str:
    return "".join(
        f",\n  {attribute_expression(a)} AS attr_{i}" for i, a in enumerate(attributes_of(settings.funnels))
    )


def attribute_nulls(settings: FunnelsSettings) -> str:
    return ", CAST(NULL AS STRING)" * len(attributes_of(settings.funnels))


def _late_field(name: str, sql_type: str = "STRING") -> str:
    value = f"JSON_VALUE(late_row, '$.{name}')"
    return value if sql_type == "STRING" else f"CAST({value} AS {sql_type})"


def late_insert() -> str:
    """The late ledger rows (kind 'late' of the routed stream), as sessionize writes them."""
    instant = "to_utc(TO_TIMESTAMP_LTZ({}, 3))".format
    return f"""INSERT INTO late_sink
SELECT '{tables.LATE_JOB_FUNNELS}', event_id,
  {instant(_late_field("event_time", "BIGINT"))},
  {instant(_late_field("received_at", "BIGINT"))},
  {instant(_late_field("watermark", "BIGINT"))},
  {_late_field("lateness_ms", "BIGINT")},
  {_late_field("reason")},
  {_late_field("page_path")},
  {_late_field("country")},
  {_late_field("device_type")},
  {_late_field("partition", "INT")},
  {_late_field("offset", "BIGINT")},
  {_late_field("user_key")}
FROM routed_rows
WHERE kind = 'late' AND {counters.ledger_counters(_late_field("reason"))}"""


def dlq_insert(spec: decode.DecodeSpec) -> str:
    """Dead letters (kind 'dlq' of the routed stream, encoded by the decode step's SQL) to the DLQ topic."""
    return f"""INSERT INTO {decode.quote(spec.names.dlq_table)}
SELECT dlq_key, dlq_value, TO_TIMESTAMP_LTZ(dlq_ts, 3)
FROM routed_rows
WHERE kind = 'dlq'"""


def dlq_select(spec: decode.DecodeSpec) -> str:
    """The SELECT of the decode step's DLQ insert (one place for how a dead letter is encoded)."""
    statement = decode.dlq_insert(spec)
    head, _, select = statement.partition("\n")
    assert head.startswith("INSERT INTO") and select.startswith("SELECT"), statement
    return select


def _utc(column: str) -> str:
    return f"to_utc(TO_TIMESTAMP_LTZ({column}, 3))"


def route(flow: Flow) -> None:
    """The `routed` view (all the JVM part hands over) as one DataStream and as the view routed_rows."""
    routed = flow.t_env.to_data_stream(flow.t_env.from_path("routed"))
    flow.streams["routed"] = routed
    flow.t_env.create_temporary_view("routed_rows", flow.t_env.from_data_stream(routed))


def attempts_and_windows(settings: FunnelsSettings) -> Callable[[Flow], None]:
    """Attempts per user, then windows per funnel (Python keyed functions): the views attempts_out,
    windows_out and steps_out."""

    def process(flow: Flow) -> None:
        from pyflink.common.typeinfo import Types

        from jobs.funnels.functions import (
            ANONYMOUS_ATTEMPTS_TAG,
            ATTEMPT_FIELDS,
            STEPS_TAG,
            WINDOW_FIELDS,
            AttemptsFunction,
            IdentityFunction,
            WindowsFunction,
            event_fields,
            row_type,
        )

        funnels = settings.funnels
        attributes = attributes_of(funnels)
        resolved = (
            flow.streams["routed"]
            .key_by(lambda row: row[1], key_type=Types.STRING())
            .process(
                IdentityFunction(funnels, attributes, settings.visit_gap_ms, settings.identity_ttl_ms),
                output_type=row_type(event_fields(attributes)),
            )
            .name("funnels: identity per device")
            .uid(UID_IDENTITY)
        )
        attempts = (
            resolved.key_by(lambda row: row[1], key_type=Types.STRING())
            .process(
                AttemptsFunction(funnels, attributes, settings.state_ttl_ms),
                output_type=row_type(ATTEMPT_FIELDS),
            )
            .name("funnels: attempts per user")
            .uid(UID_ATTEMPTS)
            .union(resolved.get_side_output(ANONYMOUS_ATTEMPTS_TAG))
        )
        windows = (
            attempts.key_by(lambda row: row[1], key_type=Types.STRING())
            .process(WindowsFunction(funnels, settings.window_ms), output_type=row_type(WINDOW_FIELDS))
            .name("funnels: windows per funnel")
            .uid(UID_WINDOWS)
        )
        steps = windows.get_side_output(STEPS_TAG)
        flow.t_env.create_temporary_view("attempts_out", flow.t_env.from_data_stream(attempts))
        flow.t_env.create_temporary_view("windows_out", flow.t_env.from_data_stream(windows))
        flow.t_env.create_temporary_view("steps_out", flow.t_env.from_data_stream(steps))

    return process


def output_inserts() -> tuple[str, ...]:
    """funnel_attempts, funnel_windows, funnel_window_steps and ux.funnel from the processed streams."""
    scalar = "funnel, {start}, {end}, dimension, dimension_value".format(
        start=_utc("window_start"), end=_utc("window_end")
    )
    return (
        f"""INSERT INTO attempts_sink
SELECT attempt_id, funnel, user_key, {_utc("entered_at")}, {_utc("ended_at")}, status, furthest_step, steps,
  step_times, time_to_convert_ms, breakdown
FROM attempts_out""",
        f"""INSERT INTO windows_sink
SELECT {scalar}, steps, entered, converted, dropped, excluded, conversion_rate, median_time_to_convert_ms,
  revision
FROM windows_out""",
        f"""INSERT INTO window_steps_sink
SELECT {scalar}, step, step_name, reached, conversion_from_previous, drop_off
FROM steps_out""",
        # A window's first final record only: the anomaly job reads each window once (a rewrite of a written
        # window, logic.WindowBook, corrects the tables).
        """INSERT INTO funnel_topic
SELECT kafka_key, payload, TO_TIMESTAMP_LTZ(window_end, 3) FROM windows_out WHERE revision = 1""",
    )


def decode_spec(settings: FunnelsSettings) -> decode.DecodeSpec:
    """Same event-time rules as sessionize (jobs/common/decode.py `event_time_spec`)."""
    return decode.job_event_time_spec(JOB_NAME, settings, settings.dlq_transactional_id_prefix)


RELEVANT_VIEW = "CREATE TEMPORARY VIEW valid_events "
"""The last statement before the classification (funnels.sql)."""
PAIR_LEAST: Final = (
    (
        "pair_least_ts",
        "pair_least_ts(CASE WHEN is_erased THEN CAST(NULL AS STRING) ELSE anonymous_id END, user_id, ts)",
    ),
)
"""The identity links' running minimum per (anonymous_id, user_id) pair, in the partition watermark's
window."""
RELEVANT: Final = (
    "is_step OR (NULLIF(anonymous_id, '') IS NOT NULL AND NULLIF(user_id, '') IS NOT NULL "
    "AND ts <= pair_least_ts)"
)
"""What the classification keeps: the funnel steps and the earliest link of each pair so far."""


def recipe(settings: FunnelsSettings) -> tuple[list[str], list[str]]:
    """The job's recipe (funnels.sql) in two parts: up to the `valid_events` view, and the `routed` view with
    the sink tables (the arrival classification goes between them)."""
    pg = settings.postgres
    spec = decode_spec(settings)
    topic = connectors.kafka_exactly_once_sink_options(
        settings.kafka, settings.funnel_topic, settings.windows_transactional_id_prefix, value_format="raw"
    )
    topic.update({"key.format": "raw", "key.fields": "kafka_key", "value.fields-include": "EXCEPT_KEY"})

    def upsert(table: str) -> str:
        return connectors.with_clause(connectors.jdbc_upsert_options(pg, table))

    statements = connectors.render_sql(
        SQL,
        relevant=relevant_condition(settings),
        relevant_columns=relevant_columns(settings),
        device_key=decode.DEVICE_KEY,
        humans_only=" AND NOT is_bot" if settings.flink.enrichment.exclude_bots else "",
        decoded_view=decode.quote(spec.names.decoded_view),
        attribute_columns=attribute_columns(settings),
        attribute_nulls=attribute_nulls(settings),
        dlq_select=dlq_select(spec),
        attempts_options=upsert(tables.FUNNEL_ATTEMPTS),
        windows_options=upsert(tables.FUNNEL_WINDOWS),
        window_steps_options=upsert(tables.FUNNEL_WINDOW_STEPS),
        funnel_topic_options=connectors.with_clause(topic),
    )
    after = next(i for i, s in enumerate(statements) if s.startswith(RELEVANT_VIEW)) + 1
    return statements[:after], statements[after:]


def pipeline(settings: FunnelsSettings) -> Pipeline:
    """The job: Kafka → decode → relevant events → classify → routed stream → attempts → windows → sinks."""
    spec = decode_spec(settings)
    relevant, routed = recipe(settings)
    return Pipeline(
        config=(("table.exec.state.ttl", f"{settings.dedup_ttl_ms} ms"), decode.SHARED_VIEWS),
        steps=(
            decode.source_step(spec),
            Step("relevant events", tuple(relevant)),
            # Every valid event passes the classification; only the relevant ones are classified.
            decode.classify_step(
                "valid_events",
                settings.max_future_skew_ms,
                settings.out_of_orderness_ms,
                settings.postgres,
                relevant=RELEVANT,
                bots=settings.flink.enrichment,
                aggregates=PAIR_LEAST,
            ),
            Step("routed and sinks", tuple(routed)),
            Step("route", stream=route),
            Step("dead letters and late ledger", (dlq_insert(spec), late_insert())),
            Step("attempts and windows", stream=attempts_and_windows(settings)),
            Step("outputs", output_inserts()),
        ),
    )


STATE_LAYOUT = 7
"""v2 (session 6): the per-partition arrival watermark (an OVER aggregate) before the dedup, shared views
optimized once. v3 (issue 22): every event row carries is_bot (the decode step's enrichment). v4 (issue 22
item 6): every event row carries the feedback fields of ux_event v3. v5 (issue 22 item 4): the earliest
link per (anonymous_id, user_id) pair (an OVER aggregate) before the classification, events keyed by
device key into the identity stage (uid funnels.identity.v1; it also holds the attempts of anonymous ids)
and then by resolved user key; the window stage keeps a written window's attempts for
logic.WINDOW_RETENTION_MS (its state "funnel-window-book"), so an attempt held by the identity stage that
arrives after the window was written rewrites it complete, with the next revision. v6 (issue 22 item 3):
the partition watermark's OVER aggregate also holds the behavioural bot rule's keys (bot_behaviour, README
"Bots"), over every valid event (event_type is projected for it), and the pairs' earliest links
(pair_least_ts) instead of an OVER aggregate keyed by pair before it, which at parallelism > 1 handed a
partition's events to the partition watermark in a timing-dependent order. v7 (issue 17): the partition
watermark's OVER aggregate feeds the ledger and the on-time events without a classification Calc shared by
both (jobs/common/sql/classify.sql), so the planner numbers the operators differently."""
JOB = runner.JobSpec(
    JOB_NAME, __doc__, FunnelsSettings.from_env, pipeline, OPTIONS, CHECKS, OUTPUTS, state_layout=STATE_LAYOUT
)
main = runner.entry_point(JOB)

if __name__ == "__main__":
    sys.exit(main())
