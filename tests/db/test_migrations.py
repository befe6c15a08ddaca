"""`uxstream db migrate` on the real local PostgreSQL (plain PostgreSQL mode: no TimescaleDB here; the
Timescale files are checked on a TimescaleDB engine by test_timescaledb_ddl.py).

Every test works in scratch databases of its own (tests/db/conftest.py)."""

from __future__ import annotations

import shutil
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from jobs.common import tables as t
from jobs.common.settings import PostgresSettings, SettingsError
from jobs.sessionize.logic import SessionRow
from uxstream import db
from uxstream.db import MigrationReport, TimescaleSettings, connect, discover_timescale, migrate
from uxstream.errors import UserError

from .conftest import MakeDatabase

pytestmark = pytest.mark.services

TIME_COLUMN = {
    t.SESSIONS: "session_start",
    t.KPI_1M: "window_start",
    t.KPI_SLIDING_5M: "window_start",
    t.KPI_DAILY: "window_end",
    t.LATE_EVENTS: "event_time",
    t.FUNNEL_ATTEMPTS: "entered_at",
    t.FUNNEL_WINDOWS: "window_start",
    t.FUNNEL_WINDOW_STEPS: "window_start",
    t.ANOMALIES: "opened_window_start",
}
"""The hypertable time column of each table (migrations/timescaledb/T0001, T0003, T0004)."""

TS, TEXT, BIGINT, INT, BOOL, DOUBLE, DATE, BYTEA, JSONB = (
    "timestamp with time zone", "text", "bigint", "integer", "boolean", "double precision", "date", "bytea",
    "jsonb",
)  # fmt: skip
NULL, NOT_NULL = "YES", "NO"

COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    t.SESSIONS: [
        ("session_id", TEXT, NOT_NULL), ("user_key", TEXT, NOT_NULL), ("session_start", TS, NOT_NULL),
        ("session_end", TS, NOT_NULL), ("duration_ms", BIGINT, NOT_NULL), ("event_count", INT, NOT_NULL),
        ("page_views", INT, NOT_NULL), ("distinct_pages", INT, NOT_NULL), ("entry_page", TEXT, NULL),
        ("exit_page", TEXT, NULL), ("referrer", TEXT, NULL), ("utm_source", TEXT, NULL),
        ("utm_medium", TEXT, NULL), ("utm_campaign", TEXT, NULL), ("device_type", TEXT, NULL),
        ("browser", TEXT, NULL), ("country", TEXT, NULL), ("error_count", INT, NOT_NULL),
        ("conversions", INT, NOT_NULL), ("engaged", BOOL, NOT_NULL), ("bounce", BOOL, NOT_NULL),
        ("split_reason", TEXT, NOT_NULL), ("is_final", BOOL, NOT_NULL),
        ("engaged_time_ms", BIGINT, NULL),  # V0013: NULL on rows written before it
        ("feedback_responses", INT, NULL), ("feedback", JSONB, NULL),  # V0014 (README "Feedback")
        ("device_key", TEXT, NULL),  # V0015 (README "Identity"); NULL on rows written before it
    ],
    t.KPI_1M: [
        ("window_start", TS, NOT_NULL), ("window_end", TS, NOT_NULL), ("dimension", TEXT, NOT_NULL),
        ("dimension_value", TEXT, NOT_NULL), ("events", BIGINT, NOT_NULL), ("page_views", BIGINT, NOT_NULL),
        ("active_users", BIGINT, NOT_NULL), ("error_events", BIGINT, NOT_NULL),
        ("conversions", BIGINT, NOT_NULL), ("duplicates", BIGINT, NOT_NULL), ("error_rate", DOUBLE, NULL),
        ("lcp_p75", DOUBLE, NULL), ("inp_p75", DOUBLE, NULL), ("cls_p75", DOUBLE, NULL),
        ("revision", INT, NOT_NULL),
        ("users_sketch", BYTEA, NULL),  # V0010: DataSketches HLL of the row's user pseudonyms
        ("bot_events", BIGINT, NULL),  # V0011: bot events of the window (README "Enrichment")
        # V0014: feedback counts, score sums and NPS parts (README "Feedback"); NULL on older rows
        ("feedback_responses", BIGINT, NULL), ("nps_responses", BIGINT, NULL),
        ("nps_score_sum", BIGINT, NULL), ("nps_promoters", BIGINT, NULL), ("nps_passives", BIGINT, NULL),
        ("nps_detractors", BIGINT, NULL), ("nps", DOUBLE, NULL), ("csat_responses", BIGINT, NULL),
        ("csat_score_sum", BIGINT, NULL),
    ],
    t.KPI_SLIDING_5M: [
        ("window_start", TS, NOT_NULL), ("window_end", TS, NOT_NULL), ("dimension", TEXT, NOT_NULL),
        ("dimension_value", TEXT, NOT_NULL), ("active_users", BIGINT, NOT_NULL),
        ("page_views", BIGINT, NOT_NULL), ("error_events", BIGINT, NOT_NULL), ("error_rate", DOUBLE, NULL),
    ],
    t.KPI_DAILY: [
        ("day", DATE, NOT_NULL), ("window_start", TS, NOT_NULL), ("window_end", TS, NOT_NULL),
        ("dimension", TEXT, NOT_NULL), ("dimension_value", TEXT, NOT_NULL),
        ("daily_active_users", BIGINT, NOT_NULL), ("page_views", BIGINT, NOT_NULL),
    ],
    t.LATE_EVENTS: [
        ("job", TEXT, NOT_NULL), ("event_id", TEXT, NOT_NULL), ("event_time", TS, NOT_NULL),
        ("received_at", TS, NOT_NULL), ("watermark", TS, NULL), ("lateness_ms", BIGINT, NULL),
        ("reason", TEXT, NOT_NULL), ("source_partition", INT, NOT_NULL), ("source_offset", BIGINT, NOT_NULL),
        ("page_path", TEXT, NULL), ("country", TEXT, NULL), ("device_type", TEXT, NULL),
        ("user_key", TEXT, NULL),  # V0008: the pseudonym of the event's user (erasure)
    ],
}  # fmt: skip

