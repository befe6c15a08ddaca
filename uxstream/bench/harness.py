"""`uxstream bench`: throughput and latency of the jobs against a bare Flink SQL pipeline and the machine.

One run (`make bench`, or `uxstream bench`; `--smoke` for the tiny CI configuration):

1. **Backlog**: a one-partition topic `ux.bench.backlog.<N>.<digest>` with N generated events (fixed seed
   and fault mix; the digest covers the generator options, the generator's code and the schemas). It is
   re-used when it already holds exactly N records, otherwise (re)generated.
2. **References**, each repeated R times: raw Kafka consume rate (confluent-kafka, one consumer, the whole
   backlog), Python Avro decode rate (`jobs.common.contract.decode`, one core, a sample of the backlog),
   the Java decoder on one core (the UDF's EventDecoder, JIT warm), and `uxstream generate` throughput
   (records/s producing to a scratch topic).
3. **Jobs**, bounded from the earliest offset, R times, interleaved (bare, sessionize, bare, …):
   the **bare pipeline** (sessionize's Kafka source and Java decode step → blackhole; uxstream.bench.jobrun),
   the **floor** run (the same source and sessionize's events view → exchange by bucket of event ids →
   one keyed-state update → exchange by device key → one keyed-state update per event: less than any
   exact sessionize design does) and **sessionize** and funnels on a fresh database each time. Per run:
   start-up (process launch → job up: every vertex running, the source reading), catch-up events/s = N /
   (job up → every vertex's record counts final), also N / (wall − start-up), peak RSS of the process
   tree, checkpoints, per-vertex busy / back-pressure shares and, in the first repeat, on-CPU flame
   graphs of every vertex. Each job's ratio to the bare pipeline; sessionize's to the floor.
4. **Latency** (uxstream.bench.latency): sessionize unbounded, the generator's events sent in real time;
   window end → kpi_1m row visible and produce → visible, p50/p95/p99.

Results: `bench-results/<UTC timestamp>.json` and BENCHMARKS.md (replaced by each full run). Medians with
min/max over the repeats, because the box is shared and noisy; the load average and the CPU used by other
processes during each job run are recorded next to the figures.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from jobs.common.settings import KafkaSettings, PostgresSettings
from jobs.common.topics import delete_topics
from uxstream.bench import environment
from uxstream.bench.jobrun import FUNNELS_PYTHON_VERTEX
from uxstream.bench.latency import LatencyConfig, measure_latency
from uxstream.bench.report import render_markdown
from uxstream.bench.runner import BenchError, JobSpec, fresh_database, run_bounded
from uxstream.contract import streams
from uxstream.errors import UserError
from uxstream.paths import ROOT

RESULTS_DIR: Final = ROOT / "bench-results"
MARKDOWN: Final = ROOT / "BENCHMARKS.md"
MEASUREMENTS: Final = (
    "kafka", "decode", "generator", "collector", "jobs", "enrichment", "latency", "anomaly",
)  # fmt: skip
"""What `--skip` can leave out (`jobs`: the bare pipeline, sessionize and funnels runs; `enrichment`: the
sessionize runs with enrichment off, user agents, geolocation and the behavioural bot rule, that the
enrichment cost is measured against)."""
VARIANTS: Final[dict[str, tuple[str, tuple[tuple[str, str], ...]]]] = {
    "bare": ("bare", ()),
    "floor": ("floor", ()),
    "sessionize": ("sessionize", ()),
    "sessionize_unenriched": (
        "sessionize",
        (
            ("UXSTREAM_ENRICH_USER_AGENT", "false"),
            ("UXSTREAM_GEOIP_DB", "off"),
            ("UXSTREAM_BOT_PAGE_VIEWS_PER_MINUTE", "0"),
        ),
    ),
    "funnels": ("funnels", ()),
}
"""A job run's name → the job and its extra environment (jobs/common/enrichment.py names the switches)."""

