"""A tiny job around the decode step, for its tests: raw topic → valid events (JSON) + dead letters.

It runs the shared decode step (`jobs.common.decode`) exactly as a real job does, then writes every valid
event, all columns, as JSON to a topic (exactly-once) and the dead letters to the DLQ topic; with
`--watermark` the source gets that watermark, each valid row carries `CURRENT_WATERMARK(event_time)` at
its arrival, and `--window-topic` gets 1-minute tumbling event counts (proving windows work on top).
Restarts are disabled: a bad record that made the job fail would fail the run. Prints `JOB FINISHED` at
the end.

    python -m jobs.common.decode_check_job --source-topic T --dlq-topic D --valid-topic V [--watermark ...]
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from jobs.common import decode
from jobs.common.connectors import kafka_exactly_once_sink_options
from jobs.common.flink_env import FlinkSettings, create_environments
from jobs.common.settings import KafkaSettings

if TYPE_CHECKING:
    from pyflink.table import StreamTableEnvironment

JOB_NAME = "uxstream-decode-check"


def valid_select(spec: decode.DecodeSpec) -> str:
    columns = [decode.quote(c) for c in decode.valid_columns() if c != "event_time"]
    columns.append("CAST(event_time AS TIMESTAMP_LTZ(3)) AS event_time")
    if spec.watermark:
        columns.append("CURRENT_WATERMARK(event_time) AS watermark_at_arrival")
    return f"SELECT {', '.join(columns)} FROM {decode.quote(spec.names.valid_view)}"


def window_select(spec: decode.DecodeSpec) -> str:
    return (
        "SELECT window_start, window_end, COUNT(*) AS events FROM TABLE(TUMBLE("
        f"TABLE {decode.quote(spec.names.valid_view)}, DESCRIPTOR(event_time), INTERVAL '1' MINUTE)) "
        "GROUP BY window_start, window_end"
    )


def json_sink(
    t_env: StreamTableEnvironment, name: str, query: str, kafka: KafkaSettings, topic: str, prefix: str
) -> None:
    """A temporary exactly-once JSON Kafka table with the columns of `query`'s result."""
    from pyflink.table import Schema, TableDescriptor

    options = kafka_exactly_once_sink_options(kafka, topic, prefix, value_format="json")
    options["value.json.timestamp-format.standard"] = "ISO-8601"
    row_type = t_env.sql_query(query).get_schema().to_row_data_type()
    builder = TableDescriptor.for_connector("kafka").schema(
        Schema.new_builder().from_row_data_type(row_type).build()
    )
    for key, value in options.items():
        if key != "connector":
            builder = builder.option(key, value)
    t_env.create_temporary_table(name, builder.build())


def run(args: argparse.Namespace) -> None:
    run_id = uuid.uuid4().hex[:8]  # transactional ids unique per run: concurrent test runs never fence
    flink = FlinkSettings.from_env().with_options(
        restart_attempts=0,
        checkpoint_interval_ms=args.checkpoint_interval_ms,
        extra_config=(("pipeline.auto-watermark-interval", "10 ms"),),
    )
    spec = decode.DecodeSpec(
        job=args.job,
        kafka=KafkaSettings.from_env(),
        source_topic=args.source_topic,
        dlq_topic=args.dlq_topic,
        bounded=True,
        watermark=args.watermark,
        dlq_transactional_id_prefix=f"{args.job}-dlq-{run_id}",
    )
    _, t_env = create_environments(flink, f"{JOB_NAME}-{run_id}")
    decode.create(t_env, spec)
    statements = t_env.create_statement_set()
    statements.add_insert_sql(decode.dlq_insert(spec))
    query = valid_select(spec)
    json_sink(t_env, "check_valid", query, spec.kafka, args.valid_topic, f"check-valid-{run_id}")
    statements.add_insert_sql(f"INSERT INTO check_valid {query}")
    if args.window_topic:
        windows = window_select(spec)
        json_sink(t_env, "check_windows", windows, spec.kafka, args.window_topic, f"check-windows-{run_id}")
        statements.add_insert_sql(f"INSERT INTO check_windows {windows}")
    if args.explain:
        print(statements.explain())
    result = statements.execute()
    result.wait()  # raises when the job fails (and restarts are off: any failure fails it)
    print("JOB FINISHED", flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.common.decode_check_job", description=__doc__)
    parser.add_argument("--source-topic", required=True)
    parser.add_argument("--dlq-topic", required=True)
    parser.add_argument("--valid-topic", required=True)
    parser.add_argument("--window-topic")
    parser.add_argument("--watermark", help="watermark expression, e.g. \"event_time - INTERVAL '5' SECOND\"")
    parser.add_argument("--job", default="decode-check", help="job name written into the dead letters")
    parser.add_argument("--checkpoint-interval-ms", type=int, default=1000)
    parser.add_argument("--explain", action="store_true", help="print the optimized plan first")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