PRIMARY_KEYS = {
    t.SESSIONS: ["session_id", "session_start"],
    t.KPI_1M: ["window_start", "dimension", "dimension_value"],
    t.KPI_SLIDING_5M: ["window_start", "dimension", "dimension_value"],
    t.KPI_DAILY: ["window_end", "dimension", "dimension_value"],
    t.LATE_EVENTS: ["job", "event_id", "event_time"],
    t.FUNNEL_ATTEMPTS: ["attempt_id", "entered_at"],
    t.FUNNEL_WINDOWS: ["funnel", "window_start", "dimension", "dimension_value"],
    t.FUNNEL_WINDOW_STEPS: ["funnel", "window_start", "dimension", "dimension_value", "step"],
    t.ANOMALIES: ["alert_id", "opened_window_start"],
}
SECONDARY_INDEXES = {
    "sessions_user_key_start_idx": (t.SESSIONS, ["user_key", "session_start"]),
    "sessions_start_idx": (t.SESSIONS, ["session_start"]),
    "sessions_device_key_idx": (t.SESSIONS, ["device_key", "session_start"]),
    "late_events_event_time_idx": (t.LATE_EVENTS, ["event_time"]),
    "late_events_user_key_idx": (t.LATE_EVENTS, ["user_key", "event_time"]),
    "funnel_attempts_funnel_entered_idx": (t.FUNNEL_ATTEMPTS, ["funnel", "entered_at"]),
    "funnel_attempts_user_key_idx": (t.FUNNEL_ATTEMPTS, ["user_key", "entered_at"]),
    "funnel_windows_start_idx": (t.FUNNEL_WINDOWS, ["window_start"]),
    "funnel_window_steps_start_idx": (t.FUNNEL_WINDOW_STEPS, ["window_start"]),
    "anomalies_status_idx": (t.ANOMALIES, ["status", "opened_window_start"]),
    "anomalies_series_idx": (t.ANOMALIES, ["metric", "dimension", "dimension_value", "opened_window_start"]),
}
TIMESCALE_FILES = (
    "T0001__hypertables", "T0002__kpi_1h", "T0003__funnels", "T0004__anomaly", "T0005__kpi_1h_reader",
    "R__policies",
)  # fmt: skip
EDITED_MESSAGE = (
    "V0002__sessionize.sql was changed after it was applied "
    "(write a new migration instead of editing an applied one)"
)