BACKLOG_ARGS: Final = (
    "--seed", "7", "--partitions", "1",
    "--duplicate-fraction", "0.01", "--late-fraction", "0.005", "--malformed-fraction", "0.001",
    "--future-fraction", "0.001", "--login-share", "0.1", "--stealth-bot-share", "0.0005",
)  # fmt: skip
"""Generator options of the backlog (and of the generator-throughput runs) besides its duration
(`backlog_args`). Logins mid-visit (a tenth of the identified users' visits) make sessionize and funnels
stitch identities; stealth bots (~1 % of the events) give the behavioural bot rule traffic to judge."""
BACKLOG_EVENTS_PER_MINUTE: Final = 5_000
"""Event-time density of the backlog: a larger N spans more time rather than packing more events into each
window and session (300,000 events = 1 hour, as before N grew)."""


def backlog_args(events: int) -> tuple[str, ...]:
    """The generator options of an `events`-record backlog: BACKLOG_ARGS and a duration at the backlog's
    density (at least an hour)."""
    minutes = max(60, math.ceil(events / BACKLOG_EVENTS_PER_MINUTE))
    return (*BACKLOG_ARGS[:4], "--duration", "1h" if minutes == 60 else f"{minutes}m", *BACKLOG_ARGS[4:])


BACKLOG_INPUTS: Final = ("uxstream/contract/generator.py", "schemas")
"""What determines the backlog's bytes besides its generator options (hashed into the topic name)."""
FLAME_SAMPLES: Final = {"bare": 50, "floor": 100, "sessionize": 400, "funnels": 200}
"""Stack samples per flame graph (20 ms apart): the bare pipeline is through its input in seconds."""
PROFILE_FROM: Final = {"bare": 0.05, "floor": 0.1, "sessionize": 0.25, "funnels": 0.25}
"""Share of the input read when the flame graphs are requested."""


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    events: int = 2_500_000
    """Backlog size N: large enough that the bare pipeline reads for at least 15 s (issue 17 item 3): at 300k
    it was through in 4-5 s, so JIT compilation and start-up noise dominated its figures; at 1.2M (sessions
    13-21) it read for 9.7-10.6 s once this VM ran it at 113-124k events/s, at 2M for 13.8-14.6 s at
    137-145k (session 21). 2.5M, 500 event-time minutes, keeps the bound up to ~165k events/s."""
    repeats: int = 3
    generator_events: int = 300_000
    decode_sample: int = 100_000
    latency_seconds: int = 180
    latency_rate: int = 2_000
    latency_warmup_s: int = 180
    latency_tumble_ms: int | None = None
    """None: sessionize's own 1-minute KPI window."""
    checkpoint_interval_ms: int | None = None
    """Bounded job runs; None: the job's own (UXSTREAM_FLINK_CHECKPOINT_INTERVAL_MS, default 10 s)."""
    latency_checkpoint_interval_ms: int | None = None
    anomaly_trials: int = 50
    """Alerts timed by the anomaly latency measurement (uxstream anomaly-latency)."""
    profile: bool = True
    """Flame graphs of every vertex in the first repeat of each job."""
    flink_options: tuple[str, ...] = ()
    """Extra Flink options (KEY=VALUE) for every job run, e.g. pipeline.object-reuse=true."""
    skip: frozenset[str] = frozenset()
    smoke: bool = False
    side_by_side: bool = False
    """Run the job runs (bare, sessionize, latency) concurrently: only to check the harness quickly."""

    @property
    def full(self) -> bool:
        """A complete, default-shaped run: the one that replaces BENCHMARKS.md."""
        return not self.smoke and not self.skip


SMOKE: Final = BenchConfig(
    events=10_000,
    repeats=1,
    generator_events=10_000,
    decode_sample=2_000,
    latency_seconds=8,
    latency_rate=1_000,
    latency_warmup_s=20,
    latency_tumble_ms=2_000,
    checkpoint_interval_ms=500,
    latency_checkpoint_interval_ms=1_000,
    anomaly_trials=3,
    profile=False,
    smoke=True,
    side_by_side=True,
)

