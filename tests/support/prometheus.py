"""Reading Flink's Prometheus reporter in tests: samples, sums over operators, and waiting for the jobs'
own counters (jobs.common.counters) to reach what an oracle counts."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Mapping

from jobs.common import counters


def prometheus_samples(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples of a Prometheus text endpoint on 127.0.0.1: metric name → [(labels, value)]."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, rest = head.partition("{")
        labels: dict[str, str] = {}
        for part in rest.rstrip("}").split('",'):
            key, _, raw = part.partition('="')
            if key.strip(","):
                labels[key.strip(",")] = raw.rstrip('"')
        samples.setdefault(name, []).append((labels, float(value)))
    return samples


def metric_total(ports: range, name: str, operator_prefix: str | None = None, **labels: str) -> float:
    """Sum of a metric over the Prometheus endpoints that answer on `ports` (JobManager, TaskManagers),
    over the series with these labels (and an operator_name starting with `operator_prefix`)."""
    total = 0.0
    for port in ports:
        try:
            samples = prometheus_samples(port)
        except OSError:
            continue
        for found, value in samples.get(name, []):
            prefix_ok = operator_prefix is None or found.get("operator_name", "").startswith(operator_prefix)
            if prefix_ok and all(found.get(k) == v for k, v in labels.items()):
                total += value
    return total


def wait_for_counters(
    ports: range, want: Mapping[str, float], job: subprocess.Popen[bytes], timeout_s: float = 300
) -> dict[str, float]:
    """Scrape the jobs' counters named in `want` until they equal it (or the time is up) while the
    unbounded `job` runs; returns the last values (compare them with `want`)."""
    got: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert job.poll() is None, "the unbounded job exited on its own"
        got = {name: metric_total(ports, counters.prometheus_name(name)) for name in want}
        if got == want:
            break
        time.sleep(1)
    return got


COMPLETED_CHECKPOINTS = "flink_jobmanager_job_numberOfCompletedCheckpoints"


def wait_for_more_checkpoints(
    ports: range, job: subprocess.Popen[bytes], more: int = 2, timeout_s: float = 120
) -> None:
    """Wait until `more` checkpoints completed after this call while the unbounded `job` runs. With two,
    the second was triggered after every record read so far had been processed, so all that those records
    produce is flushed to the sinks: "nothing more arrives" is then a fact, not a sleep."""
    start = metric_total(ports, COMPLETED_CHECKPOINTS)
    deadline = time.monotonic() + timeout_s
    while (done := metric_total(ports, COMPLETED_CHECKPOINTS)) < start + more:
        assert job.poll() is None, "the unbounded job exited on its own"
        assert time.monotonic() < deadline, f"{done - start} of {more} checkpoints completed in {timeout_s} s"
        time.sleep(0.5)
