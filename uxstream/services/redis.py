"""Redis for the "right now" tier: the settings, a small RESP client, and the local server.

The collector writes HyperLogLog counters (uxstream/realtime.py) and the dashboard reads them. Locally
`uxstream up` starts Debian's `redis-server` on 127.0.0.1:16379 with its files under `.local/redis/`
(no persistence: the counters expire within minutes anyway). `UXSTREAM_REDIS_URL=redis://[:password@]host:port/db`
points uxstream at any other Redis instead; nothing is started then.

The client speaks RESP2 over one TCP socket (the handful of commands the tier needs: PFADD, PFCOUNT,
INCRBY, EXPIRE, MGET, SET, PING), pipelined: `pipeline([...])` sends every command and then reads every
reply, one round trip.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO
from urllib.parse import unquote, urlsplit

from jobs.common.settings import Secret, SettingsError
from uxstream import paths
from uxstream.errors import UserError
from uxstream.services import common
from uxstream.services.common import Progress, ServiceStatus, WaitFailed

LOCAL_REDIS_PORT = 16379
REDIS_URL_ENV = "UXSTREAM_REDIS_URL"

RespValue = int | bytes | str | None | list["RespValue"]


class RedisError(Exception):
    """Redis cannot be reached, or answered a command with an error. The message says which."""


@dataclass(frozen=True)
class RedisSettings:
    """Where the "right now" counters live."""

    host: str = "127.0.0.1"
    port: int = LOCAL_REDIS_PORT
    db: int = 0
    password: Secret | None = None
    external: bool = False
    """True when the URL came from the environment: `uxstream up` then starts no local server."""

    @classmethod
    def from_url(cls, url: str, *, external: bool = True) -> RedisSettings:
        parts = urlsplit(url)
        if parts.scheme != "redis" or not parts.hostname:
            raise SettingsError(f"{REDIS_URL_ENV}={url!r} is not a redis://host[:port][/db] URL")
        try:
            port = parts.port or 6379
            db = int(parts.path.lstrip("/") or 0)
        except ValueError:
            raise SettingsError(
                f"{REDIS_URL_ENV}={url!r}: the port and the database must be numbers"
            ) from None
        password = Secret(unquote(parts.password)) if parts.password else None
        return cls(host=parts.hostname, port=port, db=db, password=password, external=external)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RedisSettings:
        env = os.environ if env is None else env
        url = (env.get(REDIS_URL_ENV) or "").strip()
        return cls.from_url(url) if url else cls()

    def describe(self) -> str:
        """Where this points, without the password."""
        return f"redis://{self.host}:{self.port}/{self.db}"


@dataclass
class RedisClient:
    """One connection; opened on first use, re-opened after an error. Not thread-safe."""

    settings: RedisSettings
    timeout: float = 2.0
    _sock: socket.socket | None = field(default=None, init=False, repr=False)
    _buffer: bytes = field(default=b"", init=False, repr=False)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock, self._buffer = None, b""

    def __enter__(self) -> RedisClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(self, *args: str | int | bytes) -> RespValue:
        return self.pipeline([args])[0]

    def pipeline(self, commands: Sequence[Sequence[str | int | bytes]]) -> list[RespValue]:
        """Send every command, then read every reply. An error reply raises RedisError after all replies
        were read (the connection stays usable)."""
        if not commands:
            return []
        try:
            sock = self._connect()
            sock.sendall(b"".join(encode_command(c) for c in commands))
            replies = [self._read_reply() for _ in commands]
        except OSError as exc:
            self.close()
            raise RedisError(f"cannot reach Redis at {self.settings.describe()}: {exc}") from None
        errors = [r for r in replies if isinstance(r, _ErrorReply)]
        if errors:
            raise RedisError(f"Redis at {self.settings.describe()} answered: {errors[0].message}")
        return replies

    def _connect(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        sock = socket.create_connection((self.settings.host, self.settings.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock, self._buffer = sock, b""
        setup: list[Sequence[str | int | bytes]] = []
        if self.settings.password is not None:
            setup.append(("AUTH", self.settings.password.reveal()))
        if self.settings.db:
            setup.append(("SELECT", self.settings.db))
        if setup:
            sock.sendall(b"".join(encode_command(c) for c in setup))
            for _ in setup:
                reply = self._read_reply()
                if isinstance(reply, _ErrorReply):
                    self.close()
                    raise RedisError(
                        f"Redis at {self.settings.describe()} refused the login: {reply.message}"
                    )
        return sock

    def _read_line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            self._fill()
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        return line

    def _read_exact(self, size: int) -> bytes:
        while len(self._buffer) < size + 2:
            self._fill()
        data, self._buffer = self._buffer[:size], self._buffer[size + 2 :]
        return data

    def _fill(self) -> None:
        assert self._sock is not None
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by the server")
        self._buffer += chunk

    def _read_reply(self) -> RespValue:
        line = self._read_line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return _ErrorReply(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self._read_exact(size)
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self._read_reply() for _ in range(count)]
        raise ConnectionError(f"unexpected reply from the server: {line[:40]!r}")


class _ErrorReply(str):
    @property
    def message(self) -> str:
        return str(self)


def encode_command(args: Sequence[str | int | bytes]) -> bytes:
    """A command as a RESP array of bulk strings."""
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def ping(settings: RedisSettings, timeout: float = 2.0) -> tuple[bool, str]:
    try:
        with RedisClient(settings, timeout=timeout) as client:
            client.execute("PING")
    except RedisError as exc:
        return False, str(exc)
    return True, ""


# ------------------------------------------------------------------------------------------ local server


@dataclass(frozen=True)
class LocalRedis:
    """One local redis-server instance; the default is the shared dev/test one on 127.0.0.1:16379."""

    home: Path = field(default_factory=lambda: paths.LOCAL / "redis")
    host: str = "127.0.0.1"
    port: int = LOCAL_REDIS_PORT

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.home / "log" / "redis.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "redis.pid"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def settings(self) -> RedisSettings:
        return RedisSettings(host=self.host, port=self.port)

    def argv(self, binary: str) -> list[str]:
        """The server's command line: 127.0.0.1 only, no persistence (the counters expire in minutes)."""
        return [
            binary,
            "--bind", self.host, "--port", str(self.port), "--protected-mode", "yes",
            "--dir", str(self.data_dir), "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--logfile", "", "--databases", "16",
        ]  # fmt: skip

    def is_our_server(self, cmdline: list[str]) -> bool:
        return (
            bool(cmdline) and "redis-server" in Path(cmdline[0]).name and f":{self.port}" in " ".join(cmdline)
        )


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise UserError(
            'redis-server not found: the dashboard\'s "right now" tier needs it (`make setup` installs the '
            f"Debian package redis-server), or set {REDIS_URL_ENV} to an existing Redis"
        )
    return found


