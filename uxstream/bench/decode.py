"""Decode throughput on this box: where should ux.events decoding run? (DESIGN.md §2)

Pre-loads a one-partition topic with N generated events (`uxstream generate`, same seed: re-used when it
already holds exactly N records) and measures, on a Flink MiniCluster at parallelism 1:

- `raw`: Kafka raw source → blackhole, no decode (the ceiling);
- `java`: raw source → `decode_ux_event(payload)` (the Java UDF, jvm/udf) → blackhole;
- `java-step`: the complete decode step as jobs use it (`jobs.common.decode`: watermark on the source,
  flattened valid view → blackhole, invalid view → EXACTLY_ONCE DLQ sink);
- `python`: raw source → a Python scalar UDF (thread mode) calling `jobs.common.contract.decode` →
  blackhole, the same ROW as the Java UDF.

Each variant runs a warm-up job, then a job over the first N/5 records and one over all N, each timed by
Flink's net job runtime; events/s = (N − N/5) / (T(N) − T(N/5)), which cancels the fixed cost of
deploying a job (and the MiniCluster start-up is not in the net runtime at all).

    .venv/bin/python -m uxstream.bench.decode --events 1000000
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from jobs.common import decode
from jobs.common.connectors import KafkaSourceSpec, kafka_source_options, with_clause
from jobs.common.contract import event_reader_schema
from jobs.common.flink_env import FlinkSettings, create_environments
from jobs.common.settings import KafkaSettings
from jobs.common.topics import end_offset

if TYPE_CHECKING:
    from pyflink.table import StreamTableEnvironment

DEFAULT_TOPIC: Final = "ux.bench.decode"
DEFAULT_EVENTS: Final = 1_000_000
SEED: Final = 7
VARIANTS: Final = ("raw", "java", "java-step", "python")


@dataclass(frozen=True)
class Measurement:
    variant: str
    events: int
    small_seconds: float
    full_seconds: float

    @property
    def events_per_second(self) -> float:
        """Steady-state rate: the records between N/5 and N over the runtime they added."""
        extra = self.full_seconds - self.small_seconds
        return (self.events - self.events // 5) / extra if extra > 0 else float("inf")

    @property
    def naive_events_per_second(self) -> float:
        """N over the whole net runtime of the N-record job (includes deploying the job)."""
        return self.events / self.full_seconds


# ----------------------------------------------------------------------------------------- the input


def ensure_input(kafka: KafkaSettings, topic: str, events: int) -> None:
    """A one-partition topic holding exactly `events` generated records (valid v1/v2 events)."""
    present = end_offset(kafka, topic)
    if present == events:
        return
    if present is not None:
        raise SystemExit(
            f"topic {topic} holds {present} records, not {events}: pass --topic with a new name "
            f"(or delete {topic})"
        )
    from uxstream.cli import main as uxstream_main

    code = uxstream_main(
        ["generate", "--events", str(events), "--topic", topic, "--partitions", "1", "--seed", str(SEED)]
    )
    if code != 0 or end_offset(kafka, topic) != events:
        raise SystemExit(f"could not pre-load {topic} with {events} events (uxstream generate exit {code})")


# ---------------------------------------------------------------------------------------- variants


def bounded_options(kafka: KafkaSettings, topic: str, records: int) -> dict[str, str]:
    """Read the first `records` records of partition 0, then finish."""
    spec = KafkaSourceSpec(
        topic, "uxstream-bench", bounded=True, value_format="raw", stop_offsets=((0, records),)
    )
    return kafka_source_options(kafka, spec)


def raw_table(t_env: StreamTableEnvironment, kafka: KafkaSettings, topic: str, records: int) -> None:
    options = with_clause(bounded_options(kafka, topic, records))
    t_env.execute_sql(f"CREATE TEMPORARY TABLE bench_raw (payload BYTES) WITH ({options})")


def blackhole_insert(t_env: StreamTableEnvironment, name: str, query: str) -> str:
    """Create a blackhole table shaped like `query`'s result; returns the INSERT."""
    from pyflink.table import Schema, TableDescriptor

    row_type = t_env.sql_query(query).get_schema().to_row_data_type()
    t_env.create_temporary_table(
        name,
        TableDescriptor.for_connector("blackhole")
        .schema(Schema.new_builder().from_row_data_type(row_type).build())
        .build(),
    )
    return f"INSERT INTO {name} {query}"


