"""Helpers shared by the local services: ports, processes, pid files, waiting with progress, log tails.

Linux only (reads /proc), like the rest of the local tooling.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from uxstream import paths
from uxstream.errors import UserError

# ---------------------------------------------------------------------------------------------- output


def stream(out: TextIO | None) -> TextIO:
    """The stream progress goes to (looked up at call time so pytest's capture sees it)."""
    return sys.stdout if out is None else out


class Progress:
    """One progress line per operation: `starting kafka on 127.0.0.1:19092 ... ready in 7.2s`."""

    DOT_EVERY = 3.0

    def __init__(self, out: TextIO | None, message: str) -> None:
        self._out = stream(out)
        self._started = time.monotonic()
        self._last_dot = self._started
        self._open = True
        self._out.write(f"{message} ...")
        self._out.flush()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def tick(self) -> None:
        now = time.monotonic()
        if self._open and now - self._last_dot >= self.DOT_EVERY:
            self._last_dot = now
            self._out.write(".")
            self._out.flush()

    def done(self, word: str) -> float:
        """Ends the line with `<word> in <elapsed>s`; returns the elapsed seconds."""
        elapsed = self.elapsed
        self.close(f" {word} in {elapsed:.1f}s")
        return elapsed

    def close(self, tail: str = " failed") -> None:
        if self._open:
            self._open = False
            self._out.write(f"{tail}\n")
            self._out.flush()


# ----------------------------------------------------------------------------------------------- ports


def port_in_use(host: str, port: int) -> bool:
    """True when something holds `host:port` (listener or bound socket); TIME_WAIT leftovers don't count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now, for a test or benchmark instance.

    Picked at random *below* the kernel's ephemeral range: a port the OS hands out for `bind(0)` can be
    taken by any outgoing connection (a Kafka client, a browser) before the instance binds it, which
    failed a CI run with "address already in use". Falls back to the OS's choice."""
    low, _high = _ephemeral_range()
    rng = random.SystemRandom()
    for _ in range(64):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        if not port_accepts(host, port, timeout=0.2):
            return port
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a TCP connection to `host:port` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_owner(port: int) -> str | None:
    """`pid N (name)` of a process holding a TCP socket on `port`, when /proc tells (best effort)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] != "06":
                    inodes.add(fields[9])
    inodes.discard("0")
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in targets:
                    return f"pid {proc.name} {process_name(int(proc.name)) or '?'}"
        except OSError:
            continue
    return None


def ensure_port_free(host: str, port: int, what: str, hint: str) -> None:
    """UserError when `host:port` is taken by a process that is not ours (`what` names ours)."""
    if port_in_use(host, port):
        owner = port_owner(port)
        who = f"{owner}, " if owner else ""
        raise UserError(
            f"port {port} on {host} is already in use by another process ({who}not uxstream's {what}); {hint}"
        )


# ------------------------------------------------------------------------------------------- processes


def process_alive(pid: int) -> bool:
    """True when `pid` runs (zombies count as dead; our own exited children are reaped on the way)."""
    if pid <= 0:
        return False
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def process_cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def process_name(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def find_process(match: Callable[[list[str]], bool]) -> int | None:
    """The lowest pid whose command line satisfies `match` (used when a pid file got lost)."""
    for proc in sorted((p for p in Path("/proc").iterdir() if p.name.isdigit()), key=lambda p: int(p.name)):
        pid = int(proc.name)
        if pid == os.getpid():
            continue
        cmdline = process_cmdline(pid)
        if cmdline and match(cmdline) and process_alive(pid):
            return pid
    return None


def spawn_detached(argv: Sequence[str], *, log: Path, env: Mapping[str, str] | None = None) -> int:
    """Start `argv` (argv[0] a path) in its own session and process group (pid == pgid), stdin from
    /dev/null, stdout+stderr appended to `log`; it outlives this process. Returns its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    environ = dict(os.environ if env is None else env)
    return os.posix_spawn(argv[0], list(argv), environ, file_actions=actions, setsid=True)


def stop_process_group(pid: int, *, timeout: float, force: bool = False) -> bool:
    """SIGTERM the process group led by `pid` (SIGKILL right away with `force`), wait up to `timeout`,
    then SIGKILL. Returns False when SIGKILL was needed."""
    graceful = True

    def send(sig: signal.Signals) -> None:
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(pid, sig)

    send(signal.SIGKILL if force else signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() > deadline:
            graceful = False
            send(signal.SIGKILL)
            deadline = time.monotonic() + 10
        time.sleep(0.1)
    return graceful and not force


# ------------------------------------------------------------------------------------------- pid files


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def write_pid(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(path)


def remove_file(path: Path) -> None:
    path.unlink(missing_ok=True)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive inter-process lock (flock) on `path`: concurrent `up`/`down` calls (parallel test
    workers, two terminals) take turns instead of starting two servers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------------------- waiting, logs


class WaitFailed(Exception):
    """The service died or did not become ready in time; the message says which."""


def wait_until(
    ready: Callable[[], bool],
    *,
    timeout: float,
    progress: Progress | None = None,
    failed: Callable[[], str | None] | None = None,
    interval: float = 0.2,
) -> None:
    """Poll `ready()` until it returns True. `failed()` returning a message (say, the process exited)
    stops early. Raises WaitFailed."""
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return
        if failed is not None:
            reason = failed()
            if reason is not None:
                raise WaitFailed(reason)
        if time.monotonic() >= deadline:
            raise WaitFailed(f"not ready within {timeout:.0f}s")
        if progress is not None:
            progress.tick()
        time.sleep(interval)


def tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a text file ('' when missing)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def failure(what: str, reason: str, log: Path, lines: int = 20) -> UserError:
    """A UserError naming the log and quoting its tail."""
    text = tail(log, lines)
    quoted = "\n".join(f"    {line}" for line in text.splitlines()) if text else "    (log is empty)"
    return UserError(f"{what}: {reason}; log: {display_path(log)} (last {lines} lines below)\n{quoted}")


def display_path(path: Path) -> str:
    """`path` relative to the checkout when inside it (shorter messages)."""
    try:
        return str(path.relative_to(paths.ROOT))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------------- status


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    address: str
    pid: int | None = None
    data_dir: Path | None = None
    external: bool = False
    detail: str = ""

    def line(self) -> str:
        state = "running" if self.running else "stopped"
        if self.external:
            where = f"external {self.address}"
            return f"{self.name:<9} {state:<8} {where}" + (f"  ({self.detail})" if self.detail else "")
        pid = f"pid {self.pid}" if self.pid else "-"
        data = f"data {display_path(self.data_dir)}" if self.data_dir else ""
        text = f"{self.name:<9} {state:<8} {pid:<10} {self.address:<16} {data}".rstrip()
        return text + (f"  ({self.detail})" if self.detail else "")
