"""The sessionize job's command line refuses bad options before any Flink job starts, with exact messages:
restores combined with bounded reads, missing checkpoints, malformed or incomplete stop offsets, and
Kafka transaction timeouts the broker or the checkpoint interval cannot honour (RELIABILITY T22)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from jobs.common.settings import KafkaSettings
from uxstream.paths import ROOT

pytestmark = [pytest.mark.services, pytest.mark.flink]


def test_restore_with_a_bounded_read_is_refused_clearly() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "run", "sessionize", "--bounded", "--restore", "latest"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == (
        "uxstream run: error: --restore cannot be combined with --bounded or --stop-at-offsets: a bounded "
        "Kafka source restored from a checkpoint never finishes (FLINK-31006); restore an unbounded run\n"
    )


def test_restore_without_a_retained_checkpoint_is_refused_clearly(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "run", "sessionize", "--restore", "latest"],
        cwd=ROOT, env={**os.environ, "UXSTREAM_FLINK_STATE_DIR": str(tmp_path)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == (
        f"uxstream run: error: no retained checkpoint of sessionize under {tmp_path}/checkpoints/sessionize: "
        "nothing to restore\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "run", "sessionize", "--restore", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == (
        f"uxstream run: error: cannot restore from {tmp_path}: not a checkpoint or savepoint (no _metadata "
        "file in it)\n"
    )


def test_malformed_stop_offsets_stop_the_job_before_it_starts() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "run", "sessionize", "--stop-at-offsets", "0:10,1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == (
        "python -m jobs.sessionize.job: error: argument --stop-at-offsets: stop offsets '0:10,1': '1' is "
        "not PARTITION:OFFSET (two non-negative integers)"
    )


def test_stop_offsets_that_leave_out_a_partition_stop_the_job_before_it_starts(
    kafka_settings: KafkaSettings,
) -> None:
    from jobs.common.topics import delete_topics, ensure_topics

    topic = f"test.sessionize.{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_settings, {topic: 3})
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "uxstream.cli", "run", "sessionize", "--input-topic", topic,
             "--dlq-topic", f"{topic}.dlq", "--kpi-topic", "", "--stop-at-offsets", "0:10,3:4"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        delete_topics(kafka_settings, [topic, f"{topic}.dlq"])
    assert proc.returncode == 2
    assert proc.stderr == (
        f"uxstream run: error: stop offsets for topic {topic}, which has 3 partition(s): partition(s) 1, 2 "
        "not listed; partition(s) 3 do not exist; give PARTITION:OFFSET for each of its partitions\n"
    )


EXACTLY_ONCE_JOBS = ("sessionize", "funnels", "anomaly")
"""Every job with a transactional Kafka sink checks its transaction timeout before it starts (T22)."""


@pytest.mark.parametrize("job", EXACTLY_ONCE_JOBS)
def test_a_transaction_timeout_the_broker_refuses_fails_fast_with_a_clear_error(
    kafka_settings: KafkaSettings, job: str
) -> None:
    from jobs.common.topics import broker_config

    allowed = int(broker_config(kafka_settings, "transaction.max.timeout.ms") or 0)
    assert allowed > 0
    env = {**os.environ, "UXSTREAM_KAFKA_TRANSACTION_TIMEOUT_MS": str(allowed + 1)}
    proc = subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "run", job, "--bounded"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == (
        f"uxstream run: error: the exactly-once Kafka sinks ask for transactions of {allowed + 1} ms, "
        f"but the broker at {kafka_settings.bootstrap_servers} allows at most {allowed} ms "
        f"(transaction.max.timeout.ms): set UXSTREAM_KAFKA_TRANSACTION_TIMEOUT_MS to at most {allowed} "
        "or raise the broker's limit\n"
    )


@pytest.mark.parametrize("job", EXACTLY_ONCE_JOBS)
def test_a_transaction_timeout_shorter_than_the_checkpoint_interval_fails_fast(job: str) -> None:
    env = {
        **os.environ,
        "UXSTREAM_KAFKA_TRANSACTION_TIMEOUT_MS": "5000",
        "UXSTREAM_FLINK_CHECKPOINT_INTERVAL_MS": "10000",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "run", job, "--bounded"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == (
        "uxstream run: error: UXSTREAM_KAFKA_TRANSACTION_TIMEOUT_MS=5000 must be longer than the checkpoint "
        "interval (10000 ms): a transaction stays open from one checkpoint to the next\n"
    )
