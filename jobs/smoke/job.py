"""Smoke pipeline job: Kafka (JSON) → Flink SQL + Python UDF → PostgreSQL (upsert) and Kafka (exactly-once).

It proves the stack end to end: connector jars, Python workers in process and thread mode, EXACTLY_ONCE
checkpointing with a transactional Kafka sink, and the JDBC upsert sink.

    python -m jobs.smoke.job --bounded            # read what is in the topic now, then finish
    python -m jobs.smoke.job --python-mode process
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.common.connectors import (
    KafkaSourceSpec,
    jdbc_upsert_options,
    kafka_exactly_once_sink_options,
    kafka_source_options,
    render_sql,
    with_clause,
)
from jobs.common.flink_env import FlinkSettings, create_environments
from jobs.common.settings import KafkaSettings, PostgresSettings

if TYPE_CHECKING:
    from pyflink.table import StreamTableEnvironment, Table
    from pyflink.table.table_result import TableResult

JOB_NAME = "uxstream-smoke"
SQL = Path(__file__).with_name("pipeline.sql")
INPUT_TOPIC = "ux.smoke.in"
OUTPUT_TOPIC = "ux.smoke.out"
PG_TABLE = "smoke_events"


@dataclass(frozen=True)
class SmokeSettings:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    postgres: PostgresSettings = field(default_factory=PostgresSettings)
    flink: FlinkSettings = field(default_factory=FlinkSettings)
    input_topic: str = INPUT_TOPIC
    output_topic: str = OUTPUT_TOPIC
    pg_table: str = PG_TABLE
    bounded: bool = True


def transform(t_env: StreamTableEnvironment, source: str) -> Table:
    """Topology without connectors: normalize each event's page to a path with a Python UDF."""
    from pyflink.table.expressions import col

    from jobs.smoke.functions import normalize_path

    events = t_env.from_path(source)
    return events.select(
        col("event_id"),
        col("user_id"),
        normalize_path(col("page")).alias("path"),
        col("ts"),
        col("event_time"),
    )


def build(t_env: StreamTableEnvironment, settings: SmokeSettings) -> TableResult:
    """Attach the Kafka source and both sinks, and submit the job."""
    from pyflink.table import DataTypes
    from pyflink.table.expressions import col

    statements = render_sql(
        SQL,
        source_options=with_clause(
            kafka_source_options(
                settings.kafka,
                KafkaSourceSpec(topic=settings.input_topic, group_id=JOB_NAME, bounded=settings.bounded),
            )
        ),
        jdbc_options=with_clause(jdbc_upsert_options(settings.postgres, settings.pg_table)),
        sink_options=with_clause(
            kafka_exactly_once_sink_options(
                settings.kafka, settings.output_topic, transactional_id_prefix=JOB_NAME
            )
        ),
    )
    for statement in statements:
        t_env.execute_sql(statement)
    normalized = transform(t_env, "smoke_source")
    statement_set = t_env.create_statement_set()
    statement_set.add_insert(
        "smoke_pg_sink",
        normalized.select(
            col("event_id"), col("user_id"), col("path"), col("event_time").cast(DataTypes.TIMESTAMP(3))
        ),
    )
    statement_set.add_insert(
        "smoke_kafka_sink", normalized.select(col("event_id"), col("user_id"), col("path"), col("ts"))
    )
    return statement_set.execute()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.smoke.job", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bounded",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="stop at the end offsets present at start (default: on)",
    )
    parser.add_argument("--input-topic", default=INPUT_TOPIC)
    parser.add_argument("--output-topic", default=OUTPUT_TOPIC)
    parser.add_argument("--pg-table", default=PG_TABLE)
    parser.add_argument(
        "--python-mode",
        choices=["process", "thread"],
        default=None,
        help="Python UDF execution mode (default: UXSTREAM_FLINK_PYTHON_MODE or thread)",
    )
    parser.add_argument("--checkpoint-interval-ms", type=int, default=None)
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> SmokeSettings:
    flink = FlinkSettings.from_env()
    if args.python_mode:
        flink = flink.with_options(python_mode=args.python_mode)
    if args.checkpoint_interval_ms:
        flink = flink.with_options(checkpoint_interval_ms=args.checkpoint_interval_ms)
    return SmokeSettings(
        kafka=KafkaSettings.from_env(),
        postgres=PostgresSettings.from_env(role="writer"),
        flink=flink,
        input_topic=args.input_topic,
        output_topic=args.output_topic,
        pg_table=args.pg_table,
        bounded=args.bounded,
    )


def run(settings: SmokeSettings) -> None:
    """Run the job to completion (bounded) or forever (unbounded)."""
    _, t_env = create_environments(settings.flink, JOB_NAME)
    result = build(t_env, settings)
    result.wait()


def main(argv: Sequence[str] | None = None) -> int:
    run(settings_from_args(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
