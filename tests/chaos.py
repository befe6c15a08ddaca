"""Recovery tests with a failure certain to come after a completed checkpoint (jobs/common/chaos.py).

The job reads a one-partition topic up to the stream's last offset (`--stop-at-offsets`). Only the first
half of the stream is on the topic when it starts; the second half is produced once a checkpoint is on
disk, and the job's chaos hook fails at its first call after that checkpoint. Without the hold-back, a fast
job could process every record before its first checkpoint completes, and no failure would be injected.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from uxstream.paths import ROOT

CHECKPOINT_WAIT_S = 300
JOB_TIMEOUT_S = 600


def generate_truth(generator_args: Sequence[str], truth_file: Path) -> list[str]:
    """Generate a stream into `truth_file` only (no Kafka); its lines, in produce order."""
    subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "generate", *generator_args, "--partitions", "1",
         "--dry-run", "--output", str(truth_file)],
        cwd=ROOT, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return truth_file.read_text(encoding="utf-8").splitlines(keepends=True)


def produce(truth_lines: Sequence[str], topic: str, folder: Path, name: str) -> None:
    """Produce recorded ground-truth lines (`generate --output` format) to `topic`, byte for byte."""
    part = folder / f"{name}.jsonl"
    part.write_text("".join(truth_lines), encoding="utf-8")
    subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "replay", str(part), "--topic", topic, "--partitions", "1"],
        cwd=ROOT, check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def run_with_a_fault_after_a_checkpoint(
    command: Sequence[str], env: Mapping[str, str], truth_lines: Sequence[str], topic: str, folder: Path,
    job_name: str, fault: Callable[[int], None] = lambda process_group: None,
) -> None:  # fmt: skip
    """Run the job `command` (without bounded options; checkpoints every few hundred ms) over
    `truth_lines` on `topic` as the module docstring says, in a process group of its own; `fault(group)`
    runs once the first checkpoint is on disk, before the second half is produced. Asserts the job
    finished successfully."""
    half = len(truth_lines) // 2
    produce(truth_lines[:half], topic, folder, "first-half")
    state = folder / "flink-state"
    checkpoints = state / "checkpoints" / job_name
    log = folder / f"{job_name}.log"
    with log.open("wb") as output:
        job = subprocess.Popen(
            [*command, "--stop-at-offsets", f"0:{len(truth_lines)}"],
            cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            env={**env, "UXSTREAM_FLINK_STATE_DIR": str(state)},
        )  # fmt: skip
        try:
            deadline = time.monotonic() + CHECKPOINT_WAIT_S
            while not any(checkpoints.glob("*/chk-*/_metadata")) and job.poll() is None:
                assert time.monotonic() < deadline, f"{job_name}: no checkpoint within {CHECKPOINT_WAIT_S} s"
                time.sleep(0.2)
            assert job.poll() is None, f"{job_name} ended early:\n{log.read_text()[-5000:]}"
            fault(job.pid)
            produce(truth_lines[half:], topic, folder, "second-half")
            returncode = job.wait(timeout=JOB_TIMEOUT_S)
        finally:
            if job.poll() is None:
                os.killpg(job.pid, signal.SIGKILL)
    assert returncode == 0, f"{job_name} did not finish successfully:\n{log.read_text()[-5000:]}"


def run_failing_once_after_a_checkpoint(
    command: Sequence[str], env: Mapping[str, str], truth_lines: Sequence[str], topic: str, folder: Path,
    job_name: str,
) -> None:  # fmt: skip
    """`run_with_a_fault_after_a_checkpoint` where the fault is the job's chaos hook: it fails at its first
    call after the first checkpoint (jobs/common/chaos.py). Asserts the failure happened."""
    marker = folder / "failed-once"
    checkpoints = folder / "flink-state" / "checkpoints" / job_name
    chaos = {"UXSTREAM_CHAOS_FAIL_ONCE": f"{marker}:1", "UXSTREAM_CHAOS_CHECKPOINTS": str(checkpoints)}
    run_with_a_fault_after_a_checkpoint(command, {**env, **chaos}, truth_lines, topic, folder, job_name)
    assert marker.exists(), "the injected failure did not happen: the test would prove nothing"
