"""Erasure that is complete and stays erased (issue 16 item 2), against real Kafka, PostgreSQL and Flink.

One stream, two bounded sessionize runs (module-scoped): the first writes the outputs under the current
pseudonym key k2; rows "made before the rotation" under the earlier key k1 (still in the ring:
UXSTREAM_PSEUDONYM_PREVIOUS_KEYS) and the tables no job of this module writes (funnel_attempts,
smoke_events) are seeded by hand. The user to erase is a user_id plus an anonymous_id of the stream (the
user's anonymous history), both with sessions and late-ledger rows. Then `uxstream privacy export` and
`erase`, then a replay of the whole topic (the second run, after the erase): it re-creates nothing of the
user, drops exactly the user's events (counted) and leaves everyone else's rows as the oracle says.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from jobs.common import tables
from jobs.common.privacy import PrivacySettings, Pseudonymizer
from jobs.common.settings import KafkaSettings, PostgresSettings, Secret
from jobs.sessionize.oracle import expected
from tests.support.db import normalize
from tests.support.jobs import flink_log, restarts
from tests.support.sessionize import Run, drop, prepare, run_job
from uxstream.db import connect
from uxstream.paths import ROOT

pytestmark = [pytest.mark.services, pytest.mark.flink]

GENERATOR_ARGS = (
    "--events", "800", "--duration", "12m", "--seed", "23", "--partitions", "1",
    "--late-fraction", "0.04", "--duplicate-fraction", "0.02", "--future-fraction", "0.01",
    "--malformed-fraction", "0.01",
)  # fmt: skip
"""Small, with late, duplicate and future events (the late ledger must hold rows of the erased user)."""

KEY_K1 = "erasure-e2e-earlier-key-k1-0123456789"
KEY_K2 = "erasure-e2e-current-key-k2-0123456789"
K1 = Pseudonymizer(PrivacySettings(Secret(KEY_K1), "k1"))
K2 = Pseudonymizer(PrivacySettings(Secret(KEY_K2), "k2"))
CLOSE_LOG = re.compile(r"erased_user: events of erased users dropped: (\d+)")


@dataclasses.dataclass
class Scenario:
    run: Run
    env: dict[str, str]
    """The environment of the jobs and of `uxstream privacy` (keys k2 current, k1 earlier)."""
    user_id: str
    anonymous_id: str
    bystander: str
    """A user of the stream that is not erased (a k1 row of theirs is seeded too)."""
    seeded: dict[str, list[str]]
    """Per table, the keys (session_id, attempt_id, event_id) of the user's rows seeded by hand."""
    before: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    """Every row of every user-keyed table after the first run and the seeding."""
    exported: dict[str, Any] = dataclasses.field(default_factory=dict)
    erase_output: str = ""
    after_erase: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    replay_log: str = ""

    @property
    def ids(self) -> tuple[str, str]:
        return (self.user_id, self.anonymous_id)

    @property
    def pseudonyms(self) -> set[str]:
        return {p(i) for i in self.ids for p in (K2, K1)}


def oracle(run: Run) -> dict[str, list[dict[str, Any]]]:
    """The sessionize oracle of the whole stream, user keys as the job stores them (current key k2)."""
    if run.topic not in _ORACLES:
        _ORACLES[run.topic] = expected(run.truth.events, pseudonym=K2)
    return _ORACLES[run.topic]


_ORACLES: dict[str, dict[str, list[dict[str, Any]]]] = {}


def all_rows(pg: PostgresSettings) -> dict[str, list[dict[str, Any]]]:
    out = {}
    with connect(pg) as conn:
        for table in [t for t, _, _ in tables.USER_KEYED_TABLES] + [
            t for t, _, _ in tables.RAW_USER_KEYED_TABLES
        ]:
            cursor = conn.execute(f"SELECT * FROM {table}")
            names = [c.name for c in cursor.description]
            out[table] = [dict(zip(names, (normalize(v) for v in row), strict=True)) for row in cursor]
    return out


def privacy(scenario: Scenario, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "privacy", *args],
        cwd=ROOT, env=scenario.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def late_rows_by_user(run: Run) -> Counter[str]:
    users = {e.event_id: e.user_key for e in run.truth.events}
    return Counter(users[r["event_id"]] for r in oracle(run)[tables.LATE_EVENTS])


