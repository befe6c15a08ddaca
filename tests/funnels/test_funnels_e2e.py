"""funnels end to end: generated traffic on a real Kafka topic → the job on a MiniCluster → PostgreSQL and
the ux.funnel topic.

Every output table must equal the independent oracle exactly, in both directions; ux.funnel (read
committed) must hold exactly the oracle's window records; killed Python workers and a failure injected
after a checkpoint must recover to the same (RELIABILITY T13, T16, T17); a replay of the same input must
leave every table unchanged. One partition, so the oracle can replay the job's arrival order exactly
(DESIGN.md §6).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobs.common import counters, tables
from jobs.common.flink_env import FlinkSettings, checkpoint_dir
from jobs.common.oracle import CleanEvents, arrival_counts, load
from jobs.common.privacy import PrivacySettings, Pseudonymizer
from jobs.common.settings import KafkaSettings, PostgresSettings
from jobs.funnels.definitions import load_funnels
from jobs.funnels.logic import relevant_event_names
from jobs.funnels.oracle import classify, expected, release_times, relevant_arrivals, resolve
from jobs.funnels.settings import DEFAULT_CONFIG
from tests.funnels.identity_stream import EXPECTED, with_funnel_identity_events
from tests.support import streams
from tests.support.chaos import python_workers, run_in_phases, wait_until_recovered
from tests.support.db import (
    assert_multisets_equal,
    assert_table_equals,
    drop_database,
    fresh_database,
    normalize,
    rows,
    snapshot,
)
from tests.support.jobs import flink_log, restarts, run_bounded
from tests.support.kafka import committed_decoded
from tests.support.prometheus import wait_for_counters, wait_for_more_checkpoints
from tests.support.streams import generate, generate_truth, produce, unique_topic, with_funnel_crawler
from uxstream.db import connect
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
    run_bounded(
        "funnels",
        run.command("--bounded", "--checkpoint-interval-ms", str(interval_ms)),
        {**os.environ, "UXSTREAM_PG_DB": run.pg.dbname, **(extra_env or {})},
    )


def prepare(
    pg_settings: PostgresSettings, folder: Path, generator_args: tuple[str, ...], extra_funnels: str
) -> Run:
    """Generate a stream on a fresh topic, write the run's definitions, create a fresh migrated database."""
    topic = unique_topic("test.funnels")
    generate(generator_args, folder / "truth.jsonl", topic)
    return fresh_run(pg_settings, folder, folder / "truth.jsonl", extra_funnels, topic)


def fresh_run(
    pg_settings: PostgresSettings,
    folder: Path,
    truth_file: Path,
    extra_funnels: str,
    topic: str | None = None,
) -> Run:
    """A run of the stream recorded in `truth_file` on `topic` (default: a fresh name): the run's
    definitions written, a fresh migrated database created."""
    topic = topic or unique_topic("test.funnels")
    config = folder / "funnels.toml"
    config.write_text(DEFAULT_CONFIG.read_text() + extra_funnels)
    pg = fresh_database(pg_settings, f"uxstream_test_funnels_{topic.rsplit('.', 1)[1]}")
    return Run(topic, pg, load(truth_file), config)


def drop(pg_settings: PostgresSettings, run: Run) -> None:
    drop_database(pg_settings, run.pg)


