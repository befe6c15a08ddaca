"""The arrival classification's plan (jobs/common/sql/classify.sql): every aggregate that must see a Kafka
partition's events in partition order (the partition watermark, the behavioural bot rule, the funnels
job's earliest identity links) runs in ONE OverAggregate partitioned by kafka_partition, fed straight from
the source, and the dedup is the only other one. An OverAggregate keyed otherwise before it would hand a
partition's events over from several subtasks in a timing-dependent order at parallelism > 1, and the
classification would stop being a function of the input log (README "What sessionize computes").
Sessionize's dedup is partitioned by bucket of event ids on the heap state backend (io.uxstream.udf.EventIds)
and by event_id on RocksDB (jobs/common/decode.py `Dedup`); funnels' by event_id.

Flink tier (the tier of anything that starts the planner's JVM): no job is started."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator

import pytest

from jobs.common.flink_env import create_environments
from jobs.common.pipeline import Pipeline, create, is_insert
from jobs.funnels import job as funnels
from jobs.sessionize import job as sessionize
from jobs.sessionize.settings import DIMENSIONS

pytestmark = [pytest.mark.services, pytest.mark.flink]


def plan_of(name: str, pipeline: Pipeline, query: str) -> str:
    """The optimized plan of `query` once the pipeline's SQL steps before it are created."""
    _, t_env = create_environments(pipeline_settings[name].flink, f"plan-{name}")
    for key, value in pipeline.config:
        t_env.get_config().set(key, value)
    for step in pipeline.steps:
        if step.stream is not None:
            break
        if step.functions is not None:
            for function_name, function in step.functions().items():
                t_env.create_temporary_function(function_name, function)
        for statement in step.sql:
            if not is_insert(statement):
                create(t_env, step, statement)
    return str(t_env.explain_sql(query)).split("== Optimized Execution Plan ==")[-1]


def job_plan(name: str, pipeline: Pipeline) -> str:
    """The optimized plan of the whole SQL job (every INSERT in one statement set, as submitted)."""
    _, t_env = create_environments(pipeline_settings[name].flink, f"plan-{name}")
    for key, value in pipeline.config:
        t_env.get_config().set(key, value)
    statements = t_env.create_statement_set()
    for step in pipeline.steps:
        for statement in step.sql:
            if is_insert(statement):
                statements.add_insert_sql(statement)
            else:
                create(t_env, step, statement)
    return str(statements.explain()).split("== Optimized Execution Plan ==")[-1]


pipeline_settings = {
    "sessionize": sessionize.JOB.settings(None),
    "funnels": funnels.JOB.settings(None),
}


@pytest.fixture(scope="module")
def plans() -> Iterator[dict[str, str]]:
    yield {
        name: plan_of(name, spec.pipeline(pipeline_settings[name]), "SELECT * FROM numbered")
        for name, spec in (("sessionize", sessionize.JOB), ("funnels", funnels.JOB))
    }


@pytest.mark.parametrize("job", ["sessionize", "funnels"])
def test_the_partition_ordered_aggregates_share_one_over_aggregate_fed_by_the_source(
    plans: dict[str, str], job: str
) -> None:
    plan = plans[job]
    overs = re.findall(r"OverAggregate\(partitionBy=\[([^\]]*)\]", plan)
    # the plan lists the dedup first (it is downstream); funnels keeps a window per event_id
    assert overs == [dedup_key(plan) if job == "sessionize" else "event_id", "kafka_partition"]
    partition = plan[plan.index("OverAggregate(partitionBy=[kafka_partition]") :]
    assert "partition_watermark(" in partition.splitlines()[0]
    assert "bot_behaviour(" in partition.splitlines()[0]
    if job == "funnels":
        assert "pair_least_ts(" in partition.splitlines()[0]
    # Between that operator and the source there is one exchange, by kafka_partition.
    below = partition.split("\n", 1)[1]
    upstream = below[: below.index("TableSourceScan")]
    assert re.findall(r"Exchange\(distribution=\[(.*?)\]\)", upstream) == ["hash[kafka_partition]"]


