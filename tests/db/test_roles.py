"""Least privilege and TLS on the local PostgreSQL (issue 16 item 3; README "Security: PostgreSQL roles and
TLS"): every role connects with `sslmode=verify-full` against the local CA and a SCRAM password from its
file, and can do exactly what migrations/V0007__roles.sql grants it."""

from __future__ import annotations

import dataclasses
import io
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from jobs.common import tables
from jobs.common.settings import PG_ROLES, PgRole, PostgresSettings, Secret
from tests.support.db import drop_database, fresh_database
from uxstream.db import connect
from uxstream.errors import UserError
from uxstream.services import tls
from uxstream.services.common import free_port
from uxstream.services.pgtls import REFUSAL
from uxstream.services.postgres import LocalPostgres, ensure_postgres, stop_postgres

pytestmark = [pytest.mark.services]

WRITER_TABLES = (
    "smoke_events", tables.SESSIONS, tables.KPI_1M, tables.KPI_SLIDING_5M, tables.KPI_DAILY,
    tables.LATE_EVENTS, tables.FUNNEL_ATTEMPTS, tables.FUNNEL_WINDOWS, tables.FUNNEL_WINDOW_STEPS,
    tables.ANOMALIES,
)  # fmt: skip
"""The jobs' output tables."""
VIEWS = (tables.SESSIONS_STARTED_1M, tables.LATE_EVENTS_1M, tables.KPI_1M_FULL)
USER_TABLES = tuple(table for table, _, _ in (*tables.USER_KEYED_TABLES, *tables.RAW_USER_KEYED_TABLES))
MIGRATION_TABLES = ("uxstream_schema_migrations", "uxstream_timescaledb_migrations")

PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


def expected_privileges() -> dict[str, dict[PgRole, set[str]]]:
    """Table → role → privileges: the specification of V0007__roles.sql. The writer's SELECT is what its
    upsert needs (`ON CONFLICT DO UPDATE SET c = EXCLUDED.c` reads every column it sets: PostgreSQL refuses
    it without SELECT on them); its only read is kpi_1m (the anomaly job's warm start)."""
    spec: dict[str, dict[PgRole, set[str]]] = {}
    for table in WRITER_TABLES:
        spec[table] = {"writer": {"SELECT", "INSERT", "UPDATE"}, "reader": {"SELECT"}, "eraser": set()}
    for view in VIEWS:
        spec[view] = {"writer": set(), "reader": {"SELECT"}, "eraser": set()}
    for table in USER_TABLES:
        spec[table]["eraser"] = {"SELECT", "DELETE"}
    spec[tables.PRIVACY_REQUESTS] = {"writer": set(), "reader": set(), "eraser": {"INSERT"}}
    # The erase command adds to the list (export reads it); the jobs' lookup reads it as the reader.
    spec[tables.ERASED_PSEUDONYMS] = {"writer": set(), "reader": {"SELECT"}, "eraser": {"SELECT", "INSERT"}}
    for table in MIGRATION_TABLES:
        spec[table] = {"writer": set(), "reader": set(), "eraser": set()}
    return spec


@pytest.fixture(scope="module")
def pg(pg_settings: PostgresSettings) -> Iterator[PostgresSettings]:
    """A migrated database (as the admin); the tests connect as the roles."""
    database = fresh_database(pg_settings, f"uxstream_test_roles_{uuid.uuid4().hex[:8]}")
    yield database
    drop_database(pg_settings, database)


def attempt(pg: PostgresSettings, role: PgRole, *statements: str) -> str:
    """Run statements as `role` in one transaction (rolled back); "ok" or the server's error message."""
    try:
        with connect(pg.as_role(role)) as conn:
            for statement in statements:
                conn.execute(statement)
            conn.rollback()
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    return "ok"


def test_every_role_connects_over_verified_tls_with_its_own_password(pg: PostgresSettings) -> None:
    for role in PG_ROLES:
        settings = pg.as_role(role)
        assert settings.sslmode == "verify-full"
        assert settings.sslrootcert == str(LocalPostgres().ca_file)
        with connect(settings) as conn:
            assert conn.pgconn.ssl_in_use is True
            assert conn.execute("SELECT current_user").fetchone() == (settings.user,)


