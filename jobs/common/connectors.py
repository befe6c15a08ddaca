"""Connector options for Flink SQL DDL: Kafka sources/sinks and JDBC (PostgreSQL) upsert sinks.

Jobs keep their DDL in `.sql` files beside them with `{placeholders}`; these helpers render the WITH
clauses from typed settings, so connection details and security settings are written once.
"""

from __future__ import annotations

import atexit
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from jobs.common.settings import KafkaSettings, PostgresSettings, Secret


def sql_literal(value: str) -> str:
    """A single-quoted SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def sql_interval(ms: int) -> str:
    """A Flink SQL interval literal of `ms` milliseconds (`INTERVAL '0 00:30:00.000' DAY TO SECOND(3)`).

    Single-unit literals such as `INTERVAL '300' SECOND` exceed Flink's default leading precision, and
    explicit precisions (`SECOND(9, 3)`) are rejected by the planner: the day-to-second form works for any
    non-negative length.
    """
    if ms < 0:
        raise ValueError(f"interval must not be negative, got {ms} ms")
    days, rest = divmod(ms, 86_400_000)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1_000)
    return f"INTERVAL '{days} {hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}' DAY TO SECOND(3)"


def with_clause(options: dict[str, str]) -> str:
    """Render options as the body of a DDL `WITH (...)` clause."""
    return ",\n  ".join(f"{sql_literal(k)} = {sql_literal(v)}" for k, v in options.items())


StopOffsets = tuple[tuple[int, int], ...]
"""(partition, offset) pairs: where a bounded read of each partition of a topic ends (exclusive)."""


def parse_stop_offsets(text: str) -> StopOffsets:
    """`"0:2600,1:980"` → `((0, 2600), (1, 980))`: a read that ends before offset 2600 of partition 0 and
    before offset 980 of partition 1. Raises ValueError, naming the bad part, on anything else."""
    pairs: dict[int, int] = {}
    for part in text.split(","):
        partition, sep, offset = part.strip().partition(":")
        if not sep or not partition.isdigit() or not offset.isdigit():
            raise ValueError(
                f"stop offsets {text!r}: {part.strip()!r} is not PARTITION:OFFSET (two non-negative integers)"
            )
        if int(partition) in pairs:
            raise ValueError(f"stop offsets {text!r}: partition {partition} is listed twice")
        pairs[int(partition)] = int(offset)
    return tuple(sorted(pairs.items()))


@dataclass(frozen=True)
class KafkaSourceSpec:
    topic: str
    group_id: str
    bounded: bool
    """Read up to the end offsets present at start, then finish (tests, backfills, run-local)."""
    value_format: str = "json"
    partition_discovery_ms: int = 60_000
    stop_offsets: StopOffsets = ()
    """When given: read each partition up to its offset (exclusive), waiting for records not produced yet,
    then finish; overrides `bounded`."""


def kafka_source_options(kafka: KafkaSettings, spec: KafkaSourceSpec) -> dict[str, str]:
    options = {
        "connector": "kafka",
        "topic": spec.topic,
        "properties.group.id": spec.group_id,
        # Offsets live in Flink's checkpoints; the group id only labels the consumer.
        "properties.isolation.level": "read_committed",
        "scan.startup.mode": "earliest-offset",
        "scan.topic-partition-discovery.interval": f"{spec.partition_discovery_ms} ms",
        "value.format": spec.value_format,
    }
    if spec.stop_offsets:
        options["scan.bounded.mode"] = "specific-offsets"
        options["scan.bounded.specific-offsets"] = ";".join(
            f"partition:{partition},offset:{offset}" for partition, offset in spec.stop_offsets
        )
    elif spec.bounded:
        options["scan.bounded.mode"] = "latest-offset"
    options.update({f"properties.{k}": v for k, v in kafka.java_client_properties().items()})
    return options


def kafka_exactly_once_sink_options(
    kafka: KafkaSettings, topic: str, transactional_id_prefix: str, value_format: str = "json"
) -> dict[str, str]:
    """Options of an EXACTLY_ONCE Kafka sink; read its topic with isolation.level=read_committed."""
    options = {
        "connector": "kafka",
        "topic": topic,
        "value.format": value_format,
        "sink.delivery-guarantee": "exactly-once",
        "sink.transactional-id-prefix": transactional_id_prefix,
        # Flink asks for 1 h unless told; a default broker allows 15 min (topics.check_transactions).
        "properties.transaction.timeout.ms": str(kafka.transaction_timeout_ms),
    }
    options.update({f"properties.{k}": v for k, v in kafka.java_client_properties().items()})
    return options


JDBC_CONNECTOR = "uxstream-jdbc"
"""flink-connector-jdbc's upsert sink with the same options, whose failures stay in the task instead of
shutting the TaskExecutor down (jvm/udf io.uxstream.sink.ResilientJdbcTableFactory; RELIABILITY T20)."""


def jdbc_upsert_options(pg: PostgresSettings, table: str, flush_rows: int = 500) -> dict[str, str]:
    """JDBC sink options; with a PRIMARY KEY in the DDL Flink writes `INSERT … ON CONFLICT DO UPDATE`.

    The password never travels in the options (Flink shows table options in plans, the job configuration
    and logs): `password-file` names the file the connector reads in the JVM when it creates the sink
    (jvm/udf io.uxstream.sink.ResilientJdbcTableFactory). A password given by value (UXSTREAM_PG_…_PASSWORD
    instead of _FILE) is first written to a private temporary file of this process."""
    # Flink wants both username and password or neither; without a password (trust/cert auth) the user
    # travels in the URL instead.
    options = {
        "connector": JDBC_CONNECTOR,
        "url": pg.jdbc_url(with_user=pg.password is None),
        "table-name": table,
        "sink.buffer-flush.max-rows": str(flush_rows),
        "sink.buffer-flush.interval": "1 s",
        "sink.max-retries": "5",
    }
    if pg.password is not None:
        options["username"] = pg.user
        options["password-file"] = password_file_of(pg) or ""
    return options


def password_file_of(pg: PostgresSettings) -> str | None:
    """The file holding `pg`'s password, for a JVM reader (a password given by value is first written to a
    private temporary file of this process); None without a password."""
    if pg.password is None:
        return None
    return pg.password_file or _password_file(pg.password)


_PASSWORD_FILES: dict[str, str] = {}


def _password_file(password: Secret) -> str:
    """A 0600 temporary file holding `password`, one per password, removed when the process exits."""
    value = password.reveal()
    if value not in _PASSWORD_FILES:
        fd, path = tempfile.mkstemp(prefix="uxstream-pg-", suffix=".password")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(value)
        atexit.register(Path(path).unlink, missing_ok=True)
        _PASSWORD_FILES[value] = path
    return _PASSWORD_FILES[value]


def render_sql(path: Path, **params: str) -> list[str]:
    """Read a `.sql` recipe, drop `--` comment lines, fill `{placeholders}`, split on `;` at line ends."""
    lines = [
        line for line in path.read_text(encoding="utf-8").splitlines() if not line.strip().startswith("--")
    ]
    text = "\n".join(lines).format(**params)  # comments may mention {placeholders} freely
    statements: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        current.append(line)
        if line.rstrip().endswith(";"):
            statement = "\n".join(current).strip().rstrip(";").strip()
            if statement:
                statements.append(statement)
            current = []
    tail = "\n".join(current).strip()
    if tail:
        statements.append(tail)
    return statements
