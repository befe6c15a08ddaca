"""Submit, savepoint and upgrade uxstream jobs on a Flink cluster through `flink run -pym`.

A job is one of uxstream.run.JOBS (name → Python module with `main(argv)`). Submission runs Flink's CLI
from the PyFlink distribution against the cluster's REST address, detached:

    flink run -m 127.0.0.1:18081 -d -pym jobs.sessionize.job -pyfs <root>/jobs \
        -pyclientexec .venv/bin/python -pyexec .venv/bin/python [-s SAVEPOINT] -- [job options]

The job's own `main()` runs in the client and builds the same topology as on a MiniCluster
(jobs/common/flink_env.py sets python.executable/pythonpath and pipeline.jars = .cache/jars/flink-lib);
the cluster's config.yaml supplies everything the job does not set. The submitting environment gets the
cluster's state backend and state dir (UXSTREAM_FLINK_STATE_BACKEND / _STATE_DIR), so checkpoints land
where the cluster keeps them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from uxstream.cluster.config import LocalCluster
from uxstream.cluster.local import flink_home, script_env
from uxstream.cluster.rest import FlinkRest, Job
from uxstream.errors import UserError
from uxstream.paths import ROOT
from uxstream.run import JOBS

JOB_ID = re.compile(r"JobID ([0-9a-f]{32})")


@dataclass(frozen=True)
class Submission:
    job: str
    job_id: str
    output: str


def job_module(job: str) -> str:
    module = JOBS.get(job)
    if module is None:
        raise UserError(f"unknown job {job!r}: choose one of {', '.join(sorted(JOBS))}")
    return module


def submit_env(cluster: LocalCluster, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The client's environment: Flink's scripts + the cluster's state settings for the job's flink_env."""
    merged = {**script_env(cluster), **(env or {})}
    options = cluster.options
    merged.setdefault("UXSTREAM_FLINK_STATE_BACKEND", options.get("state.backend.type", "rocksdb"))
    merged.setdefault("UXSTREAM_FLINK_STATE_DIR", str(cluster.state_dir))
    # The jobs set their restart strategy themselves (flink_env): give them the cluster's, which outlasts
    # the detection of a lost TaskManager (a restart onto its slots fails until it is declared dead).
    if options.get("restart-strategy.type") == "exponential-delay":
        prefix = "restart-strategy.exponential-delay"
        merged.setdefault(
            "UXSTREAM_FLINK_RESTART_ATTEMPTS", options[f"{prefix}.attempts-before-reset-backoff"]
        )
        merged.setdefault(
            "UXSTREAM_FLINK_RESTART_DELAY_MS", str(duration_ms(options[f"{prefix}.initial-backoff"]))
        )
        merged.setdefault(
            "UXSTREAM_FLINK_RESTART_MAX_DELAY_MS", str(duration_ms(options[f"{prefix}.max-backoff"]))
        )
    return merged


_UNITS_MS = {"ms": 1, "s": 1000, "min": 60_000}


def duration_ms(text: str) -> int:
    """A Flink duration of the forms used in flink-conf/config.yaml ("500 ms", "5 s", "2 min") in ms."""
    number, _, unit = text.strip().partition(" ")
    if unit not in _UNITS_MS or not number.isdigit():
        raise UserError(f"{text!r}: write durations in flink-conf/config.yaml as '<n> ms|s|min'")
    return int(number) * _UNITS_MS[unit]


def run_command(
    cluster: LocalCluster, job: str, job_args: Sequence[str], savepoint: str | None = None
) -> list[str]:
    """The `flink run` command line that submits `job` (detached)."""
    module = job_module(job)
    address = cluster.rest_url.split("://", 1)[1]
    python = sys.executable
    command = [
        str(flink_home() / "bin" / "flink"),
        "run",
        "-m",
        address,
        "--detached",
        "-pym",
        module,
        "-pyfs",
        str(ROOT / "jobs"),
        "-pyclientexec",
        python,
        "-pyexec",
        python,
    ]
    if savepoint:
        command += ["--fromSavepoint", savepoint]
    return [*command, *job_args]


