"""Watching a benchmark job from outside: Flink's REST API on the MiniCluster, and /proc.

A `JobMonitor` thread polls while the job process lives, every `interval` seconds while the start or the
end of the processing span may come and every `QUIET_INTERVAL_S` in between (`poll_interval`):

- `/jobs/overview` and `/jobs/<id>`: job state and each vertex's records in/out and accumulated
  busy / back-pressured / idle time (the records that flow tell when processing starts and ends);
- `/jobs/<id>/checkpoints` (about once a second): counts, duration summary and the history;
- `/jobs/<id>/vertices/<v>/subtasks/metrics`: each operator's numRecordsIn/Out inside a chained vertex;
- optionally, once a share of the input has been read, an on-CPU flame graph of every vertex
  (`rest.flamegraph.enabled`, stack samples of the task threads: the profile behind the bottleneck);
- /proc: resident memory (RSS) and CPU time of the job's whole process tree (Python client, the JVM that
  hosts the MiniCluster, Python workers in process mode).

Everything is best effort: the REST endpoint appears some seconds after the process starts and vanishes
with the MiniCluster when the job ends, so the last successful poll is what the harness gets.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

PAGE_SIZE: Final = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")
VERTEX_METRICS: Final = (
    "read-records",
    "write-records",
    "accumulated-busy-time",
    "accumulated-backpressured-time",
    "accumulated-idle-time",
)
OPERATOR_COUNTERS: Final = ("numRecordsIn", "numRecordsOut", "ua_cache_hits", "ua_cache_misses")
"""Per-operator metrics read every second (the last two: io.uxstream.udf.Enrichment's verdict cache)."""
MIN_SPAN_S: Final = 0.05
QUIET_INTERVAL_S: Final = 1.0
"""Seconds between polls in the middle of a bounded run (`poll_interval`). Every poll of `/jobs/<id>` makes
the MiniCluster fetch and serialize the metrics of every task (at most every 200 ms:
`metrics.fetcher.update-interval`, uxstream.bench.jobrun), CPU of the job's own JVM that the run's figures
count as the job's: 0.1-s polls cost sessionize ~6 µs/event (its many operators have many metrics)."""
ENDGAME_QUIET_INTERVALS: Final = 3
"""Polls go back to the fast interval once the sources' projected finish is this many quiet intervals
away, so the end of the span is timed to the fast interval."""


# ----------------------------------------------------------------------------------------------- /proc


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'
    return text[text.rfind(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants that are alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # after the comm: state(0) ppid(1) … utime(11) stime(12)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds of every thread of a process so far, keyed `<tid>:<thread name>` (the kernel keeps 15
    characters of a name: "GC Thread#0", "C2 CompilerThre", "Source: ux_even")."""
    found: dict[str, float] = {}
    try:
        tasks = os.scandir(f"/proc/{pid}/task")
    except OSError:
        return found
    with tasks:
        for task in tasks:
            try:
                text = Path(task.path, "stat").read_text()
            except OSError:
                continue
            name = text[text.find("(") + 1 : text.rfind(")")]
            fields = text[text.rfind(")") + 2 :].split()
            found[f"{task.name}:{name}"] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return found


THREAD_KINDS: Final = (
    ("garbage collection", ("GC Thread", "G1 ", "VM Periodic", "GC ")),
    ("JIT compiler", ("C1 Compiler", "C2 Compiler")),
)
"""JVM housekeeping threads by name prefix; every other JVM thread counts as the job's own work."""


THREADS_REPORTED: Final = 15
"""How many of the busiest JVM thread names `cpu_in_span` lists."""


def thread_kind(name: str) -> str:
    for kind, prefixes in THREAD_KINDS:
        if name.startswith(prefixes):
            return kind
    return "job threads (tasks, network, checkpoints)"


def box_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores (from /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already part of user time
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


# ------------------------------------------------------------------------------------------------ REST


class Rest:
    """A tiny client of Flink's REST API on 127.0.0.1:`port`."""

    def __init__(self, port: int, timeout: float = 3.0) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.timeout = timeout

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=self.timeout) as response:
            return json.loads(response.read())

    def patch(self, path: str) -> None:
        request = urllib.request.Request(self.base + path, method="PATCH")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            response.read()


REST_ERRORS: Final = (urllib.error.URLError, OSError, ValueError, KeyError, TypeError)
"""What a poll may hit while the endpoint starts, stops or answers 503/404 in between."""


# --------------------------------------------------------------------------------------------- samples


@dataclass(frozen=True)
class Sample:
    """One poll of the job's vertices."""

    at: float
    """time.monotonic() of the poll."""
    state: str
    up: bool
    """Every vertex was RUNNING or already FINISHED (deployed and initialized, e.g. its Python
    interpreter started)."""
    vertices: dict[str, dict[str, float]]
    """vertex id → VERTEX_METRICS."""

    def total(self, metric: str, ids: Iterable[str]) -> float:
        return sum(self.vertices.get(v, {}).get(metric, 0.0) for v in ids)

    def signature(self) -> tuple[float, ...]:
        """Records read and written by every vertex: unchanged once the job has processed everything."""
        return tuple(
            self.vertices[v].get(m, 0.0)
            for v in sorted(self.vertices)
            for m in ("read-records", "write-records")
        )


@dataclass
class Observation:
    """What a JobMonitor saw (read after `stop()`)."""

    job_id: str | None = None
    vertex_names: dict[str, str] = field(default_factory=dict)
    """vertex id → name, in topological order."""
    source_vertices: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    running_at: float | None = None
    """time.monotonic() of the first poll that saw every vertex RUNNING."""
    checkpoints: dict[str, Any] | None = None
    operators: dict[str, dict[str, float]] = field(default_factory=dict)
    """vertex id → {operator metric (e.g. `Calc[2].numRecordsIn`) → value}, last seen."""
    flamegraphs: dict[str, Any] = field(default_factory=dict)
    """vertex id → the flame graph tree (`data`) of on-CPU stack samples."""
    peak_rss: int = 0
    cpu_by_pid: dict[int, float] = field(default_factory=dict)
    cpu_samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    """(time.monotonic(), CPU seconds so far by kind: JVM thread kinds, "Python and other processes")."""
    thread_samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    """CPU seconds of the JVM's threads by thread name (Linux keeps 15 characters: a task thread's name
    starts with its vertex, e.g. `OverAggregate[1`), sampled with `cpu_samples`."""
    errors: int = 0

    @property
    def job_cpu_seconds(self) -> float:
        return sum(self.cpu_by_pid.values())


def poll_interval(
    seen: Observation, expected_records: int | None, fast: float, quiet: float = QUIET_INTERVAL_S
) -> float:
    """Seconds until the next poll: `fast` until the processing span has started (two samples in a row with
    records read, so its start is timed to `fast`), once the sources have read `expected_records` (the
    other vertices' counts settle then) and when, at the sources' current rate, that is at most
    ENDGAME_QUIET_INTERVALS × `quiet` away; `quiet` in between. Always `fast` when the run is unbounded
    (`expected_records` None)."""
    if expected_records is None or quiet <= fast:
        return fast
    samples = [s for s in seen.samples if s.vertices]
    if len(samples) < 2:
        return fast
    previous, last = samples[-2], samples[-1]
    sources = seen.source_vertices
    read, read_before = last.total("read-records", sources), previous.total("read-records", sources)
    if not last.up or read_before <= 0 or read >= expected_records:
        return fast
    rate = (read - read_before) / max(last.at - previous.at, 1e-9)
    if rate <= 0 or (expected_records - read) / rate <= ENDGAME_QUIET_INTERVALS * quiet:
        return fast
    return quiet


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if number == number else 0.0  # NaN → 0


class JobMonitor(threading.Thread):
    """Polls the job behind `port` and the process tree of `root_pid` until `stop()`."""

    def __init__(
        self,
        port: int,
        root_pid: int,
        *,
        interval: float = 0.2,
        profile_after_records: int | None = None,
        expected_records: int | None = None,
    ) -> None:
        super().__init__(name=f"bench-monitor-{port}", daemon=True)
        self.rest = Rest(port)
        self.root_pid = root_pid
        self.interval = interval
        self.profile_after_records = profile_after_records
        self.expected_records = expected_records
        """Records a bounded run reads in all (None: unbounded): with it, `poll_interval` polls quietly in
        the middle of the run."""
        self.seen = Observation()
        self._stop_event = threading.Event()
        self._operator_names: dict[str, list[str]] = {}
        self._flame_requested: dict[str, float] = {}
        self._last_slow = 0.0
        self._last_threads = 0.0
        self._threads: dict[str, float] = {}

    def stop(self) -> Observation:
        self._stop_event.set()
        self.join(timeout=10)
        return self.seen

    def cancel_job(self) -> bool:
        """Ask Flink to cancel the job (unbounded runs); False if the endpoint does not answer."""
        if self.seen.job_id is None:
            return False
        try:
            self.rest.patch(f"/jobs/{self.seen.job_id}?mode=cancel")
        except REST_ERRORS:
            return False
        return True

    def run(self) -> None:
        while not self._stop_event.is_set():
            started = time.monotonic()
            self._sample_processes()
            try:
                self._poll()
            except REST_ERRORS:
                self.seen.errors += 1
            wait = poll_interval(self.seen, self.expected_records, self.interval)
            self._stop_event.wait(max(0.0, wait - (time.monotonic() - started)))

    # ---------------------------------------------------------------------------------- per poll

    def _sample_processes(self) -> None:
        pids = process_tree(self.root_pid)
        self.seen.peak_rss = max(self.seen.peak_rss, sum(rss_bytes(p) for p in pids))
        for pid in pids:
            self.seen.cpu_by_pid[pid] = max(self.seen.cpu_by_pid.get(pid, 0.0), cpu_seconds(pid))
        now = time.monotonic()
        if now - self._last_threads < 1.0:
            return  # threads once a second: ~100 stat files each time
        self._last_threads = now
        # The MiniCluster's JVM: the busiest process seen, alive or not. (Among the living only, the Python
        # driver took its place once the JVM had exited, and the JVM's whole CPU time moved to "other
        # processes" in the samples after: 71 s, 59 µs/event, in one sessionize run whose span ended there.)
        jvm = max(self.seen.cpu_by_pid, key=lambda p: self.seen.cpu_by_pid[p])
        for key, seconds in thread_cpu_seconds(jvm).items():
            self._threads[key] = max(self._threads.get(key, 0.0), seconds)
        kinds: dict[str, float] = {}
        names: dict[str, float] = {}
        for key, seconds in self._threads.items():
            name = key.split(":", 1)[1]
            kind = thread_kind(name)
            kinds[kind] = kinds.get(kind, 0.0) + seconds
            names[name] = names.get(name, 0.0) + seconds
        others = sum(v for p, v in self.seen.cpu_by_pid.items() if p != jvm)
        kinds["Python and other processes"] = others
        self.seen.cpu_samples.append((now, kinds))
        self.seen.thread_samples.append((now, names))

    def _poll(self) -> None:
        seen = self.seen
        if seen.job_id is None:
            jobs = self.rest.get("/jobs/overview")["jobs"]
            if not jobs:
                return
            seen.job_id = str(jobs[0]["jid"])
        details = self.rest.get(f"/jobs/{seen.job_id}")
        now = time.monotonic()
        vertices = details.get("vertices", [])
        if not seen.vertex_names and vertices:
            seen.vertex_names = {v["id"]: v["name"] for v in vertices}
            seen.source_vertices = [v["id"] for v in vertices if str(v["name"]).startswith("Source")]
        metrics = {
            v["id"]: {m: _number(v.get("metrics", {}).get(m)) for m in VERTEX_METRICS} for v in vertices
        }
        all_running = bool(vertices) and all(v.get("status") == "RUNNING" for v in vertices)
        up = bool(vertices) and all(v.get("status") in ("RUNNING", "FINISHED") for v in vertices)
        seen.samples.append(Sample(now, str(details.get("state")), up, metrics))
        if all_running and seen.running_at is None:
            seen.running_at = now
        if now - self._last_slow >= 1.0 or details.get("state") != "RUNNING":
            self._last_slow = now
            self._poll_slow(all_running)
        if all_running:
            self._profile(seen.samples[-1])

    def _poll_slow(self, all_running: bool) -> None:
        seen = self.seen
        checkpoints = self.rest.get(f"/jobs/{seen.job_id}/checkpoints")
        if isinstance(checkpoints, dict) and "counts" in checkpoints:
            seen.checkpoints = checkpoints
        if not all_running:
            return
        for vertex in seen.vertex_names:
            names = self._operator_names.get(vertex)
            if names is None:
                listed = self.rest.get(f"/jobs/{seen.job_id}/vertices/{vertex}/subtasks/metrics")
                names = sorted(
                    str(m["id"])
                    for m in listed
                    if "." in str(m["id"]) and str(m["id"]).rsplit(".", 1)[1] in OPERATOR_COUNTERS
                )
                if not names:
                    continue  # metrics not registered yet: ask again next time
                self._operator_names[vertex] = names
            query = urllib.parse.quote(",".join(names), safe=",")
            values = self.rest.get(f"/jobs/{seen.job_id}/vertices/{vertex}/subtasks/metrics?get={query}")
            seen.operators[vertex] = {str(m["id"]): _number(m.get("sum")) for m in values}

    def _profile(self, sample: Sample) -> None:
        threshold = self.profile_after_records
        seen = self.seen
        if threshold is None or sample.total("read-records", seen.source_vertices) < threshold:
            return
        for vertex in seen.vertex_names:
            if vertex in seen.flamegraphs:
                continue
            requested = self._flame_requested.get(vertex)
            now = time.monotonic()
            if requested is not None and now - requested < 1.0:
                continue
            self._flame_requested[vertex] = now
            graph = self.rest.get(f"/jobs/{seen.job_id}/vertices/{vertex}/flamegraph?type=on_cpu")
            data = graph.get("data") if isinstance(graph, dict) else None
            if isinstance(data, dict) and _number(data.get("value")) > 0:
                seen.flamegraphs[vertex] = data


# -------------------------------------------------------------------------------------------- analysis


@dataclass(frozen=True)
class Span:
    """When the job processed its input, from the samples."""

    start: float
    """time.monotonic() when the job was up: every vertex running and the first record read (midway
    between the last poll where that was not so and the first where it was)."""
    end: float
    """time.monotonic(): every vertex's record counts reached their final values."""
    end_observed: bool
    """False when the job ended before a poll could see the counts settle (then `end` is the last poll,
    or the finish when the last poll had not seen every record: `processing_span`)."""
    source_records: int
    """Records the sources read in total."""
    records: int
    """Source records whose processing happened in the span: `source_records` × the share of its input
    that the least advanced vertex had still to read at `start` (a vertex that starts late, e.g. one
    with a Python operator, lets the sources read ahead into the buffers in front of it; that work is
    still done in the span, by the slower vertex)."""

    @property
    def seconds(self) -> float:
        """At least MIN_SPAN_S: a tiny input can go through between two polls."""
        return max(self.end - self.start, MIN_SPAN_S)


def processing_span(seen: Observation, finished: tuple[float, int] | None = None) -> Span | None:
    """From the job being up (all vertices running, a record read) to the last record counted, or None.

    `finished`: (time.monotonic(), records read in all) of a bounded run that finished. Its per-job
    MiniCluster closes with its REST API at the finish, so on a loaded box the last poll can come before
    the sources' counts reached their end (seen in CI: 8,866 of 10,000). A poll just after the finish can
    also show old counts: Flink's metric fetcher answers from its store and only then fetches anew, so
    after a quiet interval the answer is that interval old (CI: 3,960 of 10,000 in a poll the harness
    timed after the finish). Whenever the last counts fall short of a finished run's records, the span
    ends at the finish (`end_observed` False) and the share left at the start is taken from the sources
    alone."""
    samples = [s for s in seen.samples if s.vertices]
    sources = seen.source_vertices
    first = next((i for i, s in enumerate(samples) if s.up and s.total("read-records", sources) > 0), None)
    if first is None:
        # A tiny input on a loaded box can be read before the slowest vertex (a Python operator) is up, and
        # a bounded source is FINISHED, not RUNNING, afterwards: start at the first sample with reads then.
        first = next((i for i, s in enumerate(samples) if s.total("read-records", sources) > 0), None)
    if first is None:
        return None
    before = samples[first - 1] if first > 0 else None
    start = (before.at + samples[first].at) / 2 if before is not None else samples[first].at
    final_sample = samples[-1]
    if finished is not None:
        finished_at, finished_records = finished
        if final_sample.total("read-records", sources) < finished_records:
            at_start = samples[first].total("read-records", sources)
            if before is not None:
                at_start = (at_start + before.total("read-records", sources)) / 2
            remaining = 1 - at_start / finished_records
            return Span(start, finished_at, False, finished_records, round(finished_records * remaining))
    remaining = 0.0
    for vertex, metrics in final_sample.vertices.items():
        total_in = metrics.get("read-records", 0.0)
        if total_in <= 0:
            continue
        at_start = samples[first].vertices.get(vertex, {}).get("read-records", 0.0)
        if before is not None:
            at_start = (at_start + before.vertices.get(vertex, {}).get("read-records", 0.0)) / 2
        remaining = max(remaining, 1 - at_start / total_in)
    final = samples[-1].signature()
    settled = len(samples) - 1
    while settled > first and samples[settled - 1].signature() == final:
        settled -= 1
    observed = settled < len(samples) - 1
    end = (samples[settled - 1].at + samples[settled].at) / 2 if settled > first else samples[settled].at
    total = int(samples[-1].total("read-records", sources))
    return Span(start, end, observed, total, round(total * remaining))


def _cpu_at(samples: list[tuple[float, dict[str, float]]], at: float) -> dict[str, float]:
    """CPU seconds by kind at `at`, interpolated between the samples around it."""
    before = [s for s in samples if s[0] <= at]
    after = [s for s in samples if s[0] >= at]
    if not before:
        return dict(samples[0][1])
    if not after:
        return dict(samples[-1][1])
    (t0, a), (t1, b) = before[-1], after[0]
    share = 0.0 if t1 == t0 else (at - t0) / (t1 - t0)
    return {k: a.get(k, 0.0) + (b.get(k, 0.0) - a.get(k, 0.0)) * share for k in a.keys() | b.keys()}


def cpu_in_span(seen: Observation, span: Span) -> dict[str, Any]:
    """CPU the job's processes spent over the processing span, by kind, and per record processed in it
    (`cpu_us_per_event`: all kinds; the JVM's job threads alone are `job_thread_us_per_event`)."""
    samples = seen.cpu_samples
    if len(samples) < 2 or span.records <= 0:
        return {"cpu_us_per_event": None, "note": "too few CPU samples or no record in the span"}
    start, end = _cpu_at(samples, span.start), _cpu_at(samples, span.end)
    by_kind = {k: max(0.0, end.get(k, 0.0) - start.get(k, 0.0)) for k in start.keys() | end.keys()}
    total = sum(by_kind.values())
    job_threads = by_kind.get(thread_kind("task"), 0.0)
    threads = seen.thread_samples
    by_thread: dict[str, float] = {}
    if len(threads) >= 2:
        first, last = _cpu_at(threads, span.start), _cpu_at(threads, span.end)
        by_thread = {k: max(0.0, last.get(k, 0.0) - first.get(k, 0.0)) for k in first.keys() | last.keys()}
    top = sorted(by_thread.items(), key=lambda kv: -kv[1])[:THREADS_REPORTED]
    return {
        "cpu_s": round(total, 3),
        "cores": round(total / span.seconds, 2),
        "cpu_us_per_event": round(total / span.records * 1e6, 1),
        "job_thread_us_per_event": round(job_threads / span.records * 1e6, 1),
        "by_kind_s": {k: round(v, 3) for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])},
        # The busiest thread names and their CPU µs per event: task threads are the per-vertex budget.
        "by_thread_us_per_event": {k: round(v / span.records * 1e6, 1) for k, v in top if v > 0},
    }


