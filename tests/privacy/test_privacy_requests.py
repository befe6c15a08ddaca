"""`uxstream privacy export / erase` on a real PostgreSQL: the user's rows and nothing else, audited."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from jobs.common import tables
from jobs.common.privacy import PrivacySettings, Pseudonymizer
from jobs.common.settings import PostgresSettings, Secret
from uxstream.db import connect, create_database, migrate
from uxstream.paths import ROOT

pytestmark = [pytest.mark.services]

KEY = "privacy-requests-test-key-0123456789"
PSEUDONYM = Pseudonymizer(PrivacySettings(Secret(KEY)))


@pytest.fixture()
def database(pg_settings: PostgresSettings) -> Iterator[PostgresSettings]:
    name = f"uxstream_test_privacy_{uuid.uuid4().hex[:8]}"
    pg = create_database(pg_settings, name)
    migrate(pg)
    yield pg
    with connect(pg_settings, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def add_session(pg: PostgresSettings, user: str, start: str, device: str | None = None) -> None:
    """A session of `user` (on device `device`: README "Identity"; default the user's own key)."""
    with connect(pg) as conn:
        conn.execute(
            f"INSERT INTO {tables.SESSIONS} (session_id, user_key, session_start, session_end, "
            "duration_ms, event_count, page_views, distinct_pages, error_count, conversions, engaged, "
            "bounce, split_reason, is_final, device_key) "
            "VALUES (%s, %s, %s, %s, 0, 1, 1, 1, 0, 0, false, true, 'gap', true, %s)",
            (f"s-{user}-{start}", PSEUDONYM(user), start, start, PSEUDONYM(device or user)),
        )


def privacy(pg: PostgresSettings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UXSTREAM_PG_DB": pg.dbname, "UXSTREAM_PSEUDONYM_KEY": KEY}
    return subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "privacy", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_pseudonym_prints_what_the_tables_store(database: PostgresSettings) -> None:
    done = privacy(database, "pseudonym", "--user-id", "usr_1")
    assert done.returncode == 0, done.stderr
    assert done.stdout == PSEUDONYM("usr_1") + "\n"


def test_export_returns_every_row_of_the_user_and_is_audited(database: PostgresSettings) -> None:
    add_session(database, "usr_1", "2025-01-06T10:00:00Z")
    add_session(database, "usr_1", "2025-01-06T12:00:00Z")
    add_session(database, "usr_2", "2025-01-06T10:00:00Z")
    done = privacy(database, "export", "--user-id", "usr_1", "--by", "alice", "--reason", "DSR-1")
    assert done.returncode == 0, done.stderr
    exported = json.loads(done.stdout)
    assert exported["pseudonym"] == PSEUDONYM("usr_1")
    sessions = exported["tables"][tables.SESSIONS]
    assert [s["session_start"] for s in sessions] == [
        "2025-01-06T10:00:00+00:00",
        "2025-01-06T12:00:00+00:00",
    ]
    assert {s["user_key"] for s in sessions} == {PSEUDONYM("usr_1")}
    with connect(database) as conn:
        audit = conn.execute(
            f"SELECT kind, pseudonym, requested_by, reason, rows FROM {tables.PRIVACY_REQUESTS}"
        ).fetchall()
    assert audit == [
        (
            "export",
            PSEUDONYM("usr_1"),
            "alice",
            "DSR-1",
            {**{t: 0 for t in exported["tables"]}, tables.SESSIONS: 2},
        )
    ]


def test_erase_deletes_the_users_rows_only_and_records_the_request(database: PostgresSettings) -> None:
    add_session(database, "usr_1", "2025-01-06T10:00:00Z")
    add_session(database, "usr_1", "2025-01-07T10:00:00Z")
    add_session(database, "usr_2", "2025-01-06T10:00:00Z")
    done = privacy(database, "erase", "--user-id", "usr_1", "--by", "alice", "--reason", "DSR-2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"erased {PSEUDONYM('usr_1')}: sessions 2")
    with connect(database) as conn:
        left = conn.execute(f"SELECT user_key FROM {tables.SESSIONS}").fetchall()
        audit = conn.execute(
            f"SELECT kind, requested_by, reason, rows FROM {tables.PRIVACY_REQUESTS}"
        ).fetchall()
    assert left == [(PSEUDONYM("usr_2"),)]
    assert len(audit) == 1 and audit[0][:3] == ("erase", "alice", "DSR-2")
    assert audit[0][3][tables.SESSIONS] == 2
    again = privacy(database, "erase", "--user-id", "usr_1")
    assert again.returncode == 0 and "sessions 0" in again.stdout


def test_requests_fail_clearly_without_a_migrated_database_or_a_user(
    database: PostgresSettings, pg_settings: PostgresSettings
) -> None:
    empty = f"uxstream_test_privacy_empty_{uuid.uuid4().hex[:8]}"
    create_database(pg_settings, empty)
    try:
        done = privacy(dataclasses.replace(pg_settings, dbname=empty), "erase", "--user-id", "usr_1")
        assert done.returncode == 2
        assert done.stderr == (
            "uxstream privacy: error: table privacy_requests is missing: run `uxstream db migrate` on this "
            "database first\n"
        )
    finally:
        with connect(pg_settings, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{empty}" WITH (FORCE)')
    blank = privacy(database, "export", "--user-id", " ")
    assert blank.returncode == 2
    assert blank.stderr == "uxstream privacy: error: --user-id must not be empty\n"


def add_late_event(pg: PostgresSettings, user: str, event_id: str) -> None:
    with connect(pg) as conn:
        conn.execute(
            f"INSERT INTO {tables.LATE_EVENTS} (job, event_id, event_time, received_at, reason, "
            "source_partition, source_offset, user_key) VALUES ('sessionize', %s, '2025-01-06T10:00:00Z', "
            "'2025-01-06T10:00:09Z', 'late', 0, 1, %s)",
            (event_id, PSEUDONYM(user)),
        )


def test_erase_by_user_id_and_anonymous_ids_reaches_every_id_and_the_late_ledger(
    database: PostgresSettings,
) -> None:
    add_session(database, "usr_1", "2025-01-06T10:00:00Z")
    add_session(database, "anon_a", "2025-01-05T10:00:00Z")
    add_session(database, "anon_b", "2025-01-04T10:00:00Z")
    add_session(database, "usr_2", "2025-01-06T10:00:00Z")
    add_late_event(database, "anon_a", "e-1")
    add_late_event(database, "usr_2", "e-2")
    done = privacy(
        database, "erase", "--user-id", "usr_1", "--anonymous-id", "anon_a", "--anonymous-id", "anon_b"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"erased {PSEUDONYM('usr_1')}: sessions 3, funnel_attempts 0, late_events 1, smoke_events 0 row(s) "
        "deleted; 3 pseudonym(s) on the erased list erased_pseudonyms; recorded in privacy_requests\n"
    )
    with connect(database) as conn:
        sessions = conn.execute(f"SELECT user_key FROM {tables.SESSIONS}").fetchall()
        late = conn.execute(f"SELECT event_id FROM {tables.LATE_EVENTS}").fetchall()
        erased = conn.execute(f"SELECT pseudonym FROM {tables.ERASED_PSEUDONYMS} ORDER BY 1").fetchall()
        audit = conn.execute(f"SELECT pseudonyms FROM {tables.PRIVACY_REQUESTS}").fetchall()
    assert sessions == [(PSEUDONYM("usr_2"),)] and late == [("e-2",)]
    want = [PSEUDONYM("usr_1"), PSEUDONYM("anon_a"), PSEUDONYM("anon_b")]
    assert erased == [(p,) for p in sorted(want)]
    assert audit == [(want,)]
    neither = privacy(database, "erase", "--by", "alice")
    assert neither.returncode == 2
    assert neither.stderr == "uxstream privacy: error: name the user with --user-id and/or --anonymous-id\n"


def test_export_and_erase_by_an_anonymous_id_reach_the_sessions_it_was_stitched_into(
    database: PostgresSettings,
) -> None:
    """README "Identity": a session of usr_1 that ran on device anon_a (anonymous views, then a login) is
    anon_a's data too: export and erase by the anonymous id alone reach it; other devices' sessions of the
    same user, and other users' sessions, stay."""
    add_session(database, "usr_1", "2025-01-06T10:00:00Z", device="anon_a")
    add_session(database, "usr_1", "2025-01-06T11:00:00Z", device="anon_b")
    add_session(database, "anon_a", "2025-01-06T09:00:00Z")  # before the login: still anonymous
    add_session(database, "usr_2", "2025-01-06T10:00:00Z", device="anon_c")
    done = privacy(database, "export", "--anonymous-id", "anon_a")
    assert done.returncode == 0, done.stderr
    exported = json.loads(done.stdout)["tables"][tables.SESSIONS]
    assert [(s["user_key"], s["device_key"]) for s in exported] == [
        (PSEUDONYM("anon_a"), PSEUDONYM("anon_a")),
        (PSEUDONYM("usr_1"), PSEUDONYM("anon_a")),
    ]
    done = privacy(database, "erase", "--anonymous-id", "anon_a")
    assert done.returncode == 0, done.stderr
    assert f"{tables.SESSIONS} 2, " in done.stdout  # "erased …: sessions 2, funnel_attempts 0, …"
    with connect(database) as conn:
        left = conn.execute(f"SELECT user_key, device_key FROM {tables.SESSIONS} ORDER BY 1, 2").fetchall()
    assert left == sorted(
        [(PSEUDONYM("usr_1"), PSEUDONYM("anon_b")), (PSEUDONYM("usr_2"), PSEUDONYM("anon_c"))]
    )
    # The erased device stays erased: a session that ran on it is not stored again, whoever it belongs to.
    add_session(database.as_role("writer"), "usr_1", "2025-01-07T10:00:00Z", device="anon_a")
    with connect(database) as conn:
        count = conn.execute(f"SELECT count(*) FROM {tables.SESSIONS}").fetchone()
    assert count == (2,)


def test_the_database_stores_no_new_row_of_an_erased_user_whoever_writes_it(
    database: PostgresSettings,
) -> None:
    """The guard behind the jobs' lookup (V0008): rows that come out of state restored from a checkpoint
    taken before the erase are not stored, even written by the writer role with an upsert."""
    done = privacy(database, "erase", "--user-id", "usr_1")
    assert done.returncode == 0, done.stderr
    writer = database.as_role("writer")
    add_session(writer, "usr_1", "2025-01-06T10:00:00Z")
    add_session(writer, "usr_2", "2025-01-06T10:00:00Z")
    add_late_event(writer, "usr_1", "e-1")
    with connect(writer) as conn:
        conn.execute(
            f"INSERT INTO {tables.FUNNEL_ATTEMPTS} (attempt_id, funnel, user_key, entered_at, ended_at, "
            "status, furthest_step, steps, step_times, breakdown) VALUES ('a-1', 'checkout', %s, "
            "'2025-01-06T10:00:00Z', '2025-01-06T10:30:00Z', 'dropped', 1, 3, '[1, null, null]', '{}') "
            "ON CONFLICT (attempt_id, entered_at) DO UPDATE SET status = EXCLUDED.status",
            (PSEUDONYM("usr_1"),),
        )
    with connect(database) as conn:
        counts = {
            t: conn.execute(f"SELECT user_key FROM {t}").fetchall()
            for t in (tables.SESSIONS, tables.LATE_EVENTS, tables.FUNNEL_ATTEMPTS)
        }
    assert counts == {
        tables.SESSIONS: [(PSEUDONYM("usr_2"),)],
        tables.LATE_EVENTS: [],
        tables.FUNNEL_ATTEMPTS: [],
    }


def test_a_running_lookup_sees_an_erase_within_its_refresh_period_without_a_restart(
    database: PostgresSettings,
) -> None:
    """The JVM side of the jobs' lookup (io.uxstream.udf.ErasedList, as the reader role with its password
    file, over verified TLS): loaded once, then reloaded by its own thread; an erase shows up without a
    restart, within the refresh period."""
    from jobs.common.connectors import password_file_of
    from tests.decode.support import jvm_classpath
    from uxstream.paths import CACHE

    reader = database.as_role("reader")
    driver = sorted((CACHE / "jars" / "flink-lib").glob("postgresql-*.jar"))
    assert driver, "the PostgreSQL JDBC driver is missing: run `make jars`"
    command = [
        "java", "-cp", ":".join([jvm_classpath(), str(driver[0])]), "io.uxstream.udf.ErasedList",
        reader.jdbc_url(), reader.user, password_file_of(reader) or "", "200",
    ]  # fmt: skip
    lookup = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert lookup.stdout is not None
        assert lookup.stdout.readline() == "\n"  # the empty list, loaded at start
        started = time.monotonic()
        done = privacy(database, "erase", "--user-id", "usr_1", "--anonymous-id", "anon_a")
        assert done.returncode == 0, done.stderr
        line = lookup.stdout.readline()
        elapsed = time.monotonic() - started
        assert line == ",".join(sorted([PSEUDONYM("usr_1"), PSEUDONYM("anon_a")])) + "\n"
        assert lookup.poll() is None, "the lookup restarted or died"
        print(f"erase visible to the running lookup after {elapsed:.2f} s (refresh 0.2 s, incl. the CLI)")
    finally:
        assert lookup.stdin is not None
        lookup.stdin.close()
        lookup.wait(timeout=30)
