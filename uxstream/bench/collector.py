"""The collector's benchmark (`uxstream bench`, measurement `collector`; README "Benchmarks").

A real `uxstream collect` process pinned to one core (CPU 0 when the machine has more than one), the real
Kafka (a fresh 4-partition topic), and a load client in another process (pinned to the other cores):

- **HTTP**: keep-alive connections each sending POST /v1/batch with 20 events (client event ids) as fast as
  the answers come back: accepted events/s.
- **gRPC stream**: bidirectional streams of batches of 20, each keeping its credits' worth in flight.
- **p99 at half load**: HTTP requests sent open-loop at half the measured HTTP rate; each request's latency
  is counted from its scheduled send time (no coordinated omission): p50/p99/max.
- **gRPC ceiling**: the same gRPC load against the real gRPC servicer on a stand-in collector that
  validates and produces nothing (`NoWork`): what grpcio and the protocol cost alone.
- **CPU per event in process** (`cpu`, no network): the JSON and the gRPC event paths through
  `prepare_batch` with librdkafka's enqueue.

Also the collector's CPU seconds per phase (/proc: its Python thread and librdkafka's), so events per CPU
second can be read beside the wall rate. Measured and reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, cast

from jobs.common.settings import KafkaSettings
from jobs.common.topics import ensure_topics
from uxstream.paths import ROOT
from uxstream.services.common import free_port

BATCH: Final = 20
BENCH_KEY: Final = "wk_bench_0123456789abcdef0123456789"
T0: Final = 1_764_892_800_000
HTTP_CONNECTIONS: Final = 16
GRPC_STREAMS: Final = 4
_LENGTH: Final = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


def events(batch: int) -> list[dict[str, Any]]:
    common = {
        "event_type": "page_view", "event_name": "page_view", "page_path": "/pricing",
        "page_url": "https://shop.example/pricing", "device_type": "mobile", "browser": "Chrome 131",
        "country": "DE", "page_load_ms": 812.5, "properties": {"plan": "pro"},
    }  # fmt: skip
    return [
        {
            "event_id": f"bench-{batch}-{i}",
            "anonymous_id": f"anon-{(batch * 7 + i) % 5000}",
            "ts": T0 + batch * 50 + i,
            **common,
        }
        for i in range(BATCH)
    ]


def _cpus() -> tuple[set[int], set[int]]:
    """(the collector's core, the client's cores)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return set(cpus), set(cpus)
    return {cpus[0]}, set(cpus[1:])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------------------- the clients


