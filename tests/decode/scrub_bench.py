"""What scrubbing feedback comments costs the JVM decoder (README "Feedback"): decode speed of v3 feedback
events without a comment and with the generator's comments (most with an e-mail or a number), one core.

    .venv/bin/python -m tests.decode.scrub_bench

Prints one line per case: events decoded per second (the last half of 20 rounds over 10,000 payloads,
`DecodeCli --bench`). A measurement, never asserted."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from tests.decode.support import encode_v3, feedback_event, jvm_classpath
from uxstream.contract.generator import FEEDBACK_COMMENTS

ROUNDS = 20
EVENTS = 10_000


def bench(payloads: list[bytes]) -> float:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "payloads.hex"
        path.write_text("".join(p.hex() + "\n" for p in payloads), encoding="ascii")
        out = subprocess.run(
            ["java", "-cp", jvm_classpath(), "io.uxstream.udf.DecodeCli", "--bench", str(path), str(ROUNDS)],
            capture_output=True, text=True, check=True, timeout=600,
        ).stdout  # fmt: skip
    result = json.loads(out)
    return float(result["events"]) / float(result["seconds"])


def main() -> None:
    comments = [c for c in FEEDBACK_COMMENTS.items if c is not None]
    cases = {
        "no comment": [None],
        "generator comments": comments,
        "comments with PII only": [c for c in comments if "@" in c or any(ch.isdigit() for ch in c)],
    }
    for name, pool in cases.items():
        payloads = [
            encode_v3(feedback_event(event_id=f"e{i}", feedback_comment=pool[i % len(pool)]))
            for i in range(EVENTS)
        ]
        print(f"{name}: {bench(payloads):,.0f} events/s")


if __name__ == "__main__":
    main()