def test_sessionize_copies_each_event_in_as_few_calcs_as_its_path_needs() -> None:
    """Every Calc the planner generates deep-copies the string fields it reads (issue 17: 18-26 % of the
    per-event vertices' samples), so sessionize's per-event path has one Calc per vertex and no more: the
    decode step's shared Calc, then one Calc that flattens the decoded row, keeps only the columns the job
    reads (EVENT_COLUMNS, the packed session event and the KPI dimension columns) and computes the OVER
    aggregate's arguments before the first exchange; the partition watermark's OVER aggregate feeds the
    ledger's Calc and the on-time events' Calc straight (no classification Calc shared by both in
    between); and no Calc after the dedup's OVER aggregate, whose readers (the minute cells, the session
    rows) take its rows as they are."""
    plan = job_plan("sessionize", sessionize.JOB.pipeline(pipeline_settings["sessionize"]))
    blocks = plan.strip().split("\n\n")

    def shape(block: str) -> list[str]:
        return [line.strip().split("(", 1)[0].lstrip("+- ") for line in block.splitlines()]

    partition = next(b for b in blocks if "OverAggregate(partitionBy=[kafka_partition]" in b)
    assert shape(partition) == ["OverAggregate", "Exchange", "Calc", "Reused"]
    reuse = re.search(r"\(reuse_id=\[(\d+)\]\)", partition.splitlines()[0])
    assert reuse is not None, "the partition watermark's OVER aggregate is not shared by its readers"
    readers = [b for b in blocks if f"Reused(reference_id=[{reuse.group(1)}])" in b]
    ledger = next(b for b in readers if "late_sink" in b.splitlines()[0])
    assert shape(ledger) == ["Sink", "Calc", "Reused"]
    dedup = next(b for b in readers if b.startswith("OverAggregate(partitionBy="))
    assert shape(dedup) == ["OverAggregate", "Exchange", "Calc", "Reused"]
    assert len(readers) == 2
    source_calc = partition.splitlines()[2]
    exchanged = re.search(r"select=\[(.*?)\], where=", source_calc)
    assert exchanged is not None
    columns = [c for c in exchanged.group(1).split(", ") if " AS " not in c or c.startswith("decoded.")]
    named = [c.split(" AS ")[-1] for c in columns]
    dims = [f"dim_{d}" for d in DIMENSIONS]
    assert named[: len(sessionize.EVENT_COLUMNS)] == list(sessionize.EVENT_COLUMNS)
    for unread in ("page_url", "page_title", "user_agent", "error_message", "ip", "properties"):
        assert unread not in named
    # the fields only the sessions read travel packed, in one column
    packed_only = ("referrer", "utm_source", "utm_medium", "utm_campaign", "browser", "feedback_comment")
    assert not set(packed_only) & set(named)
    assert "pack_session_event(" in source_calc and "AS packed" in source_calc
    assert all(f"AS {d}" in source_calc for d in dims)
    # The dedup's OVER aggregate is a block of its own: its readers read it without a Calc between.
    assert any(b.startswith(f"OverAggregate(partitionBy=[{dedup_key(plan)}]") for b in blocks)


def dedup_key(plan: str) -> str:
    """The dedup's partition key in `plan`: the bucket of the event id, computed right before its exchange
    (the heap state backend's dedup, io.uxstream.udf.EventIds)."""
    key = re.search(r"dedup_bucket\(event_id\) AS (\$\d+)", plan)
    assert key is not None, "no dedup_bucket(event_id) column in the plan"
    dedup = re.search(rf"OverAggregate\(partitionBy=\[\{key.group(1)}\].*occurrence_number\(", plan)
    assert dedup is not None
    assert f"Exchange(distribution=[hash[{key.group(1)}]])" in plan
    return key.group(1)


def test_on_rocksdb_the_dedup_keeps_a_window_per_event_id() -> None:
    """RocksDB would (de)serialize a whole bucket of ids on every access, so there sessionize's dedup is
    partitioned by event_id (io.uxstream.udf.OccurrenceCount, forgotten through the state TTL)."""
    settings = pipeline_settings["sessionize"]
    rocksdb = dataclasses.replace(settings, flink=settings.flink.with_options(state_backend="rocksdb"))
    plan = plan_of("sessionize", sessionize.JOB.pipeline(rocksdb), "SELECT * FROM numbered")
    overs = re.findall(r"OverAggregate\(partitionBy=\[([^\]]*)\]", plan)
    assert overs == ["event_id", "kafka_partition"]
    assert "occurrence_count(" in plan and "dedup_bucket" not in plan


def test_sessionize_runs_each_window_aggregate_once_for_all_its_readers() -> None:
    """The minute rows (kpi_minutes: the kpi_cells aggregate unnested) feed kpi_1m, the sliding and daily
    windows and, through those, ux.kpi: one tumbling, one sliding and one cumulative window aggregate, one
    UNNEST. kpi_minutes is a planned view (Step.planned_views); as DDL each reader expanded its own UNNEST,
    and the sliding and daily windows ran twice (5 window aggregates, 7 correlations)."""
    plan = job_plan("sessionize", sessionize.JOB.pipeline(pipeline_settings["sessionize"]))
    windows = re.findall(r"GlobalWindowAggregate\(.*?window=\[(\w+)\(", plan)
    assert sorted(windows) == ["CUMULATE", "HOP", "TUMBLE"]
    assert plan.count("Correlate(") == 2  # the minute cells' UNNEST, the session rows' split_sessions
    assert plan.count("$UNNEST_ROWS$") == 2  # invocation and correlate of that one Correlate
    assert plan.count("OverAggregate(") == 2