def python_row_type() -> Any:
    """The Java UDF's ROW type, built in Python from the same reader schema."""
    from pyflink.table import DataTypes

    def sql_type(avro: Any) -> Any:
        if isinstance(avro, list):
            (avro,) = [t for t in avro if t != "null"]
        if isinstance(avro, dict):
            if avro["type"] == "map":
                return DataTypes.MAP(DataTypes.STRING(), sql_type(avro["values"]))
            avro = avro["type"]
        return {
            "string": DataTypes.STRING(),
            "long": DataTypes.BIGINT(),
            "int": DataTypes.BIGINT(),  # PyFlink 2.2 thread mode: a NULL INT inside a ROW raises an NPE
            "double": DataTypes.DOUBLE(),
            "float": DataTypes.FLOAT(),
            "boolean": DataTypes.BOOLEAN(),
            "bytes": DataTypes.BYTES(),
        }[avro]

    fields = [
        DataTypes.FIELD("reason", DataTypes.STRING()),
        DataTypes.FIELD("detail", DataTypes.STRING()),
        DataTypes.FIELD("schema_id", DataTypes.BIGINT()),
    ]
    for f in event_reader_schema().definition["fields"]:
        fields.append(DataTypes.FIELD(f["name"], sql_type(f["type"])))
    return DataTypes.ROW(fields)


def python_decode(payload: bytes | None) -> Any:
    """The Python decoder as a Flink row (what the Python UDF variant runs per record)."""
    from pyflink.common import Row

    from jobs.common import contract

    result = contract.decode(payload)
    if isinstance(result, contract.Invalid):
        return Row(result.reason, result.detail, result.schema_id, *([None] * len(_FIELDS)))
    event = result.event
    return Row(None, None, result.schema_id, *[event.get(name) for name in _FIELDS])


_FIELDS: Final = event_reader_schema().field_names


def build_raw(t_env: StreamTableEnvironment, kafka: KafkaSettings, topic: str, records: int) -> list[str]:
    raw_table(t_env, kafka, topic, records)
    return [blackhole_insert(t_env, "bench_sink", "SELECT payload FROM bench_raw")]


def build_java(t_env: StreamTableEnvironment, kafka: KafkaSettings, topic: str, records: int) -> list[str]:
    raw_table(t_env, kafka, topic, records)
    for statement in decode.function_ddl():
        t_env.execute_sql(statement)
    return [
        blackhole_insert(t_env, "bench_sink", "SELECT decode_ux_event(payload) AS decoded FROM bench_raw")
    ]


def build_java_step(
    t_env: StreamTableEnvironment, kafka: KafkaSettings, topic: str, records: int
) -> list[str]:
    spec = decode.DecodeSpec(
        job="uxstream-bench",
        kafka=kafka,
        source_topic=topic,
        dlq_topic=f"{topic}.dlq",
        bounded=True,
        stop_offsets=((0, records),),
        watermark="event_time - INTERVAL '5' SECOND",
    )
    names = decode.create(t_env, spec)
    valid = f"SELECT * FROM {decode.quote(names.valid_view)}"
    return [blackhole_insert(t_env, "bench_sink", valid), decode.dlq_insert(spec)]


def build_python(t_env: StreamTableEnvironment, kafka: KafkaSettings, topic: str, records: int) -> list[str]:
    from pyflink.table import DataTypes
    from pyflink.table.udf import udf

    raw_table(t_env, kafka, topic, records)
    function = udf(python_decode, input_types=[DataTypes.BYTES()], result_type=python_row_type())
    t_env.create_temporary_system_function("py_decode_ux_event", function)
    return [
        blackhole_insert(t_env, "bench_sink", "SELECT py_decode_ux_event(payload) AS decoded FROM bench_raw")
    ]


BUILDERS: Final[dict[str, Callable[[StreamTableEnvironment, KafkaSettings, str, int], list[str]]]] = {
    "raw": build_raw,
    "java": build_java,
    "java-step": build_java_step,
    "python": build_python,
}


FLINK_OPTIONS: list[tuple[str, str]] = []
"""Extra Flink options for every job (--flink-option)."""


def run_job(variant: str, kafka: KafkaSettings, topic: str, records: int) -> float:
    """Net runtime (seconds) of one bounded job of `variant` over the first `records` records."""
    flink = FlinkSettings.from_env().with_options(
        python_mode="thread", checkpoint_interval_ms=60_000, extra_config=tuple(FLINK_OPTIONS)
    )
    _, t_env = create_environments(flink, f"uxstream-bench-{variant}")
    statements = t_env.create_statement_set()
    for insert in BUILDERS[variant](t_env, kafka, topic, records):
        statements.add_insert_sql(insert)
    client = statements.execute().get_job_client()
    assert client is not None
    result = client.get_job_execution_result().result()
    return float(result.get_net_runtime()) / 1000.0