def seed(pg: PostgresSettings, scenario_ids: tuple[str, str], bystander: str) -> dict[str, list[str]]:
    """Rows of the user made before the key rotation (k1) and rows in the tables no job here writes; a k1
    session, an attempt and a smoke row of the bystander, which must survive."""
    user_id, anonymous_id = scenario_ids
    seeded: dict[str, list[str]] = {tables.SESSIONS: [], tables.FUNNEL_ATTEMPTS: [], tables.LATE_EVENTS: []}
    with connect(pg) as conn:
        for i, (who, key) in enumerate(
            [(user_id, K1(user_id)), (anonymous_id, K1(anonymous_id)), (bystander, K1(bystander))]
        ):
            session_id = f"seeded-session-{i}"
            conn.execute(
                f"INSERT INTO {tables.SESSIONS} (session_id, user_key, session_start, session_end, "
                "duration_ms, event_count, page_views, distinct_pages, error_count, conversions, engaged, "
                "bounce, split_reason, is_final) VALUES (%s, %s, '2024-03-01T10:00:00Z', "
                "'2024-03-01T10:05:00Z', 300000, 2, 2, 1, 0, 0, true, false, 'gap', true)",
                (session_id, key),
            )
            if who != bystander:
                seeded[tables.SESSIONS].append(session_id)
        for i, key in enumerate([K2(user_id), K1(anonymous_id), K2(bystander)]):
            attempt_id = f"seeded-attempt-{i}"
            conn.execute(
                f"INSERT INTO {tables.FUNNEL_ATTEMPTS} (attempt_id, funnel, user_key, entered_at, ended_at, "
                "status, furthest_step, steps, step_times, breakdown) VALUES (%s, 'checkout', %s, "
                "'2024-03-01T10:00:00Z', '2024-03-01T10:30:00Z', 'dropped', 1, 3, "
                "'[1709287200000, null, null]', '{}')",
                (attempt_id, key),
            )
            if i < 2:
                seeded[tables.FUNNEL_ATTEMPTS].append(attempt_id)
        conn.execute(
            f"INSERT INTO {tables.LATE_EVENTS} (job, event_id, event_time, received_at, reason, "
            "source_partition, source_offset, user_key) VALUES ('funnels', 'seeded-late-0', "
            "'2024-03-01T10:00:00Z', '2024-03-01T10:00:09Z', 'late', 0, 1, %s)",
            (K1(user_id),),
        )
        seeded[tables.LATE_EVENTS].append("seeded-late-0")
        conn.execute(
            f"INSERT INTO {tables.SMOKE_EVENTS} (event_id, user_id, path, event_time) VALUES "
            "('seeded-smoke-0', %s, '/', '2024-03-01T10:00:00'), "
            "('seeded-smoke-1', %s, '/', '2024-03-01T10:00:00')",
            (user_id, bystander),
        )
        seeded[tables.SMOKE_EVENTS] = ["seeded-smoke-0"]
    return seeded


