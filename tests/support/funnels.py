"""The funnels scenario, shared by tests/funnels' end-to-end and fault modules so both judge the job alike:
the stream's generator arguments and extra definitions, a run on a unique topic with a fresh migrated
database, the job's command line, and every output (tables, ux.funnel read committed) compared with the
independent oracle, both directions. One partition, so the oracle replays the job's arrival order exactly
(DESIGN.md §6)."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from jobs.common import tables
from jobs.common.oracle import CleanEvents, load
from jobs.common.privacy import PrivacySettings, Pseudonymizer
from jobs.common.settings import KafkaSettings, PostgresSettings
from jobs.funnels.definitions import load_funnels
from jobs.funnels.oracle import expected
from jobs.funnels.settings import DEFAULT_CONFIG
from tests.support.db import (
    assert_multisets_equal,
    assert_table_equals,
    drop_database,
    fresh_database,
    normalize,
)
from tests.support.jobs import run_bounded
from tests.support.kafka import committed_decoded
from tests.support.streams import unique_topic

GENERATOR_ARGS = (
    "--events", "4000", "--duration", "3h", "--seed", "21", "--partitions", "1",
    "--duplicate-fraction", "0.03", "--late-fraction", "0.02", "--malformed-fraction", "0.01",
    "--future-fraction", "0.01",
)  # fmt: skip

ANY_WITH_EXCLUSION = """
[[funnel]]
name = "browse_any"
ordering = "any"
window = "20m"
breakdowns = ["device_type", "properties.product_id"]
exclusions = [{ event = "js_error" }]
steps = [{ event = "add_to_cart" }, { event = "product_viewed" }]
"""

STRICT = """
[[funnel]]
name = "cart_strict"
ordering = "strict"
window = "30m"
steps = [{ event = "add_to_cart" }, { event = "page_view" }, { event = "checkout_started" }]
"""
"""A strict funnel: every event can break it, so the JVM filter passes every event (the other path)."""

TABLES = (*tables.FUNNELS_TABLES, tables.LATE_EVENTS)


@dataclasses.dataclass(frozen=True)
class Run:
    topic: str
    pg: PostgresSettings
    truth: CleanEvents
    config: Path
    outputs: str = ""
    """Suffix of the run's output topics and transactional ids (a second run of the same input)."""

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic}.dlq{self.outputs}"

    @property
    def funnel_topic(self) -> str:
        return f"{self.topic}.funnel{self.outputs}"

    def command(self, *options: str) -> list[str]:
        return [
            sys.executable, "-m", "uxstream.cli", "run", "funnels", *options, "--input-topic", self.topic,
            "--dlq-topic", self.dlq_topic, "--funnel-topic", self.funnel_topic, "--config", str(self.config),
            "--transactional-id-prefix", f"test-{self.topic}{self.outputs}",
        ]  # fmt: skip

    def expected(self) -> dict[str, list[dict[str, Any]]]:
        pseudonym = Pseudonymizer(PrivacySettings.from_env())  # the key the job's client ensured
        return expected(self.truth.events, load_funnels(self.config), pseudonym=pseudonym)


def run_job(run: Run, extra_env: dict[str, str] | None = None, interval_ms: int = 2000) -> None:
    run_bounded(
        "funnels",
        run.command("--bounded", "--checkpoint-interval-ms", str(interval_ms)),
        {**os.environ, "UXSTREAM_PG_DB": run.pg.dbname, **(extra_env or {})},
    )


def fresh_run(
    pg_settings: PostgresSettings,
    folder: Path,
    truth_file: Path,
    extra_funnels: str,
    topic: str | None = None,
) -> Run:
    """A run of the stream recorded in `truth_file` on `topic` (default: a fresh name): the run's
    definitions written, a fresh migrated database created."""
    topic = topic or unique_topic("test.funnels")
    config = folder / "funnels.toml"
    config.write_text(DEFAULT_CONFIG.read_text() + extra_funnels)
    pg = fresh_database(pg_settings, f"uxstream_test_funnels_{topic.rsplit('.', 1)[1]}")
    return Run(topic, pg, load(truth_file), config)


def drop(pg_settings: PostgresSettings, run: Run) -> None:
    drop_database(pg_settings, run.pg)


def assert_equals_oracle(run: Run, table: str) -> None:
    where = f" WHERE job = '{tables.LATE_JOB_FUNNELS}'" if table == tables.LATE_EVENTS else ""
    assert_table_equals(run.pg, table, run.expected()[table], where)


def committed(kafka: KafkaSettings, topic: str) -> list[tuple[bytes | None, int, dict[str, Any]]]:
    """(key, Kafka timestamp, decoded record) of every committed record of `topic` (read_committed)."""
    return [(r.key, r.timestamp, value) for r, value in committed_decoded(kafka, topic)]


def published(kafka: KafkaSettings, topic: str) -> Counter[tuple[Any, ...]]:
    """(key, Kafka timestamp, every record field) of each committed ux.funnel record."""
    found: Counter[tuple[Any, ...]] = Counter()
    for key, timestamp, record in committed(kafka, topic):
        assert key is not None
        found[(key.decode(), timestamp, *(normalize(v) for v in record.values()))] += 1
    return found


def assert_topic_equals_oracle(kafka: KafkaSettings, run: Run) -> None:
    windows = run.expected()["windows"]
    want = Counter(
        (f"{w['funnel']}|{w['dimension']}|{w['dimension_value']}", w["window_end"],
         *(normalize(v) for v in w.values()))
        for w in windows
    )  # fmt: skip
    assert_multisets_equal(run.funnel_topic, want, published(kafka, run.funnel_topic), unit="records")
