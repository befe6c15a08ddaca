"""funnels under faults (RELIABILITY.md): the job whose keyed functions run in Python workers (sessionize has
none) over its own generated stream, produced in parts once a checkpoint is on disk (tests/support/chaos.py);
every output must still equal the oracle exactly: nothing lost, nothing twice."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from jobs.common.flink_env import FlinkSettings, checkpoint_dir
from jobs.common.settings import KafkaSettings, PostgresSettings
from tests.support.chaos import python_workers, run_in_phases, wait_until_recovered
from tests.support.funnels import (
    ANY_WITH_EXCLUSION,
    GENERATOR_ARGS,
    STRICT,
    TABLES,
    assert_equals_oracle,
    assert_topic_equals_oracle,
    drop,
    fresh_run,
)
from tests.support.jobs import flink_log, restarts
from tests.support.streams import generate_truth

pytestmark = [pytest.mark.services, pytest.mark.flink, pytest.mark.fault]


def test_t16_t13_t17_killed_python_workers_an_injected_failure_and_five_random_kills_lose_nothing(
    kafka_settings: KafkaSettings, pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    """RELIABILITY T16, T13 and T17 in one run of the job whose keyed functions are Python (sessionize has
    no Python worker), the stream produced in eight parts (tests/support/chaos.py `run_in_phases`), the
    Python functions in worker processes of their own (process mode, not loopback), a strict funnel among
    the definitions so the JVM filter passes every event:

    1. T16: once a checkpoint is on disk, every Python worker is SIGKILLed; the next part reaches the dead
       workers and the job recovers: exactly one restart;
    2. T13: then the job's chaos hook is armed (jobs/common/chaos.py: it fires only once a checkpoint is
       visible under UXSTREAM_CHAOS_CHECKPOINTS, which is linked to the job's checkpoints now), so the
       restarted workers fail once at their first funnel attempt: exactly two restarts;
    3. T17: five more kills of whatever workers run, 0–6 s apart (seeded), each followed by a part of the
       stream; the job is healthy again and finishes within 180 s of the last kill.

    Every table and ux.funnel (read committed) equal the oracle: nothing lost, nothing twice."""
    truth_file = tmp_path / "truth.jsonl"
    lines = generate_truth((*GENERATOR_ARGS, "--seed", "22"), truth_file)
    run = fresh_run(pg_settings, tmp_path, truth_file, ANY_WITH_EXCLUSION + STRICT)
    marker, armed = tmp_path / "failed-once", tmp_path / "chaos-armed"
    checkpoints = checkpoint_dir(FlinkSettings(state_dir=tmp_path / "flink-state"), "funnels")
    log_dir = tmp_path / "flink-log"
    rounds: list[list[int]] = []
    pauses = random.Random(17).choices(range(0, 6001), k=5)

    def kill_python_workers(process_group: int) -> None:
        killed = python_workers(process_group)
        for pid in killed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        rounds.append(killed)

    def t16(process_group: int) -> None:
        kill_python_workers(process_group)
        assert rounds[0], "no Python worker was running after the checkpoint: T16 would prove nothing"

    def t13(process_group: int) -> None:
        wait_until_recovered(log_dir, 1)
        armed.symlink_to(checkpoints, target_is_directory=True)

    def t17(pause_ms: int) -> Callable[[int], None]:
        def kill(process_group: int) -> None:
            if len(rounds) == 1:  # the first T17 kill: T13 must be over
                wait_until_recovered(log_dir, 2)
                assert marker.exists(), "the injected failure did not happen: T13 would prove nothing"
            time.sleep(pause_ms / 1000)
            kill_python_workers(process_group)

        return kill

    env = {
        **os.environ, "UXSTREAM_PG_DB": run.pg.dbname,
        "UXSTREAM_FLINK_PYTHON_MODE": "process",  # workers in processes of their own (flink_env)
        "FLINK_LOG_DIR": str(log_dir),
        "UXSTREAM_CHAOS_FAIL_ONCE": f"{marker}:1", "UXSTREAM_CHAOS_CHECKPOINTS": str(armed),
    }  # fmt: skip
    try:
        run_in_phases(
            run.command("--checkpoint-interval-ms", "300"), env, lines, run.topic, tmp_path, "funnels",
            [t16, t13, *(t17(pause) for pause in pauses)], finish_within_s=180,
        )  # fmt: skip
        assert "funnels.attempts" in marker.read_text()
        assert rounds[1], "the first T17 kill found no Python worker after a completed recovery"
        assert restarts(flink_log(log_dir)) >= 3, "T17: the kills were never noticed"
        for table in TABLES:
            assert_equals_oracle(run, table)
        assert_topic_equals_oracle(kafka_settings, run)
    finally:
        drop(pg_settings, run)