REQUIRED_FIGURES: Final = (
    "kafka_consume.events_per_s.median",
    "python_decode.events_per_s.median",
    "java_decode.events_per_s.median",
    "generator.events_per_s.median",
    "bare.events_per_s.median",
    "bare.startup_s.median",
    "bare.peak_rss_mb.median",
    "sessionize.events_per_s.median",
    "sessionize.events_per_s_wall_minus_startup.median",
    "sessionize.startup_s.median",
    "sessionize.peak_rss_mb.median",
    "sessionize.checkpoint_ms.median",
    "sessionize.checkpoint_ms.max",
    "sessionize.ratio_to_bare.median",
    "floor.events_per_s.median",
    "floor.ratio_to_bare.median",
    "sessionize.ratio_to_floor.median",
    "sessionize_unenriched.events_per_s.median",
    "funnels.events_per_s.median",
    "funnels.ratio_to_bare.median",
    "funnels.reached_python_share.median",
    "latency.window_end_to_visible_ms.p50",
    "latency.window_end_to_visible_ms.p95",
    "latency.window_end_to_visible_ms.p99",
    "latency.produce_to_visible_ms.p50",
    "latency.produce_to_visible_ms.p95",
    "latency.produce_to_visible_ms.p99",
    "latency.checkpoints.duration_ms_median",
    "anomaly_latency.p50_ms",
    "anomaly_latency.p99_ms",
    "collector.http.events_per_s",
    "collector.grpc.events_per_s",
    "collector.http_half_load.p99_ms",
)
"""Dotted paths under `figures` that a complete run fills with positive numbers (the smoke test checks)."""


def figure(figures: dict[str, Any], path: str) -> Any:
    value: Any = figures
    for part in path.split("."):
        value = value[part]
    return value


def spread(values: Sequence[float], digits: int = 1) -> dict[str, Any]:
    """Median and min/max of repeated measurements, and the runs themselves."""
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "runs": [round(v, digits) for v in values],
    }


class Clock:
    """Progress lines with the elapsed time (the run takes minutes)."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def say(self, message: str) -> None:
        elapsed = int(time.monotonic() - self.started)
        load = os.getloadavg()[0]
        print(f"[{elapsed // 60:02d}:{elapsed % 60:02d} load {load:.1f}] {message}", flush=True)


# ------------------------------------------------------------------------------------------- backlog


def backlog_topic(events: int) -> str:
    return streams.content_topic("ux.bench.backlog", events, backlog_args(events), BACKLOG_INPUTS)


def ensure_backlog(kafka: KafkaSettings, topic: str, events: int, say: Callable[[str], None]) -> bool:
    """`topic` holds exactly `events` backlog records; True when it had to be generated."""
    try:
        return streams.ensure_generated(
            kafka, topic, events, backlog_args(events), lambda message: say(f"backlog: {message}")
        )
    except UserError as exc:
        raise BenchError(str(exc)) from None


# ---------------------------------------------------------------------------------------- references


def kafka_consume(kafka: KafkaSettings, topic: str, events: int) -> tuple[float, float]:
    """(records/s, MB/s) of one confluent-kafka consumer reading the whole backlog."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {**kafka.client_config(), "group.id": "uxstream-bench-consume", "enable.auto.commit": False}
    )
    try:
        started = time.perf_counter()
        consumer.assign([TopicPartition(topic, 0, 0)])
        count = size = 0
        while count < events:
            batch = consumer.consume(10_000, timeout=10)
            if not batch:
                break
            for message in batch:
                if message.error() is None:
                    count += 1
                    size += len(message.value() or b"")
        seconds = time.perf_counter() - started
    finally:
        consumer.close()
    if count != events:
        raise BenchError(f"kafka consume: read {count} of {events} records from {topic}")
    return count / seconds, size / seconds / 1e6


_GENERATED = re.compile(r"generated ([\d,]+) records .* in ([\d.]+) s: ([\d,]+) records/s")


