"""The sessionize scenario, shared by tests/sessionize and tests/cluster so both judge the job alike: a
stream on a unique topic with a fresh migrated database, the job's command line and environment, and every
output (tables, dead-letter topic, KPI topic) compared with the independent oracle, both directions.
One partition, so the oracle replays the job's arrival order exactly (DESIGN.md §6)."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jobs.common import tables
from jobs.common.enrichment import EnrichmentSettings
from jobs.common.oracle import CleanEvents, load
from jobs.common.privacy import PrivacySettings, Pseudonymizer
from jobs.common.settings import KafkaSettings, PostgresSettings, Secret
from jobs.sessionize.oracle import expected, expected_kpi_messages
from tests.support.db import (
    assert_multisets_equal,
    assert_table_equals,
    drop_database,
    fresh_database,
    normalize,
)
from tests.support.jobs import run_bounded
from tests.support.kafka import committed_decoded
from tests.support.streams import generate, generate_truth, produce, unique_topic

PSEUDONYM_KEY = "uxstream-e2e-test-pseudonym-key-0123456789"
"""The job's pseudonym key in these tests (UXSTREAM_PSEUDONYM_KEY); the oracle uses the same."""
PSEUDONYM = Pseudonymizer(PrivacySettings(Secret(PSEUDONYM_KEY)))

GENERATOR_ARGS = (
    "--events", "2500", "--duration", "20m", "--seed", "11", "--partitions", "1",
    "--duplicate-fraction", "0.03", "--late-fraction", "0.02", "--malformed-fraction", "0.01",
    "--future-fraction", "0.01", "--hot-user-share", "0.5",
)  # fmt: skip
"""Every fault kind at once, and a hot key: half of the sessions belong to one user (RELIABILITY T24)."""

DLQ_SUBJECT = "ux.events.dlq-value"
KPI_SUBJECT = "ux.kpi-value"


@dataclasses.dataclass(frozen=True)
class Run:
    """One test stream: its topic (and the job's output topics named after it), database and truth."""

    topic: str
    pg: PostgresSettings
    truth: CleanEvents
    enrichment: EnrichmentSettings = dataclasses.field(default_factory=EnrichmentSettings)
    """The decode step's enrichment of the run: the job's environment says it, the oracle applies it."""

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic}.dlq"

    @property
    def kpi_topic(self) -> str:
        return f"{self.topic}.kpi"

    def job_args(self, bounded: bool = True, interval_ms: int = 2000) -> list[str]:
        """The job's options (after `-m jobs.sessionize.job`)."""
        return [
            *(["--bounded"] if bounded else []), "--input-topic", self.topic, "--dlq-topic", self.dlq_topic,
            "--kpi-topic", self.kpi_topic, "--checkpoint-interval-ms", str(interval_ms),
        ]  # fmt: skip

    def job_env(self, extra_env: dict[str, str] | None = None) -> dict[str, str]:
        """The job's environment: the run's database, transactional ids no other job on the broker uses,
        and the pseudonym key the oracle uses."""
        return {
            **os.environ,
            "UXSTREAM_PG_DB": self.pg.dbname,
            "UXSTREAM_SESSIONIZE_TRANSACTIONAL_ID_PREFIX": self.topic,
            "UXSTREAM_PSEUDONYM_KEY": PSEUDONYM_KEY,
            "UXSTREAM_ENRICH_USER_AGENT": str(self.enrichment.user_agents).lower(),
            "UXSTREAM_EXCLUDE_BOTS": str(self.enrichment.exclude_bots).lower(),
            **(extra_env or {}),
        }

    def expected(self) -> dict[str, list[dict[str, Any]]]:
        return expected(self.truth.events, pseudonym=PSEUDONYM, enrichment=self.enrichment)


def job_command(run: Run, interval_ms: int, bounded: bool = True) -> list[str]:
    return [sys.executable, "-m", "jobs.sessionize.job", *run.job_args(bounded, interval_ms)]


