"""sessionize end to end: generated traffic on a real Kafka topic → the job on a MiniCluster → PostgreSQL.

Every output table must equal the independent oracle exactly, in both directions; the dead-letter topic
must hold exactly the malformed records; a replay of the same input must leave every table unchanged.
One partition, so the oracle can replay the job's arrival order exactly (DESIGN.md §6).

One bounded run of the shared stream (tests/support/sessionize.py: every fault kind and a hot key) at
parallelism 2 — more subtasks than partitions, RELIABILITY T06 — feeds every test of this module that
reads `stream`; the fault scenarios are in test_sessionize_faults.py.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobs.common import tables
from jobs.common.settings import KafkaSettings, PostgresSettings
from jobs.sessionize.oracle import expected
from tests.support import identity_streams
from tests.support.db import assert_table_equals, normalize, snapshot
from tests.support.jobs import flink_log, restarts
from tests.support.kafka import committed_decoded
from tests.support.sessionize import (
    DLQ_SUBJECT,
    GENERATOR_ARGS,
    PSEUDONYM,
    Run,
    assert_equals_oracle,
    assert_every_output_equals_the_oracle,
    assert_kpi_topic_equals_the_oracle,
    dead_letters,
    drop,
    expected_dead_letters,
    job_command,
    prepare,
    run_job,
)
from tests.support.streams import (
    FEEDBACK_ANSWERS,
    HOSTILE_EVENTS,
    IDENTITY_IDS,
    copy_records,
    with_feedback_events,
    with_hostile_events,
    with_identity_events,
)
from uxstream.db import connect
from uxstream.paths import ROOT

pytestmark = [pytest.mark.services, pytest.mark.flink]

SHARED_RUN_PARALLELISM = 2
"""The shared stream's run: 2 parallel subtasks over one partition (one source subtask reads nothing)."""


