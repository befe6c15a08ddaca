"""`uxstream privacy …`: data-subject requests over the output tables (SEMANTICS.md "Privacy").

    uxstream privacy pseudonym --user-id usr_42       # what the tables store for this user
    uxstream privacy export --user-id usr_42 > usr_42.json
    uxstream privacy erase --user-id usr_42 --by alice --reason TICKET-7

The user is named by the raw `user_id` (or `anonymous_id`); the command derives the pseudonym with the
jobs' key (UXSTREAM_PSEUDONYM_KEY / _FILE, else the local key file) and works on every table of
`jobs.common.tables.USER_KEYED_TABLES`, connected as the eraser role (`uxstream_eraser`: SELECT and
DELETE on those tables, INSERT on the audit table; README "Security"). Each request is recorded in
`privacy_requests` (pseudonym, who, why, rows per table) in the same transaction as the erasure, so the
audit row exists iff the rows are gone.

Aggregates (KPI and funnel windows) hold counts, not user keys: erasure leaves them as they are
(see NOTES.md).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from jobs.common import tables
from jobs.common.privacy import PrivacySettings, Pseudonymizer
from jobs.common.settings import PostgresSettings
from uxstream.db import connect
from uxstream.errors import UserError


def _pseudonym(args: argparse.Namespace) -> str:
    user_id = args.user_id.strip()
    if not user_id:
        raise UserError("--user-id must not be empty")
    return Pseudonymizer(PrivacySettings.from_env())(user_id)


def _existing_tables(conn: Any) -> list[tuple[str, str, str]]:
    """The user-keyed tables this database has (a job's migrations may not be applied yet)."""
    present = {
        row[0]
        for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    }
    if tables.PRIVACY_REQUESTS not in present:
        raise UserError(
            f"table {tables.PRIVACY_REQUESTS} is missing: run `uxstream db migrate` on this database first"
        )
    return [entry for entry in tables.USER_KEYED_TABLES if entry[0] in present]


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def export_rows(pg: PostgresSettings, pseudonym: str) -> dict[str, list[dict[str, Any]]]:
    """Every stored row of the user, per table, ordered by time."""
    out: dict[str, list[dict[str, Any]]] = {}
    with connect(pg) as conn:
        for table, key, time_column in _existing_tables(conn):
            cursor = conn.execute(
                f"SELECT * FROM {table} WHERE {key} = %s ORDER BY {time_column}", (pseudonym,)
            )
            names = [c.name for c in cursor.description]
            out[table] = [
                {n: _json_value(v) for n, v in zip(names, row, strict=True)} for row in cursor.fetchall()
            ]
    return out


def record(conn: Any, kind: str, pseudonym: str, by: str, reason: str | None, rows: dict[str, int]) -> None:
    conn.execute(
        f"INSERT INTO {tables.PRIVACY_REQUESTS} (kind, pseudonym, requested_by, reason, rows) "
        "VALUES (%s, %s, %s, %s, %s::jsonb)",
        (kind, pseudonym, by, reason, json.dumps(rows, sort_keys=True)),
    )


def erase_rows(pg: PostgresSettings, pseudonym: str, by: str, reason: str | None) -> dict[str, int]:
    """Delete the user's rows from every user-keyed table and record the request, in one transaction."""
    with connect(pg) as conn, conn.transaction():
        deleted = {
            table: conn.execute(f"DELETE FROM {table} WHERE {key} = %s", (pseudonym,)).rowcount
            for table, key, _ in _existing_tables(conn)
        }
        record(conn, "erase", pseudonym, by, reason, deleted)
    return deleted


def _requester(args: argparse.Namespace) -> str:
    return str(args.by or getpass.getuser())


def _cmd_pseudonym(args: argparse.Namespace) -> int:
    print(_pseudonym(args))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    pg = PostgresSettings.from_env(role="eraser")
    pseudonym = _pseudonym(args)
    rows = export_rows(pg, pseudonym)
    with connect(pg) as conn, conn.transaction():
        record(conn, "export", pseudonym, _requester(args), args.reason, {t: len(r) for t, r in rows.items()})
    json.dump({"pseudonym": pseudonym, "tables": rows}, sys.stdout, indent=2, sort_keys=True)
    print()
    return 0


def _cmd_erase(args: argparse.Namespace) -> int:
    pseudonym = _pseudonym(args)
    deleted = erase_rows(PostgresSettings.from_env(role="eraser"), pseudonym, _requester(args), args.reason)
    counts = ", ".join(f"{table} {n}" for table, n in deleted.items())
    print(f"erased {pseudonym}: {counts} row(s) deleted; recorded in {tables.PRIVACY_REQUESTS}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "privacy",
        help="pseudonym, export and erase of one user's rows (audited)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="privacy_command", required=True, metavar="COMMAND")
    for name, handler, text in (
        ("pseudonym", _cmd_pseudonym, "print the pseudonym the tables store for a user"),
        ("export", _cmd_export, "print every stored row of a user as JSON (audited)"),
        ("erase", _cmd_erase, "delete every stored row of a user (audited)"),
    ):
        q = sub.add_parser(name, help=text, description=text)
        q.add_argument("--user-id", required=True, help="the raw user_id (or anonymous_id) of the user")
        if name != "pseudonym":
            q.add_argument("--by", default=None, help="who asks (default: the OS user)")
            q.add_argument("--reason", default=None, help="e.g. the ticket of the request")
        q.set_defaults(handler=handler)
