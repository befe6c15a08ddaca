"""Versioned SQL migrations for PostgreSQL/TimescaleDB (`uxstream db migrate`).

Files `migrations/V<NNNN>__<name>.sql` are plain PostgreSQL, applied in version order, each in its own
transaction, and recorded in `uxstream_schema_migrations` with a checksum. Re-running is harmless; a changed
file that was already applied is an error (write a new migration instead). An advisory lock serialises
concurrent runs.

TimescaleDB-only files live in `migrations/timescaledb/`: `T<NNNN>__<name>.sql` (versioned, like V files)
and `R__<name>.sql` (repeatable: re-applied whenever its text or a setting it uses changes, e.g. the
retention and compression policies). After the V files, the runner looks at the server: when the
`timescaledb` extension is installed in the database or available on the server (`pg_available_extensions`)
it runs `CREATE EXTENSION IF NOT EXISTS timescaledb` and applies the T files, then the R files; on plain
PostgreSQL it records them as skipped (and applies them on a later run once the extension is available).
Either way they are recorded in `uxstream_timescaledb_migrations` (status `applied` or `skipped`, with the
extension version or the reason), which is where the schema's mode can be read back.

Timescale files may use psql-style variables (`:'retention_days'`), substituted as quoted literals from
`TimescaleSettings`, so `psql -v retention_days=90 -f …` runs the same files by hand.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal

from jobs.common import db as jobs_db
from jobs.common.settings import PostgresSettings, SettingsError, env_int, env_str
from uxstream.errors import UserError
from uxstream.paths import ROOT

MIGRATIONS = ROOT / "migrations"
TIMESCALE_SUBFOLDER: Final = "timescaledb"
"""Folder (inside the migrations folder) of the files applied only on TimescaleDB."""
_FILE = re.compile(r"^V(\d{4})__([a-z0-9_]+)\.sql$")
_TS_FILE = re.compile(r"^(?:T(\d{4})|R)__([a-z0-9_]+)\.sql$")
_VARIABLE = re.compile(r"(?<!:):'([A-Za-z_][A-Za-z0-9_]*)'")
_LOCK_ID = 0x75787374  # "uxst"

CAGG_REFRESH_WINDOW_DAYS: Final = 3
"""start_offset of kpi_1h's refresh policy (migrations/timescaledb/T0002__kpi_1h.sql). Retention must be
longer: refreshing hours whose kpi_1m chunks were already dropped would empty them."""
DEFAULT_RETENTION_DAYS: Final = 90
DEFAULT_COMPRESS_AFTER_DAYS: Final = 7
TimescaleMode = Literal["auto", "on", "off"]


@dataclass(frozen=True)
class TimescaleSettings:
    """How `uxstream db migrate` treats TimescaleDB. Read from the environment:

    - `UXSTREAM_TIMESCALEDB`: `auto` (default: use the extension when the server has it), `on` (fail when
      it is missing), `off` (plain PostgreSQL even when the extension is available);
    - `UXSTREAM_RETENTION_DAYS` (default 90): hypertable chunks older than this are dropped;
    - `UXSTREAM_COMPRESS_AFTER_DAYS` (default 7): chunks older than this are compressed.
    """

    mode: TimescaleMode = "auto"
    retention_days: int = DEFAULT_RETENTION_DAYS
    compress_after_days: int = DEFAULT_COMPRESS_AFTER_DAYS

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "on", "off"):
            raise SettingsError(f"UXSTREAM_TIMESCALEDB={self.mode!r} is not one of auto, on, off")
        if self.compress_after_days < 1:
            raise SettingsError(f"UXSTREAM_COMPRESS_AFTER_DAYS={self.compress_after_days} must be at least 1")
        if self.retention_days <= CAGG_REFRESH_WINDOW_DAYS:
            raise SettingsError(
                f"UXSTREAM_RETENTION_DAYS={self.retention_days} must be more than {CAGG_REFRESH_WINDOW_DAYS} "
                "(the refresh window of the hourly continuous aggregate kpi_1h)"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TimescaleSettings:
        env = os.environ if env is None else env
        mode = (env_str(env, "UXSTREAM_TIMESCALEDB", "auto") or "auto").lower()
        if mode not in ("auto", "on", "off"):
            raise SettingsError(f"UXSTREAM_TIMESCALEDB={mode!r} is not one of auto, on, off")
        return cls(
            mode=mode,  # type: ignore[arg-type]  # checked above
            retention_days=env_int(env, "UXSTREAM_RETENTION_DAYS", DEFAULT_RETENTION_DAYS),
            compress_after_days=env_int(env, "UXSTREAM_COMPRESS_AFTER_DAYS", DEFAULT_COMPRESS_AFTER_DAYS),
        )

    def variables(self) -> dict[str, str]:
        """Values of the psql-style variables the Timescale files may use."""
        return {
            "retention_days": str(self.retention_days),
            "compress_after_days": str(self.compress_after_days),
        }


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(folder: Path = MIGRATIONS) -> list[Migration]:
    found: list[Migration] = []
    for path in sorted(folder.glob("*.sql")):
        match = _FILE.match(path.name)
        if match is None:
            raise UserError(f"{path}: migration files are named V<NNNN>__<lower_snake_name>.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise UserError(f"{folder}: two migrations share a version number")
    return found


@dataclass(frozen=True)
class TimescaleMigration:
    """A file of migrations/timescaledb/: versioned (`T<NNNN>__name.sql`) or repeatable (`R__name.sql`)."""

    key: str
    """The file name without `.sql`: how it is recorded."""
    version: int | None
    """None for a repeatable file."""
    path: Path

    @property
    def repeatable(self) -> bool:
        return self.version is None

    def render(self, variables: Mapping[str, str]) -> str:
        """The SQL with each `:'name'` replaced by the variable's value as a quoted literal."""

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in variables:
                raise UserError(
                    f"{self.path.name}: unknown variable :'{name}' (known: {', '.join(sorted(variables))})"
                )
            return "'" + variables[name].replace("'", "''") + "'"

        return _VARIABLE.sub(substitute, self.path.read_text(encoding="utf-8"))

    def checksum(self, variables: Mapping[str, str]) -> str:
        """Of the file text for a versioned file; of the rendered text (so a setting change counts as a
        change) for a repeatable one."""
        text = self.render(variables) if self.repeatable else self.path.read_text(encoding="utf-8")
        return hashlib.sha256(text.encode()).hexdigest()