def query(pg: PostgresSettings, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with connect(pg) as conn:
        return list(conn.execute(sql, params).fetchall())


def schema_snapshot(pg: PostgresSettings) -> list[tuple[Any, ...]]:
    """Columns, indexes and views of the public schema: equal snapshots = same schema."""
    return query(
        pg,
        """SELECT 'column', table_name::text, column_name::text || ' ' || data_type || ' ' || is_nullable
           FROM information_schema.columns WHERE table_schema = 'public'
           UNION ALL SELECT 'index', tablename::text, indexdef FROM pg_indexes WHERE schemaname = 'public'
           UNION ALL SELECT 'view', viewname::text, definition FROM pg_views WHERE schemaname = 'public'
           ORDER BY 1, 2, 3""",
    )


def index_columns(pg: PostgresSettings) -> dict[str, tuple[str, bool, list[str]]]:
    """index name -> (table, unique, columns in order)."""
    rows = query(
        pg,
        """SELECT i.relname, c.relname, x.indisunique,
                  array(SELECT a.attname::text FROM unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)
                        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum ORDER BY k.n)
           FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
           JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = 'public'""",
    )
    return {name: (table, unique, list(columns)) for name, table, unique, columns in rows}


@pytest.fixture(scope="module")
def migrated(
    make_database: MakeDatabase, migrations_dir: Path
) -> tuple[PostgresSettings, list[MigrationReport]]:
    pg = make_database()
    first = migrate(pg, migrations_dir)
    snapshot = schema_snapshot(pg)
    second = migrate(pg, migrations_dir)
    assert schema_snapshot(pg) == snapshot, "a second migrate changed the schema"
    return pg, [first, second]


def test_migrating_twice_is_harmless(migrated: tuple[PostgresSettings, list[MigrationReport]]) -> None:
    pg, (first, second) = migrated
    assert first.applied[:2] == ("V0001__smoke_events", "V0002__sessionize")
    assert second.applied == ()
    assert query(pg, "SELECT version, name FROM uxstream_schema_migrations ORDER BY version")[:2] == [
        (1, "smoke_events"),
        (2, "sessionize"),
    ]


def test_tables_have_the_specified_columns_types_and_nullability(
    migrated: tuple[PostgresSettings, list[MigrationReport]],
) -> None:
    pg, _ = migrated
    for table, expected in COLUMNS.items():
        actual = query(
            pg,
            """SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns
               WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position""",
            (table,),
        )
        assert actual == expected, table


def test_the_sessions_table_has_exactly_the_session_row_fields(
    migrated: tuple[PostgresSettings, list[MigrationReport]],
) -> None:
    assert [c[0] for c in COLUMNS[t.SESSIONS]] == [f.name for f in fields(SessionRow)]


def test_keys_and_indexes_are_as_specified_and_every_unique_key_holds_the_time_column(
    migrated: tuple[PostgresSettings, list[MigrationReport]],
) -> None:
    pg, _ = migrated
    indexes = index_columns(pg)
    for table, key in PRIMARY_KEYS.items():
        assert indexes[f"{table}_pkey"] == (table, True, key)
    for name, (table, columns) in SECONDARY_INDEXES.items():
        assert indexes[name] == (table, False, columns)
    ours = {name: spec for name, spec in indexes.items() if spec[0] in TIME_COLUMN}
    assert set(ours) == {f"{table}_pkey" for table in PRIMARY_KEYS} | set(SECONDARY_INDEXES)
    for name, (table, unique, columns) in ours.items():
        if unique:  # DESIGN.md §4: a hypertable's unique keys include its time column
            assert TIME_COLUMN[table] in columns, name


@pytest.mark.parametrize(
    ("table", "column", "bad"),
    [(t.SESSIONS, "split_reason", "closed"), (t.LATE_EVENTS, "reason", "too_late")],
)
def test_set_valued_columns_refuse_other_values(
    migrated: tuple[PostgresSettings, list[MigrationReport]], table: str, column: str, bad: str
) -> None:
    pg, _ = migrated

    def insert(conn: psycopg.Connection[Any], row: dict[str, Any]) -> None:
        conn.execute(
            sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                sql.Identifier(table),
                sql.SQL(", ").join(map(sql.Identifier, row)),
                sql.SQL(", ").join(sql.Placeholder() * len(row)),
            ),
            tuple(row.values()),
        )

    with connect(pg) as conn:
        insert(conn, _valid_row(table))  # the valid row is accepted …
        conn.rollback()
        with pytest.raises(psycopg.errors.CheckViolation, match=f"{table}_{column}_check"):
            insert(conn, _valid_row(table) | {column: bad})  # … the same with a value outside the set is not