@pytest.fixture(scope="module")
def scenario(
    kafka_settings: KafkaSettings, pg_settings: PostgresSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    """First run, seeding, export, erase, replay: each stage's observations are kept for the tests (the
    broker must answer: `kafka_settings`)."""
    folder = tmp_path_factory.mktemp("erasure")
    run = prepare(pg_settings, folder, GENERATOR_ARGS)
    k1_file = folder / "k1.key"
    k1_file.write_text(KEY_K1, encoding="utf-8")
    extra = {
        "UXSTREAM_PSEUDONYM_KEY": KEY_K2,
        "UXSTREAM_PSEUDONYM_KEY_ID": "k2",
        "UXSTREAM_PSEUDONYM_PREVIOUS_KEYS": f"k1={k1_file}",
        "UXSTREAM_ERASED_REFRESH_MS": "1000",
    }
    late = late_rows_by_user(run)
    named = sorted(
        {e.user_key for e in run.truth.events if e.event.get("user_id")}, key=lambda u: (-late[u], u)
    )
    anonymous = sorted(
        {e.user_key for e in run.truth.events if not e.event.get("user_id")}, key=lambda u: (-late[u], u)
    )
    scenario = Scenario(
        run=run,
        env={**run.job_env(extra)},
        user_id=named[0],
        anonymous_id=anonymous[0],
        bystander=named[1],
        seeded={},
    )
    assert late[scenario.user_id] and late[scenario.anonymous_id], "the user has no late events"

    run_job(run, extra)
    scenario.seeded = seed(run.pg, scenario.ids, scenario.bystander)
    scenario.before = all_rows(run.pg)

    done = privacy(scenario, "export", "--user-id", scenario.user_id, "--anonymous-id", scenario.anonymous_id,
                   "--by", "dpo", "--reason", "DSR-1")  # fmt: skip
    assert done.returncode == 0, done.stderr
    scenario.exported = json.loads(done.stdout)

    done = privacy(scenario, "erase", "--user-id", scenario.user_id, "--anonymous-id", scenario.anonymous_id,
                   "--by", "dpo", "--reason", "DSR-2")  # fmt: skip
    assert done.returncode == 0, done.stderr
    scenario.erase_output = done.stdout
    scenario.after_erase = all_rows(run.pg)

    log_dir = folder / "replay-log"
    run_job(run, {**extra, "FLINK_LOG_DIR": str(log_dir)})
    scenario.replay_log = flink_log(log_dir)
    yield scenario
    drop(pg_settings, run)


def identity(row: dict[str, Any]) -> tuple[Any, ...]:
    """A row's natural identity in every user-keyed table (the same for stored and exported rows)."""
    for columns in (("session_id",), ("attempt_id",), ("job", "event_id")):
        if all(c in row for c in columns):
            return tuple(row[c] for c in columns)
    return (row["event_id"],)  # smoke_events


def user_rows(rows: dict[str, list[dict[str, Any]]], scenario: Scenario) -> dict[str, list[dict[str, Any]]]:
    """The rows of the user's ids, per table (pseudonyms under both keys; raw ids in smoke_events)."""
    out = {}
    for table, keys, _ in tables.USER_KEYED_TABLES:
        out[table] = [r for r in rows[table] if any(r.get(k) in scenario.pseudonyms for k in keys)]
    for table, keys, _ in tables.RAW_USER_KEYED_TABLES:
        out[table] = [r for r in rows[table] if any(r.get(k) in scenario.ids for k in keys)]
    return out


def expected_without_the_user(scenario: Scenario, table: str) -> Counter[tuple[Any, ...]]:
    """The oracle's rows (k2) of everyone but the user, in the oracle's columns."""
    run = scenario.run
    users = {e.event_id: e.user_key for e in run.truth.events}
    want = oracle(run)[table]
    if table == tables.SESSIONS:
        erased = set(scenario.pseudonyms)
        kept = [r for r in want if r["user_key"] not in erased and r["device_key"] not in erased]
    else:
        kept = [r for r in want if users[r["event_id"]] not in scenario.ids]
    assert kept, f"no {table} rows of other users: the test would prove nothing"
    columns = list(want[0])
    return Counter(tuple(normalize(r[c]) for c in columns) for r in kept)


def table_rows(rows: list[dict[str, Any]], columns: list[str]) -> Counter[tuple[Any, ...]]:
    return Counter(tuple(r[c] for c in columns) for r in rows)


def test_the_job_stores_each_late_row_under_the_current_pseudonym_of_its_user(scenario: Scenario) -> None:
    users = {e.event_id: e.user_key for e in scenario.run.truth.events}
    job_rows = [r for r in scenario.before[tables.LATE_EVENTS] if r["job"] == "sessionize"]
    assert len(job_rows) == len(oracle(scenario.run)[tables.LATE_EVENTS]) > 0
    assert {r["event_id"]: r["user_key"] for r in job_rows} == {
        r["event_id"]: K2(users[r["event_id"]]) for r in job_rows
    }


def test_export_returns_every_row_of_every_id_of_the_user_under_every_key(scenario: Scenario) -> None:
    want = user_rows(scenario.before, scenario)
    got = scenario.exported["tables"]
    assert set(got) == {*want, tables.ERASED_PSEUDONYMS}
    for table, rows in want.items():
        assert rows, f"the user has no {table} rows: the test would prove nothing"
        assert sorted(map(identity, got[table])) == sorted(map(identity, rows)), table
        assert all(set(r) == set(rows[0]) for r in got[table]), f"{table}: exported rows miss columns"
    # The rows come from the job (k2, both ids) and from before the rotation (k1), in every table.
    sessions = {r["user_key"] for r in got[tables.SESSIONS]}
    assert sessions == scenario.pseudonyms
    assert {r["session_id"] for r in got[tables.SESSIONS]} >= set(scenario.seeded[tables.SESSIONS])
    assert {r["attempt_id"] for r in got[tables.FUNNEL_ATTEMPTS]} == set(
        scenario.seeded[tables.FUNNEL_ATTEMPTS]
    )
    late_keys = {r["user_key"] for r in got[tables.LATE_EVENTS]}
    assert late_keys == {K2(scenario.user_id), K2(scenario.anonymous_id), K1(scenario.user_id)}
    assert [r["event_id"] for r in got[tables.SMOKE_EVENTS]] == scenario.seeded[tables.SMOKE_EVENTS]
    assert got[tables.ERASED_PSEUDONYMS] == []
    assert scenario.exported["pseudonym"] == K2(scenario.user_id)
    assert set(scenario.exported["pseudonyms"]) == scenario.pseudonyms


def test_erase_leaves_no_row_of_the_user_in_any_table_and_every_other_row_as_it_was(
    scenario: Scenario,
) -> None:
    left = user_rows(scenario.after_erase, scenario)
    assert left == {table: [] for table in left}
    for table, rows in scenario.before.items():
        mine = user_rows(scenario.before, scenario)[table]
        others = [r for r in rows if r not in mine]
        assert others, f"no {table} rows of other users: the test would prove nothing"
        assert sorted(map(repr, scenario.after_erase[table])) == sorted(map(repr, others)), table
    counts = {table: len(rows) for table, rows in user_rows(scenario.before, scenario).items()}
    assert scenario.erase_output.startswith(
        f"erased {K2(scenario.user_id)}: "
        + ", ".join(f"{t} {counts[t]}" for t in counts)
        + " row(s) deleted; 4 pseudonym(s) on the erased list"
    )


def test_every_request_is_in_the_audit_table_with_every_pseudonym_and_rows_per_table(
    scenario: Scenario,
) -> None:
    before = {table: len(rows) for table, rows in user_rows(scenario.before, scenario).items()}
    with connect(scenario.run.pg) as conn:
        audit = conn.execute(
            f"SELECT kind, pseudonym, pseudonyms, requested_by, reason, rows FROM {tables.PRIVACY_REQUESTS} "
            "ORDER BY request_id"
        ).fetchall()
        erased = {row[0] for row in conn.execute(f"SELECT pseudonym FROM {tables.ERASED_PSEUDONYMS}")}
    assert [(kind, pseudonym, set(all_), by, reason) for kind, pseudonym, all_, by, reason, _ in audit] == [
        ("export", K2(scenario.user_id), scenario.pseudonyms, "dpo", "DSR-1"),
        ("erase", K2(scenario.user_id), scenario.pseudonyms, "dpo", "DSR-2"),
    ]
    assert audit[0][5] == {**before, tables.ERASED_PSEUDONYMS: 0}
    assert audit[1][5] == before
    assert erased == scenario.pseudonyms


def test_a_replay_after_the_erase_recreates_none_of_the_users_rows_and_counts_the_dropped_events(
    scenario: Scenario,
) -> None:
    now = all_rows(scenario.run.pg)
    assert user_rows(now, scenario) == {table: [] for table in user_rows(now, scenario)}
    # Everyone else's rows are exactly the oracle's (the erased events still moved the watermark).
    for table in (tables.SESSIONS, tables.LATE_EVENTS):
        want = expected_without_the_user(scenario, table)
        columns = list(oracle(scenario.run)[table][0])
        job_rows = [r for r in now[table] if not str(identity(r)[-1]).startswith("seeded-")]
        assert table_rows(job_rows, columns) == want, table
    dropped = sum(1 for e in scenario.run.truth.events if e.user_key in scenario.ids)
    assert dropped > 0
    log = scenario.replay_log
    assert "switched from state RUNNING to FINISHED" in log
    assert sum(int(n) for n in CLOSE_LOG.findall(log)) == dropped
    assert restarts(log) == 0


def test_nothing_secret_reaches_the_job_log(scenario: Scenario) -> None:
    """The keys travel as file names and the reader's password stays in its file."""
    log = scenario.replay_log
    assert "erased_user" in log or "ErasedUser" in log, "the log does not show the lookup: proves nothing"
    reader = scenario.run.pg.as_role("reader")
    secrets = [KEY_K1, KEY_K2, *([reader.password.reveal()] if reader.password is not None else [])]
    assert not [s for s in secrets if s in log]
