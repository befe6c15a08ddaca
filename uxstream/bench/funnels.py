"""Throughput of the funnels job on the raw event stream: catching up a pre-loaded backlog, bounded.

    .venv/bin/python -m uxstream.bench.funnels [--events 300000] [--repeats 1]

Uses the benchmark harness's pieces unchanged: the same backlog topic as `uxstream bench`
(`harness.ensure_backlog`: one partition, generated with `harness.backlog_args`, re-used when present), a
fresh migrated database per run (`runner.fresh_database`) and the job watched from outside through the
MiniCluster's REST endpoint (`runner.run_bounded` + `monitor`), which gives the processing span (job up →
every vertex's counts final) and each vertex's records in. The job runs as `python -m uxstream.bench.jobrun
--job funnels` (exactly as `jobs.funnels.job.run` builds it, shipped definitions, a benchmark-only
transactional-id prefix and its own output topics).

Reported per run: events/s over the processing span (the harness's figure for sessionize), events/s as
N / (wall time − start-up), and the share of the raw events that reached Python: records in of the
vertex holding the Python `AttemptsFunction` (after the JVM filter and dedup) ÷ N. `make bench` measures
the same figures (the `funnels` job of `uxstream.bench.jobrun`) beside sessionize and the bare pipeline;
this command measures funnels alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from uxstream.bench.jobrun import FUNNELS_PYTHON_VERTEX


def measure(events: int, repeats: int, with_bare: bool) -> list[dict[str, Any]]:
    from jobs.common.settings import KafkaSettings, PostgresSettings
    from jobs.common.topics import delete_topics
    from uxstream.bench.harness import backlog_topic, ensure_backlog
    from uxstream.bench.runner import JobSpec, fresh_database, run_bounded

    kafka, admin = KafkaSettings.from_env(), PostgresSettings.from_env()
    topic = backlog_topic(events)
    ensure_backlog(kafka, topic, events, print)

    results = []
    for _ in range(repeats):
        run_id = uuid.uuid4().hex[:8]
        with (
            tempfile.TemporaryDirectory(prefix="uxstream-bench-funnels-") as work,
            fresh_database(admin, f"uxstream_bench_{run_id}") as pg,
        ):
            spec = JobSpec("funnels", topic, True, run_id, Path(work), database=pg)
            try:
                record = run_bounded(spec, events, 1800)
            finally:
                delete_topics(kafka, spec.output_topics)
        python_in = sum(v["records_in"] for v in record["vertices"] if FUNNELS_PYTHON_VERTEX in v["name"])
        result = {
            "events": events,
            "topic": topic,
            "events_per_s": record["events_per_s"],
            "events_per_s_wall_minus_startup": record["events_per_s_wall_minus_startup"],
            "wall_s": record["wall_s"],
            "startup_s": record["startup_s"],
            "processing_s": record["processing_s"],
            "reached_python": python_in,
            "reached_python_share": round(python_in / events, 5),
            "loadavg_before": record["loadavg_before"],
            "others_cores": record["others_cores"],
            "vertices": [
                {k: v[k] for k in ("name", "records_in", "records_out", "busy", "backpressured")}
                for v in record["vertices"]
            ],
        }
        if with_bare:
            # The reference under the same conditions: the harness's bare pipeline (decode step → blackhole).
            bare_id = uuid.uuid4().hex[:8]
            with tempfile.TemporaryDirectory(prefix="uxstream-bench-bare-") as work:
                try:
                    bare = run_bounded(JobSpec("bare", topic, True, bare_id, Path(work)), events, 1800)
                finally:
                    delete_topics(kafka, JobSpec("bare", topic, True, bare_id, Path(work)).output_topics)
            result["bare_events_per_s"] = bare["events_per_s"]
            result["funnels_over_bare"] = round(result["events_per_s"] / bare["events_per_s"], 3)
        print(json.dumps(result), flush=True)
        results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m uxstream.bench.funnels", description=__doc__.split("\n")[0]
    )
    from uxstream.bench.harness import BenchConfig

    parser.add_argument(
        "--events", type=int, default=BenchConfig.events, help="backlog size (default: make bench's)"
    )
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--no-bare", action="store_true", help="skip the bare-pipeline reference run after each funnels run"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    results = measure(args.events, args.repeats, not args.no_bare)
    for r in results:
        print(
            f"funnels catch-up: {r['events_per_s']:,.0f} events/s over the processing span "
            f"({r['events_per_s_wall_minus_startup']:,.0f} events/s as N / (wall - start-up)); "
            f"{r['reached_python']:,} of {r['events']:,} events reached Python "
            f"({r['reached_python_share']:.2%})"
        )
        if "bare_events_per_s" in r:
            print(
                f"  bare pipeline on the same backlog right after: {r['bare_events_per_s']:,.0f} events/s; "
                f"funnels / bare = {r['funnels_over_bare']:.2f}"
            )
    print(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
