"""funnels end to end: generated traffic on a real Kafka topic → the job on a MiniCluster → PostgreSQL and
the ux.funnel topic.

Every output table must equal the independent oracle exactly, in both directions; ux.funnel (read
committed) must hold exactly the oracle's window records; a replay of the same input must leave every
table unchanged. One partition, so the oracle can replay the job's arrival order exactly (DESIGN.md §6).
Faults (T13, T16, T17): test_funnels_faults.py.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from jobs.common import counters, tables
from jobs.common.oracle import arrival_counts
from jobs.common.privacy import PrivacySettings, Pseudonymizer
from jobs.common.settings import KafkaSettings, PostgresSettings
from jobs.funnels.definitions import load_funnels
from jobs.funnels.logic import relevant_event_names
from jobs.funnels.oracle import classify, release_times, relevant_arrivals, resolve
from tests.funnels.identity_stream import EXPECTED, with_funnel_identity_events
from tests.support import streams
from tests.support.db import fresh_database, normalize, rows, snapshot
from tests.support.funnels import (
    ANY_WITH_EXCLUSION,
    GENERATOR_ARGS,
    TABLES,
    Run,
    assert_equals_oracle,
    assert_topic_equals_oracle,
    committed,
    drop,
    fresh_run,
    run_job,
)
from tests.support.prometheus import wait_for_counters, wait_for_more_checkpoints
from tests.support.streams import generate_truth, produce, unique_topic, with_funnel_crawler
from uxstream.db import connect
from uxstream.paths import ROOT
from uxstream.services.common import free_port

pytestmark = [pytest.mark.services, pytest.mark.flink]


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


def test_unbounded_rows_appear_once_the_watermark_passes_them_and_not_before(
    stream: Run, pg_settings: PostgresSettings
) -> None:
    """As in production (no end of input): an attempt is written when the watermark passes its end — for
    a drop-off, entry + conversion window — and a window row when it passes window end + conversion
    window. After catching up, the tables hold exactly the oracle rows the final watermark (max event
    time - 5 s) allows, and nothing more. Identity (README "Identity in funnels"): a user's attempts are
    left out on both sides while one of the user's anonymous events is still held (its visit neither
    linked nor ended by that watermark: the job cannot know its user yet)."""

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
