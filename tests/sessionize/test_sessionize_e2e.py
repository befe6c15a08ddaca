"""sessionize end to end: generated traffic on a real Kafka topic → the job on a MiniCluster → PostgreSQL.

Every output table must equal the independent oracle exactly, in both directions; the dead-letter topic
must hold exactly the malformed records; a replay of the same input must leave every table unchanged.
One partition, so the oracle can replay the job's arrival order exactly (DESIGN.md §6).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from jobs.common import tables
from jobs.common.oracle import CleanEvents, load
from jobs.common.privacy import PrivacySettings, Pseudonymizer
from jobs.common.settings import KafkaSettings, PostgresSettings, Secret
from jobs.sessionize.oracle import expected, expected_kpi_messages
from tests.chaos import (
    generate_truth,
    restored_after_a_kill_at_the_first_checkpoint,
    run_failing_once_after_a_checkpoint,
    run_with_a_fault_after_a_checkpoint,
)
from uxstream.db import connect, migrate
from uxstream.paths import ROOT

pytestmark = [pytest.mark.services, pytest.mark.flink]

PSEUDONYM_KEY = "uxstream-e2e-test-pseudonym-key-0123456789"
"""The job's pseudonym key in these tests (UXSTREAM_PSEUDONYM_KEY); the oracle uses the same."""
PSEUDONYM = Pseudonymizer(PrivacySettings(Secret(PSEUDONYM_KEY)))

GENERATOR_ARGS = (
    "--events", "2500", "--duration", "20m", "--seed", "11", "--partitions", "1",
    "--duplicate-fraction", "0.03", "--late-fraction", "0.02", "--malformed-fraction", "0.01",
    "--future-fraction", "0.01", "--hot-user-share", "0.5",
)  # fmt: skip
"""Every fault kind at once, and a hot key: half of the sessions belong to one user (RELIABILITY T24)."""


@dataclasses.dataclass(frozen=True)
class Run:
    topic: str
    pg: PostgresSettings
    truth: CleanEvents

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic}.dlq"

    @property
    def kpi_topic(self) -> str:
        return f"{self.topic}.kpi"


def job_command(run: Run, interval_ms: int, bounded: bool = True) -> list[str]:
    return [
        sys.executable, "-m", "jobs.sessionize.job", *(["--bounded"] if bounded else []),
        "--input-topic", run.topic, "--dlq-topic", run.dlq_topic, "--kpi-topic", run.kpi_topic,
        "--checkpoint-interval-ms", str(interval_ms),
    ]  # fmt: skip