def test_each_table_grants_exactly_the_specified_privileges_to_each_role(pg: PostgresSettings) -> None:
    spec = expected_privileges()
    with connect(pg) as conn:
        present = {
            row[0]
            for row in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'm', 'p')"
            )
        }
        assert present == set(spec), "a table without a grant specification here (and in V0007__roles.sql)"
        for table, roles in sorted(spec.items()):
            for role, wanted in roles.items():
                name = pg.as_role(role).user
                got = {
                    p
                    for p in PRIVILEGES
                    if conn.execute("SELECT has_table_privilege(%s, %s, %s)", (name, table, p)).fetchone()
                    == (True,)
                }
                assert got == wanted, f"{role} on {table}"


def test_the_migrator_owns_every_table_and_view(pg: PostgresSettings) -> None:
    with connect(pg) as conn:
        owners = conn.execute(
            "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
        ).fetchall()
    assert owners == [("uxstream_migrator",)]


def test_the_writer_upserts_its_outputs_and_cannot_drop_alter_create_or_touch_other_tables(
    pg: PostgresSettings,
) -> None:
    upsert = (
        "INSERT INTO smoke_events (event_id, user_id, path, event_time) VALUES ('e1', 'u1', '/a', now()) "
        "ON CONFLICT (event_id) DO UPDATE SET user_id = EXCLUDED.user_id, path = EXCLUDED.path, "
        "event_time = EXCLUDED.event_time"
    )
    assert attempt(pg, "writer", upsert, upsert) == "ok"
    assert attempt(pg, "writer", "SELECT count(*) FROM kpi_1m") == "ok"
    assert attempt(pg, "writer", "DROP TABLE sessions") == "must be owner of table sessions"
    assert attempt(pg, "writer", "ALTER TABLE sessions ADD COLUMN x INT") == "must be owner of table sessions"
    assert attempt(pg, "writer", "TRUNCATE kpi_1m") == "permission denied for table kpi_1m"
    assert attempt(pg, "writer", "DELETE FROM sessions") == "permission denied for table sessions"
    assert attempt(pg, "writer", "CREATE TABLE t (x INT)") == "permission denied for schema public"
    assert attempt(pg, "writer", "SELECT * FROM privacy_requests") == (
        "permission denied for table privacy_requests"
    )
    assert attempt(
        pg, "writer", "INSERT INTO privacy_requests (kind, pseudonym, requested_by, rows) "
        "VALUES ('erase', 'p', 'w', '{}')",
    ) == "permission denied for table privacy_requests"  # fmt: skip
    assert attempt(pg, "writer", "SELECT * FROM uxstream_schema_migrations") == (
        "permission denied for table uxstream_schema_migrations"
    )


def test_the_reader_reads_the_outputs_and_cannot_write(pg: PostgresSettings) -> None:
    for table in (*WRITER_TABLES, *VIEWS):
        assert attempt(pg, "reader", f"SELECT * FROM {table} LIMIT 1") == "ok", table
    # V0010's column, what `uxstream uniques` and the dashboard merge (the table-level grant covers it).
    assert attempt(pg, "reader", "SELECT users_sketch FROM kpi_1m LIMIT 1") == "ok"
    assert (
        attempt(pg, "reader", "INSERT INTO kpi_1m SELECT * FROM kpi_1m")
        == "permission denied for table kpi_1m"
    )
    assert (
        attempt(pg, "reader", "UPDATE sessions SET page_views = 0") == "permission denied for table sessions"
    )
    assert attempt(pg, "reader", "DELETE FROM anomalies") == "permission denied for table anomalies"
    assert attempt(pg, "reader", "DROP VIEW kpi_1m_full") == "must be owner of view kpi_1m_full"
    assert attempt(pg, "reader", "SELECT * FROM privacy_requests") == (
        "permission denied for table privacy_requests"
    )


def test_the_eraser_deletes_user_rows_and_writes_the_audit_row_only(pg: PostgresSettings) -> None:
    audit = (
        "INSERT INTO privacy_requests (kind, pseudonym, requested_by, rows) "
        "VALUES ('erase', 'k1_x', 'me', '{}')"
    )
    assert attempt(pg, "eraser", "DELETE FROM sessions WHERE user_key = 'k1_x'", audit) == "ok"
    assert attempt(pg, "eraser", "DELETE FROM funnel_attempts WHERE user_key = 'k1_x'") == "ok"
    assert attempt(pg, "eraser", "DELETE FROM late_events WHERE user_key = 'k1_x'") == "ok"
    assert attempt(pg, "eraser", "INSERT INTO erased_pseudonyms (pseudonym) VALUES ('k1_x')") == "ok"
    assert attempt(pg, "eraser", "DELETE FROM erased_pseudonyms") == (
        "permission denied for table erased_pseudonyms"
    )
    assert attempt(pg, "eraser", "SELECT * FROM privacy_requests") == (
        "permission denied for table privacy_requests"
    )
    assert (
        attempt(pg, "eraser", "DELETE FROM privacy_requests")
        == "permission denied for table privacy_requests"
    )
    assert (
        attempt(pg, "eraser", "UPDATE sessions SET user_key = 'k1_y'")
        == "permission denied for table sessions"
    )
    assert attempt(pg, "eraser", "INSERT INTO sessions SELECT * FROM sessions") == (
        "permission denied for table sessions"
    )
    assert attempt(pg, "eraser", "DELETE FROM kpi_1m") == "permission denied for table kpi_1m"
    assert attempt(pg, "eraser", "DROP TABLE sessions") == "must be owner of table sessions"