def generator_rate(kafka: KafkaSettings, topic: str, events: int) -> float:
    """records/s of `uxstream generate` producing `events` backlog-like records (its own summary line)."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "uxstream.cli", "generate", "--events", str(events), "--topic", topic,
             *backlog_args(events)],
            cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
    finally:
        delete_topics(kafka, [topic])
    match = _GENERATED.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise BenchError(f"uxstream generate failed ({done.returncode}): {done.stderr[-2000:]}")
    return float(match[3].replace(",", ""))


# ---------------------------------------------------------------------------------------------- jobs


def job_figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = (
        "events_per_s",
        "events_per_s_wall_minus_startup",
        "startup_s",
        "processing_s",
        "wall_s",
        "peak_rss_mb",
    )
    result: dict[str, Any] = {k: spread([r[k] for r in runs]) for k in keys}
    cpu = [r["cpu"]["cpu_us_per_event"] for r in runs if r.get("cpu", {}).get("cpu_us_per_event") is not None]
    if cpu:
        result["cpu_us_per_event"] = spread(cpu)
    result["others_cores"] = spread([r["others_cores"] for r in runs], 2)
    durations = [d for r in runs for d in r["checkpoints"].get("durations_ms", [])]
    if durations:
        result["checkpoint_ms"] = {
            "median": statistics.median(durations),
            "max": max(durations),
            "count": len(durations),
            "state_bytes_max": max(r["checkpoints"].get("state_bytes_max", 0) for r in runs),
        }
    result["runs"] = runs
    return result


def ua_cache(record: dict[str, Any]) -> dict[str, Any]:
    """The user-agent verdict cache's hits and misses over a run (every decode operator's gauges summed)."""
    totals = {"ua_cache_hits": 0, "ua_cache_misses": 0}
    for vertex in record["vertices"]:
        for metric, value in vertex["operators"].items():
            kind = metric.rsplit(".", 1)[-1]
            if kind in totals:
                totals[kind] += int(value)
    hits, misses = totals["ua_cache_hits"], totals["ua_cache_misses"]
    rate = round(hits / (hits + misses), 6) if hits + misses else None
    return {"hits": hits, "misses": misses, "hit_rate": rate}


def bottleneck(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The busiest vertex of the (profiled) run and what its stack samples and neighbours say."""
    run = next((r for r in runs if r.get("flamegraphs")), runs[0])
    vertices = run["vertices"]
    busiest = max(vertices, key=lambda v: v["busy"])
    upstream_bp = max((v["backpressured"] for v in vertices if v is not busiest), default=0.0)
    flame = run.get("flamegraphs", {}).get(busiest["name"])
    summary = (
        f"busiest vertex: {busiest['name'][:120]} — busy {busiest['busy']:.0%} of the processing span "
        f"(back-pressured {busiest['backpressured']:.0%}, idle {busiest['idle']:.0%}); "
        f"the most back-pressured other vertex: {upstream_bp:.0%}"
    )
    if flame and flame.get("categories"):
        kinds = ", ".join(f"{label} {share:.0%}" for label, share in flame["categories"][:3])
        summary += f"; its on-CPU stack samples show: {kinds}"
    threads = (run.get("cpu") or {}).get("by_thread_us_per_event") or {}
    return {
        "summary": summary,
        "vertex": busiest,
        "flamegraph": flame,
        "all_vertices": vertices,
        "threads_us_per_event": threads,
    }