def job_env(run: Run, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """The job's environment: the run's database and transactional ids no other job on the broker uses."""
    return {
        **os.environ,
        "UXSTREAM_PG_DB": run.pg.dbname,
        "UXSTREAM_SESSIONIZE_TRANSACTIONAL_ID_PREFIX": run.topic,
        "UXSTREAM_PSEUDONYM_KEY": PSEUDONYM_KEY,
        **(extra_env or {}),
    }


def run_job(
    run: Run, extra_env: dict[str, str] | None = None, interval_ms: int = 2000, parallelism: int = 1
) -> None:
    proc = subprocess.run(
        [*job_command(run, interval_ms), "--parallelism", str(parallelism)], cwd=ROOT,
        env=job_env(run, extra_env),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, f"sessionize failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"


def prepare(
    kafka: KafkaSettings, pg_settings: PostgresSettings, folder: Path, generator_args: tuple[str, ...]
) -> Run:
    """Generate a stream on a fresh topic and create a fresh migrated database."""
    truth_file = folder / "truth.jsonl"
    topic = f"test.sessionize.{uuid.uuid4().hex[:8]}"
    subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "generate", *generator_args, "--topic", topic,
         "--output", str(truth_file)],
        cwd=ROOT, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return fresh_run(pg_settings, truth_file, topic)


def fresh_run(pg_settings: PostgresSettings, truth_file: Path, topic: str | None = None) -> Run:
    """A run of the stream recorded in `truth_file` on `topic` (default: a fresh name) with a fresh
    migrated database."""
    topic = topic or f"test.sessionize.{uuid.uuid4().hex[:8]}"
    dbname = f"uxstream_test_sessionize_{topic.rsplit('.', 1)[1]}"
    with connect(pg_settings, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    pg = dataclasses.replace(pg_settings, dbname=dbname)
    migrate(pg)
    return Run(topic, pg, load(truth_file))


def drop(pg_settings: PostgresSettings, run: Run) -> None:
    with connect(pg_settings, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{run.pg.dbname}" WITH (FORCE)')


@pytest.fixture(scope="module")
def stream(
    kafka_settings: KafkaSettings, pg_settings: PostgresSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    """A generated stream on a fresh topic, a fresh migrated database, and one run of the job."""
    run = prepare(kafka_settings, pg_settings, tmp_path_factory.mktemp("sessionize"), GENERATOR_ARGS)
    run_job(run)
    yield run
    drop(pg_settings, run)


def _normalize(value: Any) -> Any:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, float):
        return round(value, 9)
    return value


def table_rows(pg: PostgresSettings, table: str, columns: list[str]) -> Counter[tuple[Any, ...]]:
    with connect(pg) as conn:
        rows = conn.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
    return Counter(tuple(_normalize(v) for v in row) for row in rows)


def snapshot(pg: PostgresSettings) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every sessionize table, in a total order: a replay must reproduce it exactly."""
    with connect(pg) as conn:
        return {
            t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
            for t in tables.SESSIONIZE_TABLES
        }


def assert_equals_oracle(run: Run, table: str) -> None:
    rows = expected(run.truth.events, pseudonym=PSEUDONYM)[table]
    assert rows, f"the generated stream gives no expected {table} rows: the test would prove nothing"
    columns = list(rows[0])
    want = Counter(tuple(_normalize(r[c]) for c in columns) for r in rows)
    got = table_rows(run.pg, table, columns)
    missing, extra = want - got, got - want
    assert not missing and not extra, (
        f"{table}: {sum(missing.values())} expected rows missing, {sum(extra.values())} unexpected; "
        f"first missing {list(missing)[:2]}, first unexpected {list(extra)[:2]}"
    )


@pytest.mark.parametrize("table", tables.SESSIONIZE_TABLES)
def test_every_table_equals_the_oracle(stream: Run, table: str) -> None:
    assert_equals_oracle(stream, table)


def test_the_sessions_table_holds_pseudonyms_never_a_raw_user_id(stream: Run) -> None:
    raw = {e.event.get("user_id") or e.event["anonymous_id"] for e in stream.truth.events}
    with connect(stream.pg) as conn:
        stored = {row[0] for row in conn.execute(f"SELECT user_key FROM {tables.SESSIONS}")}
    assert stored, "no sessions: the test would prove nothing"
    assert stored <= {PSEUDONYM(user) for user in raw}
    assert not stored & raw
    assert all(key.startswith("k1_") and len(key) == 35 for key in stored)


def test_output_keys_are_unique(stream: Run) -> None:
    keys = {
        tables.SESSIONS: "session_id, session_start",
        tables.KPI_1M: "window_start, dimension, dimension_value",
        tables.KPI_SLIDING_5M: "window_start, dimension, dimension_value",
        tables.KPI_DAILY: "window_end, dimension, dimension_value",
        tables.LATE_EVENTS: "job, event_id, event_time",
    }
    with connect(stream.pg) as conn:
        for table, key in keys.items():
            total, distinct = conn.execute(
                f"SELECT count(*), count(DISTINCT ({key})) FROM {table}"
            ).fetchone()
            assert total == distinct, f"{table} has duplicate keys"


def committed(
    kafka_settings: KafkaSettings, topic: str, subject: str
) -> list[tuple[bytes | None, dict[str, Any]]]:
    """(key, decoded record) of every committed record of `topic` (read_committed), checking the subject."""
    from confluent_kafka import Consumer, TopicPartition

    from jobs.common.contract import decode_framed

    consumer = Consumer(
        {
            **kafka_settings.client_config(),
            "group.id": f"check-{uuid.uuid4()}",
            "isolation.level": "read_committed",
        }
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    found: list[tuple[bytes | None, dict[str, Any]]] = []
    idle = 0
    while idle < 6:
        message = consumer.poll(0.5)
        if message is None:
            idle += 1
            continue
        assert message.error() is None
        value = message.value()
        assert value is not None
        entry, record = decode_framed(value)
        assert entry.subject == subject
        found.append((message.key(), record))
    consumer.close()
    return found


def dead_letters(kafka_settings: KafkaSettings, run: Run) -> list[tuple[bytes, str]]:
    """(original bytes, reason) of every committed record of the run's dead-letter topic."""
    records = committed(kafka_settings, run.dlq_topic, "ux.events.dlq-value")
    return sorted((letter["original"], letter["reason"]) for _, letter in records)


def kpi_messages(kafka_settings: KafkaSettings, run: Run) -> Counter[tuple[Any, ...]]:
    """Every committed KPI window message of the run as a comparable (key, fields...) tuple."""
    records = committed(kafka_settings, run.kpi_topic, "ux.kpi-value")
    return Counter(
        (key.decode() if key else None, *(_normalize(v) for v in record.values())) for key, record in records
    )


def assert_kpi_topic_equals_the_oracle(kafka_settings: KafkaSettings, run: Run) -> None:
    want = Counter(
        (key, *(_normalize(v) for v in record.values()))
        for key, record in expected_kpi_messages(expected(run.truth.events))
    )
    got = kpi_messages(kafka_settings, run)
    missing, extra = want - got, got - want
    assert not missing and not extra, (
        f"{run.kpi_topic}: {sum(missing.values())} expected messages missing, {sum(extra.values())} "
        f"unexpected; first missing {list(missing)[:2]}, first unexpected {list(extra)[:2]}"
    )


def assert_every_output_equals_the_oracle(kafka_settings: KafkaSettings, run: Run) -> None:
    """Every table, the dead-letter topic and the KPI topic hold exactly what the oracle says."""
    for table in tables.SESSIONIZE_TABLES:
        assert_equals_oracle(run, table)
    assert dead_letters(kafka_settings, run) == sorted((d.payload, d.reason) for d in run.truth.dead_letters)
    assert_kpi_topic_equals_the_oracle(kafka_settings, run)


def flink_log(log_dir: Path) -> str:
    """The MiniCluster's log of a job run with FLINK_LOG_DIR=log_dir."""
    return "\n".join(p.read_text(errors="replace") for p in sorted(log_dir.glob("*.log")))


def test_the_dead_letter_topic_holds_exactly_the_malformed_records(
    stream: Run, kafka_settings: KafkaSettings
) -> None:
    want = sorted((d.payload, d.reason) for d in stream.truth.dead_letters)
    assert want, "the generated stream has no malformed records: the test would prove nothing"
    assert dead_letters(kafka_settings, stream) == want


def test_the_kpi_topic_holds_exactly_the_oracle_windows_once_each_keyed_by_series(
    stream: Run, kafka_settings: KafkaSettings
) -> None:
    assert_kpi_topic_equals_the_oracle(kafka_settings, stream)


def test_a_replay_of_the_same_input_leaves_every_table_unchanged(stream: Run) -> None:
    before = snapshot(stream.pg)
    run_job(stream)
    assert snapshot(stream.pg) == before


def test_recovers_from_a_failure_injected_after_a_checkpoint_with_every_table_equal_to_the_oracle(
    kafka_settings: KafkaSettings, pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    """The job fails at its first closed session after its first completed checkpoint, which a held-back
    second half of the stream guarantees (tests/chaos.py), and must recover from that checkpoint."""
    truth_file = tmp_path / "truth.jsonl"
    lines = generate_truth((*GENERATOR_ARGS, "--duration", "3h", "--seed", "12"), truth_file)
    run = fresh_run(pg_settings, truth_file)
    try:
        run_failing_once_after_a_checkpoint(
            job_command(run, 300, bounded=False), job_env(run), lines, run.topic, tmp_path, "sessionize"
        )
        assert_every_output_equals_the_oracle(kafka_settings, run)
    finally:
        drop(pg_settings, run)


def test_with_more_parallel_subtasks_than_partitions_nothing_stalls_and_every_output_equals_the_oracle(
    kafka_settings: KafkaSettings, pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    """RELIABILITY T06: parallelism 2 over one partition (one source subtask has nothing to read)."""
    run = prepare(kafka_settings, pg_settings, tmp_path, (*GENERATOR_ARGS, "--seed", "15"))
    try:
        run_job(run, parallelism=2)
        for table in tables.SESSIONIZE_TABLES:
            assert_equals_oracle(run, table)
        assert_kpi_topic_equals_the_oracle(kafka_settings, run)
    finally:
        drop(pg_settings, run)


def test_the_data_quality_gate_passes_on_the_job_output(stream: Run) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "validate"],
        cwd=ROOT,
        env={**os.environ, "UXSTREAM_PG_DB": stream.pg.dbname},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"uxstream validate failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    assert "FAIL" not in proc.stdout


def _kpi_rows_while_running(run: Run, idleness_ms: int, wait_s: float, state: Path) -> list[tuple[Any, ...]]:
    """Run the job unbounded on `run` and return the kpi_1m rows once windows closed, or, when none have
    after `wait_s` (counted from the job's first completed checkpoint, so it is surely reading), none."""

    env = job_env(
        run, {"UXSTREAM_SESSIONIZE_IDLENESS_MS": str(idleness_ms), "UXSTREAM_FLINK_STATE_DIR": str(state)}
    )
    job = subprocess.Popen(
        job_command(run, 1000, bounded=False), cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    columns = "window_start, window_end, dimension, dimension_value, events, page_views, active_users"
    try:
        started = time.monotonic()
        running_since: float | None = None
        while time.monotonic() - started < 300:
            assert job.poll() is None, "the unbounded job exited on its own"
            if running_since is None and any(state.glob("checkpoints/*/*/chk-*/_metadata")):
                running_since = time.monotonic()
            with connect(run.pg) as conn:
                found = conn.execute(f"SELECT count(*) FROM {tables.KPI_1M}").fetchone()[0]
            if found:
                time.sleep(3)  # let the windows of the same watermark all land
                with connect(run.pg) as conn:
                    return list(conn.execute(f"SELECT {columns} FROM {tables.KPI_1M}").fetchall())
            if running_since is not None and time.monotonic() - running_since > wait_s:
                return []
            time.sleep(1)
        raise AssertionError("the job completed no checkpoint within 300 s")
    finally:
        os.killpg(job.pid, 9)
        job.wait(30)


def test_idle_partitions_do_not_stall_windows_and_without_idleness_they_do(
    kafka_settings: KafkaSettings, pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    from jobs.common.topics import ensure_topics

    run = prepare(
        kafka_settings,
        pg_settings,
        tmp_path,
        ("--events", "1500", "--duration", "20m", "--seed", "13", "--partitions", "1"),
    )
    try:
        # The generator routes for one partition; the topic gets 4, three of which never receive data.
        assert ensure_topics(kafka_settings, [run.topic]) == {run.topic: 1}
        extra = f"{run.topic}.four"
        ensure_topics(kafka_settings, {extra: 4})
        _copy_topic(kafka_settings, run.topic, extra)
        four = dataclasses.replace(run, topic=extra)

        stalled = _kpi_rows_while_running(four, idleness_ms=0, wait_s=15, state=tmp_path / "stalled")
        assert stalled == [], "windows closed without idleness although 3 of 4 partitions are empty"

        rows = _kpi_rows_while_running(four, idleness_ms=1000, wait_s=120, state=tmp_path / "idle")
        assert rows, "with a 1 s idleness timeout the windows must close"
        expected_rows = {
            (r["window_start"], r["dimension"], r["dimension_value"]): (
                r["window_end"],
                r["events"],
                r["page_views"],
                r["active_users"],
            )
            for r in expected(run.truth.events)[tables.KPI_1M]
        }
        for start, end, dimension, value, events, views, users in rows:
            key = (_normalize(start), dimension, value)
            assert expected_rows[key] == (_normalize(end), events, views, users), key
    finally:
        drop(pg_settings, run)


def _copy_topic(kafka: KafkaSettings, source: str, target: str) -> None:
    """Copy every record of `source` (partition 0) to partition 0 of `target`, keys and timestamps kept."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    consumer = Consumer({**kafka.client_config(), "group.id": f"copy-{uuid.uuid4()}"})
    consumer.assign([TopicPartition(source, 0, 0)])
    producer = Producer({**kafka.client_config(), "enable.idempotence": True})
    idle = 0
    while idle < 4:
        messages = consumer.consume(1000, timeout=0.5)
        if not messages:
            idle += 1
            continue
        for m in messages:
            _, timestamp = m.timestamp()
            producer.produce(target, value=m.value(), key=m.key(), partition=0, timestamp=timestamp)
        producer.poll(0)
    consumer.close()
    assert producer.flush(30) == 0


def _python_workers(process_group: int) -> list[int]:
    """PIDs of PyFlink's Python UDF worker processes (process mode) in a process group."""
    listing = subprocess.run(
        ["ps", "-o", "pid=,args=", "-g", str(process_group)], capture_output=True, text=True, check=False
    ).stdout
    return [
        int(line.split()[0]) for line in listing.splitlines() if "pyflink.fn_execution.beam.beam_boot" in line
    ]


def test_rides_out_a_30_s_database_outage_with_every_table_equal_to_the_oracle(
    kafka_settings: KafkaSettings, pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    """RELIABILITY T20: PostgreSQL stops once a checkpoint is on disk, the held-back second half of the
    stream arrives while it is down (tests/chaos.py), and it comes back 30 s later. The JDBC sinks fail,
    the job restarts with growing delays until the database answers, and finishes with every output
    exactly the oracle's: nothing lost, nothing twice, the TaskExecutor never shut down."""
    from uxstream.services import ensure_postgres

    truth_file = tmp_path / "truth.jsonl"
    lines = generate_truth((*GENERATOR_ARGS, "--duration", "3h", "--seed", "16"), truth_file)
    run = fresh_run(pg_settings, truth_file)
    log_dir = tmp_path / "flink-log"

    def postgres(action: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "uxstream.cli", action, "--only", "postgres"],
            cwd=ROOT, check=True, capture_output=True, timeout=120,
        )  # fmt: skip

    back = threading.Timer(30, postgres, ("up",))

    def outage(process_group: int) -> None:
        postgres("down")
        back.start()

    try:
        run_with_a_fault_after_a_checkpoint(
            job_command(run, 1000, bounded=False), job_env(run, {"FLINK_LOG_DIR": str(log_dir)}),
            lines, run.topic, tmp_path, "sessionize", outage,
        )  # fmt: skip
        log = flink_log(log_dir)
        restarts = log.count("switched from state RUNNING to RESTARTING")
        assert restarts >= 1, "the job never failed while the database was down: the test would prove nothing"
        assert "exception in exception handler" not in log  # what shut the TaskExecutor down before
        assert "The JDBC sink of a failed, cancelled or stopped task could not close cleanly" in log
        assert_every_output_equals_the_oracle(kafka_settings, run)
    finally:
        if back.ident is not None:  # started: wait for the database to be back
            back.join()
        ensure_postgres(pg_settings)
        drop(pg_settings, run)


def test_rides_out_a_broker_killed_for_20_s_with_every_output_equal_to_the_oracle(
    kafka_settings: KafkaSettings, pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    """RELIABILITY T19: the Kafka broker is SIGKILLed once a checkpoint is on disk and started again 20 s
    later; then the held-back second half of the stream arrives (tests/chaos.py). The job's source,
    exactly-once sinks and checkpoints live through it, and every output is exactly the oracle's."""
    from uxstream.services import ensure_kafka, stop_kafka

    truth_file = tmp_path / "truth.jsonl"
    lines = generate_truth((*GENERATOR_ARGS, "--duration", "3h", "--seed", "17"), truth_file)
    run = fresh_run(pg_settings, truth_file)
    log_dir = tmp_path / "flink-log"

    def broker_crash(process_group: int) -> None:
        stop_kafka(kafka_settings, force=True)
        time.sleep(20)
        ensure_kafka(kafka_settings)

    try:
        run_with_a_fault_after_a_checkpoint(
            job_command(run, 1000, bounded=False), job_env(run, {"FLINK_LOG_DIR": str(log_dir)}),
            lines, run.topic, tmp_path, "sessionize", broker_crash,
        )  # fmt: skip
        log = flink_log(log_dir)
        assert "disconnected" in log, (
            "the job's Kafka clients never lost the broker: the test would prove nothing"
        )
        assert "exception in exception handler" not in log
        assert_every_output_equals_the_oracle(kafka_settings, run)
    finally:
        ensure_kafka(kafka_settings)
        drop(pg_settings, run)


def test_tables_locked_for_20_s_backpressure_the_job_and_nothing_is_lost(
    kafka_settings: KafkaSettings, pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    """RELIABILITY T21: once a checkpoint is on disk, a transaction locks every table the job writes for
    20 s while the held-back second half of the stream arrives (tests/chaos.py). The sinks block, the job
    backpressures instead of failing, checkpoints complete within their timeout, and every output is
    exactly the oracle's."""
    from tests.prometheus import metric_total
    from uxstream.services.common import free_port

    truth_file = tmp_path / "truth.jsonl"
    lines = generate_truth((*GENERATOR_ARGS, "--duration", "3h", "--seed", "18"), truth_file)
    run = fresh_run(pg_settings, truth_file)
    log_dir, port = tmp_path / "flink-log", free_port()
    samples: dict[str, list[float]] = {"backPressuredTimeMsPerSecond": [], "busyTimeMsPerSecond": []}
    holder: list[threading.Thread] = []

    def hold_locks(locked: threading.Event) -> None:
        with connect(run.pg) as conn:
            conn.execute(f"LOCK TABLE {', '.join(tables.SESSIONIZE_TABLES)} IN ACCESS EXCLUSIVE MODE")
            locked.set()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                for name, values in samples.items():
                    values.append(metric_total(range(port, port + 1), f"flink_taskmanager_job_task_{name}"))
                time.sleep(1)
            conn.rollback()

    def slow_database(process_group: int) -> None:
        locked = threading.Event()
        holder.append(threading.Thread(target=hold_locks, args=(locked,)))
        holder[0].start()
        assert locked.wait(30), "could not lock the tables"

    try:
        run_with_a_fault_after_a_checkpoint(
            job_command(run, 1000, bounded=False),
            job_env(run, {"FLINK_LOG_DIR": str(log_dir), "UXSTREAM_FLINK_PROMETHEUS_PORT": str(port)}),
            lines, run.topic, tmp_path, "sessionize", slow_database,
        )  # fmt: skip
        holder[0].join()
        log = flink_log(log_dir)
        assert max(samples["backPressuredTimeMsPerSecond"]) > 0, f"no backpressure while locked: {samples}"
        assert "switched from state RUNNING to RESTARTING" not in log
        assert "expired before completing" not in log
        assert_every_output_equals_the_oracle(kafka_settings, run)
    finally:
        for thread in holder:
            thread.join()
        drop(pg_settings, run)


def test_a_whole_minicluster_killed_at_a_checkpoint_resumes_from_it_exactly_once(
    kafka_settings: KafkaSettings, pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    """RELIABILITY T15 + T18 (tests/chaos.py): the job and its MiniCluster are SIGKILLed the moment the
    first checkpoint is complete; `--restore latest` starts the job again from that retained checkpoint.
    The outputs written per record, independent of the watermark, must then hold every record exactly
    once: the dead letters (committed Kafka transactions: the checkpoint's pending one committed once)
    and the late ledger."""
    truth_file = tmp_path / "truth.jsonl"
    lines = generate_truth((*GENERATOR_ARGS, "--duration", "3h", "--seed", "19"), truth_file)
    run = fresh_run(pg_settings, truth_file)
    want_dead_letters = sorted((d.payload, d.reason) for d in run.truth.dead_letters)
    assert want_dead_letters, "the generated stream has no malformed records: the test would prove nothing"
    log_dir = tmp_path / "flink-log"
    try:
        with restored_after_a_kill_at_the_first_checkpoint(
            job_command(run, 1000, bounded=False), job_env(run, {"FLINK_LOG_DIR": str(log_dir)}),
            lines, run.topic, tmp_path, "sessionize",
        ):  # fmt: skip
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                if dead_letters(kafka_settings, run) == want_dead_letters:
                    break
                time.sleep(2)
            time.sleep(3)  # the late ledger is flushed every second
            assert dead_letters(kafka_settings, run) == want_dead_letters
            assert_equals_oracle(run, tables.LATE_EVENTS)
        restores = [line for line in flink_log(log_dir).splitlines() if "Restoring job" in line]
        assert len(restores) == 1 and "/chk-" in restores[0], f"not restored from a checkpoint: {restores}"
    finally:
        drop(pg_settings, run)


def test_restore_with_a_bounded_read_is_refused_clearly() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "run", "sessionize", "--bounded", "--restore", "latest"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == (
        "uxstream run: error: --restore cannot be combined with --bounded or --stop-at-offsets: a bounded "
        "Kafka source restored from a checkpoint never finishes (FLINK-31006); restore an unbounded run\n"
    )


def test_restore_without_a_retained_checkpoint_is_refused_clearly(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "run", "sessionize", "--restore", "latest"],
        cwd=ROOT, env={**os.environ, "UXSTREAM_FLINK_STATE_DIR": str(tmp_path)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == (
        f"uxstream run: error: no retained checkpoint of sessionize under {tmp_path}/checkpoints/sessionize: "
        "nothing to restore\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "run", "sessionize", "--restore", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == (
        f"uxstream run: error: cannot restore from {tmp_path}: not a checkpoint or savepoint (no _metadata "
        "file in it)\n"
    )


def test_recovers_when_the_python_worker_process_is_killed_after_a_checkpoint(
    kafka_settings: KafkaSettings, pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    """Process mode: the Python UDF workers are SIGKILLed once a checkpoint is on disk, while the job
    waits for the held-back second half of the stream (tests/chaos.py)."""
    truth_file = tmp_path / "truth.jsonl"
    lines = generate_truth((*GENERATOR_ARGS, "--duration", "3h", "--seed", "14"), truth_file)
    run = fresh_run(pg_settings, truth_file)
    killed: list[int] = []

    def kill_python_workers(process_group: int) -> None:
        for pid in _python_workers(process_group):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    try:
        run_with_a_fault_after_a_checkpoint(
            job_command(run, 300, bounded=False), job_env(run, {"UXSTREAM_FLINK_PYTHON_MODE": "process"}),
            lines, run.topic, tmp_path, "sessionize", kill_python_workers,
        )  # fmt: skip
        assert killed, "no Python worker was running after the checkpoint: the test would prove nothing"
        assert_every_output_equals_the_oracle(kafka_settings, run)
    finally:
        drop(pg_settings, run)


def test_malformed_stop_offsets_stop_the_job_before_it_starts() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "run", "sessionize", "--stop-at-offsets", "0:10,1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == (
        "python -m jobs.sessionize.job: error: argument --stop-at-offsets: stop offsets '0:10,1': '1' is "
        "not PARTITION:OFFSET (two non-negative integers)"
    )


def test_stop_offsets_that_leave_out_a_partition_stop_the_job_before_it_starts(
    kafka_settings: KafkaSettings,
) -> None:
    from jobs.common.topics import delete_topics, ensure_topics

    topic = f"test.sessionize.{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_settings, {topic: 3})
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "uxstream.cli", "run", "sessionize", "--input-topic", topic,
             "--dlq-topic", f"{topic}.dlq", "--kpi-topic", "", "--stop-at-offsets", "0:10,3:4"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        delete_topics(kafka_settings, [topic, f"{topic}.dlq"])
    assert proc.returncode == 2
    assert proc.stderr == (
        f"uxstream run: error: stop offsets for topic {topic}, which has 3 partition(s): partition(s) 1, 2 "
        "not listed; partition(s) 3 do not exist; give PARTITION:OFFSET for each of its partitions\n"
    )


EXACTLY_ONCE_JOBS = ("sessionize", "funnels", "anomaly")
"""Every job with a transactional Kafka sink checks its transaction timeout before it starts (T22)."""


@pytest.mark.parametrize("job", EXACTLY_ONCE_JOBS)
def test_a_transaction_timeout_the_broker_refuses_fails_fast_with_a_clear_error(
    kafka_settings: KafkaSettings, job: str
) -> None:
    from jobs.common.topics import broker_config

    allowed = int(broker_config(kafka_settings, "transaction.max.timeout.ms") or 0)
    assert allowed > 0
    env = {**os.environ, "UXSTREAM_KAFKA_TRANSACTION_TIMEOUT_MS": str(allowed + 1)}
    proc = subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "run", job, "--bounded"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == (
        f"uxstream run: error: the exactly-once Kafka sinks ask for transactions of {allowed + 1} ms, "
        f"but the broker at {kafka_settings.bootstrap_servers} allows at most {allowed} ms "
        f"(transaction.max.timeout.ms): set UXSTREAM_KAFKA_TRANSACTION_TIMEOUT_MS to at most {allowed} "
        "or raise the broker's limit\n"
    )


@pytest.mark.parametrize("job", EXACTLY_ONCE_JOBS)
def test_a_transaction_timeout_shorter_than_the_checkpoint_interval_fails_fast(job: str) -> None:
    env = {
        **os.environ,
        "UXSTREAM_KAFKA_TRANSACTION_TIMEOUT_MS": "5000",
        "UXSTREAM_FLINK_CHECKPOINT_INTERVAL_MS": "10000",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "run", job, "--bounded"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == (
        "uxstream run: error: UXSTREAM_KAFKA_TRANSACTION_TIMEOUT_MS=5000 must be longer than the checkpoint "
        "interval (10000 ms): a transaction stays open from one checkpoint to the next\n"
    )
