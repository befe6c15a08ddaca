"""PostgreSQL connections for the jobs' Python code (warm start) and the tools (uxstream.db builds on it)."""

from __future__ import annotations

from typing import Any

from jobs.common.settings import PostgresSettings


class DatabaseUnavailable(RuntimeError):
    """The server did not accept a connection; the message says where and what to do."""


def connect(pg: PostgresSettings, **kwargs: Any) -> Any:
    """A psycopg connection with a clear error when the server is unreachable."""
    import psycopg

    try:
        return psycopg.connect(pg.conninfo(), **kwargs)
    except psycopg.OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {pg.describe()}: {first_line} ({hint(pg, first_line)})"
        ) from None


def hint(pg: PostgresSettings, error: str) -> str:
    """What to do about a connection error."""
    if "certificate verify failed" in error:
        return (
            f"the server's certificate is not signed by the CA in {pg.sslrootcert} "
            "(UXSTREAM_PG_SSLROOTCERT), or does not name the host: point UXSTREAM_PG_SSLROOTCERT at the CA "
            "of the server"
        )
    if "password authentication failed" in error or "no password supplied" in error:
        variable = "UXSTREAM_PG_PASSWORD" if pg.role == "admin" else f"UXSTREAM_PG_{pg.role.upper()}_PASSWORD"
        return f"check the password of role {pg.role} ({variable} or {variable}_FILE)"
    return "start the local one with `make up`, or set UXSTREAM_PG_* to an external server"