def discover_timescale(folder: Path = MIGRATIONS / TIMESCALE_SUBFOLDER) -> list[TimescaleMigration]:
    """Timescale-only files in apply order: versioned by version, then repeatable by name."""
    found: list[TimescaleMigration] = []
    for path in sorted(folder.glob("*.sql")) if folder.is_dir() else []:
        match = _TS_FILE.match(path.name)
        if match is None:
            raise UserError(
                f"{path}: TimescaleDB migration files are named T<NNNN>__<lower_snake_name>.sql "
                "or R__<lower_snake_name>.sql"
            )
        version = int(match.group(1)) if match.group(1) else None
        found.append(TimescaleMigration(path.stem, version, path))
    versions = [m.version for m in found if m.version is not None]
    if len(set(versions)) != len(versions):
        raise UserError(f"{folder}: two migrations share a version number")
    return sorted(found, key=lambda m: (m.repeatable, m.version or 0, m.key))


@dataclass(frozen=True)
class MigrationReport:
    """What one `migrate` run did."""

    applied: tuple[str, ...]
    """Files applied by this run (`V0002__sessionize`, `T0001__hypertables`, `R__policies`, …)."""
    skipped: tuple[str, ...]
    """Timescale-only files not applied because the schema is in plain PostgreSQL mode."""
    timescaledb: str | None
    """The timescaledb extension version when the schema is in TimescaleDB mode, else None."""
    mode_detail: str
    """Why this mode: the extension version, or the reason it is plain PostgreSQL."""

    @property
    def mode(self) -> str:
        return "timescaledb" if self.timescaledb else "postgresql"


def connect(pg: PostgresSettings, **kwargs: Any) -> Any:
    """A psycopg connection (jobs.common.db.connect) whose failure is a UserError for the command line."""
    try:
        return jobs_db.connect(pg, **kwargs)
    except jobs_db.DatabaseUnavailable as exc:
        raise UserError(str(exc)) from None


def create_database(admin: PostgresSettings, name: str) -> PostgresSettings:
    """Create the database `name` (as `admin`), owned by the migrator role so that it owns the schema
    `public` and can create the tables; the settings of the new database (as `admin`)."""
    from psycopg import sql

    owner = admin.as_role("migrator").user
    with connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner))
        )
    return replace(admin, dbname=name)