def _valid_row(table: str) -> dict[str, Any]:
    if table == t.SESSIONS:
        return {
            "session_id": "s", "user_key": "u", "session_start": "2026-03-02T10:00:00Z",
            "session_end": "2026-03-02T10:00:00Z", "duration_ms": 0, "event_count": 1, "page_views": 1,
            "distinct_pages": 1, "error_count": 0, "conversions": 0, "engaged": False, "bounce": True,
            "split_reason": "gap", "is_final": True,
        }  # fmt: skip
    return {
        "job": "sessionize", "event_id": "e", "event_time": "2026-03-02T10:00:00Z",
        "received_at": "2026-03-02T10:00:00Z", "reason": "late", "source_partition": 0, "source_offset": 0,
    }  # fmt: skip


def test_plain_postgresql_records_the_timescale_files_as_skipped(
    migrated: tuple[PostgresSettings, list[MigrationReport]], migrations_dir: Path
) -> None:
    pg, (first, second) = migrated
    assert tuple(m.key for m in discover_timescale(migrations_dir / "timescaledb")) == TIMESCALE_FILES
    for report in (first, second):
        assert report.mode == "postgresql"
        assert report.timescaledb is None
        assert report.skipped == TIMESCALE_FILES
        assert "timescaledb extension is not available" in report.mode_detail
    recorded = query(pg, "SELECT name, status, detail FROM uxstream_timescaledb_migrations ORDER BY name")
    assert sorted(r[0] for r in recorded) == sorted(TIMESCALE_FILES)
    assert {r[1] for r in recorded} == {"skipped"}
    assert {r[2] for r in recorded} == {first.mode_detail}
    # Nothing Timescale-only exists.
    assert query(pg, "SELECT to_regclass('kpi_1h')") == [(None,)]


def test_timescaledb_on_fails_when_the_server_lacks_it_and_off_is_recorded(
    make_database: MakeDatabase, migrations_dir: Path
) -> None:
    pg = make_database()
    with pytest.raises(
        UserError, match=r"UXSTREAM_TIMESCALEDB=on, but the timescaledb extension is not available"
    ):
        migrate(pg, migrations_dir, TimescaleSettings(mode="on"))
    assert query(pg, "SELECT to_regclass('uxstream_schema_migrations')") == [(None,)], (
        "failed before any change"
    )
    report = migrate(pg, migrations_dir, TimescaleSettings(mode="off"))
    assert report.mode_detail == "plain PostgreSQL: UXSTREAM_TIMESCALEDB=off"
    assert query(pg, "SELECT DISTINCT detail FROM uxstream_timescaledb_migrations") == [(report.mode_detail,)]


def test_timescale_settings_come_from_the_environment_with_documented_defaults() -> None:
    assert TimescaleSettings.from_env({}) == TimescaleSettings("auto", 90, 7)
    env = {
        "UXSTREAM_TIMESCALEDB": "OFF",
        "UXSTREAM_RETENTION_DAYS": "30",
        "UXSTREAM_COMPRESS_AFTER_DAYS": "2",
    }
    assert TimescaleSettings.from_env(env) == TimescaleSettings("off", 30, 2)
    with pytest.raises(SettingsError, match="UXSTREAM_RETENTION_DAYS=3 must be more than 3"):
        TimescaleSettings.from_env({"UXSTREAM_RETENTION_DAYS": "3"})
    with pytest.raises(SettingsError, match="UXSTREAM_COMPRESS_AFTER_DAYS=0"):
        TimescaleSettings.from_env({"UXSTREAM_COMPRESS_AFTER_DAYS": "0"})
    with pytest.raises(SettingsError, match="UXSTREAM_TIMESCALEDB='maybe'"):
        TimescaleSettings.from_env({"UXSTREAM_TIMESCALEDB": "maybe"})


