"""The benchmark backlog's shape: a larger N spans more event time at the same density."""

from __future__ import annotations

from uxstream.bench.harness import BACKLOG_ARGS, BenchConfig, backlog_args


def _duration(args: tuple[str, ...]) -> str:
    return args[args.index("--duration") + 1]


def test_the_backlog_keeps_its_density_as_it_grows() -> None:
    assert _duration(backlog_args(10_000)) == "1h"  # smoke runs: at least an hour, as before
    assert _duration(backlog_args(300_000)) == "1h"  # the old default N: the same topic as before
    assert _duration(backlog_args(1_000_000)) == "200m"
    assert _duration(backlog_args(1_000_001)) == "201m"


def test_only_the_duration_depends_on_n() -> None:
    args = backlog_args(BenchConfig.events)
    i = args.index("--duration")
    assert args[:i] + args[i + 2 :] == BACKLOG_ARGS
    assert "--duration" not in BACKLOG_ARGS


def test_the_default_backlog_keeps_the_bare_pipeline_reading_for_over_15_seconds() -> None:
    # the bare pipeline reads ~55-70k events/s on the 2-core bench box (BENCHMARKS.md)
    assert BenchConfig.events / 70_000 > 15