def submit(
    cluster: LocalCluster,
    job: str,
    job_args: Sequence[str] = (),
    savepoint: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 300.0,
) -> Submission:
    """Submit `job` (optionally restoring `savepoint`); return once the cluster accepted it."""
    command = run_command(cluster, job, job_args, savepoint)
    rest = FlinkRest(cluster.rest_url)
    if not rest.is_up():
        raise UserError(rest.not_up_message())
    running = rest.active_job(job)
    if running is not None:
        raise UserError(
            f"job {job!r} already runs on {cluster.rest_url} ({running.id}, {running.state}): "
            f"use `make upgrade JOB={job}` to replace it"
        )
    # The jobs' main() waits for the job's end (what a MiniCluster run needs); on a detached submission
    # the client has nothing left to do once the cluster acknowledged the JobID, so it is ended then.
    with subprocess.Popen(
        command,
        cwd=ROOT,
        env={**submit_env(cluster, env), "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as client:
        assert client.stdout is not None
        # A client that hangs without output is killed after timeout_s (its stdout then ends).
        watchdog = threading.Timer(timeout_s, _kill_group, (client.pid,))
        watchdog.start()
        lines: list[str] = []
        found: re.Match[str] | None = None
        try:
            for line in client.stdout:
                lines.append(line)
                found = JOB_ID.search(line)
                if found is not None:
                    break
        finally:
            watchdog.cancel()
        if client.poll() is None:
            os.killpg(client.pid, signal.SIGTERM)
        try:
            client.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(client.pid, signal.SIGKILL)
            client.wait()
        output = "".join(lines)
    if found is None:
        raise UserError(f"`flink run` did not submit {job} (exit {client.returncode}):\n{output[-6000:]}")
    _remember_args(cluster, job, job_args)
    return Submission(job, found.group(1), output)


def _args_file(cluster: LocalCluster, job: str) -> Path:
    return cluster.home / "submitted" / f"{job}.json"


def _remember_args(cluster: LocalCluster, job: str, job_args: Sequence[str]) -> None:
    path = _args_file(cluster, job)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(list(job_args)), encoding="utf-8")


def last_args(cluster: LocalCluster, job: str) -> list[str]:
    """The job options of the last submission of `job` through these commands ([] if none)."""
    path = _args_file(cluster, job)
    if not path.exists():
        return []
    args: list[str] = json.loads(path.read_text(encoding="utf-8"))
    return args


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def running_job(cluster: LocalCluster, job: str) -> Job:
    job_module(job)
    rest = FlinkRest(cluster.rest_url)
    found = rest.active_job(job)
    if found is None:
        raise UserError(
            f"job {job!r} is not running on {cluster.rest_url}: submit it with `make submit JOB={job}`"
        )
    return found


def savepoint(cluster: LocalCluster, job: str, target: Path | None = None) -> str:
    """Take a savepoint of the running `job`; it keeps running."""
    found = running_job(cluster, job)
    folder = target or cluster.savepoint_dir / job
    return FlinkRest(cluster.rest_url).savepoint(found.id, folder.resolve().as_uri())


def stop(cluster: LocalCluster, job: str, target: Path | None = None, drain: bool = False) -> str:
    """Stop the running `job` with a savepoint; return the savepoint's location."""
    found = running_job(cluster, job)
    folder = target or cluster.savepoint_dir / job
    rest = FlinkRest(cluster.rest_url)
    location = rest.stop_with_savepoint(found.id, folder.resolve().as_uri(), drain=drain)
    rest.wait_for_state(found.id, ("FINISHED", "CANCELED", "FAILED"), timeout_s=120)
    return location


def upgrade(
    cluster: LocalCluster,
    job: str,
    job_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    target: Path | None = None,
) -> tuple[str, Submission]:
    """Stop `job` with a savepoint and submit the (changed) job restoring from it, with `job_args` or,
    when none are given, the options of its last submission (the same topics, so the state fits)."""
    args = list(job_args) or last_args(cluster, job)
    location = stop(cluster, job, target)
    return location, submit(cluster, job, args, savepoint=location, env=env)


def wait_until_running(cluster: LocalCluster, job_id: str, timeout_s: float = 180.0) -> None:
    """Wait until every task of the job runs (sources read), not just the job."""
    rest = FlinkRest(cluster.rest_url)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        details = rest.job(job_id)
        if details["state"] in ("FAILED", "CANCELED", "FINISHED"):
            return
        vertices = details.get("vertices", [])
        if vertices and all(v["status"] in ("RUNNING", "FINISHED") for v in vertices):
            return
        time.sleep(0.5)
    raise UserError(f"job {job_id} did not start all its tasks within {timeout_s:.0f} s")