class Harness:
    def __init__(self, config: BenchConfig, results_dir: Path, markdown: Path | None, command: str) -> None:
        self.config = config
        self.results_dir = results_dir
        self.markdown = markdown
        self.command = command
        self.clock = Clock()
        self.stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.run_id = self.stamp.lower()
        self.work_dir = (
            results_dir / "tmp" / f"work-{self.stamp}" if results_dir == RESULTS_DIR else results_dir / "work"
        )
        self.kafka = KafkaSettings.from_env()
        self.pg = PostgresSettings.from_env()
        self.loads: list[tuple[float, float, float]] = []

    def say(self, message: str) -> None:
        self.loads.append(os.getloadavg())
        self.clock.say(message)

    def run(self) -> Path:
        cfg = self.config
        started_at = datetime.now(UTC)
        load_start = os.getloadavg()
        self.say(
            f"uxstream bench{' (smoke)' if cfg.smoke else ''}: N={cfg.events:,} events, "
            f"{cfg.repeats} repeat(s); results in {self.results_dir}"
        )
        topic = backlog_topic(cfg.events)
        generated = ensure_backlog(self.kafka, topic, cfg.events, self.say)
        figures: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        if "kafka" not in cfg.skip:
            figures["kafka_consume"] = self.references_kafka(topic)
        if "decode" not in cfg.skip:
            figures.update(self.references_decode(topic))
        if "generator" not in cfg.skip:
            figures["generator"] = self.references_generator()
        if "collector" not in cfg.skip:
            from uxstream.bench import collector

            seconds = 2.0 if cfg.smoke else 8.0
            figures["collector"] = collector.measure(self.kafka, self.run_id, self.say, seconds=seconds)
        with ThreadPoolExecutor(max_workers=3) if cfg.side_by_side else contextlib.nullcontext() as pool:
            latency = pool.submit(self.latency) if pool is not None and "latency" not in cfg.skip else None
            if "jobs" not in cfg.skip:
                figures.update(self.jobs(topic, pool))
                extra["bottleneck"] = bottleneck(figures["sessionize"]["runs"])
                extra["bottleneck_bare"] = bottleneck(figures["bare"]["runs"])
            if "latency" not in cfg.skip:
                figures["latency"] = latency.result() if latency is not None else self.latency()
        if "anomaly" not in cfg.skip:
            figures["anomaly_latency"] = self.anomaly_latency()
        result = {
            "schema": 1,
            "mode": "smoke" if cfg.smoke else ("full" if cfg.full else "partial"),
            "command": self.command,
            "started_at": started_at.isoformat(timespec="seconds"),
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "duration_s": round(time.monotonic() - self.clock.started, 1),
            "machine": {
                **environment.machine(),
                "loadavg_start": [round(x, 2) for x in load_start],
                "loadavg_end": [round(x, 2) for x in os.getloadavg()],
                "loadavg_1m_max": round(max(x[0] for x in self.loads), 2),
            },
            "versions": environment.versions(self.pg),
            "parameters": {
                **{
                    k: (sorted(v) if isinstance(v, frozenset) else v)
                    for k, v in dataclasses.asdict(cfg).items()
                },
                "backlog_topic": topic,
                "backlog_generated_now": generated,
                "backlog_generator_args": list(backlog_args(cfg.events)),
                "flink_parallelism": os.environ.get("UXSTREAM_FLINK_PARALLELISM", "1"),
                "python_mode": os.environ.get("UXSTREAM_FLINK_PYTHON_MODE", "thread"),
            },
            "figures": figures,
            **extra,
        }
        self.results_dir.mkdir(parents=True, exist_ok=True)
        path = self.results_dir / f"{self.stamp}.json"
        path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        if self.markdown is not None:
            self.markdown.write_text(render_markdown(result, path), encoding="utf-8")
        shutil.rmtree(self.work_dir, ignore_errors=True)
        self.say(f"done: {path}" + (f" and {self.markdown}" if self.markdown else ""))
        return path

    # ------------------------------------------------------------------------------------ measurements

    def references_kafka(self, topic: str) -> dict[str, Any]:
        rates, mbs = [], []
        for i in range(self.config.repeats):
            rate, mb = kafka_consume(self.kafka, topic, self.config.events)
            rates.append(rate)
            mbs.append(mb)
            self.say(f"kafka consume {i + 1}/{self.config.repeats}: {rate:,.0f} records/s ({mb:.0f} MB/s)")
        return {"events_per_s": spread(rates), "mb_per_s": spread(mbs)}

    def references_decode(self, topic: str) -> dict[str, Any]:
        from uxstream.bench import decode

        payloads = decode.sample_payloads(
            self.kafka, topic, min(self.config.decode_sample, self.config.events)
        )
        python, java = [], []
        for i in range(self.config.repeats):
            python.append(decode.python_core_rate(payloads, rounds=1))
            java.append(decode.java_core_rate(payloads, rounds=5))
            self.say(
                f"decode {i + 1}/{self.config.repeats} ({len(payloads):,} payloads, one core): "
                f"Python {python[-1]:,.0f} events/s, Java {java[-1]:,.0f} events/s"
            )
        return {
            "python_decode": {"events_per_s": spread(python), "sample": len(payloads)},
            "java_decode": {"events_per_s": spread(java), "sample": len(payloads)},
        }

    def references_generator(self) -> dict[str, Any]:
        rates = []
        for i in range(self.config.repeats):
            scratch = f"ux.bench.generator.{self.run_id}.{i}"
            rates.append(generator_rate(self.kafka, scratch, self.config.generator_events))
            self.say(f"generator {i + 1}/{self.config.repeats}: {rates[-1]:,.0f} records/s")
        return {"events_per_s": spread(rates), "events": self.config.generator_events}

    def job_run(self, name: str, repeat: int, topic: str) -> dict[str, Any]:
        """One bounded run of the variant `name` (VARIANTS) over the backlog; sessionize and funnels on a
        fresh database."""
        cfg = self.config
        job, env = VARIANTS[name]
        run_id = f"{self.run_id}-{name.replace('_', '-')}-{repeat}"
        spec = JobSpec(
            job=job,
            env=env,
            topic=topic,
            bounded=True,
            run_id=run_id,
            work_dir=self.work_dir,
            checkpoint_interval_ms=cfg.checkpoint_interval_ms,
            flink_options=cfg.flink_options,
            profile_after_records=int(cfg.events * PROFILE_FROM[job])
            if cfg.profile and repeat == 0 and name == job
            else None,
            flame_samples=FLAME_SAMPLES[job],
        )
        timeout = max(900.0, cfg.events / 500)
        self.say(f"{name} {repeat + 1}/{cfg.repeats}: running bounded over {cfg.events:,} records …")
        try:
            if job in ("sessionize", "funnels"):
                with fresh_database(self.pg, f"uxstream_bench_{run_id.replace('-', '_')}") as pg:
                    record = run_bounded(dataclasses.replace(spec, database=pg), cfg.events, timeout)
            else:
                record = run_bounded(spec, cfg.events, timeout)
        finally:
            delete_topics(self.kafka, spec.output_topics)
        if job == "funnels":
            python_in = sum(v["records_in"] for v in record["vertices"] if FUNNELS_PYTHON_VERTEX in v["name"])
            record["reached_python"] = python_in
            record["reached_python_share"] = python_in / cfg.events
        if job == "sessionize":
            record["ua_cache"] = ua_cache(record)
        self.say(
            f"{name} {repeat + 1}/{cfg.repeats}: {record['events_per_s']:,.0f} events/s catching up "
            f"({record['processing_s']:.1f} s), start-up {record['startup_s']:.1f} s, "
            f"wall {record['wall_s']:.1f} s, peak RSS {record['peak_rss_mb']:,.0f} MB, "
            f"{record['checkpoints']['completed']} checkpoint(s), "
            f"CPU {record['cpu'].get('cpu_us_per_event')} µs/event, "
            f"other processes {record['others_cores']:.1f} cores"
        )
        return record

    def jobs(self, topic: str, pool: ThreadPoolExecutor | None) -> dict[str, Any]:
        """bare, sessionize and funnels, `repeats` times each, alternating (or all at once with a pool)."""
        names = [n for n in VARIANTS if n != "sessionize_unenriched" or "enrichment" not in self.config.skip]
        runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        pending = [(job, i) for i in range(self.config.repeats) for job in runs]
        if pool is None:
            for job, i in pending:
                runs[job].append(self.job_run(job, i, topic))
        else:
            futures = [(job, pool.submit(self.job_run, job, i, topic)) for job, i in pending]
            for job, future in futures:
                runs[job].append(future.result())
        figures = {job: job_figures(r) for job, r in runs.items()}
        ratios = [
            s["events_per_s"] / b["events_per_s"]
            for s, b in zip(runs["sessionize"], runs["bare"], strict=True)
        ]
        figures["sessionize"]["ratio_to_bare"] = spread(ratios, 3)
        # the floor run (uxstream.bench.jobrun): less than any exact sessionize design pays per event
        pairs = zip(runs["floor"], runs["bare"], strict=True)
        figures["floor"]["ratio_to_bare"] = spread(
            [f["events_per_s"] / b["events_per_s"] for f, b in pairs], 3
        )
        pairs = zip(runs["sessionize"], runs["floor"], strict=True)
        figures["sessionize"]["ratio_to_floor"] = spread(
            [s["events_per_s"] / f["events_per_s"] for s, f in pairs], 3
        )
        pairs = zip(runs["funnels"], runs["bare"], strict=True)
        funnel_ratios = [f["events_per_s"] / b["events_per_s"] for f, b in pairs]
        figures["funnels"]["ratio_to_bare"] = spread(funnel_ratios, 3)
        if "sessionize_unenriched" in runs:
            pairs = zip(runs["sessionize"], runs["sessionize_unenriched"], strict=True)
            costs = [1 - s["events_per_s"] / u["events_per_s"] for s, u in pairs]
            figures["sessionize"]["enrichment_cost"] = spread(costs, 3)
        hit_rates = [r["ua_cache"]["hit_rate"] for r in runs["sessionize"]]
        hit_rates = [h for h in hit_rates if h is not None]
        if hit_rates:
            figures["sessionize"]["ua_cache_hit_rate"] = spread(hit_rates, 6)
        shares = [r["reached_python_share"] for r in runs["funnels"]]
        figures["funnels"]["reached_python_share"] = spread(shares, 5)
        return figures

    def anomaly_latency(self) -> dict[str, Any]:
        """The anomaly job unbounded on scratch topics: KPI window visible → alert row visible."""
        from uxstream.anomaly import measure_latency, percentile

        trials = self.config.anomaly_trials
        self.say(f"anomaly latency: timing {trials} alerts (the anomaly job unbounded, scratch topics) …")
        seconds = measure_latency(trials)
        result = {
            "trials": len(seconds),
            "p50_ms": _ms(percentile(seconds, 0.5)),
            "p95_ms": _ms(percentile(seconds, 0.95)),
            "p99_ms": _ms(percentile(seconds, 0.99)),
            "max_ms": _ms(max(seconds)),
        }
        self.say(
            f"anomaly latency: p50 {result['p50_ms']:.0f} ms, p95 {result['p95_ms']:.0f} ms, "
            f"p99 {result['p99_ms']:.0f} ms over {len(seconds)} alerts"
        )
        return result

    def latency(self) -> dict[str, Any]:
        cfg = self.config
        config = LatencyConfig(
            seconds=cfg.latency_seconds,
            rate=cfg.latency_rate,
            tumble_ms=cfg.latency_tumble_ms,
            warmup_s=cfg.latency_warmup_s,
            checkpoint_interval_ms=cfg.latency_checkpoint_interval_ms,
        )
        self.say("latency: starting sessionize unbounded on a fresh topic and database …")
        result = measure_latency(
            self.kafka, self.pg, config, run_id=self.run_id, work_dir=self.work_dir, say=self.say
        )
        end, produce = result["window_end_to_visible_ms"], result["produce_to_visible_ms"]
        self.say(
            f"latency: {result['rows']} kpi_1m rows in {len(result['windows'])} windows; "
            f"window end → visible p50/p95/p99 {end['p50']:.0f}/{end['p95']:.0f}/{end['p99']:.0f} ms, "
            f"produce → visible {produce['p50']:.0f}/{produce['p95']:.0f}/{produce['p99']:.0f} ms"
        )
        result["parameters"] = dataclasses.asdict(config)
        return result


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def run(config: BenchConfig, *, results_dir: Path | None, markdown: Path | None, command: str) -> Path:
    """Run the benchmark; returns the JSON results file."""
    if results_dir is None:
        results_dir = RESULTS_DIR if config.full else RESULTS_DIR / "tmp"
    if markdown is None:
        markdown = MARKDOWN if config.full and results_dir == RESULTS_DIR else results_dir / "BENCHMARKS.md"
    return Harness(config, results_dir, markdown, command).run()
