"""The Prometheus reporter on a MiniCluster (`uxstream run`, `make run-local`): opt-in with
UXSTREAM_FLINK_PROMETHEUS_PORT, and the job's own counters reach it.

The MiniCluster does not load plugins/ (DESIGN.md §3): jobs/common/flink_env.py puts the wheel's
flink-metrics-prometheus jar on the local JVM's classpath. The sessionize job runs unbounded on a generated
stream; its dead-letter counter must reach exactly the number of malformed records of the input.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from jobs.common.settings import KafkaSettings, PostgresSettings
from uxstream.paths import ROOT

from .support import GENERATOR_ARGS, drop_database, end_offset, metric_total, prepare, sessionize_e2e

pytestmark = [pytest.mark.services, pytest.mark.flink]

DEAD_LETTERS = "flink_taskmanager_job_task_operator_uxstream_dead_letters_total"
DEAD_LETTERS_BY_REASON = "flink_taskmanager_job_task_operator_uxstream_dead_letters_reason_count"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_a_minicluster_run_serves_the_jobs_counters_to_prometheus(
    kafka_settings: KafkaSettings, pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    run, _ = prepare(pg_settings, tmp_path, GENERATOR_ARGS)
    port = free_port()
    command = sessionize_e2e().job_command(run, 1000, bounded=False)
    env = run.job_env(
        UXSTREAM_FLINK_PROMETHEUS_PORT=str(port), UXSTREAM_FLINK_STATE_DIR=str(tmp_path / "state")
    )
    job = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    malformed = len(run.truth.dead_letters)
    assert malformed, "the generated stream has no malformed records: the test would prove nothing"
    try:
        ports = range(port, port + 1)
        counted, deadline = 0.0, time.monotonic() + 300
        while counted < malformed and time.monotonic() < deadline:
            assert job.poll() is None, "the unbounded job exited on its own"
            counted = metric_total(ports, DEAD_LETTERS)
            time.sleep(1)
        assert counted == malformed
        reasons = {d.reason for d in run.truth.dead_letters}
        by_reason = {r: metric_total(ports, DEAD_LETTERS_BY_REASON, reason=r) for r in reasons}
        assert by_reason == {
            r: float(sum(1 for d in run.truth.dead_letters if d.reason == r)) for r in reasons
        }
        # Flink's own operator metrics beside them: every record of the topic was read once.
        events_in = metric_total(
            ports, "flink_taskmanager_job_task_operator_numRecordsOut", "Source:_ux_events_raw"
        )
        assert events_in == end_offset(kafka_settings, run.topic)
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(30)
        drop_database(pg_settings, run.pg)
