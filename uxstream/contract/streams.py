"""Generated input topics that are made once and re-used: the benchmark backlog, the run-local demo stream.

A topic named after everything that determines its bytes (the generator options and, for the benchmark,
the generator's source) either holds exactly the expected records, or is (re-)created with
`uxstream generate`. Re-using it keeps re-runs cheap and their results identical.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from jobs.common import topics
from jobs.common.settings import KafkaSettings
from uxstream.errors import UserError
from uxstream.paths import ROOT


def content_topic(prefix: str, events: int, generator_args: Sequence[str], inputs: Sequence[str] = ()) -> str:
    """`<prefix>.<events>.<hash>`: the hash covers the generator options and the files under `inputs`."""
    digest = hashlib.sha256(json.dumps([events, *generator_args]).encode())
    for name in inputs:
        path = ROOT / name
        for file in sorted(path.rglob("*") if path.is_dir() else [path]):
            if file.is_file():
                digest.update(file.relative_to(ROOT).as_posix().encode() + b"\0" + file.read_bytes())
    return f"{prefix}.{events}.{digest.hexdigest()[:10]}"


def ensure_generated(
    kafka: KafkaSettings,
    topic: str,
    events: int,
    generator_args: Sequence[str],
    say: Callable[[str], None],
    *,
    truth: Path | None = None,
) -> bool:
    """`topic` holds exactly `events` records of `uxstream generate … generator_args`; True when it had to
    be generated now. `truth` keeps the ground-truth file (generated along with the topic)."""
    present = topics.end_offset(kafka, topic)
    deadline = time.monotonic() + 30
    while present is not None and present < events and time.monotonic() < deadline:
        time.sleep(3)  # another run may be filling it right now: wait while it grows
        previous, present = present, topics.end_offset(kafka, topic)
        if present == previous:
            break
    if present == events and (truth is None or truth.exists()):
        say(f"re-using {topic} ({events:,} records)")
        return False
    if topic in topics.partition_counts(kafka, [topic]):
        say(f"{topic} exists but does not hold exactly {events:,} records: re-creating it")
        topics.delete_topics(kafka, [topic])
        topics.wait_deleted(kafka, topic)
    say(f"generating {events:,} records into {topic}")
    output = ["--output", str(truth)] if truth is not None else []
    done = subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "generate", "--events", str(events), "--topic", topic,
         *generator_args, *output],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0 or topics.end_offset(kafka, topic) != events:
        raise UserError(
            f"could not generate {topic} (uxstream generate exit {done.returncode}): {done.stderr[-2000:]}"
        )
    return True
