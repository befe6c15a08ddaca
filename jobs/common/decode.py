"""The safe decode step every uxstream job uses: raw ux.events → valid events + dead letters.

Decoding runs in the JVM, in Java UDFs from the uxstream-udf jar (`jvm/udf`, built by `make jars` into
`.cache/jars/flink-lib/`, so it is on every job's `pipeline.jars`); NOTES.md has the measurements behind
that choice. `jobs.common.contract` stays the spec: the UDF gives every payload the reason code, detail
and values the Python decoder gives it (tests/decode prove it on fuzzed payloads).

SQL objects (default names; the recipe is `jobs/common/sql/decode.sql`):

- functions `decode_ux_event(payload BYTES)` → ROW<reason, detail, schema_id, every ux_event field>
  (declared non-deterministic so the planner calls it once per row, not once per field);
  `ux_event_time(payload BYTES [, max_future_skew_ms BIGINT])` → TIMESTAMP_LTZ(3): ts of a valid event,
  NULL for an invalid one (with the skew: NULL also for a future event, `contract.is_future`); and
  `encode_dead_letter(original, original_key, topic, partition, offset, observed_at, reason, detail,
  schema_id, job)` → BYTES (the framed dead_letter record; counts dead letters, metric group
  `uxstream.dead_letters`: counter `total` and `reason=<code>` → `count`); the jobs' own counters
  (metric group `uxstream.<name>`, counter `total`): `count_when(name, flag)` → TRUE, a WHERE conjunct
  counting the rows whose flag is TRUE, and `occurrence_count(name) OVER (…)` → BIGINT, COUNT(*) over
  the window that counts every row after the first of its key (jvm/udf CountWhen, OccurrenceCount);
- table `ux_events_raw`: `kafka_key BYTES, payload BYTES, kafka_topic, kafka_partition, kafka_offset,
  kafka_timestamp` (metadata) and the computed `event_time`, with the job's WATERMARK if it gave one;
- view `ux_events_decoded`: the Kafka columns, `event_time` and `decoded` (the ROW);
- view `ux_events`: valid events only: every field of the latest ux_event schema in schema order
  (`event_id`, …, `ts`, `received_at` as BIGINT epoch ms, …, `properties` MAP<STRING, STRING>), then
  `schema_id`, `kafka_topic`, `kafka_partition`, `kafka_offset`, `kafka_timestamp`, `event_time`;
- view `ux_events_invalid`: `kafka_key, payload, kafka_topic, kafka_partition, kafka_offset,
  kafka_timestamp, reason, detail, schema_id`;
- table `ux_events_dlq`: the dead-letter topic (EXACTLY_ONCE, raw key and value), fed by `dlq_insert()`.

Watermarks (recommended pattern). Flink SQL accepts a WATERMARK only on a table's own columns, not on a
view, so the time attribute must exist on the raw source table: `event_time AS ux_event_time(payload)`
is that column (NULL for invalid records). A job passes only its watermark expression and gets
`event_time` as a time attribute in `ux_events`; the expression may call the UDF itself, which is how
future timestamps (SEMANTICS.md, Time) are kept from moving the watermark:

    spec = DecodeSpec(job="sessionize", kafka=settings.kafka,
                      watermark="ux_event_time(payload, 300000) - INTERVAL '5' SECOND",
                      source_options={"scan.watermark.idle-timeout": "30 s"})
    names = create(t_env, spec)
    events = t_env.from_path(names.valid_view)        # window TVFs on event_time work
    statements = t_env.create_statement_set()
    statements.add_insert_sql(dlq_insert(spec))       # dead letters, in the job's own statement set

A NULL watermark candidate is ignored, so invalid and future records never advance the watermark (tested
in tests/decode/test_decode_udf.py). Flink pushes the watermark into the Kafka source (per-partition
watermarks; `scan.watermark.emit.strategy`, `scan.watermark.idle-timeout` go in `source_options`),
which evaluates the UDF there; the decodes of the same record in the query after it hit the UDF's
per-thread memo (an array comparison, not a second decode).

This module has no pyflink import at module level: `statements()` and `dlq_insert()` only render SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

from jobs.common import counters, privacy, tables, topics
from jobs.common.connectors import (
    KafkaSourceSpec,
    StopOffsets,
    jdbc_upsert_options,
    kafka_exactly_once_sink_options,
    kafka_source_options,
    password_file_of,
    render_sql,
    sql_interval,
    sql_literal,
    with_clause,
)
from jobs.common.contract import event_reader_schema
from jobs.common.enrichment import EnrichmentSettings
from jobs.common.pipeline import Step
from jobs.common.settings import KafkaSettings, PostgresSettings

if TYPE_CHECKING:
    from pyflink.table import StreamTableEnvironment

SQL: Final = Path(__file__).with_name("sql") / "decode.sql"
CLASSIFY_SQL: Final = Path(__file__).with_name("sql") / "classify.sql"

FUNCTIONS: Final = {
    "decode_ux_event": "io.uxstream.udf.DecodeUxEvent",
    "ux_event_time": "io.uxstream.udf.UxEventTime",
    "encode_dead_letter": "io.uxstream.udf.EncodeDeadLetter",
    "count_when": "io.uxstream.udf.CountWhen",
    "occurrence_count": "io.uxstream.udf.OccurrenceCount",
    "dedup_bucket": "io.uxstream.udf.EventIds$Bucket",
    "occurrence_number": "io.uxstream.udf.EventIds$Occurrence",
    "partition_watermark": "io.uxstream.udf.PartitionWatermark",
    "bot_behaviour": "io.uxstream.udf.BotBehaviour",
    "pair_least_ts": "io.uxstream.udf.PairLeast",
    "erased_user": "io.uxstream.udf.ErasedUser",
    "ux_pseudonym": "io.uxstream.udf.Pseudonym",
    "epoch_ms": "io.uxstream.udf.EpochMs",
}
"""SQL name → Java class of the uxstream-udf functions."""

USER_KEY: Final = "COALESCE(NULLIF(user_id, ''), anonymous_id)"
"""The user key of an event (SEMANTICS.md): its user_id, else its anonymous_id (sql/classify.sql)."""
DEVICE_KEY: Final = "COALESCE(NULLIF(anonymous_id, ''), NULLIF(user_id, ''))"
"""The device key of an event (README "Identity: one visitor across a login"): its anonymous_id, else its
user_id. Sessions run per device key and are attributed to the user a login on the device names."""
KAFKA_COLUMNS: Final = ("kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp")
INVALID_COLUMNS: Final = ("kafka_key", "payload", *KAFKA_COLUMNS, "reason", "detail", "schema_id")


@dataclass(frozen=True)
class DecodeNames:
    """Names of the SQL objects the decode step creates (override to run two decode steps in one job)."""

    source_table: str = "ux_events_raw"
    decoded_view: str = "ux_events_decoded"
    valid_view: str = "ux_events"
    invalid_view: str = "ux_events_invalid"
    dlq_table: str = "ux_events_dlq"


@dataclass(frozen=True)
class DecodeSpec:
    """What a job reads and where its dead letters go."""

    job: str
    """The job's name: in every dead letter, the consumer group id and the DLQ transactional-id prefix."""
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    source_topic: str = topics.EVENTS
    dlq_topic: str = topics.DLQ
    bounded: bool = False
    """Read up to the end offsets present at start, then finish."""
    stop_offsets: StopOffsets = ()
    """Read up to these offsets instead, waiting for records not produced yet (connectors.KafkaSourceSpec)."""
    watermark: str | None = None
    """Watermark expression over the raw table's columns (e.g. `event_time - INTERVAL '5' SECOND`)."""
    source_options: Mapping[str, str] = field(default_factory=dict)
    """Extra Kafka source options (e.g. `scan.watermark.idle-timeout`), applied last."""
    names: DecodeNames = field(default_factory=DecodeNames)
    dlq_transactional_id_prefix: str | None = None
    """Default `<job>-dlq`: stable across restarts (Flink aborts lingering transactions), distinct per job."""

    @property
    def transactional_id_prefix(self) -> str:
        return self.dlq_transactional_id_prefix or f"{self.job}-dlq"


