"""`uxstream privacy …`: data-subject requests over the output tables (SEMANTICS.md "Privacy").

    uxstream privacy pseudonym --user-id usr_42       # what the tables store for this user
    uxstream privacy export --user-id usr_42 --anonymous-id anon_7 > usr_42.json
    uxstream privacy erase --user-id usr_42 --anonymous-id anon_7 --by alice --reason TICKET-7

The user is named by the raw `user_id` and/or every `anonymous_id` it used (`--anonymous-id`, repeatable:
the jobs key an event by its user_id, else its anonymous_id). The command derives the pseudonyms of every
id under the current key (UXSTREAM_PSEUDONYM_KEY / _FILE, else the local key file) and under every earlier
key not retired yet (UXSTREAM_PSEUDONYM_PREVIOUS_KEYS), and works on every table of
`jobs.common.tables.USER_KEYED_TABLES` (and the raw ids on `RAW_USER_KEYED_TABLES`), connected as the
eraser role (`uxstream_eraser`; README "Security"). Erase also adds every pseudonym to the erased list
(`erased_pseudonyms`) the running jobs consult, so replays and restores do not bring the user back. Each
request is recorded in `privacy_requests` (pseudonyms, who, why, rows per table) in the same transaction as
the erasure, so the audit row exists iff the rows are gone.

Aggregates (KPI and funnel windows) hold counts, not user keys: erasure leaves them as they are
(README "Privacy").
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from jobs.common import tables
from jobs.common.privacy import PrivacySettings, Pseudonymizer, all_pseudonyms
from jobs.common.settings import PostgresSettings
from uxstream.db import connect
from uxstream.errors import UserError


@dataclass(frozen=True)
class Subject:
    """The user of a request: its raw ids and their pseudonyms under every key of the ring."""

    ids: tuple[str, ...]
    pseudonyms: tuple[str, ...]
    """The first is the first id under the current key (what `pseudonym` prints)."""


def subject(user_id: str | None, anonymous_ids: Sequence[str], settings: PrivacySettings) -> Subject:
    ids: list[str] = []
    if user_id is not None:
        if not user_id.strip():
            raise UserError("--user-id must not be empty")
        ids.append(user_id.strip())
    for anonymous_id in anonymous_ids:
        if not anonymous_id.strip():
            raise UserError("--anonymous-id must not be empty")
        ids.append(anonymous_id.strip())
    if not ids:
        raise UserError("name the user with --user-id and/or --anonymous-id")
    ids = list(dict.fromkeys(ids))
    pseudonyms = [p for user_key in ids for p in all_pseudonyms(settings, user_key)]
    return Subject(tuple(ids), tuple(dict.fromkeys(pseudonyms)))


def _subject(args: argparse.Namespace) -> Subject:
    return subject(args.user_id, getattr(args, "anonymous_id", None) or (), PrivacySettings.from_env())


def _pseudonym(args: argparse.Namespace) -> str:
    user_id = (args.user_id or "").strip()
    if not user_id:
        raise UserError("--user-id must not be empty")
    return Pseudonymizer(PrivacySettings.from_env())(user_id)


def _present(conn: Any) -> set[str]:
    present = {
        row[0]
        for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    }
    for needed in (tables.PRIVACY_REQUESTS, tables.ERASED_PSEUDONYMS):
        if needed not in present:
            raise UserError(f"table {needed} is missing: run `uxstream db migrate` on this database first")
    return present


def _existing_tables(conn: Any, who: Subject) -> list[tuple[str, str, str, list[str]]]:
    """(table, SQL condition naming the user, time column, the values of the user in it) of the user-keyed
    tables this database has (a job's migrations may not be applied yet). The condition holds when any key
    column of the row names one of the values (`%(ids)s`); a key column a migration has not added yet is
    left out."""
    present = _present(conn)
    columns: dict[str, set[str]] = {}
    for table, column in conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
    ):
        columns.setdefault(table, set()).add(column)
    found = []
    for spec, values in ((tables.USER_KEYED_TABLES, who.pseudonyms), (tables.RAW_USER_KEYED_TABLES, who.ids)):
        for table, keys, time_column in spec:
            if table in present:
                keyed = [k for k in keys if k in columns.get(table, set())]
                condition = " OR ".join(f"{k} = ANY(%(ids)s)" for k in keyed)
                found.append((table, f"({condition})", f"{time_column}, {keyed[0]}", list(values)))
    return found


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _rows(cursor: Any) -> list[dict[str, Any]]:
    names = [c.name for c in cursor.description]
    return [{n: _json_value(v) for n, v in zip(names, row, strict=True)} for row in cursor.fetchall()]


def export_rows(pg: PostgresSettings, who: Subject) -> dict[str, list[dict[str, Any]]]:
    """Every stored row of the user, per table, ordered by time (and the user's erased-list entries)."""
    out: dict[str, list[dict[str, Any]]] = {}
    with connect(pg) as conn:
        for table, condition, order, values in _existing_tables(conn, who):
            out[table] = _rows(
                conn.execute(f"SELECT * FROM {table} WHERE {condition} ORDER BY {order}", {"ids": values})
            )
        out[tables.ERASED_PSEUDONYMS] = _rows(
            conn.execute(
                f"SELECT * FROM {tables.ERASED_PSEUDONYMS} WHERE pseudonym = ANY(%s) ORDER BY pseudonym",
                (list(who.pseudonyms),),
            )
        )
    return out


def record(conn: Any, kind: str, who: Subject, by: str, reason: str | None, rows: dict[str, int]) -> None:
    conn.execute(
        f"INSERT INTO {tables.PRIVACY_REQUESTS} (kind, pseudonym, pseudonyms, requested_by, reason, rows) "
        "VALUES (%s, %s, %s, %s, %s, %s::jsonb)",
        (kind, who.pseudonyms[0], list(who.pseudonyms), by, reason, json.dumps(rows, sort_keys=True)),
    )


def erase_rows(pg: PostgresSettings, who: Subject, by: str, reason: str | None) -> dict[str, int]:
    """Delete the user's rows from every user-keyed table, add its pseudonyms to the erased list and record
    the request, in one transaction. Returns the rows deleted per table."""
    with connect(pg) as conn, conn.transaction():
        deleted = {
            table: conn.execute(f"DELETE FROM {table} WHERE {condition}", {"ids": values}).rowcount
            for table, condition, _, values in _existing_tables(conn, who)
        }
        with conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {tables.ERASED_PSEUDONYMS} (pseudonym) VALUES (%s) ON CONFLICT DO NOTHING",
                [(p,) for p in who.pseudonyms],
            )
        record(conn, "erase", who, by, reason, deleted)
    return deleted


def _requester(args: argparse.Namespace) -> str:
    return str(args.by or getpass.getuser())


def _cmd_pseudonym(args: argparse.Namespace) -> int:
    print(_pseudonym(args))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    pg = PostgresSettings.from_env(role="eraser")
    who = _subject(args)
    rows = export_rows(pg, who)
    with connect(pg) as conn, conn.transaction():
        record(conn, "export", who, _requester(args), args.reason, {t: len(r) for t, r in rows.items()})
    document = {"pseudonym": who.pseudonyms[0], "pseudonyms": list(who.pseudonyms), "tables": rows}
    json.dump(document, sys.stdout, indent=2, sort_keys=True)
    print()
    return 0


def _cmd_erase(args: argparse.Namespace) -> int:
    who = _subject(args)
    deleted = erase_rows(PostgresSettings.from_env(role="eraser"), who, _requester(args), args.reason)
    counts = ", ".join(f"{table} {n}" for table, n in deleted.items())
    print(
        f"erased {who.pseudonyms[0]}: {counts} row(s) deleted; {len(who.pseudonyms)} pseudonym(s) on the "
        f"erased list {tables.ERASED_PSEUDONYMS}; recorded in {tables.PRIVACY_REQUESTS}"
    )
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
        q.add_argument(
            "--user-id", required=name == "pseudonym", help="the raw user_id (or anonymous_id) of the user"
        )
        if name != "pseudonym":
            q.add_argument(
                "--anonymous-id",
                action="append",
                default=[],
                help="an anonymous_id the user's events carried (repeatable)",
            )
            q.add_argument("--by", default=None, help="who asks (default: the OS user)")
            q.add_argument("--reason", default=None, help="e.g. the ticket of the request")
        q.set_defaults(handler=handler)