@pytest.fixture(scope="module")
def stream(
    kafka_settings: KafkaSettings, pg_settings: PostgresSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    """The shared stream on a fresh topic, a fresh migrated database, and one run of the job. The generated
    stream carries the hostile events (issue 16), the identity scenarios of sessions and of KPI windows
    (issue 22 item 4) and the feedback scenarios (issue 22 item 6)."""
    folder = tmp_path_factory.mktemp("sessionize")
    run = prepare(
        pg_settings,
        folder,
        GENERATOR_ARGS,
        # The identity scenarios go in last: they append their latest events after every generated line
        # (so they make no other event late), and the feedback answers follow their own templates.
        rewrite=lambda lines: identity_streams.with_identity_kpi_events(
            with_identity_events(with_feedback_events(with_hostile_events(lines)))
        ),
    )
    run_job(run, {"FLINK_LOG_DIR": str(folder / "flink-log")}, parallelism=SHARED_RUN_PARALLELISM)
    stream_logs[run.topic] = flink_log(folder / "flink-log")
    yield run
    drop(pg_settings, run)


stream_logs: dict[str, str] = {}
"""The MiniCluster log of each shared run, by topic."""


def test_hostile_events_go_to_the_dlq_with_their_reason_and_the_job_never_restarts(
    kafka_settings: KafkaSettings, stream: Run
) -> None:
    """issue 16: valid Avro events that break the contract's limits (NUL, an oversized dimension, an
    oversized record, a property flood: streams.HOSTILE_EVENTS) used to pass decoding and fail every
    PostgreSQL write, restarting the job forever. They are dead letters with their reason and detail;
    every other output equals the oracle (the tests above); the run never restarted."""
    letters = {
        letter["original"]: (letter["reason"], letter["detail"])
        for _, letter in committed_decoded(kafka_settings, stream.dlq_topic, DLQ_SUBJECT)
    }
    for name, (_, detail) in HOSTILE_EVENTS.items():
        found = [
            d
            for d in stream.truth.dead_letters
            if (d.detail == detail if detail is not None else str(d.detail).startswith("record: "))
        ]
        assert len(found) == 1, (name, found)
        want = detail or f"record: {len(found[0].payload)} bytes, limit 32768"
        assert found[0].detail == want  # the Python spec (the oracle)
        assert letters[found[0].payload] == ("impossible_value", want)  # the JVM decoder, in the job
    log = stream_logs[stream.topic]
    assert "switched from state RUNNING to FINISHED" in log  # the log is the run's: the check can fail
    assert restarts(log) == 0


def test_a_login_mid_session_makes_one_session_of_the_user_and_a_later_anonymous_visit_is_theirs_too(
    stream: Run,
) -> None:
    """issue 22 item 4 (README "Identity: one visitor across a login"), streams.with_identity_events: the
    anonymous page views before the login and the views after it are ONE session of the user, on the
    device that logged in; the device's anonymous return 31 minutes later is the user's too; the user's
    server-side event (another anonymous id) is a session of its own, the user's; an anonymous device stays
    anonymous; a device shared by two
    users in one session belongs to the first one identified. Exactly as the oracle says."""
    ids = {name: PSEUDONYM(raw) for name, raw in IDENTITY_IDS.items()}
    with connect(stream.pg) as conn:
        rows = conn.execute(
            "SELECT device_key, user_key, event_count, page_views, entry_page, exit_page"
            f" FROM {tables.SESSIONS} WHERE device_key = ANY(%(ids)s) OR user_key = ANY(%(ids)s)"
            " ORDER BY session_start",
            {"ids": list(ids.values())},
        ).fetchall()
    login, user = ids["login_device"], ids["login_user"]
    assert rows == [
        (login, user, 4, 4, "/pricing", "/dashboard"),
        (ids["shared_device"], ids["first_user"], 3, 3, "/", "/account"),
        (ids["anonymous_device"], ids["anonymous_device"], 2, 2, "/pricing", "/docs"),
        (ids["server_device"], user, 1, 1, "/api/orders", "/api/orders"),
        (login, user, 1, 1, "/pricing", "/pricing"),
    ]
    want = [r for r in stream.expected()["sessions"] if r["device_key"] in ids.values()]
    assert len(want) == 5
    named = ", ".join(f"'{key}'" for key in ids.values())  # pseudonyms: k1_ and hex digits
    assert_table_equals(stream.pg, tables.SESSIONS, want, f" WHERE device_key IN ({named})")


def test_a_login_counts_as_one_active_user_in_the_minute_sliding_and_daily_windows(stream: Run) -> None:
    """issue 22 item 4 rule 2 (README "Active users and logins"), tests/support/identity_streams.py: the
    KPI rows of the scenario pages count people (a login within a minute, a login a minute after the
    anonymous view, two devices of one user, a shared kiosk, an anonymous return without a link in its
    windows) exactly as stated, and exactly as the oracle says."""
    paths = list(identity_streams.PATHS.values())
    named = " AND dimension = 'page_path' AND dimension_value = ANY(%(paths)s) ORDER BY window_end"
    stored: dict[str, list[dict[str, Any]]] = {}
    with connect(stream.pg) as conn:
        for table, column in (
            (tables.KPI_1M, "active_users"),
            (tables.KPI_SLIDING_5M, "active_users"),
            (tables.KPI_DAILY, "daily_active_users"),
        ):
            found = conn.execute(
                f"SELECT dimension, dimension_value, window_end, {column} FROM {table} WHERE TRUE{named}",
                {"paths": paths},
            ).fetchall()
            stored[table] = [
                {"dimension": d, "dimension_value": v, "window_end": end, column: n} for d, v, end, n in found
            ]
    assert identity_streams.scenario_active_users(stored) == identity_streams.ACTIVE_USERS
    want = stream.expected()
    assert identity_streams.scenario_active_users(want) == identity_streams.ACTIVE_USERS
    for table in (tables.KPI_1M, tables.KPI_SLIDING_5M, tables.KPI_DAILY):
        rows = [r for r in want[table] if r["dimension"] == "page_path" and r["dimension_value"] in paths]
        quoted = ", ".join(f"'{p}'" for p in paths)  # the scenario's own paths: no quotes in them
        assert_table_equals(stream.pg, table, rows, f" WHERE dimension_value IN ({quoted})")


def test_feedback_sits_in_its_session_and_its_kpi_windows_with_comments_scrubbed(
    kafka_settings: KafkaSettings, stream: Run
) -> None:
    """issue 22 item 6 (README "Feedback"): the scenarios of streams.FEEDBACK_ANSWERS (both scales, several
    users, one answering twice, comments with an e-mail and numbers) sit in their sessions next to the
    session's errors and in the KPI windows' NPS parts, exactly as the oracle says; no stored comment keeps
    an e-mail or a number; the invalid answers are dead letters with the contract's reason."""
    want = stream.expected()
    answered = [s for s in want["sessions"] if s["feedback_responses"]]
    valid = sum(len(answers) for answers, reason in FEEDBACK_ANSWERS if reason is None)
    assert sum(s["feedback_responses"] for s in answered) == valid  # every valid answer is in a session
    assert len({s["user_key"] for s in answered}) >= 4
    session_columns = ("session_id", "session_start", "error_count", "feedback_responses", "feedback")
    assert_table_equals(
        stream.pg, tables.SESSIONS, [{c: s[c] for c in session_columns} for s in want["sessions"]]
    )
    feedback_columns = (
        "window_start", "dimension", "dimension_value", "feedback_responses", "nps_responses",
        "nps_score_sum", "nps_promoters", "nps_passives", "nps_detractors", "nps", "csat_responses",
        "csat_score_sum",
    )  # fmt: skip
    windows = [{c: r[c] for c in feedback_columns} for r in want["kpi_1m"] if r["feedback_responses"]]
    assert {r["nps"] for r in windows if r["dimension"] == "global"} >= {100.0, 0.0, -100.0}
    assert_table_equals(stream.pg, tables.KPI_1M, windows, " WHERE feedback_responses > 0")
    with connect(stream.pg) as conn:
        comments = [
            entry["comment"]
            for (feedback,) in conn.execute("SELECT feedback FROM sessions WHERE feedback IS NOT NULL")
            for entry in feedback
            if entry["comment"]
        ]
    assert "Love it! Write me: [email]" in comments
    assert "Checkout failed twice, order [number], call [number]" in comments
    assert not [c for c in comments if "@" in c or any(c[i : i + 4].isdigit() for i in range(len(c)))]
    letters = {
        letter["original"]: (letter["reason"], letter["detail"])
        for _, letter in committed_decoded(kafka_settings, stream.dlq_topic, DLQ_SUBJECT)
    }
    assert sorted(d for d in letters.values() if "feedback" in d[1] or "survey_id" in d[1]) == [
        ("impossible_value", "field 'feedback_score' is 11, outside the 0-10 scale"),
        ("missing_field", "field 'survey_id' is missing or empty (required for feedback)"),
    ]


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


def test_one_session_per_device_and_start_and_a_devices_sessions_never_overlap(stream: Run) -> None:
    """Natural keys, not the tables' own primary keys (which the database enforces anyway): one session
    per device and start, sessions of a device in sequence (a user's sessions on two devices may overlap:
    README "Identity"), one ledger row per event and job."""
    with connect(stream.pg) as conn:
        sessions = conn.execute(
            f"SELECT device_key, session_start, session_end FROM {tables.SESSIONS} ORDER BY 1, 2"
        ).fetchall()
        ledger = conn.execute(f"SELECT job, event_id FROM {tables.LATE_EVENTS}").fetchall()
    assert sessions and ledger, "no sessions or no ledger rows: the test would prove nothing"
    assert len({(user, start) for user, start, _ in sessions}) == len(sessions)
    overlaps = [(a, b) for a, b in itertools.pairwise(sessions) if a[0] == b[0] and b[1] <= a[2]]
    assert not overlaps, f"sessions of one device overlap: {overlaps[:3]}"
    assert len(set(ledger)) == len(ledger), "an event has two ledger rows"


def test_the_dead_letter_topic_holds_exactly_the_malformed_records(
    stream: Run, kafka_settings: KafkaSettings
) -> None:
    assert dead_letters(kafka_settings, stream) == expected_dead_letters(stream)


def test_the_kpi_topic_holds_exactly_the_oracle_windows_once_each_keyed_by_series(
    stream: Run, kafka_settings: KafkaSettings
) -> None:
    assert_kpi_topic_equals_the_oracle(kafka_settings, stream)


def test_the_kpi_topic_carries_feedback_of_the_tumbling_windows_as_kpi_window_v2(
    stream: Run, kafka_settings: KafkaSettings
) -> None:
    """issue 22: the feedback counts reach ux.kpi (schema v2) on tumbling windows, null on the others; the
    exact values are the oracle's (the test above), this one proves they are not all null (bots: the
    enrichment e2e, whose stream has them)."""
    records = committed_decoded(kafka_settings, stream.kpi_topic, "ux.kpi-value")
    assert records and {int.from_bytes(r.value[1:5], "big") for r, _ in records} == {8}  # kpi_window.v2
    tumbling = [r for _, r in records if r["window_kind"].startswith("tumbling_")]
    others = [r for _, r in records if not r["window_kind"].startswith("tumbling_")]
    assert sum(r["feedback_responses"] for r in tumbling if r["dimension"] == "global") > 0
    assert {r["nps"] for r in tumbling if r["nps"] is not None and r["dimension"] == "global"}
    assert all(r["bot_events"] is None and r["feedback_responses"] is None for r in others)


def test_with_more_parallel_subtasks_than_partitions_nothing_stalls_and_every_output_equals_the_oracle(
    stream: Run, kafka_settings: KafkaSettings
) -> None:
    """RELIABILITY T06: the shared run has parallelism 2 over one partition (one source subtask has
    nothing to read): it finished, and every table, the DLQ and the KPI topic equal the oracle."""
    assert SHARED_RUN_PARALLELISM > 1
    assert_every_output_equals_the_oracle(kafka_settings, stream)


def test_a_replay_of_the_same_input_leaves_every_table_unchanged(stream: Run) -> None:
    before = snapshot(stream.pg, tables.SESSIONIZE_TABLES)
    run_job(stream, parallelism=SHARED_RUN_PARALLELISM)
    assert snapshot(stream.pg, tables.SESSIONIZE_TABLES) == before


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


def completed_checkpoint(state: Path) -> int:
    """The number of the job's latest completed checkpoint in its state folder (0: none yet)."""
    done = [int(p.parent.name.removeprefix("chk-")) for p in state.glob("checkpoints/*/*/chk-*/_metadata")]
    return max(done, default=0)


def wait_for_checkpoint(
    job: subprocess.Popen[bytes], state: Path, number: int, timeout_s: float = 60
) -> None:
    deadline = time.monotonic() + timeout_s
    while completed_checkpoint(state) < number:
        assert job.poll() is None, "the unbounded job exited on its own"
        assert time.monotonic() < deadline, f"checkpoint {number} did not complete in {timeout_s} s"
        time.sleep(0.2)


def _kpi_rows_while_running(run: Run, idleness_ms: int, wait_s: float, state: Path) -> list[tuple[Any, ...]]:
    """Run the job unbounded on `run` and return the kpi_1m rows once windows closed, or, when none have
    after `wait_s` (counted from the job's first completed checkpoint, so it is surely reading), none."""

    env = run.job_env(
        {"UXSTREAM_SESSIONIZE_IDLENESS_MS": str(idleness_ms), "UXSTREAM_FLINK_STATE_DIR": str(state)}
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
                # The windows of the same watermark all land: two more checkpoints complete (the second
                # was triggered after the rows were emitted, so the sinks flushed them all).
                wait_for_checkpoint(job, state, completed_checkpoint(state) + 2)
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
        pg_settings, tmp_path, ("--events", "1500", "--duration", "20m", "--seed", "13", "--partitions", "1")
    )
    try:
        # The generator routes for one partition; the topic gets 4, three of which never receive data.
        assert ensure_topics(kafka_settings, [run.topic]) == {run.topic: 1}
        extra = f"{run.topic}.four"
        ensure_topics(kafka_settings, {extra: 4})
        copy_records(kafka_settings, run.topic, extra)
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
            key = (normalize(start), dimension, value)
            assert expected_rows[key] == (normalize(end), events, views, users), key
    finally:
        drop(pg_settings, run)
