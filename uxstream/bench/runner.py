"""Running one benchmark job (`uxstream.bench.jobrun` in a child process) and the scratch it needs.

`JobProcess` starts the child in its own process group, watches it with a `JobMonitor` and turns what
was seen into a run record (`run_record`): wall time, start-up (process launch → job up: every vertex
running and the source reading), the processing span (job up → every vertex's record counts final),
peak RSS and CPU of the process tree, the CPU other processes used meanwhile, checkpoints, per-vertex
load and (optionally) flame graphs.

Scratch resources are the harness's own and removed after use: fresh PostgreSQL databases
(`uxstream_bench_<id>`, migrated), dead-letter and latency topics, the Flink state folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from jobs.common.settings import PostgresSettings
from uxstream.bench.monitor import (
    JobMonitor,
    Observation,
    box_cpu_seconds,
    checkpoint_summary,
    cpu_in_span,
    flame_summary,
    processing_span,
    vertex_load,
)
from uxstream.db import connect, create_database, migrate
from uxstream.paths import ROOT
from uxstream.services.common import free_port


class BenchError(RuntimeError):
    """A benchmark step failed; the message says which and where its log is."""


@contextlib.contextmanager
def fresh_database(admin: PostgresSettings, name: str) -> Iterator[PostgresSettings]:
    """A new, migrated database `name` on the server of `admin`; dropped afterwards."""
    with connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    pg = create_database(admin, name)
    try:
        migrate(pg)
        yield pg
    finally:
        with connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclasses.dataclass(frozen=True)
class JobSpec:
    job: str
    """`sessionize` or `bare` (see uxstream.bench.jobrun)."""
    topic: str
    bounded: bool
    run_id: str
    work_dir: Path
    database: PostgresSettings | None = None
    checkpoint_interval_ms: int | None = None
    tumble_ms: int | None = None
    flink_options: tuple[str, ...] = ()
    profile_after_records: int | None = None
    """Take flame graphs of every vertex once the sources have read this many records (None: never)."""
    flame_samples: int = 100
    """Stack samples per flame graph, 20 ms apart."""
    env: tuple[tuple[str, str], ...] = ()
    """Extra environment of the job process (e.g. enrichment switched off for the A/B)."""

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic}.dlq.{self.run_id}"

    @property
    def kpi_topic(self) -> str:
        return f"{self.topic}.kpi.{self.run_id}"

    @property
    def funnel_topic(self) -> str:
        return f"{self.topic}.funnel.{self.run_id}"

    @property
    def output_topics(self) -> list[str]:
        """Every topic a run of this spec may create (the harness deletes them afterwards)."""
        return [self.dlq_topic, self.kpi_topic, self.funnel_topic]

    @property
    def log_path(self) -> Path:
        return self.work_dir / "logs" / f"{self.run_id}-{self.job}.log"


class JobProcess:
    """A benchmark job in a child process, watched from here."""

    def __init__(
        self, spec: JobSpec, *, poll_interval: float = 0.1, expected_records: int | None = None
    ) -> None:
        self.spec = spec
        self.expected_records = expected_records
        """What a bounded run reads in all: the monitor polls quietly in the middle of the run (`monitor.
        poll_interval`)."""
        self.port = free_port()
        self.poll_interval = poll_interval
        self.events: list[dict[str, Any]] = []
        self.proc: subprocess.Popen[str] | None = None
        self.monitor: JobMonitor | None = None
        self._reader: threading.Thread | None = None
        self._log: IO[str] | None = None
        self.launched = 0.0
        self.exited = 0.0
        self.finished_at: float | None = None
        """When the child said its job finished (its MiniCluster closes with its REST API then)."""
        self._cpu_start = (0.0, 0.0)
        self._cpu_end = (0.0, 0.0)
        self._load_start = (0.0, 0.0, 0.0)

    def command(self) -> list[str]:
        s = self.spec
        cmd = [
            sys.executable, "-m", "uxstream.bench.jobrun", "--job", s.job, "--input-topic", s.topic,
            "--dlq-topic", s.dlq_topic, "--kpi-topic", s.kpi_topic, "--funnel-topic", s.funnel_topic,
            "--rest-port", str(self.port),
            "--run-id", s.run_id, "--state-dir", str(s.work_dir / "flink"),
        ]  # fmt: skip
        if s.bounded:
            cmd.append("--bounded")
        if s.checkpoint_interval_ms:
            cmd += ["--checkpoint-interval-ms", str(s.checkpoint_interval_ms)]
        if s.tumble_ms:
            cmd += ["--tumble-ms", str(s.tumble_ms)]
        cmd += ["--flame-samples", str(s.flame_samples)]
        for option in s.flink_options:
            cmd += ["--flink-option", option]
        return cmd

    def start(self) -> None:
        s = self.spec
        s.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if s.database is not None:
            env["UXSTREAM_PG_DB"] = s.database.dbname
        env.update(s.env)
        self._log = open(s.log_path, "w", encoding="utf-8")  # noqa: SIM115 (closed in finish())
        self._load_start = os.getloadavg()
        self._cpu_start = box_cpu_seconds()
        self.launched = time.monotonic()
        self.proc = subprocess.Popen(
            self.command(), cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self._log, text=True,
            start_new_session=True,  # its own process group: stopped as a whole, by its id
        )  # fmt: skip
        self.monitor = JobMonitor(
            self.port,
            self.proc.pid,
            interval=self.poll_interval,
            profile_after_records=s.profile_after_records,
            expected_records=self.expected_records,
        )
        self.monitor.start()
        self._reader = threading.Thread(target=self._read_events, daemon=True)
        self._reader.start()

    def _read_events(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    if event.get("event") == "finished":
                        self.finished_at = time.monotonic()
                    self.events.append(event)

    @property
    def observation(self) -> Observation:
        assert self.monitor is not None
        return self.monitor.seen

    def wait_running(self, timeout: float) -> None:
        """Until every vertex runs; BenchError if the process ends or `timeout` passes first."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.observation.running_at is None:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.spec.job} exited before running: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise BenchError(f"{self.spec.job} not running after {timeout:.0f} s: {self.log_tail()}")
            time.sleep(0.2)

    def wait(self, timeout: float) -> int:
        """Until the process exits (killed after `timeout`); its exit code."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BenchError(
                f"{self.spec.job} still running after {timeout:.0f} s (killed): {self.log_tail()}"
            ) from None
        self._exited()
        return code

    def _exited(self) -> None:
        self.exited = time.monotonic()
        self._cpu_end = box_cpu_seconds()

    def cancel(self, timeout: float = 60.0) -> None:
        """Stop an unbounded run: cancel the Flink job, then wait; kill the process group if it hangs."""
        assert self.proc is not None and self.monitor is not None
        if self.proc.poll() is None and not self.monitor.cancel_job():
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._exited()

    def kill(self) -> None:
        """SIGKILL the child's process group (the child, its JVM and Python workers)."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def finish(self) -> Observation:
        """Stop watching; also kills anything of the process group that outlived the child."""
        assert self.proc is not None and self.monitor is not None
        seen = self.monitor.stop()
        if self._reader is not None:
            self._reader.join(timeout=5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # e.g. a JVM left behind by a crashed client
        if self._log is not None:
            self._log.close()
        return seen

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.spec.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            text = []
        return f"log {self.spec.log_path}:\n" + "\n".join(text[-lines:])

    def run_record(self, events: int, seen: Observation) -> dict[str, Any]:
        """The figures of a finished bounded run over `events` records."""
        # A bounded run reads its topic up to the end offsets of its start, so a job that finished read all
        # `events`: the span ends at the finish when the last poll came before the counts reached it.
        span = processing_span(seen, (self.finished_at, events) if self.finished_at is not None else None)
        if span is None:
            raise BenchError(f"{self.spec.job}: the monitor saw no record read: {self.log_tail()}")
        if span.source_records != events:
            raise BenchError(f"{self.spec.job}: read {span.source_records} records, expected {events}")
        finished = next((e for e in self.events if e.get("event") == "finished"), {})
        # The wall time ends at the finish (the process then still tears its MiniCluster down).
        exited = self.finished_at if self.finished_at is not None else self.exited
        wall = exited - self.launched
        startup = span.start - self.launched
        busy = self._cpu_end[0] - self._cpu_start[0]
        wall_rate = round(events / max(wall - startup, 1e-9), 1)
        # A tiny input on a loaded box can be read completely before the monitor's first poll sees the job:
        # no record is left to time in the span. Report the wall-clock rate then, and say so.
        measured = span.records > 0
        return {
            "wall_s": round(wall, 3),
            "startup_s": round(startup, 3),
            "running_s": round((seen.running_at or span.start) - self.launched, 3),
            "processing_s": round(span.seconds, 3),
            "end_observed": span.end_observed,
            "tail_s": round(exited - span.end, 3),
            "events_per_s": round(span.records / span.seconds, 1) if measured else wall_rate,
            "events_per_s_basis": "span"
            if measured
            else "wall_minus_startup (all read before the first poll)",
            "records_in_span": span.records,
            "events_per_s_wall_minus_startup": wall_rate,
            "net_runtime_s": finished.get("net_runtime_ms", 0) / 1000,
            "peak_rss_mb": round(seen.peak_rss / 2**20, 1),
            "job_cpu_s": round(seen.job_cpu_seconds, 2),
            "job_cores": round(seen.job_cpu_seconds / max(wall, 1e-9), 2),
            "box_busy_cores": round(busy / max(wall, 1e-9), 2),
            "others_cores": round(max(0.0, busy - seen.job_cpu_seconds) / max(wall, 1e-9), 2),
            "loadavg_before": [round(x, 2) for x in self._load_start],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "checkpoints": checkpoint_summary(seen.checkpoints),
            "cpu": cpu_in_span(seen, span),
            "vertices": vertex_load(seen, span),
            "flamegraphs": {
                seen.vertex_names.get(v, v): flame_summary(g) for v, g in seen.flamegraphs.items()
            },
            "profiled": self.spec.profile_after_records is not None,
        }


def run_bounded(spec: JobSpec, events: int, timeout: float) -> dict[str, Any]:
    """Run `spec` bounded to the end of its topic; its run record. Raises BenchError on failure."""
    job = JobProcess(spec, expected_records=events)
    job.start()
    try:
        code = job.wait(timeout)
    finally:
        seen = job.finish()
    if code != 0:
        raise BenchError(f"{spec.job} exited with {code}: {job.log_tail()}")
    return job.run_record(events, seen)
