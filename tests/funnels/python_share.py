"""How many of a generated stream's raw records reach the funnels job's Python, by the oracle of its JVM
filter: funnel steps only (before identity stitching) and steps plus the earliest link of each
(anonymous_id, user_id) pair (since). On-time first occurrences of human events, as the job routes them.

    .venv/bin/python -m uxstream.cli generate --events 300000 --seed 7 --partitions 1 --duration 1h \\
        --duplicate-fraction 0.01 --late-fraction 0.005 --malformed-fraction 0.001 \\
        --future-fraction 0.001 --login-share 0.1 --stealth-bot-share 0.0005 \\
        --dry-run --output /tmp/backlog.jsonl     # harness.backlog_args(300_000)
    .venv/bin/python -m tests.funnels.python_share /tmp/backlog.jsonl
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from jobs.common.enrichment import EnrichmentSettings, enrich
from jobs.common.oracle import ON_TIME, Arrival, arrivals, load
from jobs.funnels.definitions import load_funnels
from jobs.funnels.logic import relevant_event_names
from jobs.funnels.oracle import relevant_arrivals
from jobs.funnels.settings import DEFAULT_CONFIG


def reaching_python(arrived: Iterable[Arrival]) -> int:
    settings = EnrichmentSettings()
    return sum(
        1
        for a in arrived
        if a.kind == ON_TIME
        and a.occurrence == 1
        and not (enrich(a.event, settings)[1] and settings.exclude_bots)
    )


def main(path: str) -> None:
    truth = load(Path(path))
    raw = len(truth.events) + len(truth.dead_letters)
    names = relevant_event_names(load_funnels(DEFAULT_CONFIG))
    before = reaching_python(arrivals(truth.events, relevant=names))
    after = reaching_python(relevant_arrivals(truth.events, names))
    pairs = {
        (e.event["anonymous_id"], e.event["user_id"])
        for e in truth.events
        if e.event.get("user_id") and e.event.get("anonymous_id")
    }
    print(
        f"raw records {raw}; reaching Python: steps only {before} ({before / raw:.2%}), "
        f"steps and links {after} ({after / raw:.2%}); (anonymous_id, user_id) pairs {len(pairs)}"
    )


if __name__ == "__main__":
    main(sys.argv[1])
