"""The sessionize job on a real local Flink cluster (JobManager + TaskManager processes, `flink run -pym`).

Each scenario generates a few thousand events on a unique topic, runs the job on the cluster into a fresh
database and compares every output table with the independent oracle (jobs/sessionize/oracle.py), both
directions, with the sessionize end-to-end test's own comparison; the dead-letter topic must hold exactly
the malformed records. One partition, so the oracle replays the job's arrival order exactly.

- submitted through `uxstream cluster submit` (`flink run`), bounded: FINISHED, tables = oracle;
- the TaskManager process SIGKILLed after a completed checkpoint, a new TaskManager started: the job
  restarts from the checkpoint and the tables = oracle (RELIABILITY.md T14);
- upgrade and rescale through savepoints (T10 + T12, one run in thirds): parallelism 1, then a changed
  job (process-mode Python UDFs, another checkpoint interval) at parallelism 2, then parallelism 1 again;
  each restore starts at two late records; results across both boundaries (tables, ledger, DLQ, KPI
  topic) = oracle; the job's own Prometheus counters count the second third's dead letters.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs.common import counters
from jobs.common.oracle import LATE, arrivals
from jobs.common.settings import KafkaSettings, PostgresSettings
from tests.support.cluster import GENERATOR_ARGS, prepare
from tests.support.db import drop_database
from tests.support.kafka import end_offset, wait_until_consumed
from tests.support.prometheus import metric_total
from tests.support.sessionize import Run, assert_every_output_equals_the_oracle
from tests.support.streams import copy_records, with_late_records_at
from uxstream.cluster import local, submit
from uxstream.cluster.config import LocalCluster
from uxstream.cluster.rest import FlinkRest
from uxstream.errors import UserError
from uxstream.paths import ROOT

from .conftest import worker_env

pytestmark = [pytest.mark.services, pytest.mark.flink, pytest.mark.cluster]

SOURCE_GROUP = "sessionize"
"""The Kafka consumer group of the sessionize source (its job name): it commits offsets on checkpoints."""


def assert_run_equals_oracle(run: Run, kafka: KafkaSettings) -> None:
    """Every table (the late ledger with its watermark columns), the dead-letter and the KPI topic."""
    assert_every_output_equals_the_oracle(kafka, run)


def assert_late_at(run: Run, offset: int) -> None:
    """The records at `offset` and right after it (where a savepoint restores) are late for the oracle:
    the first record a restored job reads, and one that a watermark restarted from it would take for on
    time (tests/support/streams.py `with_late_records_at`)."""
    kinds = {a.event["event_id"]: a.kind for a in arrivals(run.truth.events)}
    at = [e.event["event_id"] for e in run.truth.events if e.seq in (offset, offset + 1)]
    assert len(at) == 2 and [kinds[i] for i in at] == [LATE, LATE], (at, [kinds.get(i) for i in at])


def late_records_at_both_thirds(lines: list[str]) -> list[str]:
    """Two late records at each third of the stream as it will be (4 records longer): where the rescale
    test's two savepoints restore."""
    total = len(lines) + 4
    return with_late_records_at(with_late_records_at(lines, 2 * total // 3 - 2), total // 3)


def restarts(rest: FlinkRest, job_id: str, timeout_s: float = 30.0) -> int:
    """The job's numRestarts metric. The REST metric store fills on its fetch interval (10 s by default), so
    a job that just started may have none yet: wait for it rather than read an empty answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = rest.call(f"/jobs/{job_id}/metrics?get=numRestarts")
        if found:
            [metric] = found
            return int(float(metric["value"]))
        assert time.monotonic() < deadline, f"job {job_id}: no numRestarts metric in {timeout_s:.0f} s"
        time.sleep(0.5)


def test_a_job_submitted_with_flink_run_writes_exactly_the_oracle_rows(
    flink_cluster: LocalCluster,
    kafka_settings: KafkaSettings,
    pg_settings: PostgresSettings,
    tmp_path: Path,
) -> None:
    run, _ = prepare(pg_settings, tmp_path, GENERATOR_ARGS)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "uxstream.cli", "cluster", "submit", "sessionize", "--",
             *run.job_args(bounded=True, interval_ms=2000)],
            cwd=ROOT, env=run.job_env(), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-5000:]
        job_id = proc.stdout.split()[-1]
        assert proc.stdout.startswith(f"submitted sessionize as job {job_id}")
        rest = FlinkRest(flink_cluster.rest_url)
        assert rest.wait_for_state(job_id, ("FINISHED", "FAILED", "CANCELED"), 300) == "FINISHED"
        assert restarts(rest, job_id) == 0
        assert_run_equals_oracle(run, kafka_settings)
        # `flink run` submitted it although the web UI / REST API cannot upload or run jars (issue 16):
        assert rest.call("/config")["features"]["web-submit"] is False
        with pytest.raises(UserError, match="HTTP 404"):
            rest.call("/jars")
    finally:
        drop_database(pg_settings, run.pg)


@pytest.mark.fault
def test_the_job_recovers_from_a_killed_taskmanager_with_every_table_equal_to_the_oracle(
    flink_cluster: LocalCluster,
    kafka_settings: KafkaSettings,
    pg_settings: PostgresSettings,
    tmp_path: Path,
) -> None:
    run, _ = prepare(pg_settings, tmp_path, (*GENERATOR_ARGS, "--duration", "3h", "--seed", "12"))
    rest = FlinkRest(flink_cluster.rest_url)
    try:
        job = submit.submit(
            flink_cluster, "sessionize", run.job_args(bounded=True, interval_ms=300), env=run.job_env()
        )
        deadline = time.monotonic() + 240
        while rest.completed_checkpoints(job.job_id) == 0:
            assert time.monotonic() < deadline, "no checkpoint completed within 240 s"
            assert rest.job_state(job.job_id) != "FINISHED", "the job finished before a checkpoint"
            time.sleep(0.2)
        victims = local.taskmanager_pids(flink_cluster)
        assert victims, "no TaskManager process found"
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        assert rest.job_state(job.job_id) != "FINISHED", "the job ended before the kill: it proves nothing"
        local.start_taskmanager(flink_cluster, env=worker_env())

        assert rest.wait_for_state(job.job_id, ("FINISHED", "FAILED", "CANCELED"), 400) == "FINISHED"
        assert restarts(rest, job.job_id) >= 1, "the job never restarted: the kill was not noticed"
        assert_run_equals_oracle(run, kafka_settings)
    finally:
        if job_still_active(rest, "sessionize"):
            submit.stop(flink_cluster, "sessionize")
        drop_database(pg_settings, run.pg)


def job_still_active(rest: FlinkRest, name: str) -> bool:
    try:
        return rest.active_job(name) is not None
    except Exception:
        return False


def test_an_upgrade_and_a_rescale_through_savepoints_keep_state_and_every_output_equal_to_the_oracle(
    flink_cluster: LocalCluster,
    kafka_settings: KafkaSettings,
    pg_settings: PostgresSettings,
    tmp_path: Path,
) -> None:
    """RELIABILITY T10 + T12 in one run (one job start per third instead of two runs): the first third of the
    stream at parallelism 1; stop with a savepoint and restore a changed job (another checkpoint interval,
    and the Python mode switched to process, which a job without Python workers simply ignores; same SQL,
    so the same operator uids) at parallelism 2 for
    the second third, whose dead letters the job's own Prometheus counters count; stop with a savepoint
    and restore at parallelism 1 for the rest. Keyed state (dedup, open sessions, windows) is redistributed
    at each change; each restore starts at two late records, which the restored job must classify as the
    first run would have (from its checkpointed partition maximum, not from Flink's watermark). The final
    stop drains (fires every window); every output across both boundaries equals the oracle."""
    staging, _ = prepare(pg_settings, tmp_path, GENERATOR_ARGS, rewrite=late_records_at_both_thirds)
    run = Run(f"{staging.topic}.live", staging.pg, staging.truth)
    rest = FlinkRest(flink_cluster.rest_url)
    total = end_offset(kafka_settings, staging.topic)
    cuts = [0, total // 3, 2 * total // 3, total]
    assert_late_at(run, cuts[1])
    assert_late_at(run, cuts[2])
    thread = (run.job_args(bounded=False, interval_ms=1000), run.job_env())
    changed = (
        run.job_args(bounded=False, interval_ms=700),
        run.job_env({"UXSTREAM_FLINK_PYTHON_MODE": "process"}),
    )
    try:
        copy_records(kafka_settings, staging.topic, run.topic, cuts[0], cuts[1])
        args, env = thread
        job = submit.submit(flink_cluster, "sessionize", [*args, "--parallelism", "1"], env=env)
        for step, (parallelism, (args, env)) in enumerate(((2, changed), (1, thread)), start=1):
            wait_until_consumed(kafka_settings, SOURCE_GROUP, run.topic)
            before = job.job_id
            savepoint, job = submit.upgrade(
                flink_cluster, "sessionize", [*args, "--parallelism", str(parallelism)], env=env
            )
            assert rest.job_state(before) == "FINISHED"
            restored = rest.checkpoints(job.job_id)["latest"]["restored"]
            assert restored["is_savepoint"] and restored["external_path"] == savepoint
            vertices = rest.job(job.job_id)["vertices"]
            assert {v["parallelism"] for v in vertices if v["name"].startswith("Source")} == {parallelism}
            copy_records(kafka_settings, staging.topic, run.topic, cuts[step], cuts[step + 1])
            if step == 1:
                wait_until_consumed(kafka_settings, SOURCE_GROUP, run.topic)
                malformed = sum(1 for d in run.truth.dead_letters if cuts[1] <= d.seq < cuts[2])
                assert malformed, (
                    "no malformed record in the second third: the counter check would prove nothing"
                )
                low, high = flink_cluster.prometheus_ports
                name = counters.prometheus_name(counters.DEAD_LETTERS)
                assert metric_total(range(low, high + 1), name) == float(malformed)
            assert restarts(rest, job.job_id) == 0
        wait_until_consumed(kafka_settings, SOURCE_GROUP, run.topic)
        submit.stop(flink_cluster, "sessionize", drain=True)
        assert restarts(rest, job.job_id) == 0
        assert_run_equals_oracle(run, kafka_settings)
    finally:
        if job_still_active(rest, "sessionize"):
            submit.stop(flink_cluster, "sessionize")
        drop_database(pg_settings, run.pg)