def run_job(
    run: Run, extra_env: dict[str, str] | None = None, interval_ms: int = 2000, parallelism: int = 1
) -> None:
    run_bounded(
        "sessionize",
        [*job_command(run, interval_ms), "--parallelism", str(parallelism)],
        run.job_env(extra_env),
    )


def fresh_run(pg_settings: PostgresSettings, truth_file: Path, topic: str | None = None) -> Run:
    """A run of the stream recorded in `truth_file` on `topic` (default: a fresh name) with a fresh
    migrated database."""
    topic = topic or unique_topic("test.sessionize")
    pg = fresh_database(pg_settings, f"uxstream_test_sessionize_{topic.rsplit('.', 1)[1]}")
    return Run(topic, pg, load(truth_file))


def prepare(
    pg_settings: PostgresSettings,
    folder: Path,
    generator_args: Sequence[str],
    rewrite: Callable[[list[str]], list[str]] | None = None,
) -> Run:
    """Generate a stream on a fresh topic and create a fresh migrated database; `rewrite` changes the
    generated ground-truth lines before they are produced (e.g. `streams.with_hostile_events`)."""
    topic = unique_topic("test.sessionize")
    truth_file = folder / "truth.jsonl"
    if rewrite is None:
        generate(generator_args, truth_file, topic)
    else:
        lines = rewrite(generate_truth(generator_args, truth_file))
        truth_file.write_text("".join(lines), encoding="utf-8")
        produce(lines, topic, folder, "stream")
    return fresh_run(pg_settings, truth_file, topic)


def drop(pg_settings: PostgresSettings, run: Run) -> None:
    drop_database(pg_settings, run.pg)


def assert_equals_oracle(run: Run, table: str) -> None:
    assert_table_equals(run.pg, table, run.expected()[table])


def dead_letters(kafka: KafkaSettings, run: Run) -> list[tuple[bytes, str]]:
    """(original bytes, reason) of every committed record of the run's dead-letter topic."""
    return sorted(
        (letter["original"], letter["reason"])
        for _, letter in committed_decoded(kafka, run.dlq_topic, DLQ_SUBJECT)
    )


def expected_dead_letters(run: Run) -> list[tuple[bytes, str]]:
    want: list[tuple[bytes, str]] = sorted((d.payload, d.reason) for d in run.truth.dead_letters)
    assert want, "the generated stream has no malformed records: the test would prove nothing"
    return want


def kpi_messages(kafka: KafkaSettings, run: Run) -> Counter[tuple[Any, ...]]:
    """Every committed KPI window message of the run as a comparable (key, fields...) tuple."""
    return Counter(
        (r.key.decode() if r.key else None, *(normalize(v) for v in value.values()))
        for r, value in committed_decoded(kafka, run.kpi_topic, KPI_SUBJECT)
    )


def assert_kpi_topic_equals_the_oracle(kafka: KafkaSettings, run: Run) -> None:
    want = Counter(
        (key, *(normalize(v) for v in record.values()))
        for key, record in expected_kpi_messages(expected(run.truth.events))
    )
    assert_multisets_equal(run.kpi_topic, want, kpi_messages(kafka, run), unit="messages")


def assert_the_quality_gate_passes(run: Run) -> None:
    """RELIABILITY standard check 3: the quality suite (`uxstream validate`) passes on the run's tables."""
    from uxstream.quality import validate

    report = validate(run.pg)
    assert report.results, "the quality gate checked nothing: the test would prove nothing"
    assert report.ok, f"uxstream validate failed:\n{report.render()}"


def assert_every_output_equals_the_oracle(kafka: KafkaSettings, run: Run, kpi_topic: bool = True) -> None:
    """Every table, the dead-letter topic and (unless off) the KPI topic hold exactly what the oracle says."""
    for table in tables.SESSIONIZE_TABLES:
        assert_equals_oracle(run, table)
    assert dead_letters(kafka, run) == expected_dead_letters(run)
    if kpi_topic:
        assert_kpi_topic_equals_the_oracle(kafka, run)