def migrate(
    pg: PostgresSettings,
    folder: Path = MIGRATIONS,
    timescale: TimescaleSettings | None = None,
) -> MigrationReport:
    """Apply pending migrations (V files, then the Timescale-only files when the extension is there), always
    as the migrator role (`pg`'s server and database, the role's user and password from the environment),
    which therefore owns every table."""
    pg = pg if pg.role == "migrator" else pg.as_role("migrator")
    timescale = TimescaleSettings() if timescale is None else timescale
    migrations = discover(folder)
    ts_migrations = discover_timescale(folder / TIMESCALE_SUBFOLDER)
    applied_now: list[str] = []
    with connect(pg, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            version, detail = _timescale_mode(conn, timescale)
            conn.execute(
                """CREATE TABLE IF NOT EXISTS uxstream_schema_migrations (
                     version    INTEGER PRIMARY KEY,
                     name       TEXT NOT NULL,
                     checksum   TEXT NOT NULL,
                     applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"""
            )
            done = {
                row[0]: (row[1], row[2])
                for row in conn.execute("SELECT version, name, checksum FROM uxstream_schema_migrations")
            }
            for migration in migrations:
                if migration.version in done:
                    if done[migration.version][1] != migration.checksum:
                        raise UserError(
                            f"{migration.path.name} was changed after it was applied "
                            "(write a new migration instead of editing an applied one)"
                        )
                    continue
                with conn.transaction():
                    conn.execute(migration.sql)
                    conn.execute(
                        "INSERT INTO uxstream_schema_migrations (version, name, checksum) "
                        "VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                applied_now.append(migration.path.stem)
            ts_applied, skipped = _apply_timescale(conn, ts_migrations, timescale, version, detail)
            applied_now.extend(ts_applied)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return MigrationReport(tuple(applied_now), tuple(skipped), version, detail)


def _timescale_mode(conn: Any, settings: TimescaleSettings) -> tuple[str | None, str]:
    """(extension version, detail) in TimescaleDB mode, creating the extension if needed; else
    (None, the reason for plain PostgreSQL)."""
    import psycopg

    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    installed: str | None = row[0] if row else None
    row = conn.execute(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    available: str | None = row[0] if row else None
    if settings.mode == "off":
        if installed:
            raise UserError(
                f"UXSTREAM_TIMESCALEDB=off, but the timescaledb extension {installed} is installed in this "
                "database (its Timescale migrations cannot be undone): unset UXSTREAM_TIMESCALEDB"
            )
        return None, "plain PostgreSQL: UXSTREAM_TIMESCALEDB=off"
    if not installed and not available:
        if settings.mode == "on":
            raise UserError(
                "UXSTREAM_TIMESCALEDB=on, but the timescaledb extension is not available on this server "
                "(pg_available_extensions): install TimescaleDB, or unset UXSTREAM_TIMESCALEDB"
            )
        return None, "plain PostgreSQL: the timescaledb extension is not available on this server"
    if not installed:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        except psycopg.Error as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(
                f"the timescaledb extension {available} is available but cannot be created: {first_line} "
                "(it must be in shared_preload_libraries and the user needs the privilege to create it; "
                "or set UXSTREAM_TIMESCALEDB=off to use plain PostgreSQL)"
            ) from None
        row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
        installed = str(row[0])
    return installed, f"timescaledb {installed}"


def _apply_timescale(
    conn: Any,
    migrations: list[TimescaleMigration],
    settings: TimescaleSettings,
    version: str | None,
    detail: str,
) -> tuple[list[str], list[str]]:
    """Apply (TimescaleDB mode) or record as skipped (plain mode) the Timescale-only files."""
    conn.execute(
        """CREATE TABLE IF NOT EXISTS uxstream_timescaledb_migrations (
             name        TEXT PRIMARY KEY,
             checksum    TEXT NOT NULL,
             status      TEXT NOT NULL CHECK (status IN ('applied', 'skipped')),
             detail      TEXT NOT NULL,
             recorded_at TIMESTAMPTZ NOT NULL DEFAULT now())"""
    )
    done = {
        row[0]: (row[1], row[2])
        for row in conn.execute("SELECT name, checksum, status FROM uxstream_timescaledb_migrations")
    }
    record = (
        "INSERT INTO uxstream_timescaledb_migrations (name, checksum, status, detail) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum, "
        "status = EXCLUDED.status, detail = EXCLUDED.detail, recorded_at = now()"
    )
    variables = settings.variables()
    applied: list[str] = []
    skipped: list[str] = []
    for migration in migrations:
        checksum = migration.checksum(variables)
        previous = done.get(migration.key)
        if version is None:
            skipped.append(migration.key)
            if previous is None or previous[0] != checksum:
                conn.execute(record, (migration.key, checksum, "skipped", detail))
            continue
        if previous is not None and previous[1] == "applied":
            if previous[0] == checksum:
                continue
            if not migration.repeatable:
                raise UserError(
                    f"{migration.path.name} was changed after it was applied "
                    "(write a new migration instead of editing an applied one)"
                )
        with conn.transaction():
            conn.execute(migration.render(variables))
            conn.execute(record, (migration.key, checksum, "applied", detail))
        applied.append(migration.key)
    return applied, skipped


def _cmd_migrate(args: argparse.Namespace) -> int:
    pg = PostgresSettings.from_env(role="migrator")
    report = migrate(pg, timescale=TimescaleSettings.from_env())
    for name in report.applied:
        print(f"applied {name}")
    if not report.applied:
        print(f"database {pg.describe()} is up to date")
    print(f"mode: {report.mode_detail}")
    if report.skipped:
        print(f"skipped (TimescaleDB only): {', '.join(report.skipped)}")
    return 0


def register(subparsers: Any) -> None:
    db = subparsers.add_parser("db", help="database schema: migrations")
    db_sub = db.add_subparsers(dest="db_command", metavar="SUBCOMMAND")
    db_sub.required = True
    p = db_sub.add_parser("migrate", help="apply pending SQL migrations (idempotent)")
    p.set_defaults(handler=_cmd_migrate)
