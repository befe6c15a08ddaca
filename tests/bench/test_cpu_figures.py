"""The bench's CPU figures (issue 17 item 3): CPU of the job's processes over the processing span, by
kind of thread, per event processed in the span. Pure: samples in, figures out."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from uxstream.bench.harness import ua_cache
from uxstream.bench.monitor import (
    JobMonitor,
    Observation,
    Span,
    cpu_in_span,
    cpu_seconds,
    process_tree,
    thread_cpu_seconds,
    thread_kind,
)

JOB = thread_kind("Source: ux_even")


def test_jvm_threads_are_told_apart_by_name() -> None:
    assert thread_kind("GC Thread#0") == thread_kind("G1 Conc#0") == "garbage collection"
    assert thread_kind("C2 CompilerThre") == thread_kind("C1 CompilerThre") == "JIT compiler"
    assert thread_kind("Source: ux_even") == thread_kind("flink-pekko.act") == JOB


def test_cpu_over_the_span_is_interpolated_between_samples_and_divided_by_its_events() -> None:
    seen = Observation()
    seen.cpu_samples = [
        (10.0, {JOB: 1.0, "garbage collection": 0.1, "Python and other processes": 0.5}),
        (12.0, {JOB: 3.0, "garbage collection": 0.3, "Python and other processes": 0.5}),
        (14.0, {JOB: 7.0, "garbage collection": 0.5, "Python and other processes": 1.5}),
    ]
    # The span runs from 11 s to 13 s: job threads 2 → 5 s, GC 0.2 → 0.4 s, Python 0.5 → 1.0 s.
    span = Span(start=11.0, end=13.0, end_observed=True, source_records=100_000, records=100_000)
    figures = cpu_in_span(seen, span)
    assert figures["by_kind_s"] == {JOB: 3.0, "Python and other processes": 0.5, "garbage collection": 0.2}
    assert figures["cpu_s"] == 3.7
    assert figures["cores"] == 1.85
    assert figures["cpu_us_per_event"] == 37.0
    assert figures["job_thread_us_per_event"] == 30.0


def test_the_busiest_threads_are_listed_by_name_with_their_cpu_per_event() -> None:
    """Task threads are named after their vertex: the per-vertex CPU budget of a run."""
    seen = Observation()
    seen.thread_samples = [
        (10.0, {"OverAggregate[1": 1.0, "ProcessTableFun": 2.0, "GC Thread#0": 0.0}),
        (20.0, {"OverAggregate[1": 4.0, "ProcessTableFun": 3.0, "GC Thread#0": 0.0}),
    ]
    seen.cpu_samples = [(10.0, {JOB: 3.0}), (20.0, {JOB: 7.0})]
    span = Span(start=10.0, end=20.0, end_observed=True, source_records=50_000, records=50_000)
    assert cpu_in_span(seen, span)["by_thread_us_per_event"] == {
        "OverAggregate[1": 60.0,
        "ProcessTableFun": 20.0,
    }


def test_without_samples_or_events_there_is_no_figure() -> None:
    span = Span(start=1.0, end=2.0, end_observed=True, source_records=10, records=0)
    assert cpu_in_span(Observation(), span)["cpu_us_per_event"] is None


def test_the_threads_of_a_live_process_are_read_from_proc() -> None:
    threads = thread_cpu_seconds(os.getpid())
    assert threads and all(seconds >= 0 for seconds in threads.values())
    assert any(key.split(":", 1)[0] == str(os.getpid()) for key in threads)  # the main thread's tid


def test_the_verdict_cache_figure_sums_every_decode_operator_and_ignores_other_counters() -> None:
    record = {
        "vertices": [
            {"operators": {"0.Calc[3].uxstream.enrichment.ua_cache_hits": 900,
                           "0.Calc[3].uxstream.enrichment.ua_cache_misses": 60,
                           "0.Calc[3].numRecordsIn": 5_000}},
            {"operators": {"0.Calc[9].uxstream.enrichment.ua_cache_hits": 100,
                           "0.Calc[9].uxstream.enrichment.ua_cache_misses": 40}},
            {"operators": {}},
        ]
    }  # fmt: skip
    assert ua_cache(record) == {"hits": 1000, "misses": 100, "hit_rate": 0.909091}
    assert ua_cache({"vertices": [{"operators": {}}]})["hit_rate"] is None


def _until(found: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while (value := found()) is None or value is False:
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def test_the_jvm_stays_the_jvm_after_it_exits_so_its_cpu_never_moves_to_other_processes() -> None:
    """A child that burns CPU then exits while its parent lives on (the MiniCluster's JVM under the job's
    Python driver at the end of a bounded run): after the exit, the samples still count the child as the
    JVM, not as another process."""
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass\ntime.sleep(1.0)"
    parent = (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', {burn!r}])\n"
        "child.wait()\n"
        "time.sleep(60)\n"
    )
    root = subprocess.Popen([sys.executable, "-c", parent])
    try:
        monitor = JobMonitor(port=1, root_pid=root.pid)
        child = _until(lambda: next((p for p in process_tree(root.pid) if p != root.pid), None))
        _until(lambda: cpu_seconds(child) >= 0.5)  # the busiest process of the tree now
        monitor._sample_processes()
        first = time.monotonic()
        _until(lambda: process_tree(root.pid) == [root.pid])  # the child has exited
        time.sleep(max(0.0, 1.1 - (time.monotonic() - first)))  # thread samples come once a second
        monitor._sample_processes()
        assert len(monitor.seen.cpu_samples) == 2
        before, after = (kinds["Python and other processes"] for _, kinds in monitor.seen.cpu_samples)
        assert before < 0.3
        assert after - before < 0.1  # the parent's few ms, not the child's 0.6 s
    finally:
        root.kill()
        root.wait()