def test_a_server_certificate_from_another_ca_is_refused(pg: PostgresSettings, tmp_path: Path) -> None:
    other = tls.ensure_ca(tmp_path / "other-ca", name="some other CA")
    settings = dataclasses.replace(pg.as_role("reader"), sslrootcert=str(other.cert))
    with pytest.raises(UserError) as refused:
        connect(settings).close()
    assert str(refused.value) == (
        f"cannot connect to PostgreSQL at {settings.describe()}: connection failed: connection to server at "
        f'"127.0.0.1", port {pg.port} failed: SSL error: certificate verify failed (the server\'s '
        f"certificate is not signed by the CA in {other.cert} (UXSTREAM_PG_SSLROOTCERT), or does not name "
        "the host: point UXSTREAM_PG_SSLROOTCERT at the CA of the server)"
    )


def test_a_wrong_password_is_refused(pg: PostgresSettings) -> None:
    settings = dataclasses.replace(pg.as_role("writer"), password=Secret("not-the-password"))
    with pytest.raises(UserError) as refused:
        connect(settings).close()
    assert str(refused.value) == (
        f"cannot connect to PostgreSQL at {settings.describe()}: connection failed: connection to server at "
        f'"127.0.0.1", port {pg.port} failed: FATAL:  password authentication failed for user '
        '"uxstream_writer" (check the password of role writer (UXSTREAM_PG_WRITER_PASSWORD or '
        "UXSTREAM_PG_WRITER_PASSWORD_FILE))"
    )


def test_a_connection_without_tls_is_refused(pg: PostgresSettings) -> None:
    settings = dataclasses.replace(pg.as_role("admin"), sslmode="disable")
    with pytest.raises(UserError) as refused:
        connect(settings).close()
    assert f'"127.0.0.1", port {pg.port} failed: FATAL:  {REFUSAL} (' in str(refused.value)


def test_the_secrets_are_private_files_and_never_reach_the_server_log(pg: PostgresSettings) -> None:
    local = LocalPostgres.from_settings(pg)
    assert stat.S_IMODE(local.secrets.stat().st_mode) == 0o700
    for path in (*(local.password_file(role) for role in PG_ROLES), local.secrets / "ca.key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    wrong = dataclasses.replace(pg.as_role("writer"), password=Secret("not-the-password"))
    with pytest.raises(UserError):
        connect(wrong).close()
    log = local.log_file.read_text(errors="replace")
    assert 'password authentication failed for user "uxstream_writer"' in log  # the log is the right one
    for role in PG_ROLES:
        assert local.password_file(role).read_text().strip() not in log, role


def test_a_data_folder_from_before_tls_is_moved_aside_and_recreated_by_the_next_start(
    pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    """What `make up` does to a developer's `.local/postgres` of the trust-auth era (simulated: a running
    server whose folder lacks the TLS marker and holds a file of ours)."""
    local = LocalPostgres(home=tmp_path / "pg", port=free_port())
    ensure_postgres(local=local, out=io.StringIO())
    try:
        (local.data_dir / "uxstream.tls").unlink()
        (local.data_dir / "from-before.txt").write_text("old data\n")
        out = io.StringIO()
        ensure_postgres(local=local, out=out)
        aside = local.home / "data.before-tls"
        assert out.getvalue().splitlines()[0] == (
            f"postgres: {local.data_dir} predates TLS and password authentication: re-creating it (the old "
            f"folder is kept as {aside}; delete it when you no longer need it)"
        )
        assert (aside / "from-before.txt").read_text() == "old data\n"
        assert not (local.data_dir / "from-before.txt").exists()
        with connect(local.settings("writer", "postgres")) as conn:
            assert conn.pgconn.ssl_in_use is True
    finally:
        stop_postgres(local=local, out=io.StringIO())
