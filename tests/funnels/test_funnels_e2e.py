"""funnels end to end: generated traffic on a real Kafka topic → the job on a MiniCluster → PostgreSQL and
the ux.funnel topic.

Every output table must equal the independent oracle exactly, in both directions; ux.funnel (read
committed) must hold exactly the oracle's window records; a failure injected after a checkpoint must
recover to the same; a replay of the same input must leave every table unchanged. One partition, so the
oracle can replay the job's arrival order exactly (DESIGN.md §6).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from jobs.common import counters, tables
from jobs.common.oracle import CleanEvents, arrival_counts, arrivals, load
from jobs.common.privacy import PrivacySettings, Pseudonymizer
from jobs.common.settings import KafkaSettings, PostgresSettings
from jobs.funnels.definitions import load_funnels
from jobs.funnels.logic import relevant_event_names
from jobs.funnels.oracle import expected
from jobs.funnels.settings import DEFAULT_CONFIG
from tests.chaos import generate_truth, run_failing_once_after_a_checkpoint
from tests.prometheus import wait_for_counters
from uxstream.db import connect, migrate
from uxstream.paths import ROOT
from uxstream.services.common import free_port

pytestmark = [pytest.mark.services, pytest.mark.flink]

GENERATOR_ARGS = (
    "--events", "4000", "--duration", "3h", "--seed", "21", "--partitions", "1",
    "--duplicate-fraction", "0.03", "--late-fraction", "0.02", "--malformed-fraction", "0.01",
    "--future-fraction", "0.01",
)  # fmt: skip

ANY_WITH_EXCLUSION = """
[[funnel]]
name = "browse_any"
ordering = "any"
window = "20m"
breakdowns = ["device_type", "properties.product_id"]
exclusions = [{ event = "js_error" }]
steps = [{ event = "add_to_cart" }, { event = "product_viewed" }]
"""

STRICT = """
[[funnel]]
name = "cart_strict"
ordering = "strict"
window = "30m"
steps = [{ event = "add_to_cart" }, { event = "page_view" }, { event = "checkout_started" }]
"""
"""A strict funnel: every event can break it, so the JVM filter passes every event (the other path)."""

TABLES = (*tables.FUNNELS_TABLES, tables.LATE_EVENTS)


@dataclasses.dataclass(frozen=True)
class Run:
    topic: str
    pg: PostgresSettings
    truth: CleanEvents
    config: Path
    outputs: str = ""
    """Suffix of the run's output topics and transactional ids (a second run of the same input)."""

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic}.dlq{self.outputs}"

    @property
    def funnel_topic(self) -> str:
        return f"{self.topic}.funnel{self.outputs}"

    def command(self, *options: str) -> list[str]:
        return [
            sys.executable, "-m", "uxstream.cli", "run", "funnels", *options, "--input-topic", self.topic,
            "--dlq-topic", self.dlq_topic, "--funnel-topic", self.funnel_topic, "--config", str(self.config),
            "--transactional-id-prefix", f"test-{self.topic}{self.outputs}",
        ]  # fmt: skip

    def expected(self) -> dict[str, list[dict[str, Any]]]:
        pseudonym = Pseudonymizer(PrivacySettings.from_env())  # the key the job's client ensured
        return expected(self.truth.events, load_funnels(self.config), pseudonym=pseudonym)


def run_job(run: Run, extra_env: dict[str, str] | None = None, interval_ms: int = 2000) -> None:
    env = {**os.environ, "UXSTREAM_PG_DB": run.pg.dbname, **(extra_env or {})}
    proc = subprocess.run(
        run.command("--bounded", "--checkpoint-interval-ms", str(interval_ms)),
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, f"funnels failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"


def prepare(
    pg_settings: PostgresSettings, folder: Path, generator_args: tuple[str, ...], extra_funnels: str
) -> Run:
    """Generate a stream on a fresh topic, write the run's definitions, create a fresh migrated database."""
    truth_file = folder / "truth.jsonl"
    topic = f"test.funnels.{uuid.uuid4().hex[:8]}"
    subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "generate", *generator_args, "--topic", topic,
         "--output", str(truth_file)],
        cwd=ROOT, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return fresh_run(pg_settings, folder, truth_file, extra_funnels, topic)


