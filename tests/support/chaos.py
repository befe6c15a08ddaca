"""Recovery tests with a failure certain to come after a completed checkpoint (jobs/common/chaos.py).

The job reads a one-partition topic up to the stream's last offset (`--stop-at-offsets`). Only the first
half of the stream is on the topic when it starts; the second half is produced once a checkpoint is on
disk, and the job's chaos hook fails at its first call after that checkpoint. Without the hold-back, a fast
job could process every record before its first checkpoint completes, and no failure would be injected.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from jobs.common.flink_env import FlinkSettings, checkpoint_dir
from tests.support.jobs import RECOVERY, flink_log, restarts
from tests.support.streams import produce
from uxstream.paths import ROOT

CHECKPOINT_WAIT_S = 300
JOB_TIMEOUT_S = 600


def _state(folder: Path) -> Path:
    """The job's UXSTREAM_FLINK_STATE_DIR in a test folder."""
    return folder / "flink-state"


def _checkpoints(folder: Path, job_name: str) -> Path:
    """Where the job's checkpoints land (flink_env.checkpoint_dir, the one place that layout is defined)."""
    return checkpoint_dir(FlinkSettings(state_dir=_state(folder)), job_name)


def _start(command: Sequence[str], env: Mapping[str, str], state: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start a job in a process group of its own, its output appended to `log`."""
    with log.open("ab") as output:
        return subprocess.Popen(
            command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            env={**env, "UXSTREAM_FLINK_STATE_DIR": str(state)},
        )  # fmt: skip


def _wait_for_a_checkpoint(job: subprocess.Popen[bytes], checkpoints: Path, job_name: str, log: Path) -> None:
    deadline = time.monotonic() + CHECKPOINT_WAIT_S
    while not any(checkpoints.glob("*/chk-*/_metadata")) and job.poll() is None:
        assert time.monotonic() < deadline, f"{job_name}: no checkpoint within {CHECKPOINT_WAIT_S} s"
        time.sleep(0.05)
    assert job.poll() is None, f"{job_name} ended early:\n{log.read_text()[-5000:]}"


def _finish(job: subprocess.Popen[bytes], job_name: str, log: Path, timeout_s: float = JOB_TIMEOUT_S) -> None:
    try:
        returncode = job.wait(timeout=timeout_s)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert returncode == 0, f"{job_name} did not finish successfully:\n{log.read_text()[-5000:]}"


def run_in_phases(
    command: Sequence[str], env: Mapping[str, str], truth_lines: Sequence[str], topic: str, folder: Path,
    job_name: str, phases: Sequence[Callable[[int], None]], finish_within_s: float = JOB_TIMEOUT_S,
    weights: Sequence[int] = (),
) -> None:  # fmt: skip
    """Run the job `command` (without bounded options; checkpoints every few hundred ms) over
    `truth_lines` on `topic`, in a process group of its own, the stream cut into len(phases) + 1 parts
    (equal, or in proportion to `weights`): the first is on the topic when the job starts; once its first
    checkpoint is on disk, each phase runs (`phase(group)`: a fault, or a wait for a recovery) and then the
    next part is produced. Asserts the job then finished successfully within `finish_within_s`."""
    weights = weights or [1] * (len(phases) + 1)
    assert len(weights) == len(phases) + 1, "one weight per part: the first part and one after each phase"
    ends = list(itertools.accumulate(weights))
    cuts = [0, *(len(truth_lines) * end // ends[-1] for end in ends)]
    produce(truth_lines[: cuts[1]], topic, folder, "part-0", env)
    state, log = _state(folder), folder / f"{job_name}.log"
    job = _start([*command, "--stop-at-offsets", f"0:{len(truth_lines)}"], env, state, log)
    try:
        _wait_for_a_checkpoint(job, _checkpoints(folder, job_name), job_name, log)
        for i, phase in enumerate(phases, start=1):
            phase(job.pid)
            produce(truth_lines[cuts[i] : cuts[i + 1]], topic, folder, f"part-{i}", env)
    except BaseException:
        os.killpg(job.pid, signal.SIGKILL)  # it would wait for the rest of the stream
        raise
    _finish(job, job_name, log, finish_within_s)


def run_with_a_fault_after_a_checkpoint(
    command: Sequence[str], env: Mapping[str, str], truth_lines: Sequence[str], topic: str, folder: Path,
    job_name: str, fault: Callable[[int], None] = lambda process_group: None,
) -> None:  # fmt: skip
    """`run_in_phases` with one phase: the first half of the stream, then `fault(group)` once the first
    checkpoint is on disk, then the second half."""
    run_in_phases(command, env, truth_lines, topic, folder, job_name, [fault])


@contextlib.contextmanager
def restored_after_a_kill_at_the_first_checkpoint(
    command: Sequence[str], env: Mapping[str, str], truth_lines: Sequence[str], topic: str, folder: Path,
    job_name: str, before_restore: Callable[[], None] = lambda: None,
) -> Iterator[subprocess.Popen[bytes]]:  # fmt: skip
    """RELIABILITY T15 + T18: the unbounded job's whole process group (client, MiniCluster, Python workers)
    is SIGKILLed the moment its first checkpoint is complete, most likely before the sinks commit that
    checkpoint's transactions. Then the second half of the stream is produced, `before_restore()` runs,
    and the job starts again, unbounded, with `--restore latest` (a bounded source restored from a
    checkpoint never finishes: FLINK-31006). Yields the restored job, which is killed when the block
    ends."""
    half = len(truth_lines) // 2
    produce(truth_lines[:half], topic, folder, "first-half", env)
    state, log = _state(folder), folder / f"{job_name}.log"
    first = _start(command, env, state, log)
    try:
        _wait_for_a_checkpoint(first, _checkpoints(folder, job_name), job_name, log)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
    produce(truth_lines[half:], topic, folder, "second-half", env)
    before_restore()
    restored = _start([*command, "--restore", "latest"], env, state, log)
    try:
        yield restored
        assert restored.poll() is None, f"{job_name} stopped:\n{log.read_text()[-5000:]}"
    finally:
        if restored.poll() is None:
            os.killpg(restored.pid, signal.SIGKILL)
        restored.wait(timeout=60)


def run_failing_once_after_a_checkpoint(
    command: Sequence[str], env: Mapping[str, str], truth_lines: Sequence[str], topic: str, folder: Path,
    job_name: str,
) -> None:  # fmt: skip
    """`run_with_a_fault_after_a_checkpoint` where the fault is the job's chaos hook: it fails at its first
    call after the first checkpoint (jobs/common/chaos.py). Asserts the failure happened."""
    marker = folder / "failed-once"
    checkpoints = _checkpoints(folder, job_name)
    chaos = {"UXSTREAM_CHAOS_FAIL_ONCE": f"{marker}:1", "UXSTREAM_CHAOS_CHECKPOINTS": str(checkpoints)}
    run_with_a_fault_after_a_checkpoint(command, {**env, **chaos}, truth_lines, topic, folder, job_name)
    assert marker.exists(), "the injected failure did not happen: the test would prove nothing"


def python_workers(process_group: int) -> list[int]:
    """PIDs of PyFlink's Python UDF worker processes (process mode) in a process group."""
    listing = subprocess.run(
        ["ps", "-o", "pid=,args=", "-g", str(process_group)], capture_output=True, text=True, check=False
    ).stdout
    return [
        int(line.split()[0]) for line in listing.splitlines() if "pyflink.fn_execution.beam.beam_boot" in line
    ]


def _recovered(log_dir: Path, count: int) -> bool:
    """The MiniCluster log shows exactly `count` recoveries and a checkpoint completed after the last one
    (the restarted tasks, and their Python workers, are running again)."""
    log = flink_log(log_dir)
    return restarts(log) == count and "Completed checkpoint " in log[log.rfind(RECOVERY) :]


def wait_until_recovered(log_dir: Path, count: int, timeout_s: float = 180.0) -> None:
    """Wait until a job run with FLINK_LOG_DIR=log_dir shows recovery #`count` and a checkpoint after it;
    fails on more recoveries or after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not _recovered(log_dir, count):
        assert restarts(flink_log(log_dir)) <= count, (
            f"more than {count} recoveries: {flink_log(log_dir)[-3000:]}"
        )
        assert time.monotonic() < deadline, (
            f"no recovery #{count} with a checkpoint after it in {timeout_s:.0f} s"
        )
        time.sleep(0.2)
