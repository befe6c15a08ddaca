"""The gap rule in the JVM (`session_events`, jvm/udf io.uxstream.udf.SessionEvents): a process table
function with keyed state and one event-time timer per user, run from PyFlink SQL on a MiniCluster
(tests/support/session_events.py). SEMANTICS.md, Sessions: a new session starts when the gap since the
user's previous event is greater than the session gap; a gap of exactly the session gap stays in the
session, whatever the watermark did in between."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from uxstream.paths import ROOT

pytestmark = [pytest.mark.services, pytest.mark.flink]

GAP = 30 * 60_000
BOUND = 5_000


def emitted(rows: list[tuple[str, int, int]], folder: Path) -> list[tuple[str, list[Any]]]:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.session_events", json.dumps(rows), str(GAP), str(BOUND),
         str(folder)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-5000:]
    return sorted((user, events) for user, events in map(json.loads, proc.stdout.splitlines()))


def test_gap_sessions_follow_the_gap_rule_exactly_whatever_the_watermark_did_in_between(
    tmp_path: Path,
) -> None:
    rows = [
        ("exact", 0, 1),
        # Another user moves the watermark to one millisecond before `exact`'s session could close ...
        ("other", GAP - 1 + BOUND, 9),
        # ... and `exact`'s next event, exactly one gap later, still belongs to the session.
        ("exact", GAP, 2),
        ("exact", 2 * GAP + 1, 3),  # one millisecond more than a gap: a new session
        # Out of order within the bound: one session, its events in event-time order.
        ("shuffled", 3 * GAP + 10_000, 5),
        ("shuffled", 3 * GAP + 6_000, 4),
        ("shuffled", 3 * GAP + 10_000 + GAP, 6),
    ]
    assert emitted(rows, tmp_path) == [
        ("exact", [1, 2]),
        ("exact", [3]),
        ("other", [9]),
        ("shuffled", [4, 5, 6]),
    ]