def test_timescale_variables_are_substituted_as_quoted_literals(migrations_dir: Path, tmp_path: Path) -> None:
    (policies,) = [m for m in discover_timescale(migrations_dir / "timescaledb") if m.repeatable]
    rendered = policies.render(TimescaleSettings(retention_days=30, compress_after_days=2).variables())
    assert "make_interval(days => '30'::int)" in rendered
    assert "make_interval(days => '2'::int)" in rendered
    assert ":'" not in rendered
    (tmp_path / "R__bad.sql").write_text("SELECT :'nope', 'a'::text;\n")
    (bad,) = discover_timescale(tmp_path)
    with pytest.raises(UserError, match=r"R__bad.sql: unknown variable :'nope'"):
        bad.render({"x": "1"})


def test_an_edited_applied_migration_is_refused(
    make_database: MakeDatabase, migrations_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(migrations_dir, folder)
    pg = make_database()
    migrate(pg, folder)
    edited = folder / "V0002__sessionize.sql"
    edited.write_text(edited.read_text() + "\n-- an innocent-looking edit\n")
    with pytest.raises(UserError) as refused:
        migrate(pg, folder)
    assert str(refused.value) == EDITED_MESSAGE


def test_timescale_mode_applies_records_reapplies_and_protects_its_files(
    make_database: MakeDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The TimescaleDB path of the runner on this server: stand-in Timescale files in plain SQL, and the
    server's mode as TimescaleDB would report it (the real files run on TimescaleDB in the pglite test)."""
    folder = tmp_path / "migrations"
    (folder / "timescaledb").mkdir(parents=True)
    (folder / "V0001__base.sql").write_text("CREATE TABLE base (id INT PRIMARY KEY);\n")
    (folder / "timescaledb" / "T0001__marker.sql").write_text("CREATE TABLE ts_marker (id INT);\n")
    (folder / "timescaledb" / "R__policy.sql").write_text(
        "CREATE OR REPLACE VIEW ts_policy AS SELECT :'retention_days'::int AS days;\n"
    )
    pg = make_database()

    plain = migrate(pg, folder)
    assert (plain.applied, plain.skipped) == (("V0001__base",), ("T0001__marker", "R__policy"))

    monkeypatch.setattr(db, "_timescale_mode", lambda conn, settings: ("2.23.0", "timescaledb 2.23.0"))
    now_timescale = migrate(pg, folder)
    assert (now_timescale.applied, now_timescale.skipped) == (("T0001__marker", "R__policy"), ())
    assert now_timescale.mode == "timescaledb"
    assert query(pg, "SELECT name, status, detail FROM uxstream_timescaledb_migrations ORDER BY name") == [
        ("R__policy", "applied", "timescaledb 2.23.0"),
        ("T0001__marker", "applied", "timescaledb 2.23.0"),
    ]
    assert migrate(pg, folder).applied == ()
    assert query(pg, "SELECT days FROM ts_policy") == [(90,)]

    changed_setting = migrate(pg, folder, TimescaleSettings(retention_days=30))
    assert changed_setting.applied == ("R__policy",), "a repeatable file re-runs when a setting changes"
    assert query(pg, "SELECT days FROM ts_policy") == [(30,)]

    marker = folder / "timescaledb" / "T0001__marker.sql"
    marker.write_text(marker.read_text() + "-- edited\n")
    with pytest.raises(UserError) as refused:
        migrate(pg, folder, TimescaleSettings(retention_days=30))
    assert str(refused.value) == (
        "T0001__marker.sql was changed after it was applied "
        "(write a new migration instead of editing an applied one)"
    )


# --------------------------------------------------------------------------------------------------- views


def test_a_replayed_late_ledger_row_keeps_its_first_classification(
    migrated: tuple[PostgresSettings, list[MigrationReport]],
) -> None:
    """The jobs write the ledger with the JDBC connector's PostgreSQL upsert (INSERT … ON CONFLICT DO
    UPDATE). After a restore the replayed row may carry a lower watermark (watermarks are not
    checkpointed): the ledger keeps what it recorded first, so its watermark columns do not depend on
    restart timing (a replay has the same partition and an offset not after the stored one). A re-sent
    event that is late again (a later offset) still replaces the row: it describes the key's last late
    arrival, as the oracle says. Deleting (privacy erase) still works."""
    pg, _ = migrated
    key = {"job": "sessionize", "event_id": "replayed", "event_time": "2026-03-02T10:00:00Z"}
    arrival = "2026-03-02T10:05:00Z"
    first = {"received_at": arrival, "watermark": "2026-03-02T10:02:00Z", "lateness_ms": 120000}
    replay = {"received_at": arrival, "watermark": "2026-03-02T10:01:00Z", "lateness_ms": 60000}
    rest = {"reason": "late", "source_partition": 0, "source_offset": 7}

    def upsert(conn: psycopg.Connection[Any], values: dict[str, Any]) -> None:
        row = {**key, **rest, **values}
        conn.execute(
            sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}").format(
                sql.Identifier(t.LATE_EVENTS),
                sql.SQL(", ").join(map(sql.Identifier, row)),
                sql.SQL(", ").join(sql.Placeholder() * len(row)),
                sql.SQL(", ").join(map(sql.Identifier, key)),
                sql.SQL(", ").join(
                    sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
                    for c in row
                    if c not in key
                ),
            ),
            tuple(row.values()),
        )

    stored = f"SELECT watermark, lateness_ms FROM {t.LATE_EVENTS} WHERE event_id = 'replayed'"
    with connect(pg) as conn:
        upsert(conn, first)
        upsert(conn, replay)  # the same record (offset 7) replayed after a restore
        upsert(conn, {**replay, "source_offset": 6})  # an earlier record of the key, replayed
        conn.commit()
    assert query(pg, stored) == [(datetime(2026, 3, 2, 10, 2, tzinfo=UTC), 120000)]
    resent = {
        "received_at": "2026-03-02T10:06:00Z",
        "watermark": "2026-03-02T10:03:00Z",
        "lateness_ms": 180000,
    }
    with connect(pg) as conn:
        upsert(conn, {**resent, "source_offset": 9})  # the event re-sent, late again: a later record
        conn.commit()
    assert query(pg, stored) == [(datetime(2026, 3, 2, 10, 3, tzinfo=UTC), 180000)]
    with connect(pg) as conn:
        deleted = conn.execute(f"DELETE FROM {t.LATE_EVENTS} WHERE event_id = 'replayed'").rowcount
        conn.commit()
    assert deleted == 1
    assert query(pg, stored) == []


