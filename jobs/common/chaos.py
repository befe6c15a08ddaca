"""Fault injection for recovery tests (DESIGN.md §4: "proof is a test"). Inert unless configured.

`UXSTREAM_CHAOS_FAIL_ONCE=<marker file>:<n>` makes `maybe_fail(...)` raise once, at its n-th call in a
task, but only after the job has completed a checkpoint (a `chk-*/_metadata` below
`UXSTREAM_CHAOS_CHECKPOINTS`, when set) and only if the marker file does not exist yet; it creates the
marker first, so the restarted task runs through. The job must then recover from the checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_FAIL_ONCE = "UXSTREAM_CHAOS_FAIL_ONCE"
ENV_CHECKPOINTS = "UXSTREAM_CHAOS_CHECKPOINTS"


class InjectedFailure(RuntimeError):
    """The failure a chaos test asked for."""


class FailOnce:
    """Counts calls; raises `InjectedFailure` once per marker file, as configured in the environment."""

    def __init__(self) -> None:
        spec = os.environ.get(ENV_FAIL_ONCE, "")
        marker, _, count = spec.rpartition(":")
        self.marker = Path(marker) if marker else None
        self.at = int(count) if count.isdigit() else 0
        checkpoints = os.environ.get(ENV_CHECKPOINTS)
        self.checkpoints = Path(checkpoints) if checkpoints else None
        self.calls = 0

    def _checkpoint_completed(self) -> bool:
        return self.checkpoints is None or any(self.checkpoints.glob("*/chk-*/_metadata"))

    def __call__(self, where: str) -> None:
        if self.marker is None:
            return
        self.calls += 1
        if self.calls >= self.at and not self.marker.exists() and self._checkpoint_completed():
            self.marker.write_text(f"failed in {where} at call {self.calls}\n")
            raise InjectedFailure(f"uxstream chaos: injected failure in {where} at call {self.calls}")