def measure(variant: str, kafka: KafkaSettings, topic: str, events: int, repeats: int) -> Measurement:
    """Best (lowest) net runtime of `repeats` jobs over N/5 and over N records, after one warm-up job."""
    small = max(1, events // 5)
    run_job(variant, kafka, topic, small)  # warm-up: JIT, Python worker, Kafka client
    small_seconds = min(run_job(variant, kafka, topic, small) for _ in range(repeats))
    full_seconds = min(run_job(variant, kafka, topic, events) for _ in range(repeats))
    return Measurement(variant, events, small_seconds, full_seconds)


# ------------------------------------------------------------------------------------------ one core


def sample_payloads(kafka: KafkaSettings, topic: str, count: int) -> list[bytes]:
    """The first `count` record values of partition 0."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**kafka.client_config(), "group.id": "uxstream-bench", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    payloads: list[bytes] = []
    try:
        while len(payloads) < count:
            batch = consumer.consume(min(10_000, count - len(payloads)), timeout=10)
            if not batch:
                break
            payloads.extend(m.value() or b"" for m in batch if m.error() is None)
    finally:
        consumer.close()
    return payloads


def python_core_rate(payloads: Sequence[bytes], rounds: int = 3) -> float:
    """`contract.decode` events/s on one core (best of `rounds` passes over the payloads)."""
    from jobs.common import contract

    decoder = contract.EventDecoder()
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for payload in payloads:
            decoder.decode(payload)
        best = min(best, time.perf_counter() - started)
    return len(payloads) / best


def java_core_rate(payloads: Sequence[bytes], rounds: int = 20) -> float:
    """The UDF's decoder (`EventDecoder`) events/s on one core, JIT warmed up (DecodeCli --bench)."""
    import json
    import subprocess
    import tempfile

    import pyflink

    from jobs.common.flink_env import FLINK_LIB_JARS

    dist = sorted((Path(pyflink.__file__).parent / "lib").glob("flink-dist-*.jar"))
    classpath = ":".join(str(p) for p in [FLINK_LIB_JARS / "uxstream-udf-0.1.0.jar", *dist])
    with tempfile.NamedTemporaryFile("w", suffix=".hex") as file:
        file.write("\n".join(p.hex() for p in payloads))
        file.flush()
        out = subprocess.run(
            ["java", "-cp", classpath, "io.uxstream.udf.DecodeCli", "--bench", file.name, str(rounds)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    result = json.loads(out)
    return float(result["events"]) / float(result["seconds"])


def report(measurements: Sequence[Measurement]) -> str:
    lines = [
        "| variant | events | net runtime N/5 | net runtime N | events/s (steady) | events/s (N / runtime) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for m in measurements:
        lines.append(
            f"| {m.variant} | {m.events:,} | {m.small_seconds:.2f} s | {m.full_seconds:.2f} s | "
            f"{m.events_per_second:,.0f} | {m.naive_events_per_second:,.0f} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m uxstream.bench.decode", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument(
        "--events", type=int, default=DEFAULT_EVENTS, help=f"records (default {DEFAULT_EVENTS:,})"
    )
    parser.add_argument("--topic", default=None, help=f"input topic (default {DEFAULT_TOPIC}.<events>)")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {', '.join(VARIANTS)}"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed jobs per size, best kept (default 3)")
    parser.add_argument(
        "--flink-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra Flink option for every job, e.g. pipeline.object-reuse=true (repeatable)",
    )
    parser.add_argument(
        "--core-sample", type=int, default=50_000, help="payloads for the one-core decoder rates (0: skip)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in BUILDERS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}: choose from {', '.join(VARIANTS)}")
    for option in args.flink_option:
        key, sep, value = option.partition("=")
        if not sep:
            raise SystemExit(f"--flink-option {option!r}: expected KEY=VALUE")
        FLINK_OPTIONS.append((key.strip(), value.strip()))
    kafka = KafkaSettings.from_env()
    topic = args.topic or f"{DEFAULT_TOPIC}.{args.events}"
    started = time.monotonic()
    ensure_input(kafka, topic, args.events)
    print(
        f"input: {topic}, {args.events:,} records ({time.monotonic() - started:.0f} s to prepare)", flush=True
    )
    if args.core_sample:
        payloads = sample_payloads(kafka, topic, args.core_sample)
        java, python = java_core_rate(payloads), python_core_rate(payloads)
        print(
            f"one core, {len(payloads):,} payloads: Java EventDecoder {java:,.0f} events/s, "
            f"Python contract.decode {python:,.0f} events/s",
            flush=True,
        )
    measurements = []
    for variant in variants:
        repeats = 1 if variant == "python" else args.repeats
        measurement = measure(variant, kafka, topic, args.events, repeats)
        print(f"{variant}: {measurement.events_per_second:,.0f} events/s", flush=True)
        measurements.append(measurement)
    print(report(measurements))
    return 0


if __name__ == "__main__":
    sys.exit(main())
