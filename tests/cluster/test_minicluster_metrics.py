"""The Prometheus reporter on a MiniCluster (`uxstream run`, `make run-local`): opt-in with
UXSTREAM_FLINK_PROMETHEUS_PORT, and the job's own counters reach it.

The MiniCluster does not load plugins/ (DESIGN.md §3): jobs/common/flink_env.py puts the wheel's
flink-metrics-prometheus jar on the local JVM's classpath. The sessionize job runs unbounded on a generated
stream; each of its counters (jobs.common.counters) must reach exactly what the oracle counts in the input:
records read, dead letters (per reason), duplicates, late and future arrivals, and sessions closed (every
final session row the job wrote).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from jobs.common import counters, tables
from jobs.common.oracle import arrival_counts, arrivals
from jobs.common.settings import KafkaSettings, PostgresSettings
from tests.support.cluster import GENERATOR_ARGS, prepare
from tests.support.db import drop_database
from tests.support.kafka import end_offset
from tests.support.prometheus import metric_total, wait_for_counters
from tests.support.sessionize import job_command
from uxstream.db import connect
from uxstream.paths import ROOT
from uxstream.services.common import free_port

pytestmark = [pytest.mark.services, pytest.mark.flink]

DEAD_LETTERS_BY_REASON = "flink_taskmanager_job_task_operator_uxstream_dead_letters_reason_count"


def final_sessions(pg: PostgresSettings) -> int:
    with connect(pg) as conn:
        row = conn.execute(f"SELECT count(*) FROM {tables.SESSIONS} WHERE is_final").fetchone()
    assert row is not None
    return int(row[0])


def test_a_minicluster_run_serves_the_jobs_counters_to_prometheus(
    kafka_settings: KafkaSettings, pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    # Two hours of event time: the sessions of the first 90 minutes close (gap 30 min) without an end
    # of input.
    run, _ = prepare(pg_settings, tmp_path, (*GENERATOR_ARGS, "--duration", "2h"))
    port = free_port()
    command = job_command(run, 1000, bounded=False)
    env = run.job_env(
        {"UXSTREAM_FLINK_PROMETHEUS_PORT": str(port), "UXSTREAM_FLINK_STATE_DIR": str(tmp_path / "state")}
    )
    job = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    malformed = len(run.truth.dead_letters)
    want = {
        counters.EVENTS_IN: float(end_offset(kafka_settings, run.topic)),
        counters.DEAD_LETTERS: float(malformed),
        **{name: float(n) for name, n in arrival_counts(arrivals(run.truth.events)).items()},
    }
    assert all(want.values()), f"a kind of record is missing from the stream, nothing is proven: {want}"
    ports = range(port, port + 1)
    try:
        got = wait_for_counters(ports, want, job)
        assert got == want
        reasons = {d.reason for d in run.truth.dead_letters}
        by_reason = {r: metric_total(ports, DEAD_LETTERS_BY_REASON, reason=r) for r in reasons}
        assert by_reason == {
            r: float(sum(1 for d in run.truth.dead_letters if d.reason == r)) for r in reasons
        }
        # Flink's own operator metric beside them: the source read every record of the topic once.
        events_in = metric_total(
            ports, "flink_taskmanager_job_task_operator_numRecordsOut", "Source:_ux_events_raw"
        )
        assert events_in == want[counters.EVENTS_IN]
        # Sessions closed: the final session rows the job wrote (the JDBC sink flushes on checkpoints).
        closed, written = -1.0, -2
        deadline = time.monotonic() + 120
        while closed != written and time.monotonic() < deadline:
            closed = metric_total(ports, counters.prometheus_name(counters.SESSIONS_CLOSED))
            written = final_sessions(run.pg)
            time.sleep(1)
        assert closed == written > 0
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(30)
        drop_database(pg_settings, run.pg)