def fresh_run(
    pg_settings: PostgresSettings,
    folder: Path,
    truth_file: Path,
    extra_funnels: str,
    topic: str | None = None,
) -> Run:
    """A run of the stream recorded in `truth_file` on `topic` (default: a fresh name): the run's
    definitions written, a fresh migrated database created."""
    topic = topic or f"test.funnels.{uuid.uuid4().hex[:8]}"
    suffix = topic.rsplit(".", 1)[1]
    config = folder / "funnels.toml"
    config.write_text(DEFAULT_CONFIG.read_text() + extra_funnels)
    dbname = f"uxstream_test_funnels_{suffix}"
    with connect(pg_settings, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    pg = dataclasses.replace(pg_settings, dbname=dbname)
    migrate(pg)
    return Run(topic, pg, load(truth_file), config)


def drop(pg_settings: PostgresSettings, run: Run) -> None:
    with connect(pg_settings, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{run.pg.dbname}" WITH (FORCE)')


@pytest.fixture(scope="module")
def stream(
    kafka_settings: KafkaSettings, pg_settings: PostgresSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    """A generated stream on a fresh topic, a fresh migrated database, and one run of the job."""
    run = prepare(pg_settings, tmp_path_factory.mktemp("funnels"), GENERATOR_ARGS, ANY_WITH_EXCLUSION)
    run_job(run)
    yield run
    drop(pg_settings, run)


def _normalize(value: Any) -> Any:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, list):
        return tuple(_normalize(v) for v in value)
    return value


def assert_equals_oracle(run: Run, table: str) -> None:
    rows = run.expected()[table]
    assert rows, f"the generated stream gives no expected {table} rows: the test would prove nothing"
    columns = list(rows[0])
    want = Counter(tuple(_normalize(r[c]) for c in columns) for r in rows)
    where = f" WHERE job = '{tables.LATE_JOB_FUNNELS}'" if table == tables.LATE_EVENTS else ""
    with connect(run.pg) as conn:
        found = conn.execute(f"SELECT {', '.join(columns)} FROM {table}{where}").fetchall()
    got = Counter(tuple(_normalize(v) for v in row) for row in found)
    missing, extra = want - got, got - want
    assert not missing and not extra, (
        f"{table}: {sum(missing.values())} expected rows missing, {sum(extra.values())} unexpected; "
        f"first missing {list(missing)[:2]}, first unexpected {list(extra)[:2]}"
    )


def snapshot(pg: PostgresSettings) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every funnels table, in a total order: a replay must reproduce it exactly."""
    with connect(pg) as conn:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLES}


def committed(kafka: KafkaSettings, topic: str) -> list[tuple[bytes | None, int, dict[str, Any]]]:
    """(key, Kafka timestamp, decoded record) of every committed record of `topic` (read_committed)."""
    from confluent_kafka import Consumer, TopicPartition

    from jobs.common.contract import decode_framed

    consumer = Consumer(
        {**kafka.client_config(), "group.id": f"check-{uuid.uuid4()}", "isolation.level": "read_committed"}
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    found = []
    idle = 0
    while idle < 6:
        message = consumer.poll(0.5)
        if message is None:
            idle += 1
            continue
        assert message.error() is None
        value = message.value()
        assert value is not None
        _, record = decode_framed(value)
        found.append((message.key(), message.timestamp()[1], record))
    consumer.close()
    return found


def published(kafka: KafkaSettings, topic: str) -> Counter[tuple[Any, ...]]:
    """(key, Kafka timestamp, every record field) of each committed ux.funnel record."""
    found: Counter[tuple[Any, ...]] = Counter()
    for key, timestamp, record in committed(kafka, topic):
        assert key is not None
        found[(key.decode(), timestamp, *(_normalize(v) for v in record.values()))] += 1
    return found


def assert_topic_equals_oracle(kafka: KafkaSettings, run: Run) -> None:
    windows = run.expected()["windows"]
    want = Counter(
        (f"{w['funnel']}|{w['dimension']}|{w['dimension_value']}", w["window_end"],
         *(_normalize(v) for v in w.values()))
        for w in windows
    )  # fmt: skip
    got = published(kafka, run.funnel_topic)
    assert got == want, (
        f"{sum((want - got).values())} records missing, {sum((got - want).values())} unexpected"
    )


@pytest.mark.parametrize("table", TABLES)
def test_every_table_equals_the_oracle(stream: Run, table: str) -> None:
    assert_equals_oracle(stream, table)


def test_the_stream_exercises_every_outcome(stream: Run) -> None:
    attempts = stream.expected()["funnel_attempts"]
    outcomes = {(a["funnel"], a["status"]) for a in attempts}
    for funnel in ("signup", "checkout", "browse_any"):
        assert {(funnel, "converted"), (funnel, "dropped")} <= outcomes
    assert ("browse_any", "excluded") in outcomes
    reasons = {r["reason"] for r in stream.expected()["late_events"]}
    assert reasons == {"late", "future_timestamp"}


def test_ux_funnel_holds_exactly_the_oracle_windows_read_committed(
    stream: Run, kafka_settings: KafkaSettings
) -> None:
    assert_topic_equals_oracle(kafka_settings, stream)


def test_the_dead_letter_topic_holds_exactly_the_malformed_records(
    stream: Run, kafka_settings: KafkaSettings
) -> None:
    want = sorted((d.payload, d.reason) for d in stream.truth.dead_letters)
    assert want, "the generated stream has no malformed records: the test would prove nothing"
    letters = committed(kafka_settings, stream.dlq_topic)
    assert sorted((r["original"], r["reason"]) for _, _, r in letters) == want
    assert {r["job"] for _, _, r in letters} == {"funnels"}


def test_attempts_hold_pseudonyms_never_raw_user_keys(stream: Run) -> None:
    raw = {e.user_key for e in stream.truth.events}
    with connect(stream.pg) as conn:
        stored = {r[0] for r in conn.execute(f"SELECT user_key FROM {tables.FUNNEL_ATTEMPTS}").fetchall()}
    assert stored, "no attempts: the test would prove nothing"
    assert not stored & raw


def test_output_keys_are_unique(stream: Run) -> None:
    keys = {
        tables.FUNNEL_ATTEMPTS: "attempt_id, entered_at",
        tables.FUNNEL_WINDOWS: "funnel, window_start, dimension, dimension_value",
        tables.FUNNEL_WINDOW_STEPS: "funnel, window_start, dimension, dimension_value, step",
    }
    with connect(stream.pg) as conn:
        for table, key in keys.items():
            total, distinct = conn.execute(
                f"SELECT count(*), count(DISTINCT ({key})) FROM {table}"
            ).fetchone()
            assert total == distinct, f"{table} has duplicate keys"


def test_a_replay_of_the_same_input_leaves_every_table_unchanged(stream: Run) -> None:
    before = snapshot(stream.pg)
    run_job(stream)
    assert snapshot(stream.pg) == before


def test_recovers_from_a_failure_injected_after_a_checkpoint_with_every_output_equal_to_the_oracle(
    kafka_settings: KafkaSettings, pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    """The job fails at its first funnel attempt after its first completed checkpoint, which a held-back
    second half of the stream guarantees (tests/chaos.py), and must recover from that checkpoint."""
    truth_file = tmp_path / "truth.jsonl"
    lines = generate_truth((*GENERATOR_ARGS, "--seed", "22"), truth_file)
    run = fresh_run(pg_settings, tmp_path, truth_file, ANY_WITH_EXCLUSION + STRICT)
    try:
        run_failing_once_after_a_checkpoint(
            run.command("--checkpoint-interval-ms", "300"),
            {**os.environ, "UXSTREAM_PG_DB": run.pg.dbname},
            lines, run.topic, tmp_path, "funnels",
        )  # fmt: skip
        for table in TABLES:
            assert_equals_oracle(run, table)
        assert_topic_equals_oracle(kafka_settings, run)
    finally:
        drop(pg_settings, run)


def _rows(pg: PostgresSettings, table: str, columns: list[str]) -> Counter[tuple[Any, ...]]:
    with connect(pg) as conn:
        found = conn.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
    return Counter(tuple(_normalize(v) for v in row) for row in found)


def test_unbounded_rows_appear_once_the_watermark_passes_them_and_not_before(
    stream: Run, pg_settings: PostgresSettings
) -> None:
    """As in production (no end of input): an attempt is written when the watermark passes its end — for
    a drop-off, entry + conversion window — and a window row when it passes window end + conversion
    window. After catching up, the tables hold exactly the oracle rows the final watermark (max event
    time - 5 s) allows, and nothing more."""
    import signal
    import time

    live = dataclasses.replace(
        stream, pg=dataclasses.replace(pg_settings, dbname=f"{stream.pg.dbname}_live"), outputs=".live"
    )
    with connect(pg_settings, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{live.pg.dbname}"')
    migrate(live.pg)
    expected_rows = stream.expected()
    windows = {f.name: f.window_ms for f in load_funnels(stream.config)}
    watermark = max(e.ts for e in stream.truth.events if not e.future) - 5_000
    attempts = [a for a in expected_rows[tables.FUNNEL_ATTEMPTS] if a["ended_at"] <= watermark]
    final = [
        w for w in expected_rows[tables.FUNNEL_WINDOWS] if w["window_end"] + windows[w["funnel"]] <= watermark
    ]
    assert 0 < len(attempts) < len(expected_rows[tables.FUNNEL_ATTEMPTS]), "the test would prove nothing"
    assert 0 < len(final) < len(expected_rows[tables.FUNNEL_WINDOWS]), "the test would prove nothing"
    assert any(a["status"] == "dropped" for a in attempts)
    want = {
        tables.FUNNEL_ATTEMPTS: Counter(tuple(_normalize(v) for v in a.values()) for a in attempts),
        tables.FUNNEL_WINDOWS: Counter(tuple(_normalize(v) for v in w.values()) for w in final),
    }
    columns = {t: list(expected_rows[t][0]) for t in want}
    port = free_port()  # the job's counters, scraped below
    env = {**os.environ, "UXSTREAM_PG_DB": live.pg.dbname, "UXSTREAM_FLINK_PROMETHEUS_PORT": str(port)}
    job = subprocess.Popen(
        live.command("--checkpoint-interval-ms", "1000"), cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        got: dict[str, Counter[tuple[Any, ...]]] = {}
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert job.poll() is None, "the unbounded job exited on its own"
            got = {t: _rows(live.pg, t, columns[t]) for t in want}
            if got == want:
                break
            time.sleep(2)
        assert got == want, {
            t: (sum((want[t] - got[t]).values()), sum((got[t] - want[t]).values())) for t in want
        }
        time.sleep(5)  # still running: nothing beyond what the watermark allows shows up
        assert {t: _rows(live.pg, t, columns[t]) for t in want} == want
        # The job's own counters: every record read, dead letters, and the arrival classification of the
        # events the funnels can use (the others are dropped before it).
        relevant = relevant_event_names(load_funnels(stream.config))
        counted = {
            counters.EVENTS_IN: float(len(stream.truth.events) + len(stream.truth.dead_letters)),
            counters.DEAD_LETTERS: float(len(stream.truth.dead_letters)),
            **{
                k: float(n)
                for k, n in arrival_counts(arrivals(stream.truth.events, relevant=relevant)).items()
            },
        }
        # (This stream has no on-time duplicate of a relevant event: 0 is exact here; the duplicates
        # counter is the shared dedup operator's, proven non-zero in tests/cluster/test_minicluster_metrics.)
        proven = {k: v for k, v in counted.items() if k != counters.DUPLICATES}
        assert all(proven.values()), f"a kind of record is missing, nothing is proven: {counted}"
        assert wait_for_counters(range(port, port + 1), counted, job, timeout_s=60) == counted
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(30)
        drop(pg_settings, live)