def ensure_redis(
    settings: RedisSettings | None = None,
    *,
    local: LocalRedis | None = None,
    timeout: float = 30.0,
    out: TextIO | None = None,
) -> None:
    """Start the local redis-server unless it already answers (idempotent); external settings only PING."""
    settings = RedisSettings.from_env() if settings is None else settings
    if settings.external and local is None:
        ok, reason = ping(settings)
        if not ok:
            raise UserError(f"the external Redis ({REDIS_URL_ENV}) does not answer: {reason}")
        common.stream(out).write(f"redis: using the external server at {settings.describe()}\n")
        return
    local = LocalRedis() if local is None else local
    with common.locked(local.home / ".lock"):
        pid = running_pid(local, cleanup=True)
        if pid is not None and ping(local.settings())[0]:
            common.stream(out).write(f"redis already running on {local.address} (pid {pid})\n")
            return
        if pid is None:
            common.ensure_port_free(
                local.host, local.port, "Redis", f"stop it or set {REDIS_URL_ENV} to use an external Redis"
            )
            binary = redis_server_binary()
            local.data_dir.mkdir(parents=True, exist_ok=True)
            progress = Progress(out, f"starting redis on {local.address}")
            pid = common.spawn_detached(local.argv(binary), log=local.log_file)
            common.write_pid(local.pid_file, pid)
        else:
            progress = Progress(out, f"redis (pid {pid}) is starting on {local.address}, waiting")
        started = pid

        def died() -> str | None:
            return None if common.process_alive(started) else "the server exited"

        try:
            common.wait_until(
                lambda: ping(local.settings(), 0.5)[0], timeout=timeout, progress=progress, failed=died
            )
        except WaitFailed as exc:
            progress.close()
            if common.process_alive(started):
                common.stop_process_group(started, timeout=5)
            common.remove_file(local.pid_file)
            raise common.failure(
                f"redis on {local.address} did not start", str(exc), local.log_file
            ) from None
        progress.done("ready")


def stop_redis(
    settings: RedisSettings | None = None, *, local: LocalRedis | None = None, out: TextIO | None = None
) -> None:
    settings = RedisSettings.from_env() if settings is None else settings
    if settings.external and local is None:
        common.stream(out).write(f"redis is external ({settings.describe()}): nothing to stop\n")
        return
    local = LocalRedis() if local is None else local
    with common.locked(local.home / ".lock"):
        pid = running_pid(local, cleanup=True)
        if pid is None:
            common.stream(out).write("redis is not running\n")
            return
        progress = Progress(out, f"stopping redis (pid {pid})")
        graceful = common.stop_process_group(pid, timeout=10)
        common.remove_file(local.pid_file)
        progress.done("stopped" if graceful else "killed (SIGKILL after timeout)")


def redis_status(settings: RedisSettings | None = None, *, local: LocalRedis | None = None) -> ServiceStatus:
    settings = RedisSettings.from_env() if settings is None else settings
    if settings.external and local is None:
        ok, reason = ping(settings)
        return ServiceStatus("redis", ok, f"{settings.host}:{settings.port}", external=True, detail=reason)
    local = LocalRedis() if local is None else local
    pid = running_pid(local, cleanup=False)
    running, detail = pid is not None, ""
    if running and not ping(local.settings())[0]:
        running, detail = False, "process alive but not answering"
    return ServiceStatus("redis", running, local.address, pid=pid, data_dir=local.data_dir, detail=detail)


def running_pid(local: LocalRedis, *, cleanup: bool) -> int | None:
    pid = common.read_pid(local.pid_file)
    if pid is not None:
        cmdline = common.process_cmdline(pid)
        if cmdline is not None and local.is_our_server(cmdline) and common.process_alive(pid):
            return pid
        if cleanup:
            common.remove_file(local.pid_file)
    return None
