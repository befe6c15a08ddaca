"""Versioned SQL migrations for PostgreSQL/TimescaleDB (`uxstream db migrate`).

Files `migrations/V<NNNN>__<name>.sql` are applied in version order, each in its own transaction, and
recorded in `uxstream_schema_migrations` with a checksum. Re-running is harmless; a changed file that was
already applied is an error (write a new migration instead). An advisory lock serialises concurrent runs.
"""

from __future__ import annotations

import argparse
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.common.settings import PostgresSettings
from uxstream.errors import UserError
from uxstream.paths import ROOT

MIGRATIONS = ROOT / "migrations"
_FILE = re.compile(r"^V(\d{4})__([a-z0-9_]+)\.sql$")
_LOCK_ID = 0x75787374  # "uxst"


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


def connect(pg: PostgresSettings, **kwargs: Any) -> Any:
    """A psycopg connection with a clear error when the server is unreachable."""
    import psycopg

    try:
        return psycopg.connect(pg.conninfo(), **kwargs)
    except psycopg.OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"cannot connect to PostgreSQL at {pg.describe()}: {first_line} "
            "(start the local one with `make up`, or set UXSTREAM_PG_* to an external server)"
        ) from None


def migrate(pg: PostgresSettings, folder: Path = MIGRATIONS) -> list[Migration]:
    """Apply pending migrations; return the ones applied now."""
    migrations = discover(folder)
    applied_now: list[Migration] = []
    with connect(pg, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
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
                applied_now.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now


def _cmd_migrate(args: argparse.Namespace) -> int:
    pg = PostgresSettings.from_env()
    applied = migrate(pg)
    if applied:
        for m in applied:
            print(f"applied V{m.version:04d} {m.name}")
    else:
        print(f"database {pg.describe()} is up to date")
    return 0


def register(subparsers: Any) -> None:
    db = subparsers.add_parser("db", help="database schema: migrations")
    db_sub = db.add_subparsers(dest="db_command", metavar="SUBCOMMAND")
    db_sub.required = True
    p = db_sub.add_parser("migrate", help="apply pending SQL migrations (idempotent)")
    p.set_defaults(handler=_cmd_migrate)