def vertex_load(seen: Observation, span: Span) -> list[dict[str, Any]]:
    """Per vertex, over the processing span: records in/out, busy / back-pressured / idle share of time."""
    samples = [s for s in seen.samples if s.vertices]
    if not samples:
        return []
    first = min(samples, key=lambda s: abs(s.at - span.start))
    last = min(samples, key=lambda s: abs(s.at - span.end))
    seconds = max(last.at - first.at, 1e-9)
    rows = []
    for vertex, name in seen.vertex_names.items():
        a, b = first.vertices.get(vertex, {}), last.vertices.get(vertex, {})

        def share(metric: str, a: Mapping[str, float] = a, b: Mapping[str, float] = b) -> float:
            return round((b.get(metric, 0.0) - a.get(metric, 0.0)) / 1000 / seconds, 3)

        final = samples[-1].vertices.get(vertex, {})
        rows.append(
            {
                "vertex": vertex,
                "name": name,
                "records_in": int(final.get("read-records", 0)),
                "records_out": int(final.get("write-records", 0)),
                "busy": share("accumulated-busy-time"),
                "backpressured": share("accumulated-backpressured-time"),
                "idle": share("accumulated-idle-time"),
                "operators": {k: int(v) for k, v in sorted(seen.operators.get(vertex, {}).items())},
            }
        )
    return rows