@pytest.fixture(scope="module")
def stream(
    kafka_settings: KafkaSettings, pg_settings: PostgresSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    """A generated stream with the identity scenarios (tests/funnels/identity_stream.py) on a fresh topic,
    a fresh migrated database, and one run of the job."""
    folder = tmp_path_factory.mktemp("funnels")
    topic = unique_topic("test.funnels")
    lines = with_funnel_crawler(
        with_funnel_identity_events(generate_truth(GENERATOR_ARGS, folder / "generated.jsonl"))
    )
    (folder / "truth.jsonl").write_text("".join(lines), encoding="utf-8")
    produce(lines, topic, folder, "stream")
    run = fresh_run(pg_settings, folder, folder / "truth.jsonl", ANY_WITH_EXCLUSION, topic)
    run_job(run)
    yield run
    drop(pg_settings, run)


def assert_equals_oracle(run: Run, table: str) -> None:
    where = f" WHERE job = '{tables.LATE_JOB_FUNNELS}'" if table == tables.LATE_EVENTS else ""
    assert_table_equals(run.pg, table, run.expected()[table], where)


def committed(kafka: KafkaSettings, topic: str) -> list[tuple[bytes | None, int, dict[str, Any]]]:
    """(key, Kafka timestamp, decoded record) of every committed record of `topic` (read_committed)."""
    return [(r.key, r.timestamp, value) for r, value in committed_decoded(kafka, topic)]


def published(kafka: KafkaSettings, topic: str) -> Counter[tuple[Any, ...]]:
    """(key, Kafka timestamp, every record field) of each committed ux.funnel record."""
    found: Counter[tuple[Any, ...]] = Counter()
    for key, timestamp, record in committed(kafka, topic):
        assert key is not None
        found[(key.decode(), timestamp, *(normalize(v) for v in record.values()))] += 1
    return found


def assert_topic_equals_oracle(kafka: KafkaSettings, run: Run) -> None:
    windows = run.expected()["windows"]
    want = Counter(
        (f"{w['funnel']}|{w['dimension']}|{w['dimension_value']}", w["window_end"],
         *(normalize(v) for v in w.values()))
        for w in windows
    )  # fmt: skip
    assert_multisets_equal(run.funnel_topic, want, published(kafka, run.funnel_topic), unit="records")


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


def test_one_attempt_per_user_funnel_and_entry_and_a_users_attempts_never_overlap(stream: Run) -> None:
    """Natural keys, not the tables' own primary keys: one attempt per (funnel, user, entry), a user's
    attempts in a funnel in sequence (re-entry only after the previous attempt ended), and one step row
    per step of the funnel in every window."""
    with connect(stream.pg) as conn:
        attempts = conn.execute(
            f"SELECT funnel, user_key, entered_at, ended_at FROM {tables.FUNNEL_ATTEMPTS} ORDER BY 1, 2, 3"
        ).fetchall()
        steps = conn.execute(
            f"""SELECT w.funnel, w.steps, count(s.step), count(DISTINCT s.step)
            FROM {tables.FUNNEL_WINDOWS} w LEFT JOIN {tables.FUNNEL_WINDOW_STEPS} s
              ON (s.funnel, s.window_start, s.dimension, s.dimension_value)
               = (w.funnel, w.window_start, w.dimension, w.dimension_value)
            GROUP BY w.funnel, w.window_start, w.dimension, w.dimension_value, w.steps"""
        ).fetchall()
    assert attempts and steps, "no attempts or no windows: the test would prove nothing"
    assert len({a[:3] for a in attempts}) == len(attempts)
    overlaps = [
        (a, b) for a, b in itertools.pairwise(attempts) if a[:2] == b[:2] and (a[3] is None or b[2] < a[3])
    ]
    assert not overlaps, f"attempts of one user in one funnel overlap: {overlaps[:3]}"
    wrong = [row for row in steps if not (row[1] == row[2] == row[3])]
    assert not wrong, f"windows whose step rows are not one per step: {wrong[:3]}"


SHIPPED_FUNNELS = ("signup", "checkout")


def test_a_login_mid_funnel_gives_one_attempt_of_the_user_and_each_identity_scenario_its_attempt(
    stream: Run,
) -> None:
    """issue 22 item 4, rule 3 (README "Identity in funnels"): the scenarios of identity_stream.py, each
    one signup attempt under the user key the rule gives, in the oracle and in the table alike (the table
    equals the oracle in full: test_every_table_equals_the_oracle). Only the shipped funnels: the
    run's browse_any funnel sees the anonymous return's events too."""
    pseudonym = Pseudonymizer(PrivacySettings.from_env())
    want = sorted((f, pseudonym(user), status, steps) for f, user, status, steps in EXPECTED.values())
    keys = {pseudonym(user) for _, user, _, _ in EXPECTED.values()} | {
        pseudonym(key) for key in ("stitchfun-user-gap", "stitchfun-anon-login", "stitchfun-anon-return")
    }
    oracle_rows = sorted(
        (a["funnel"], a["user_key"], a["status"], a["furthest_step"])
        for a in stream.expected()[tables.FUNNEL_ATTEMPTS]
        if a["user_key"] in keys and a["funnel"] in SHIPPED_FUNNELS
    )
    assert oracle_rows == want
    with connect(stream.pg) as conn:
        stored = conn.execute(
            f"SELECT funnel, user_key, status, furthest_step FROM {tables.FUNNEL_ATTEMPTS}"
        ).fetchall()
    assert sorted(r for r in stored if r[1] in keys and r[0] in SHIPPED_FUNNELS) == want


def test_a_behavioural_bot_enters_no_funnel_while_its_twin_converts(stream: Run) -> None:
    """README "Bots by behaviour": the crawler reads 40 pages a minute for 4 minutes, then takes every
    checkout step; its twin (same steps, same times, same user agent, no crawling) converts. The steps
    come after the crawler's flag, so it has no attempt (the table equals the oracle in full above)."""
    pseudonym = Pseudonymizer(PrivacySettings.from_env())
    with connect(stream.pg) as conn:
        rows = conn.execute(
            f"SELECT user_key, funnel, status, furthest_step FROM {tables.FUNNEL_ATTEMPTS} "
            "WHERE user_key IN (%s, %s)",
            (pseudonym(streams.FUNNEL_CRAWLER), pseudonym(streams.FUNNEL_TWIN)),
        ).fetchall()
    assert sorted(r[1:] for r in rows if r[0] == pseudonym(streams.FUNNEL_TWIN) and r[1] == "checkout") == [
        ("checkout", "converted", len(streams.FUNNEL_CRAWLER_STEPS))
    ]
    assert [r for r in rows if r[0] == pseudonym(streams.FUNNEL_CRAWLER)] == []


def test_a_replay_of_the_same_input_leaves_every_table_unchanged(stream: Run) -> None:
    before = snapshot(stream.pg, TABLES)
    run_job(stream)
    assert snapshot(stream.pg, TABLES) == before


@pytest.mark.fault
def test_t16_t13_t17_killed_python_workers_an_injected_failure_and_five_random_kills_lose_nothing(
    kafka_settings: KafkaSettings, pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    """RELIABILITY T16, T13 and T17 in one run of the job whose keyed functions are Python (sessionize has
    no Python worker), the stream produced in eight parts (tests/support/chaos.py `run_in_phases`), the
    Python functions in worker processes of their own (process mode, not loopback), a strict funnel among
    the definitions so the JVM filter passes every event:

    1. T16: once a checkpoint is on disk, every Python worker is SIGKILLed; the next part reaches the dead
       workers and the job recovers: exactly one restart;
    2. T13: then the job's chaos hook is armed (jobs/common/chaos.py: it fires only once a checkpoint is
       visible under UXSTREAM_CHAOS_CHECKPOINTS, which is linked to the job's checkpoints now), so the
       restarted workers fail once at their first funnel attempt: exactly two restarts;
    3. T17: five more kills of whatever workers run, 0–6 s apart (seeded), each followed by a part of the
       stream; the job is healthy again and finishes within 180 s of the last kill.

    Every table and ux.funnel (read committed) equal the oracle: nothing lost, nothing twice."""
    truth_file = tmp_path / "truth.jsonl"
    lines = generate_truth((*GENERATOR_ARGS, "--seed", "22"), truth_file)
    run = fresh_run(pg_settings, tmp_path, truth_file, ANY_WITH_EXCLUSION + STRICT)
    marker, armed = tmp_path / "failed-once", tmp_path / "chaos-armed"
    checkpoints = checkpoint_dir(FlinkSettings(state_dir=tmp_path / "flink-state"), "funnels")
    log_dir = tmp_path / "flink-log"
    rounds: list[list[int]] = []
    pauses = random.Random(17).choices(range(0, 6001), k=5)

    def kill_python_workers(process_group: int) -> None:
        killed = python_workers(process_group)
        for pid in killed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        rounds.append(killed)

    def t16(process_group: int) -> None:
        kill_python_workers(process_group)
        assert rounds[0], "no Python worker was running after the checkpoint: T16 would prove nothing"

    def t13(process_group: int) -> None:
        wait_until_recovered(log_dir, 1)
        armed.symlink_to(checkpoints, target_is_directory=True)

    def t17(pause_ms: int) -> Callable[[int], None]:
        def kill(process_group: int) -> None:
            if len(rounds) == 1:  # the first T17 kill: T13 must be over
                wait_until_recovered(log_dir, 2)
                assert marker.exists(), "the injected failure did not happen: T13 would prove nothing"
            time.sleep(pause_ms / 1000)
            kill_python_workers(process_group)

        return kill

    env = {
        **os.environ, "UXSTREAM_PG_DB": run.pg.dbname,
        "UXSTREAM_FLINK_PYTHON_MODE": "process",  # workers in processes of their own (flink_env)
        "FLINK_LOG_DIR": str(log_dir),
        "UXSTREAM_CHAOS_FAIL_ONCE": f"{marker}:1", "UXSTREAM_CHAOS_CHECKPOINTS": str(armed),
    }  # fmt: skip
    try:
        run_in_phases(
            run.command("--checkpoint-interval-ms", "300"), env, lines, run.topic, tmp_path, "funnels",
            [t16, t13, *(t17(pause) for pause in pauses)], finish_within_s=180,
        )  # fmt: skip
        assert "funnels.attempts" in marker.read_text()
        assert rounds[1], "the first T17 kill found no Python worker after a completed recovery"
        assert restarts(flink_log(log_dir)) >= 3, "T17: the kills were never noticed"
        for table in TABLES:
            assert_equals_oracle(run, table)
        assert_topic_equals_oracle(kafka_settings, run)
    finally:
        drop(pg_settings, run)


def test_unbounded_rows_appear_once_the_watermark_passes_them_and_not_before(
    stream: Run, pg_settings: PostgresSettings
) -> None:
    """As in production (no end of input): an attempt is written when the watermark passes its end — for
    a drop-off, entry + conversion window — and a window row when it passes window end + conversion
    window. After catching up, the tables hold exactly the oracle rows the final watermark (max event
    time - 5 s) allows, and nothing more. Identity (README "Identity in funnels"): a user's attempts are
    left out on both sides while one of the user's anonymous events is still held (its visit neither
    linked nor ended by that watermark: the job cannot know its user yet)."""
    import signal
    import time

    live = dataclasses.replace(
        stream, pg=dataclasses.replace(pg_settings, dbname=f"{stream.pg.dbname}_live"), outputs=".live"
    )
    fresh_database(pg_settings, live.pg.dbname)
    expected_rows = stream.expected()
    windows = {f.name: f.window_ms for f in load_funnels(stream.config)}
    watermark = max(e.ts for e in stream.truth.events if not e.future) - 5_000
    funnels = load_funnels(stream.config)
    _, clean = classify(stream.truth.events, relevant_event_names(funnels))
    releases = release_times(clean)
    pseudonym = Pseudonymizer(PrivacySettings.from_env())
    pending = {
        pseudonym(user) for user, e in resolve(clean) if releases.get(str(e["event_id"]), 0) > watermark
    }
    assert pending, "no held event at the end of the stream: the exception below would prove nothing"
    attempts = [
        a
        for a in expected_rows[tables.FUNNEL_ATTEMPTS]
        if a["ended_at"] <= watermark and a["user_key"] not in pending
    ]
    final = [
        w for w in expected_rows[tables.FUNNEL_WINDOWS] if w["window_end"] + windows[w["funnel"]] <= watermark
    ]
    assert 0 < len(attempts) < len(expected_rows[tables.FUNNEL_ATTEMPTS]), "the test would prove nothing"
    assert 0 < len(final) < len(expected_rows[tables.FUNNEL_WINDOWS]), "the test would prove nothing"
    assert any(a["status"] == "dropped" for a in attempts)
    want = {
        tables.FUNNEL_ATTEMPTS: Counter(tuple(normalize(v) for v in a.values()) for a in attempts),
        tables.FUNNEL_WINDOWS: Counter(tuple(normalize(v) for v in w.values()) for w in final),
    }
    columns = {t: list(expected_rows[t][0]) for t in want}
    user_column = columns[tables.FUNNEL_ATTEMPTS].index("user_key")

    def observed() -> dict[str, Counter[tuple[Any, ...]]]:
        found = {t: rows(live.pg, t, columns[t]) for t in want}
        attempts_found = found[tables.FUNNEL_ATTEMPTS]
        found[tables.FUNNEL_ATTEMPTS] = Counter(
            {r: n for r, n in attempts_found.items() if r[user_column] not in pending}
        )
        return found

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
            got = observed()
            if got == want:
                break
            time.sleep(2)
        assert got == want, {
            t: (sum((want[t] - got[t]).values()), sum((got[t] - want[t]).values())) for t in want
        }
        # The job's own counters: every record read, dead letters, and the arrival classification of the
        # events the funnels can use (the others are dropped before it).
        relevant = relevant_event_names(load_funnels(stream.config))
        counted = {
            counters.EVENTS_IN: float(len(stream.truth.events) + len(stream.truth.dead_letters)),
            counters.DEAD_LETTERS: float(len(stream.truth.dead_letters)),
            **{
                k: float(n)
                for k, n in arrival_counts(relevant_arrivals(stream.truth.events, relevant)).items()
            },
        }
        # (This stream has no on-time duplicate of a relevant event: 0 is exact here; the duplicates
        # counter is the shared dedup operator's, proven non-zero in tests/cluster/test_minicluster_metrics.)
        proven = {k: v for k, v in counted.items() if k != counters.DUPLICATES}
        assert all(proven.values()), f"a kind of record is missing, nothing is proven: {counted}"
        assert wait_for_counters(range(port, port + 1), counted, job, timeout_s=60) == counted
        # Still running, every record read and two checkpoints later (everything they produce flushed):
        # nothing beyond what the watermark allows shows up.
        wait_for_more_checkpoints(range(port, port + 1), job)
        assert observed() == want
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(30)
        drop(pg_settings, live)
