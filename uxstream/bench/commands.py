"""`uxstream bench`: the benchmark harness (uxstream.bench.harness) on the command line."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from uxstream.errors import UserError


def _positive(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be positive")
    return value


def register(subparsers: Any) -> None:
    from uxstream.bench.harness import MEASUREMENTS

    p = subparsers.add_parser(
        "bench",
        help="measure throughput and latency of the jobs against a bare Flink SQL pipeline (minutes)",
        description=(
            "Pre-load a backlog of generated events, then measure (each repeated, median and min/max): raw "
            "Kafka consume rate, Avro decode rate, generator throughput, the bare Flink SQL pipeline and "
            "sessionize catching up on the backlog (events/s, start-up, checkpoints, peak memory, per-vertex "
            "load, flame graphs), and sessionize's latency with the generator producing in real time. "
            "Writes bench-results/<timestamp>.json and BENCHMARKS.md (full runs only; --smoke and --skip "
            "runs write under bench-results/tmp/ unless --results-dir is given)."
        ),
    )
    p.add_argument(
        "--smoke", action="store_true", help="tiny configuration that only checks the harness works"
    )
    p.add_argument("--events", type=_positive, help="backlog size N (default 2,500,000; smoke 10,000)")
    p.add_argument("--repeats", type=_positive, help="repeats per measurement (default 3; smoke 1)")
    p.add_argument("--generator-events", type=_positive, help="records per generator run (default 300,000)")
    p.add_argument("--latency-seconds", type=_positive, help="latency run length (default 180)")
    p.add_argument("--latency-rate", type=_positive, help="latency run events/s (default 5,000)")
    p.add_argument(
        "--latency-window-ms", type=_positive, help="KPI tumble in the latency run (default: 1 min)"
    )
    p.add_argument(
        "--checkpoint-interval-ms", type=_positive, help="bounded job runs (default: the job's own, 10 s)"
    )
    p.add_argument(
        "--flink-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra Flink option for every job run, e.g. pipeline.object-reuse=true (repeatable)",
    )
    p.add_argument(
        "--skip", default="", help=f"comma-separated measurements to leave out: {', '.join(MEASUREMENTS)}"
    )
    p.add_argument("--no-profile", action="store_true", help="no flame graphs in the first repeat")
    p.add_argument("--results-dir", type=Path, help="where the JSON goes (default bench-results/)")
    p.add_argument("--markdown", type=Path, help="where the markdown table goes (default BENCHMARKS.md)")
    p.set_defaults(handler=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    from uxstream.bench import harness
    from uxstream.bench.runner import BenchError

    skip = frozenset(s.strip() for s in args.skip.split(",") if s.strip())
    unknown = sorted(skip - set(harness.MEASUREMENTS))
    if unknown:
        raise UserError(f"--skip {', '.join(unknown)}: choose from {', '.join(harness.MEASUREMENTS)}")
    for option in args.flink_option:
        if "=" not in option:
            raise UserError(f"--flink-option {option!r}: expected KEY=VALUE")
    config = harness.SMOKE if args.smoke else harness.BenchConfig()
    changes: dict[str, Any] = {
        "events": args.events,
        "repeats": args.repeats,
        "generator_events": args.generator_events,
        "latency_seconds": args.latency_seconds,
        "latency_rate": args.latency_rate,
        "latency_tumble_ms": args.latency_window_ms,
        "checkpoint_interval_ms": args.checkpoint_interval_ms,
    }
    config = dataclasses.replace(
        config,
        **{k: v for k, v in changes.items() if v is not None},
        flink_options=tuple(args.flink_option),
        skip=skip,
        profile=config.profile and not args.no_profile,
    )
    command = " ".join(["uxstream", *sys.argv[1:]]) if sys.argv[1:2] == ["bench"] else "uxstream bench"
    try:
        harness.run(config, results_dir=args.results_dir, markdown=args.markdown, command=command)
    except BenchError as exc:
        print(f"uxstream bench: failed: {exc}", file=sys.stderr)
        return 1
    return 0
