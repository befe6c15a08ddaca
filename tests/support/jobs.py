"""Running jobs in tests: a bounded run that must succeed, and the MiniCluster's log."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from uxstream.paths import ROOT

JOB_TIMEOUT_S = 600


def run_bounded(
    name: str, command: Sequence[str], env: Mapping[str, str], timeout_s: float = JOB_TIMEOUT_S
) -> None:
    """Run a job command to completion; its output tails are the failure message."""
    proc = subprocess.run(command, cwd=ROOT, env=dict(env), capture_output=True, text=True, timeout=timeout_s)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"


def flink_log(log_dir: Path) -> str:
    """The MiniCluster's log of a job run with FLINK_LOG_DIR=log_dir."""
    return "\n".join(p.read_text(errors="replace") for p in sorted(log_dir.glob("*.log")))


RECOVERY = "tasks will be restarted to recover"
"""What Flink's failure handler logs once per recovery: "N tasks will be restarted to recover the failed task
X" (a region failover: the job stays RUNNING) or "... to recover from a global failure" (the job goes
RUNNING → RESTARTING)."""


def restarts(log: str) -> int:
    """How many recoveries a MiniCluster log shows (RELIABILITY standard check 4: the restarts a scenario
    expects), whether Flink restarted a region or the whole job."""
    return log.count(RECOVERY)
