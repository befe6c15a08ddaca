"""Helpers of the cluster tests: the sessionize scenario (tests/support/sessionize.py, so the cluster and
the MiniCluster tests judge the job alike) on streams of their own."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from jobs.common.oracle import load
from jobs.common.settings import PostgresSettings
from tests.support.db import fresh_database
from tests.support.sessionize import Run
from tests.support.streams import generate, generate_truth, produce, unique_topic

GENERATOR_ARGS = (
    "--events", "2500", "--duration", "20m", "--seed", "11", "--partitions", "1",
    "--duplicate-fraction", "0.03", "--late-fraction", "0.02", "--malformed-fraction", "0.01",
    "--future-fraction", "0.01",
)  # fmt: skip
"""The sessionize end-to-end test's stream without the hot key: a few thousand events, one partition."""


def prepare(
    pg_settings: PostgresSettings,
    folder: Path,
    generator_args: tuple[str, ...],
    topic: str | None = None,
    rewrite: Callable[[list[str]], list[str]] | None = None,
) -> tuple[Run, str]:
    """Generate a stream on a fresh topic (or `topic`) and a fresh migrated database; `rewrite` changes the
    generated ground-truth lines before they are produced (e.g. `streams.with_late_records_at`).

    Returns the run and the topic that holds the generated records (the run's topic unless given).
    """
    source = unique_topic("test.cluster")
    truth_file = folder / "truth.jsonl"
    if rewrite is None:
        generate(generator_args, truth_file, source)
    else:
        lines = rewrite(generate_truth(generator_args, truth_file))
        truth_file.write_text("".join(lines), encoding="utf-8")
        produce(lines, source, folder, "stream")
    pg = fresh_database(pg_settings, f"uxstream_test_cluster_{source.rsplit('.', 1)[1]}")
    return Run(topic or source, pg, load(truth_file)), source
