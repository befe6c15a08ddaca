"""The shared test helpers (tests/support/) do what the end-to-end tests rely on."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from jobs.common.oracle import LATE, arrivals
from jobs.common.oracle import load as load_truth
from jobs.common.settings import KafkaSettings
from jobs.common.topics import delete_topics, ensure_topics
from tests.support.db import assert_multisets_equal, normalize
from tests.support.durations import load, summary
from tests.support.kafka import IDLE_POLLS, committed_records, end_offset
from tests.support.streams import generate_truth, with_late_records_at


@pytest.mark.services
def test_committed_records_reads_exactly_the_committed_records_and_stops_at_the_end_at_once(
    kafka_settings: KafkaSettings,
) -> None:
    """read_committed: an aborted transaction is never read, every committed record once, and the read
    ends when the consumer reaches the end offset (transaction markers included), not after idle polls."""
    from confluent_kafka import Producer

    topic = f"test.support.{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_settings, {topic: 2})
    try:
        producer = Producer({**kafka_settings.client_config(), "transactional.id": topic})
        producer.init_transactions()
        for commit, values in ((True, [b"a", b"b"]), (False, [b"x"]), (True, [b"c"])):
            producer.begin_transaction()
            for i, value in enumerate(values):
                producer.produce(topic, value, key=value, partition=i % 2)
            if commit:
                producer.commit_transaction()
            else:
                producer.abort_transaction()
        assert end_offset(kafka_settings, topic, 0) > 2  # records and transaction markers
        started = time.monotonic()
        records = committed_records(kafka_settings, topic)
        elapsed = time.monotonic() - started
        assert sorted(r.value for r in records) == [b"a", b"b", b"c"]
        assert all(r.key == r.value for r in records)
        assert elapsed < IDLE_POLLS * 0.5, f"the read idled to its limit ({elapsed:.1f} s) instead of ending"
    finally:
        delete_topics(kafka_settings, [topic])


def test_normalize_makes_stored_and_expected_values_comparable() -> None:
    from datetime import UTC, datetime

    assert normalize(datetime(2025, 1, 6, 9, 30, tzinfo=UTC)) == 1_736_155_800_000
    assert normalize(0.1 + 0.2) == 0.3
    assert normalize(float("nan")) is None
    assert normalize([1.0000000001, [2]]) == (1.0, (2,))
    assert normalize("x") == "x"


def test_multisets_must_match_in_both_directions() -> None:
    assert_multisets_equal("t", Counter({("a",): 2}), Counter({("a",): 2}))
    with pytest.raises(AssertionError, match=r"t: 1 expected rows missing, 0 unexpected"):
        assert_multisets_equal("t", Counter({("a",): 2}), Counter({("a",): 1}))
    with pytest.raises(AssertionError, match=r"t: 0 expected rows missing, 1 unexpected"):
        assert_multisets_equal("t", Counter({("a",): 1}), Counter({("a",): 1, ("b",): 1}))


def test_the_durations_summary_adds_up_per_tier_and_module(tmp_path: Path) -> None:
    report = tmp_path / "tiers.json"
    report.write_text(
        json.dumps(
            {
                "tests": [
                    {
                        "nodeid": "tests/a/test_x.py::t1",
                        "seconds": 30.0,
                        "tier": "flink",
                        "outcome": "passed",
                    },
                    {
                        "nodeid": "tests/a/test_x.py::t2",
                        "seconds": 10.0,
                        "tier": "flink",
                        "outcome": "passed",
                    },
                    {
                        "nodeid": "tests/b/test_y.py::t3",
                        "seconds": 10.0,
                        "tier": "check",
                        "outcome": "passed",
                    },
                ]
            }
        )
    )
    text = summary(load(report))
    assert text.splitlines()[0] == "3 tests, 50 s in tests (setup + call + teardown)"
    assert "| flink | 2 | 40.0 | 80% |" in text
    assert "| check | 1 | 10.0 | 20% |" in text
    assert "| tests/a/test_x.py | 2 | 40.0 | 80% |" in text
    assert text.index("`tests/a/test_x.py::t1`") < text.index("`tests/a/test_x.py::t2`")


def test_late_records_at_a_boundary_are_late_and_a_forgetful_watermark_would_take_the_second_for_on_time(
    tmp_path: Path,
) -> None:
    """streams.with_late_records_at: what the recovery tests place where they restore."""
    lines = generate_truth(("--events", "300", "--duration", "20m", "--seed", "3"), tmp_path / "t.jsonl")
    rewritten = with_late_records_at(lines, 150)
    assert len(rewritten) == len(lines) + 2
    assert [json.loads(line)["seq"] for line in rewritten] == list(range(len(rewritten)))
    (tmp_path / "late.jsonl").write_text("".join(rewritten), encoding="utf-8")
    events = load_truth(tmp_path / "late.jsonl").events
    arrived = list(arrivals(events))
    at = [i for i, e in enumerate(events) if e.seq in (150, 151)]
    assert [arrived[i].kind for i in at] == [LATE, LATE]
    first, second = (arrived[i].event for i in at)
    assert second["ts"] > first["ts"] + 5_000  # on time for a watermark restarted from `first`
    assert arrived[at[0]].watermark == arrived[at[1]].watermark  # the partition maximum did not move