def _http_requests(port: int, count: int = 500) -> list[bytes]:
    out = []
    for n in range(count):
        body = json.dumps(events(n), separators=(",", ":")).encode()
        head = (
            f"POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {BENCH_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out


async def _http_exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = _LENGTH.search(head)
    await reader.readexactly(int(length.group(1)) if length else 0)
    return int(head[9:12])


async def _http_load(port: int, seconds: float, rate: float | None) -> dict[str, Any]:
    """Closed loop (rate None: as fast as answers come) or open loop at `rate` requests/s."""
    requests = _http_requests(port)
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    start = time.perf_counter() + 0.2
    deadline = start + seconds

    async def connection(index: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        interval = HTTP_CONNECTIONS / rate if rate else 0.0
        scheduled = start + (index * interval / HTTP_CONNECTIONS if rate else 0.0)
        n = index
        while True:
            if rate:
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            sent = scheduled if rate else time.perf_counter()
            if sent >= deadline:
                break
            status = await _http_exchange(reader, writer, requests[n % len(requests)])
            statuses[status] = statuses.get(status, 0) + 1
            latencies.append(time.perf_counter() - sent)
            n += HTTP_CONNECTIONS
            scheduled += interval
        writer.close()

    await asyncio.gather(*(connection(i) for i in range(HTTP_CONNECTIONS)))
    elapsed = time.perf_counter() - start
    accepted = statuses.get(200, 0) * BATCH
    return {
        "statuses": statuses, "events_per_s": accepted / elapsed, "latencies": latencies, "seconds": elapsed,
    }  # fmt: skip


async def _grpc_load(target: str, seconds: float) -> dict[str, Any]:
    import grpc

    from uxstream.collector.grpc_server import collector_stub
    from uxstream.collector.proto import collector_pb2 as pb

    batches = [pb.Batch(batch_id=str(n), events=[pb.Event(**e) for e in events(n)]) for n in range(500)]
    acked = 0
    refused = 0
    start = time.perf_counter()
    deadline = start + seconds

    async def stream(index: int) -> None:
        nonlocal acked, refused
        async with grpc.aio.insecure_channel(target) as channel:
            call = collector_stub(channel).Stream(metadata=(("authorization", f"Bearer {BENCH_KEY}"),))
            hello = await call.read()
            window = asyncio.Semaphore(hello.credits)

            async def write() -> None:
                n = index
                while time.perf_counter() < deadline:
                    await window.acquire()
                    await call.write(batches[n % len(batches)])
                    n += GRPC_STREAMS
                await call.done_writing()

            writer = asyncio.create_task(write())
            while True:
                ack = await call.read()
                if ack is grpc.aio.EOF:
                    break
                if ack.status == 200:
                    acked += ack.accepted
                else:
                    refused += 1
                window.release()
            await writer

    await asyncio.gather(*(stream(i) for i in range(GRPC_STREAMS)))
    elapsed = time.perf_counter() - start
    return {"events_per_s": acked / elapsed, "refused_batches": refused, "seconds": elapsed}


# ------------------------------------------------------------------------------- CPU per event (no I/O)


def generator_batches(batch: int, batches: int, seed: int = 7) -> list[bytes]:
    """JSON bodies of `batches` batches of `batch` generator events, as a client sends them (no
    received_at or ip: the collector sets those)."""
    from uxstream.contract.generator import Generator, GeneratorConfig

    config = GeneratorConfig(events=batch * batches, seed=seed, start_ms=T0, partitions=1)
    records = [json.loads("{" + r[4])["event"] for r in Generator(config).records() if r[4]]
    for record in records:
        record.pop("received_at", None)
        record.pop("ip", None)
    return [json.dumps(records[i : i + batch]).encode() for i in range(0, len(records), batch)]


def _cpu_us(run: Callable[[], int], repeat: int) -> float:
    """Process CPU µs per item of `run()` (which returns how many items it handled), best of `repeat`."""
    best = math.inf
    for _ in range(repeat):
        started = time.process_time()
        items = run()
        best = min(best, (time.process_time() - started) / max(items, 1) * 1e6)
    return best


def cpu_profile(batch: int = 200, batches: int = 25, repeat: int = 5) -> dict[str, Any]:
    """CPU µs per event of each stage of POST /v1/batch after the HTTP layer, in this process (no
    network): JSON parsing (`parse_batch`), validation (`prepare`), framed Avro (`encode_record` + the
    record-size rule), the producer call (librdkafka's enqueue into a producer with the collector's
    settings and no reachable broker: no delivery, so the poll thread's callbacks are not counted), and
    the whole path (`parse_batch` + `service.prepare_batch`, the loop `Collector.ingest` runs)."""
    from confluent_kafka import Producer

    from uxstream.collector import logic
    from uxstream.collector.service import BatchResult, prepare_batch

    limits = logic.BodyLimits(10**8, 10**8, 1000, 10**6)
    bodies = generator_batches(batch, batches)
    parsed = [cast(list[Any], logic.parse_batch(body, limits)) for body in bodies]
    events = [event for one in parsed for event in one]
    received_at, ip, frame = T0 + 3_600_000, "203.0.113.0", b"\x00\x00\x00\x00\x02"
    prepared = [
        logic.prepare(e, project="bench", received_at=received_at, client_ip=ip, truncate=False)
        for e in events
    ]
    accepted = [p for p in prepared if isinstance(p, logic.Accepted)]
    values = [(a.key, frame + logic.encode_record(a.record)) for a in accepted]
    producer = Producer({
        "bootstrap.servers": "127.0.0.1:9", "enable.idempotence": True, "acks": "all", "linger.ms": 5,
        "compression.type": "lz4", "partitioner": "murmur2_random", "log_level": 0,
        "queue.buffering.max.messages": 2_000_000, "queue.buffering.max.kbytes": 4_194_304,
    })  # fmt: skip

    def on_delivery(error: Any, message: Any) -> None:
        pass

    def parse() -> int:
        return sum(len(cast(list[Any], logic.parse_batch(body, limits))) for body in bodies)

    def validate() -> int:
        for event in events:
            logic.prepare(event, project="bench", received_at=received_at, client_ip=ip, truncate=False)
        return len(events)

    def encode() -> int:
        for one in accepted:
            logic.size_problem(frame + logic.encode_record(one.record))
        return len(accepted)

    def produce() -> int:
        for key, value in values:
            producer.produce("ux.bench.cpu", value, key, on_delivery=on_delivery, timestamp=received_at)
        producer.purge()
        return len(values)

    def pipeline() -> int:
        count = 0
        for body in bodies:
            batch_events = cast(list[Any], logic.parse_batch(body, limits))
            result = BatchResult()
            prepare_batch(
                batch_events, result, project="bench", received_at=received_at, client_ip=ip,
                do_not_track=False, header=frame,
                produce=lambda key, value: producer.produce(
                    "ux.bench.cpu", value, key, on_delivery=on_delivery, timestamp=received_at
                ),
            )  # fmt: skip
            count += len(batch_events)
        producer.purge()
        return count

    from uxstream.collector.grpc_server import prepare_proto
    from uxstream.collector.proto import collector_pb2 as pb

    carried = {field.name for field in pb.Event.DESCRIPTOR.fields}
    proto_batches = [
        [pb.Event(**{k: v for k, v in e.items() if k in carried and v is not None}) for e in one]
        for one in parsed
    ]

    def grpc_pipeline() -> int:
        count = 0
        for batch_events in proto_batches:
            result = BatchResult()
            prepare_batch(
                batch_events, result, project="bench", received_at=received_at, client_ip=ip,
                do_not_track=False, header=frame,
                produce=lambda key, value: producer.produce(
                    "ux.bench.cpu", value, key, on_delivery=on_delivery, timestamp=received_at
                ),
                prepare_one=prepare_proto,
            )  # fmt: skip
            count += len(batch_events)
        producer.purge()
        return count

    stages = {
        name: round(_cpu_us(run, repeat), 2)
        for name, run in (("parse", parse), ("prepare", validate), ("encode", encode), ("produce", produce))
    }
    total = _cpu_us(pipeline, repeat)
    grpc_total = _cpu_us(grpc_pipeline, repeat)
    return {
        "batch_events": batch, "events": len(events), "accepted": len(accepted),
        "us_per_event": stages, "pipeline_us_per_event": round(total, 2),
        "events_per_cpu_s": round(1e6 / total),
        "grpc_pipeline_us_per_event": round(grpc_total, 2),
    }  # fmt: skip


class NoWork:
    """A stand-in for `Collector` behind the real gRPC servicer (`grpc_server.CollectorService`) that
    validates, encodes and produces nothing: every event is answered accepted at once. What the gRPC
    endpoint costs by itself (grpcio, Protocol Buffers, the credits, the acks), so the bench can show the
    ceiling any per-event work is added to. Never used outside the bench."""

    def __init__(self) -> None:
        from uxstream.collector.metrics import Metrics
        from uxstream.collector.settings import CollectorSettings

        self.settings = CollectorSettings.from_env({"UXSTREAM_COLLECTOR_WRITE_KEYS": f"bench:{BENCH_KEY}"})
        self.metrics = Metrics()

    def authenticate(self, credential: str | None) -> Any:
        from uxstream.collector.service import Principal

        return Principal("bench", "key:bench")

    async def ingest(self, events: Any, principal: Any, client_ip: Any, *args: Any, **kw: Any) -> Any:
        from uxstream.collector.service import Outcome

        results = [{"status": "accepted", "event_id": event.event_id} for event in events]
        return Outcome(results, len(results), 0, 0)


def _ceiling_server(port: int, seconds: float) -> int:
    """`grpc-ceiling`: the gRPC endpoint on `NoWork` for `seconds` (the caller pins the process)."""
    from uxstream.collector.grpc_server import GrpcServer

    server = GrpcServer(cast(Any, NoWork()), "127.0.0.1", port)
    server.start()
    print("ready", flush=True)
    time.sleep(seconds)
    server.stop(1.0)
    return 0


def client_main(argv: list[str]) -> int:
    """`python -m uxstream.bench.collector http|grpc …`: one load phase, its result as JSON on stdout."""
    parser = argparse.ArgumentParser(prog="uxstream.bench.collector")
    parser.add_argument("mode", choices=("http", "grpc", "cpu", "grpc-ceiling"))
    parser.add_argument("--port", type=int, help="the collector's port (http, grpc)")
    parser.add_argument("--batch", type=int, default=200, help="cpu: events per batch")
    parser.add_argument("--batches", type=int, default=25, help="cpu: batches per round")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=float, help="HTTP requests/s (open loop); default: closed loop")
    args = parser.parse_args(argv)
    if args.mode == "cpu":
        print(json.dumps(cpu_profile(args.batch, args.batches)))
        return 0
    if args.port is None:
        parser.error("--port is required for http, grpc and grpc-ceiling")
    if args.mode == "grpc-ceiling":
        return _ceiling_server(args.port, args.seconds)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    if args.mode == "http":
        result = asyncio.run(_http_load(args.port, args.seconds, args.rate))
        latencies = sorted(result.pop("latencies"))
        if latencies:
            result["p50_ms"] = statistics.median(latencies) * 1000
            result["p99_ms"] = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
            result["max_ms"] = latencies[-1] * 1000
            result["requests"] = len(latencies)
    else:
        result = asyncio.run(_grpc_load(f"127.0.0.1:{args.port}", args.seconds))
    print(json.dumps(result))
    return 0


# ------------------------------------------------------------------------------------------ the run


@contextlib.contextmanager
def _collector(
    kafka: KafkaSettings, topic: str, cpus: set[int], folder: Path
) -> Iterator[tuple[int, int, int]]:
    port, grpc_port = free_port(), free_port()
    env = {
        **os.environ,
        "UXSTREAM_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "UXSTREAM_COLLECTOR_WRITE_KEYS": f"bench:{BENCH_KEY}",
        "UXSTREAM_COLLECTOR_RATE_PER_KEY": "0",
        "UXSTREAM_COLLECTOR_RATE_PER_IP": "0",
    }
    log = (folder / "collector.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "uxstream.cli", "collect", "--topic", topic, "--port", str(port),
         "--grpc-port", str(grpc_port), "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
    )  # fmt: skip
    try:
        import httpx

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            log_tail = (folder / "collector.log").read_text()[-2000:]
            raise RuntimeError(f"the collector did not get ready: {log_tail}")
        yield process.pid, port, grpc_port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _grpc_ceiling(server_cpus: set[int], client_cpus: set[int], seconds: float) -> dict[str, Any]:
    """The gRPC load against the endpoint on `NoWork` (module docstring), pinned like the collector."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uxstream.bench.collector", "grpc-ceiling", "--port", str(port),
         "--seconds", str(seconds + 60)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, server_cpus),
    )  # fmt: skip
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise RuntimeError("the gRPC ceiling server did not start")
        cpu = _cpu_seconds(server.pid)
        result = _client(["grpc", "--port", str(port), "--seconds", str(seconds)], client_cpus)
        result["server_cpu_s"] = _cpu_seconds(server.pid) - cpu
        accepted = result["events_per_s"] * result["seconds"]
        result["events_per_cpu_s"] = accepted / max(result["server_cpu_s"], 1e-9)
        return result
    finally:
        server.kill()
        server.wait(10)


def _client(args: list[str], cpus: set[int]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "uxstream.bench.collector", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"collector bench client failed: {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def measure(
    kafka: KafkaSettings, run_id: str, say: Callable[[str], None], seconds: float = 8.0
) -> dict[str, Any]:
    """Every collector figure of one run (see the module docstring)."""
    topic = f"ux.bench.collector.{run_id}"
    ensure_topics(kafka, {topic: 4})
    server_cpus, client_cpus = _cpus()
    figures: dict[str, Any] = {
        "batch_events": BATCH, "http_connections": HTTP_CONNECTIONS, "grpc_streams": GRPC_STREAMS,
        "seconds": seconds, "collector_cpus": sorted(server_cpus), "client_cpus": sorted(client_cpus),
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as work, _collector(kafka, topic, server_cpus, Path(work)) as running:
        pid, port, grpc_port = running
        _client(["http", "--port", str(port), "--seconds", "2"], client_cpus)  # warm-up
        for name, args in (
            ("http", ["http", "--port", str(port), "--seconds", str(seconds)]),
            ("grpc", ["grpc", "--port", str(grpc_port), "--seconds", str(seconds)]),
        ):
            cpu = _cpu_seconds(pid)
            result = _client(args, client_cpus)
            result["collector_cpu_s"] = _cpu_seconds(pid) - cpu
            accepted = result["events_per_s"] * result["seconds"]
            result["events_per_cpu_s"] = accepted / max(result["collector_cpu_s"], 1e-9)
            figures[name] = result
            say(f"collector {name}: {result['events_per_s']:,.0f} accepted events/s "
                f"({result['events_per_cpu_s']:,.0f} per collector CPU second)")  # fmt: skip
        figures["grpc_ceiling"] = _grpc_ceiling(server_cpus, client_cpus, seconds)
        say(f"gRPC endpoint without validation or Kafka: {figures['grpc_ceiling']['events_per_s']:,.0f} "
            "events/s (the ceiling per-event work is added to)")  # fmt: skip
        figures["cpu"] = _client(["cpu"], server_cpus)
        say(f"collector CPU per event in process: JSON path {figures['cpu']['pipeline_us_per_event']} µs, "
            f"gRPC path {figures['cpu']['grpc_pipeline_us_per_event']} µs")  # fmt: skip
        half = figures["http"]["events_per_s"] / 2
        rate = half / BATCH
        args = ["http", "--port", str(port), "--seconds", str(seconds), "--rate", f"{rate:.1f}"]
        result = _client(args, client_cpus)
        result["target_events_per_s"] = half
        figures["http_half_load"] = result
        say(f"collector HTTP at half load ({half:,.0f} events/s): p50 {result['p50_ms']:.1f} ms, "
            f"p99 {result['p99_ms']:.1f} ms")  # fmt: skip
    return figures


if __name__ == "__main__":
    sys.exit(client_main(sys.argv[1:]))