T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
"""Start of the first minute."""
S, MIN = timedelta(seconds=1), timedelta(minutes=1)


def test_views_count_new_sessions_and_late_events_per_window_and_dimension(
    migrated: tuple[PostgresSettings, list[MigrationReport]],
) -> None:
    pg, _ = migrated
    with connect(pg) as conn:
        conn.execute(f"TRUNCATE {', '.join(t.SESSIONIZE_TABLES)}")
        sessions: list[tuple[str, datetime, str | None, str | None, str | None]] = [
            ("A", T0 + 5 * S, "/a", "NL", "mobile"),
            ("B", T0 + 50 * S, None, None, "desktop"),
            ("C", T0 + MIN, "/b", "NL", "mobile"),  # exactly on the boundary: the second minute
        ]
        for sid, start, entry, country, device in sessions:
            conn.execute(
                f"""INSERT INTO {t.SESSIONS} (session_id, user_key, session_start, session_end, duration_ms,
                      event_count, page_views, distinct_pages, entry_page, country, device_type, error_count,
                      conversions, engaged, bounce, split_reason, is_final)
                    VALUES (%s, %s, %s, %s, 0, 1, 1, 1, %s, %s, %s, 0, 0, FALSE, TRUE, 'gap', TRUE)""",
                (sid, f"user-{sid}", start, start, entry, country, device),
            )
        late: list[tuple[str, str, datetime, str, str | None, str | None, str | None]] = [
            ("sessionize", "L1", T0 + 30 * S, "late", "/a", "NL", "mobile"),
            ("sessionize", "L2", T0 + 40 * S, "late", None, None, None),
            ("sessionize", "F1", T0 + 20 * S, "future_timestamp", "/a", "NL", "mobile"),  # not late
            ("funnels", "L3", T0 + 10 * S, "late", "/a", "NL", "mobile"),  # another job's ledger row
            ("sessionize", "L4", T0 + 2 * MIN - timedelta(milliseconds=1), "late", "/a", "DE", "mobile"),
            ("sessionize", "L5", T0 + 5 * MIN, "late", "/z", "DE", "tablet"),  # a minute without a kpi row
        ]
        for job, event_id, event_time, reason, page, country, device in late:
            conn.execute(
                f"""INSERT INTO {t.LATE_EVENTS} (job, event_id, event_time, received_at, reason,
                      source_partition, source_offset, page_path, country, device_type)
                    VALUES (%s, %s, %s, %s, %s, 0, 0, %s, %s, %s)""",
                (job, event_id, event_time, event_time + 10 * MIN, reason, page, country, device),
            )
        kpi_rows = [
            (T0, "global", "(all)"), (T0, "page_path", "/a"), (T0, "page_path", "(none)"),
            (T0, "country", "NL"), (T0, "country", "(none)"), (T0, "device_type", "desktop"),
            (T0 + MIN, "global", "(all)"), (T0 + MIN, "page_path", "/b"), (T0 + MIN, "page_path", "/a"),
        ]  # fmt: skip
        for start, dim, value in kpi_rows:
            conn.execute(
                f"""INSERT INTO {t.KPI_1M} (window_start, window_end, dimension, dimension_value, events,
                      page_views, active_users, error_events, conversions, duplicates)
                    VALUES (%s, %s, %s, %s, 1, 1, 1, 0, 0, 0)""",
                (start, start + MIN, dim, value),
            )
        conn.commit()

    full = query(
        pg,
        f"""SELECT window_start, dimension, dimension_value, new_sessions, late_events
            FROM {t.KPI_1M_FULL} ORDER BY window_start, dimension, dimension_value""",
    )
    assert full == [
        (T0, "country", "(none)", 1, 1),  # B; L2
        (T0, "country", "NL", 1, 1),  # A; L1
        (T0, "device_type", "desktop", 1, 0),  # B
        (T0, "global", "(all)", 2, 2),  # A, B; L1, L2 (F1 is not late, L3 is another job's)
        (T0, "page_path", "(none)", 1, 1),  # B has no entry page; L2
        (T0, "page_path", "/a", 1, 1),  # A; L1
        (T0 + MIN, "global", "(all)", 1, 1),  # C; L4
        (T0 + MIN, "page_path", "/a", 0, 1),  # L4
        (T0 + MIN, "page_path", "/b", 1, 0),  # C
    ]
    assert query(
        pg,
        f"""SELECT window_start, dimension, dimension_value, late_events FROM {t.LATE_EVENTS_1M}
            WHERE window_start = %s ORDER BY dimension""",
        (T0 + 5 * MIN,),
    ) == [
        (T0 + 5 * MIN, "country", "DE", 1),
        (T0 + 5 * MIN, "device_type", "tablet", 1),
        (T0 + 5 * MIN, "global", "(all)", 1),
        (T0 + 5 * MIN, "page_path", "/z", 1),
    ]
    assert query(
        pg,
        f"""SELECT dimension, dimension_value, new_sessions FROM {t.SESSIONS_STARTED_1M}
            WHERE window_start = %s ORDER BY dimension, dimension_value""",
        (T0,),
    ) == [
        ("country", "(none)", 1),
        ("country", "NL", 1),
        ("device_type", "desktop", 1),
        ("device_type", "mobile", 1),
        ("global", "(all)", 2),
        ("page_path", "(none)", 1),
        ("page_path", "/a", 1),
    ]
    # Every kpi_1m column but the user sketch (V0010), which is merged from kpi_1m itself (uxstream uniques),
    # not read per window (V0012 added bot_events to the view, V0014 the feedback columns).
    kpi_columns = [c[0] for c in COLUMNS[t.KPI_1M] if c[0] != "users_sketch"]
    full_columns = [
        r[0]
        for r in query(
            pg,
            """SELECT column_name::text FROM information_schema.columns
               WHERE table_name = %s ORDER BY ordinal_position""",
            (t.KPI_1M_FULL,),
        )
    ]
    derived = ["nps_mean_score", "csat_mean_score"]  # V0014: score sum / responses per scale
    assert sorted(full_columns) == sorted([*kpi_columns, "new_sessions", "late_events", *derived])