def checkpoint_summary(checkpoints: Mapping[str, Any] | None) -> dict[str, Any]:
    """Completed checkpoints' durations and sizes (from the REST history; summary as a fallback)."""
    if not checkpoints:
        return {"completed": 0, "failed": 0}
    counts = checkpoints.get("counts", {})
    history = [c for c in checkpoints.get("history", []) if c.get("status") == "COMPLETED"]
    durations = sorted(int(c.get("end_to_end_duration", 0)) for c in history)
    sizes = [int(c.get("checkpointed_size", c.get("state_size", 0))) for c in history]
    summary: dict[str, Any] = {
        "completed": int(counts.get("completed", 0)),
        "failed": int(counts.get("failed", 0)),
        "durations_ms": durations,
    }
    if durations:
        summary.update(
            {
                "duration_ms_median": durations[len(durations) // 2],
                "duration_ms_max": durations[-1],
                "state_bytes_max": max(sizes),
            }
        )
    else:
        e2e = checkpoints.get("summary", {}).get("end_to_end_duration", {})
        if counts.get("completed"):
            summary.update(
                {"duration_ms_median": _number(e2e.get("p50")), "duration_ms_max": _number(e2e.get("max"))}
            )
    return summary


FLAME_CATEGORIES: Final = (
    ("record copies between chained operators", ("Serializer.copy",), ("Copying",)),
    ("serializing records to downstream tasks", ("RecordWriter",), ()),
    ("watermark handling", (".processWatermark", "emitWatermark"), ()),
    ("keyed state access", ("org.apache.flink.runtime.state.",), ()),
    ("Python UDF (pemja, thread mode)", ("pemja.",), ()),
    ("decode UDF (io.uxstream.udf)", ("io.uxstream.udf.",), ()),
    ("Kafka client", ("org.apache.kafka.",), ()),
    ("JDBC / PostgreSQL driver", ("org.postgresql.", "connector.jdbc."), ()),
    ("checkpointing", ("snapshotState", "checkpoint.Checkpoint"), ()),
)
"""(label, any of these substrings on the stack, and also all of these): shares of samples."""

_OPERATOR_METHODS: Final = (
    ".processElement",
    ".processElement1",
    ".processElement2",
    ".processWatermark",
    ".onEventTime",
    ".onProcessingTime",
    ".eval",
    ".emitNext",
)
OUTSIDE_OPERATORS: Final = "(outside operators: mailbox, network input, timers)"


def _operator(frame: str) -> str | None:
    """`Class.method` of a frame that is an operator's (or user function's) per-record entry point."""
    method = frame.split(":", 1)[0]
    if method.startswith("org.apache.flink.streaming.runtime."):  # task input/mailbox plumbing
        return None
    return method if method.endswith(_OPERATOR_METHODS) else None


def flame_summary(tree: Mapping[str, Any], top: int = 12) -> dict[str, Any]:
    """Where the on-CPU stack samples of one vertex (an operator chain) go.

    - `operators`: each sample is charged to the innermost operator entry point on its stack
      (processElement, processWatermark, onEventTime, a UDF's eval …): in a chain the downstream
      operators run inside the upstream one's `collect`, so the innermost is the one doing the work
      (including copying its output to the next operator);
    - `categories`: share of samples whose stack shows a kind of work (FLAME_CATEGORIES; they overlap);
    - `self`: the methods on CPU (innermost frames).
    """
    total = _number(tree.get("value"))
    self_counts: dict[str, float] = {}
    operators: dict[str, float] = {}
    categories: dict[str, float] = {}

    def walk(node: Mapping[str, Any], stack: tuple[str, ...]) -> None:
        name = str(node.get("name"))
        if name != "root":
            stack = (*stack, name)
        children = node.get("children") or []
        own = _number(node.get("value")) - sum(_number(c.get("value")) for c in children)
        if own > 0 and stack:
            self_counts[name] = self_counts.get(name, 0.0) + own
            owner = next((op for op in map(_operator, reversed(stack)) if op), OUTSIDE_OPERATORS)
            operators[owner] = operators.get(owner, 0.0) + own
            for label, any_of, all_of in FLAME_CATEGORIES:
                if any(p in f for f in stack for p in any_of) and all(
                    any(p in f for f in stack) for p in all_of
                ):
                    categories[label] = categories.get(label, 0.0) + own
        for child in children:
            walk(child, stack)

    walk(tree, ())
    if total <= 0:
        return {"samples": 0, "operators": [], "categories": [], "self": []}

    def ranked(counts: Mapping[str, float]) -> list[list[Any]]:
        items = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
        return [[name, round(count / total, 3)] for name, count in items]

    return {
        "samples": int(total),
        "operators": ranked(operators),
        "categories": ranked(categories),
        "self": ranked(self_counts),
    }
