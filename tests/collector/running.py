"""A real `uxstream collect` process for tests: free ports, its own topic, environment, and its log."""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from jobs.common.settings import KafkaSettings
from jobs.common.topics import ensure_topics
from uxstream.paths import ROOT
from uxstream.services.common import free_port

WRITE_KEY = "wk_test_shop_0123456789abcdef"
"""The write key of project `shop` in these tests."""
OTHER_KEY = "wk_test_blog_fedcba9876543210"
REVOKED_KEY = "wk_test_revoked_000000000000"
ORIGIN = "https://shop.example"


def write_keys_file(folder: Path) -> Path:
    path = folder / "write-keys.json"
    path.write_text(
        '{"keys": ['
        f'{{"project": "shop", "key": "{WRITE_KEY}"}}, '
        f'{{"project": "blog", "key": "{OTHER_KEY}"}}, '
        f'{{"project": "old", "key": "{REVOKED_KEY}", "revoked": true}}'
        "]}",
        encoding="utf-8",
    )
    return path


@dataclass
class RunningCollector:
    process: subprocess.Popen[bytes]
    port: int
    grpc_port: int
    topic: str
    log: Path
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def rss_kib(self) -> int:
        """Resident memory of the collector process (KiB, /proc)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def wait_ready(self, ready: bool = True, timeout: float = 30.0, verify: Any = True) -> None:
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the collector exited:\n{self.log_text()}"
            with contextlib.suppress(httpx.TransportError):
                status = httpx.get(f"{self.url}/readyz", timeout=2, verify=verify).status_code
                if (status == 200) == ready:
                    return
            time.sleep(0.1)
        raise AssertionError(f"/readyz still {status} after {timeout} s:\n{self.log_text()}")


@contextlib.contextmanager
def running_collector(
    kafka: KafkaSettings,
    folder: Path,
    topic: str,
    env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
    ready: bool = True,
    partitions: int = 1,
) -> Iterator[RunningCollector]:
    """`uxstream collect` on free ports producing to `topic` (created with `partitions`), the write keys
    of `write_keys_file`, and `env` on top; waits for /readyz (unless `ready` is False), then SIGTERM."""
    if ready:
        ensure_topics(kafka, {topic: partitions})
    full_env = {
        **os.environ,
        "UXSTREAM_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "UXSTREAM_COLLECTOR_WRITE_KEYS_FILE": str(write_keys_file(folder)),
        "UXSTREAM_COLLECTOR_ALLOWED_ORIGINS": ORIGIN,
        **(env or {}),
    }
    scheme = "https" if "--certfile" in args else "http"
    verify: Any = True
    if scheme == "https":
        verify = ssl.create_default_context(cafile=str(args[args.index("--certfile") + 1]))
    for attempt in range(3):
        # free_port picks outside the ephemeral range, but another test can still take the port first:
        # a start that fails on "address already in use" is retried on new ports.
        port, grpc_port = free_port(), free_port()
        log = folder / f"collector-{port}.log"
        command = [
            sys.executable, "-m", "uxstream.cli", "collect", "--topic", topic, "--port", str(port),
            "--grpc-port", str(grpc_port), *args,
        ]  # fmt: skip
        with log.open("wb") as out:
            process = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)
        collector = RunningCollector(process, port, grpc_port, topic, log, scheme)
        try:
            collector.wait_ready(ready=ready, verify=verify)
        except AssertionError:
            _stop(process)
            if attempt < 2 and "address already in use" in collector.log_text():
                continue
            raise
        break
    try:
        yield collector
    finally:
        _stop(collector.process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