def event_columns() -> tuple[str, ...]:
    """The valid view's event columns: every field of the latest ux_event schema, in schema order."""
    return event_reader_schema().field_names


def valid_columns() -> tuple[str, ...]:
    """Every column of the valid view, in order."""
    return (*event_columns(), "schema_id", *KAFKA_COLUMNS, "event_time", "agent_bot")


def quote(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


def source_options(spec: DecodeSpec) -> dict[str, str]:
    options = kafka_source_options(
        spec.kafka,
        KafkaSourceSpec(
            topic=spec.source_topic,
            group_id=spec.job,
            bounded=spec.bounded,
            value_format="raw",
            stop_offsets=spec.stop_offsets,
        ),
    )
    options.update({"key.format": "raw", "key.fields": "kafka_key", "value.fields-include": "EXCEPT_KEY"})
    options.update(spec.source_options)
    return options


def dlq_options(spec: DecodeSpec) -> dict[str, str]:
    options = kafka_exactly_once_sink_options(
        spec.kafka, spec.dlq_topic, spec.transactional_id_prefix, value_format="raw"
    )
    options.update({"key.format": "raw", "key.fields": "kafka_key", "value.fields-include": "EXCEPT_KEY"})
    return options


def function_ddl() -> list[str]:
    """CREATE TEMPORARY SYSTEM FUNCTION statements of the uxstream-udf functions."""
    return [
        f"CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS {name} AS {sql_literal(cls)} LANGUAGE JAVA"
        for name, cls in FUNCTIONS.items()
    ]


def statements(spec: DecodeSpec) -> list[str]:
    """The decode step's DDL (functions, source table, views, DLQ table), rendered from the recipe."""
    names = spec.names
    watermark = f",\n  WATERMARK FOR event_time AS {spec.watermark}" if spec.watermark else ""
    return render_sql(
        SQL,
        source_table=quote(names.source_table),
        decoded_view=quote(names.decoded_view),
        valid_view=quote(names.valid_view),
        invalid_view=quote(names.invalid_view),
        dlq_table=quote(names.dlq_table),
        watermark=watermark,
        event_columns=",\n  ".join(f"decoded.{quote(c)} AS {quote(c)}" for c in event_columns()),
        source_options=with_clause(source_options(spec)),
        dlq_options=with_clause(dlq_options(spec)),
    )


def dlq_insert(spec: DecodeSpec) -> str:
    """The INSERT that writes every invalid record to the dead-letter topic (add it to the job's set)."""
    names = spec.names
    return (
        f"INSERT INTO {quote(names.dlq_table)}\n"
        "SELECT\n"
        "  kafka_key,\n"
        "  encode_dead_letter(payload, kafka_key, kafka_topic, kafka_partition, kafka_offset,\n"
        f"    kafka_timestamp, reason, detail, schema_id, {sql_literal(spec.job)}),\n"
        "  kafka_timestamp\n"
        f"FROM {quote(names.invalid_view)}"
    )


class EventTimeSettings(Protocol):
    """The settings of a job that reads ux.events with the shared event-time rules."""

    @property
    def kafka(self) -> KafkaSettings: ...
    @property
    def input_topic(self) -> str: ...
    @property
    def dlq_topic(self) -> str: ...
    @property
    def bounded(self) -> bool: ...
    @property
    def stop_offsets(self) -> StopOffsets: ...
    @property
    def out_of_orderness_ms(self) -> int: ...
    @property
    def max_future_skew_ms(self) -> int: ...
    @property
    def idleness_ms(self) -> int: ...


def job_event_time_spec(
    job: str, settings: EventTimeSettings, dlq_transactional_id_prefix: str
) -> DecodeSpec:
    """`event_time_spec` of a job's settings: its input topic, DLQ, input bound and event-time rules."""
    return event_time_spec(
        job=job,
        kafka=settings.kafka,
        source_topic=settings.input_topic,
        dlq_topic=settings.dlq_topic,
        bounded=settings.bounded,
        out_of_orderness_ms=settings.out_of_orderness_ms,
        max_future_skew_ms=settings.max_future_skew_ms,
        idleness_ms=settings.idleness_ms,
        dlq_transactional_id_prefix=dlq_transactional_id_prefix,
        stop_offsets=settings.stop_offsets,
    )


def event_time_spec(
    *,
    job: str,
    kafka: KafkaSettings,
    source_topic: str,
    dlq_topic: str,
    bounded: bool,
    out_of_orderness_ms: int,
    max_future_skew_ms: int,
    idleness_ms: int,
    dlq_transactional_id_prefix: str | None = None,
    stop_offsets: StopOffsets = (),
) -> DecodeSpec:
    """The decode step with the jobs' event-time rules (SEMANTICS.md "Time"): watermark = max event time −
    out-of-orderness, emitted periodically (`pipeline.auto-watermark-interval`; whether an event is late
    is decided from the input log by classify.sql's partition watermark, never by this one), idle
    partitions released after `idleness_ms` (0: never), and events more than
    `max_future_skew_ms` ahead of their broker receive time never move it."""
    skew, bound = sql_interval(max_future_skew_ms), sql_interval(out_of_orderness_ms)
    # The watermark generator runs in the source, once per record read: the one place where the
    # events-in counter sees every record exactly once (a filter in the decoded view is copied into each
    # branch that reads it). count_when is always TRUE, so the first WHEN never applies.
    watermark = (
        f"CASE WHEN NOT count_when('{counters.EVENTS_IN}', TRUE) THEN CAST(NULL AS TIMESTAMP_LTZ(3)) "
        f"WHEN event_time > kafka_timestamp + {skew} "
        f"THEN CAST(NULL AS TIMESTAMP_LTZ(3)) ELSE event_time - {bound} END"
    )
    # Periodic, not per record (issue 17): the late/on-time decision no longer reads this watermark (only
    # where it is ahead of the partition watermark, after an idle partition was released), and windows
    # only need it not to run ahead of the partition watermark, which a later emission never does.
    options = {"scan.watermark.emit.strategy": "on-periodic"}
    if idleness_ms:
        options["scan.watermark.idle-timeout"] = f"{idleness_ms} ms"
    return DecodeSpec(
        job=job,
        kafka=kafka,
        source_topic=source_topic,
        dlq_topic=dlq_topic,
        bounded=bounded,
        stop_offsets=stop_offsets,
        watermark=watermark,
        source_options=options,
        dlq_transactional_id_prefix=dlq_transactional_id_prefix,
    )


@dataclass(frozen=True)
class ErasureLookup:
    """Where the jobs' JVM functions find the erased-pseudonym list and the pseudonym keys (no secret: the
    password and the keys stay in their files; README "Privacy")."""

    jdbc_url: str
    user: str
    password_file: str
    """Empty when the role has no password (trust or certificate auth)."""
    key_files: str
    """`<key id>=<file>,…`, the current key first (jobs.common.privacy.key_files)."""
    refresh_ms: int

    @classmethod
    def from_env(cls, postgres: PostgresSettings, env: Mapping[str, str] | None = None) -> ErasureLookup:
        """The list as the reader role of `postgres`'s server and database, the keys of the environment."""
        reader = postgres.as_role("reader", env)
        return cls(
            jdbc_url=reader.jdbc_url(),
            user=reader.user,
            password_file=password_file_of(reader) or "",
            key_files=privacy.key_files(env),
            refresh_ms=privacy.erased_refresh_ms(env),
        )

    def erased(self, user_key: str) -> str:
        """SQL: TRUE when `user_key` is an erased user's (io.uxstream.udf.ErasedUser; counts them)."""
        arguments = (self.jdbc_url, self.user, self.password_file, self.key_files)
        literals = ", ".join(sql_literal(a) for a in arguments)
        counter = sql_literal(counters.ERASED_EVENTS)
        return f"erased_user({counter}, {user_key}, {literals}, CAST({int(self.refresh_ms)} AS BIGINT))"

    def pseudonym(self, user_key: str) -> str:
        """SQL: the pseudonym of `user_key` under the current key (io.uxstream.udf.Pseudonym)."""
        return f"ux_pseudonym({user_key}, {sql_literal(self.key_files)})"


WATERMARK_MS: Final = (
    "CASE WHEN partition_watermark_ms IS NULL OR runtime_watermark_ms > partition_watermark_ms "
    "THEN COALESCE(runtime_watermark_ms, partition_watermark_ms) ELSE partition_watermark_ms END"
)
"""SQL of an event's watermark at arrival over sql/classify.sql's `watermarked`: the greater of its
partition's watermark and Flink's runtime watermark, either when the other is NULL (README "What sessionize
computes"). `on_time` and `ledger` each compute it in their own condition and columns."""


def classify_statements(
    source: str,
    max_future_skew_ms: int,
    out_of_orderness_ms: int,
    postgres: PostgresSettings,
    relevant: str = "TRUE",
    erasure: ErasureLookup | None = None,
    bots: EnrichmentSettings | None = None,
    aggregates: tuple[tuple[str, str], ...] = (),
    dedup: Dedup | None = None,
) -> list[str]:
    """The views `arrived` and `watermarked` (every valid event of `source` with user_key, is_erased,
    is_future and its partition's watermark at arrival), `ledger` (late and future arrivals where the SQL
    condition `relevant` holds and whose user is not erased, with watermark_ms, watermark_at_arrival,
    is_late and `user_pseudonym`), `on_time` (neither, without the pseudonym and is_late) and `numbered`
    (on-time events with their `occurrence` number per event_id), and the table `late_sink` (the
    late_events table in `postgres`) the job writes its ledger rows to (sql/classify.sql). `erasure`:
    where the erased list is (default: the reader role of `postgres`, the keys of the environment).
    `bots`: the behavioural bot rule's settings (None: the defaults). `aggregates`: (column, aggregate call)
    pairs computed in the partition watermark's window too (one operator, partition order), which
    `relevant` may read. `dedup`: how the occurrence numbers are kept (None: per event_id, `Dedup`)."""
    erasure = erasure or ErasureLookup.from_env(postgres)
    dedup = dedup or Dedup()
    return render_sql(
        CLASSIFY_SQL,
        source=source,
        relevant=relevant,
        user_key=USER_KEY,
        erased=erasure.erased(USER_KEY),
        pseudonym=erasure.pseudonym("user_key"),
        max_future_skew=sql_interval(max_future_skew_ms),
        out_of_orderness_ms=str(int(out_of_orderness_ms)),
        watermark_ms=WATERMARK_MS,
        acts_bot=acts_bot_sql(bots or EnrichmentSettings(), out_of_orderness_ms),
        partition_aggregates="".join(
            f",\n  {call} OVER (\n    {PARTITION_WINDOW}\n  ) AS {name}" for name, call in aggregates
        ),
        late_sink_options=with_clause(jdbc_upsert_options(postgres, tables.LATE_EVENTS)),
        **dedup.sql(),
    )


@dataclass(frozen=True)
class Dedup:
    """How the classification numbers the occurrences of an event_id (sql/classify.sql `numbered`).

    `bucketed` (the heap state backend): one OVER window per bucket of event ids (io.uxstream.udf.EventIds,
    `dedup_bucket`), whose accumulator keeps the bucket's ids in a few arrays and forgets an id `ttl_ms`
    of processing time after its last occurrence, as the state TTL forgets a per-id entry: the same
    numbers, without an object per id for the collector to copy and each checkpoint to walk (NOTES.md,
    issue 17). Otherwise (RocksDB, which would (de)serialize a whole bucket per access) one window per
    event_id (io.uxstream.udf.OccurrenceCount), forgotten through the job's state TTL
    (`table.exec.state.ttl`, which each job sets to its dedup TTL)."""

    bucketed: bool = False
    ttl_ms: int = 0

    @classmethod
    def for_backend(cls, state_backend: str, ttl_ms: int) -> Dedup:
        return cls(bucketed=state_backend == "hashmap", ttl_ms=ttl_ms)

    @property
    def layout_variant(self) -> str:
        """The state layout's variant (runner.JobSpec.layout_variant): "h" for the bucketed dedup."""
        return "h" if self.bucketed else ""

    def sql(self) -> dict[str, str]:
        """classify.sql's dedup placeholders."""
        if not self.bucketed:
            return {
                "dedup_call": f"occurrence_count('{counters.DUPLICATES}')",
                "dedup_key": "event_id",
                "dedup_source": "on_time",
            }
        return {
            "dedup_call": (
                f"occurrence_number('{counters.DUPLICATES}', event_id, CAST({int(self.ttl_ms)} AS BIGINT))"
            ),
            "dedup_key": "dedup_bucket",
            "dedup_source": "(SELECT *, dedup_bucket(event_id) AS dedup_bucket FROM on_time)",
        }


def acts_bot_sql(settings: EnrichmentSettings, out_of_orderness_ms: int) -> str:
    """SQL of `acts_bot` in sql/classify.sql: the behavioural bot rule over the partition's arrivals, in the
    partition watermark's window (one OverAggregate), or FALSE when the rule is off."""
    if settings.bot_page_views_per_minute == 0:
        return "FALSE"
    return (
        "bot_behaviour(user_key, is_future, is_erased, event_id, event_type, ts, "
        f"{int(settings.bot_page_views_per_minute)}, {int(settings.bot_minutes)}, "
        f"CAST({int(out_of_orderness_ms)} AS BIGINT)) OVER (\n    {PARTITION_WINDOW}\n  )"
    )


PARTITION_WINDOW: Final = (
    "PARTITION BY kafka_partition ORDER BY arrival ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"
)
"""The partition watermark's OVER window (sql/classify.sql): every aggregate over it runs in one operator
that sees a partition's valid events in partition order."""


SHARED_VIEWS: Final = ("table.optimizer.reuse-optimize-block-with-digest-enabled", "true")
"""Table option of a job whose INSERTs share the classification views (`classify_step`): the planner then
optimizes a view that several sinks read once and feeds them all from it. Without it each INSERT's
expansion is optimized on its own, projections are pushed into each copy, and the partition watermark, the
dedup and the windows run once per branch (sessionize: 4 OverAggregates and 5 window aggregates instead of
2 and 3; `statement_set.explain()` shows it)."""


def source_step(spec: DecodeSpec) -> Step:
    """The job's Kafka source, the decode views and the DLQ table (`statements`)."""
    return Step("source and decode", tuple(statements(spec)))


def dead_letter_step(spec: DecodeSpec) -> Step:
    """Every invalid record to the dead-letter topic (`dlq_insert`)."""
    return Step("dead letters", (dlq_insert(spec),))


def functions_step() -> Step:
    """Only the uxstream-udf functions, for a job that reads no ux.events (their jar is on pipeline.jars)."""
    return Step("functions", tuple(function_ddl()))


def classify_step(
    source: str,
    max_future_skew_ms: int,
    out_of_orderness_ms: int,
    postgres: PostgresSettings,
    relevant: str = "TRUE",
    erasure: ErasureLookup | None = None,
    bots: EnrichmentSettings | None = None,
    aggregates: tuple[tuple[str, str], ...] = (),
    dedup: Dedup | None = None,
) -> Step:
    """The arrival classification of the events of the view `source` (`classify_statements`)."""
    return Step(
        "classify",
        tuple(
            classify_statements(
                source,
                max_future_skew_ms,
                out_of_orderness_ms,
                postgres,
                relevant,
                erasure,
                bots,
                aggregates,
                dedup,
            )
        ),
    )


def create(t_env: StreamTableEnvironment, spec: DecodeSpec) -> DecodeNames:
    """Create the functions, the raw source table, the views and the DLQ table; returns their names."""
    for statement in statements(spec):
        t_env.execute_sql(statement)
    return spec.names
