"""A job is a list of named steps (jobs/common/pipeline.py): what each job submits, in which order, and how
`Pipeline.submit` hands the steps to Flink. Rendering only: no Flink, no services."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from jobs.anomaly import job as anomaly
from jobs.common import runner
from jobs.common.pipeline import Flow, Pipeline, Step, is_insert
from jobs.funnels import job as funnels
from jobs.sessionize import job as sessionize

_TABLE = re.compile(r"CREATE TEMPORARY TABLE\s+`?(\w+)`?", re.IGNORECASE)
_VIEW = re.compile(r"CREATE TEMPORARY VIEW\s+`?(\w+)`?", re.IGNORECASE)
_INSERT = re.compile(r"INSERT INTO\s+`?(\w+)`?", re.IGNORECASE)


@pytest.fixture
def pipelines(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Pipeline]]:
    """Each job's pipeline with its shipped settings (anomaly: as if ux.funnel existed)."""
    monkeypatch.setattr(anomaly, "reads_funnels", lambda settings: True)
    jobs: dict[str, runner.JobSpec[Any]] = {
        "sessionize": sessionize.JOB,
        "funnels": funnels.JOB,
        "anomaly": anomaly.JOB,
    }
    yield {name: spec.pipeline(spec.settings(None)) for name, spec in jobs.items()}


def inserts(pipeline: Pipeline) -> list[tuple[str, str]]:
    """(step, target table) of every INSERT, in submission order."""
    targets = []
    for step, statement in pipeline.sql():
        if is_insert(statement):
            match = _INSERT.match(statement.strip())
            assert match, statement
            targets.append((step, match.group(1)))
    return targets


# The order of the INSERTs and DataStream parts is the job's plan order, which numbers its stateful SQL
# operators (their uids): a change here changes the state layout, so bump the job's STATE_LAYOUT with it.
PLAN_ORDER = {
    ("sessionize", 15): [
        ("dead letters", "ux_events_dlq"),
        ("windows and sessions", "late_sink"),  # the ledger rows of the classify step's views
        ("windows and sessions", "kpi_1m_sink"),
        ("windows and sessions", "kpi_sliding_sink"),
        ("windows and sessions", "kpi_daily_sink"),
        ("windows and sessions", "sessions_sink"),
        ("windows and sessions", "kpi_topic_sink"),
    ],
    ("funnels", 7): [
        ("dead letters and late ledger", "ux_events_dlq"),
        ("dead letters and late ledger", "late_sink"),
        ("outputs", "attempts_sink"),
        ("outputs", "windows_sink"),
        ("outputs", "window_steps_sink"),
        ("outputs", "funnel_topic"),
    ],
    ("anomaly", None): [("alerts", "anomalies_sink"), ("alerts", "alerts_topic")],
}


def test_each_job_reads_as_its_named_steps(pipelines: dict[str, Pipeline]) -> None:
    assert {name: [s.name for s in p.steps] for name, p in pipelines.items()} == {
        "sessionize": [
            "source and decode",
            "columns read",
            "classify",
            "sinks",
            "dead letters",
            "windows and sessions",
        ],
        "funnels": [
            "source and decode",
            "relevant events",
            "classify",
            "routed and sinks",
            "route",
            "dead letters and late ledger",
            "attempts and windows",
            "outputs",
        ],
        "anomaly": ["functions", "sources and sinks", "detect", "alerts"],
    }


def test_the_plan_order_of_the_outputs_belongs_to_the_state_layout(pipelines: dict[str, Pipeline]) -> None:
    layouts = {"sessionize": sessionize.JOB, "funnels": funnels.JOB, "anomaly": anomaly.JOB}
    for name, pipeline in pipelines.items():
        key = (name, layouts[name].state_layout)
        assert key in PLAN_ORDER, f"{name}: state layout {key[1]} has no recorded plan order (add it here)"
        got = [(step, target) for step, target in inserts(pipeline)]
        assert got == PLAN_ORDER[key], (
            f"{name}: the outputs are submitted in another order than state layout {key[1]}: "
            "bump the job's STATE_LAYOUT and record the new order"
        )


def test_every_insert_writes_a_table_and_reads_only_what_earlier_steps_created(
    pipelines: dict[str, Pipeline],
) -> None:
    for name, pipeline in pipelines.items():
        tables: set[str] = set()
        views: set[str] = set()
        for step in pipeline.steps:
            for statement in step.sql:
                if match := _TABLE.match(statement):
                    tables.add(match.group(1))
                elif match := _VIEW.match(statement):
                    views.add(match.group(1))
                elif is_insert(statement):
                    target = _INSERT.match(statement.strip())
                    assert target and target.group(1) in tables, f"{name}/{step.name}: {statement[:60]}"
        assert not tables & views, f"{name}: a table and a view share a name: {tables & views}"


def test_a_sql_only_job_executes_its_statement_set_and_a_datastream_job_attaches_it(
    pipelines: dict[str, Pipeline],
) -> None:
    assert not pipelines["sessionize"].datastream
    assert pipelines["funnels"].datastream
    assert pipelines["anomaly"].datastream


# ------------------------------------------------------------------------------------- Pipeline.submit


@dataclass
class Recorder:
    """Records what `submit` asks of the table environment, in order."""

    calls: list[tuple[str, Any]] = field(default_factory=list)

    def get_config(self) -> Recorder:
        return self

    def set(self, key: str, value: str) -> None:
        self.calls.append(("config", (key, value)))

    def create_statement_set(self) -> Recorder:
        return self

    def create_temporary_function(self, name: str, function: Any) -> None:
        self.calls.append(("function", name))

    def execute_sql(self, statement: str) -> None:
        self.calls.append(("execute", statement))

    def add_insert_sql(self, statement: str) -> None:
        self.calls.append(("insert", statement))

    def attach_as_datastream(self) -> None:
        self.calls.append(("attach", None))

    def sql_query(self, query: str) -> str:
        self.calls.append(("bind", query))
        return f"table of {query}"

    def create_temporary_view(self, name: str, table: str) -> None:
        self.calls.append(("view", (name, table)))

    def execute(self) -> str:
        self.calls.append(("run", None))
        if self.failures:
            raise self.failures.pop(0)
        return "result"

    failures: list[Exception] = field(default_factory=list)
    """What the next `execute` calls raise, in order."""


def stream_step(record: Recorder, name: str) -> Callable[[Flow], None]:
    def run(flow: Flow) -> None:
        flow.streams[name] = len(flow.streams)
        record.calls.append(("stream", (name, dict(flow.streams))))

    return run


def test_submit_runs_the_steps_in_order_functions_first_then_sql_then_the_stream_part() -> None:
    record = Recorder()
    pipeline = Pipeline(
        config=(("table.exec.state.ttl", "1 ms"),),
        steps=(
            Step("a", ("CREATE TEMPORARY VIEW v AS SELECT 1", "INSERT INTO t SELECT * FROM v")),
            Step("b", ("  insert into u SELECT 2",), functions=lambda: {"f": object()}),
            Step("c", stream=stream_step(record, "s1")),
            Step("d", stream=stream_step(record, "s2")),
        ),
    )
    assert pipeline.submit(env=object(), t_env=record) is None
    assert record.calls == [
        ("config", ("table.exec.state.ttl", "1 ms")),
        ("execute", "CREATE TEMPORARY VIEW v AS SELECT 1"),
        ("insert", "INSERT INTO t SELECT * FROM v"),
        ("function", "f"),
        ("insert", "  insert into u SELECT 2"),
        ("stream", ("s1", {"s1": 0})),
        ("stream", ("s2", {"s1": 0, "s2": 1})),  # a later step sees the streams of the earlier ones
        ("bind", "SELECT 1"),
        ("attach", None),
    ]


def test_a_sql_only_pipeline_is_executed_and_its_result_returned() -> None:
    record = Recorder()
    result = Pipeline(steps=(Step("a", ("INSERT INTO t SELECT 1",)),)).submit(None, record)
    assert result == "result"
    assert record.calls == [("insert", "INSERT INTO t SELECT 1"), ("bind", "SELECT 1"), ("run", None)]


PLANNER_NPE = (
    "An error occurred while calling o147.execute.\n: java.lang.NullPointerException: metadataHandlerProvider"
)


def test_planning_on_a_gateway_thread_without_metadata_providers_is_planned_once_more() -> None:
    """FLINK-23020 (jobs.common.pipeline.PLANNER_THREAD_RACE): the failed execute() cleared its statements,
    so every INSERT is added again before the second (and last) attempt."""
    record = Recorder(failures=[RuntimeError(PLANNER_NPE)])
    pipeline = Pipeline(
        steps=(Step("a", ("CREATE TEMPORARY VIEW v AS SELECT 1", "INSERT INTO t SELECT * FROM v")),
               Step("b", ("INSERT INTO u SELECT 2",))),
    )  # fmt: skip
    assert pipeline.submit(None, record) == "result"
    assert record.calls == [
        ("execute", "CREATE TEMPORARY VIEW v AS SELECT 1"),
        ("insert", "INSERT INTO t SELECT * FROM v"),
        ("insert", "INSERT INTO u SELECT 2"),
        ("bind", "SELECT 1"),
        ("run", None),
        ("insert", "INSERT INTO t SELECT * FROM v"),
        ("insert", "INSERT INTO u SELECT 2"),
        ("bind", "SELECT 1"),
        ("run", None),
    ]


def test_other_planning_errors_and_a_second_race_are_raised() -> None:
    pipeline = Pipeline(steps=(Step("a", ("INSERT INTO t SELECT 1",)),))
    with pytest.raises(RuntimeError, match="Object 'nope' not found"):
        pipeline.submit(None, Recorder(failures=[RuntimeError("Object 'nope' not found")]))
    twice = Recorder(failures=[RuntimeError(PLANNER_NPE), RuntimeError(PLANNER_NPE)])
    with pytest.raises(RuntimeError, match="metadataHandlerProvider"):
        pipeline.submit(None, twice)
    assert [name for name, _ in twice.calls].count("run") == 2


def test_a_stream_step_without_a_stream_environment_is_refused() -> None:
    pipeline = Pipeline(steps=(Step("detect", stream=lambda flow: None),))
    with pytest.raises(
        ValueError, match="step 'detect' is a DataStream part: it needs the stream environment"
    ):
        pipeline.submit(None, Recorder())


def test_step_names_are_distinct_and_steps_are_found_by_name() -> None:
    with pytest.raises(ValueError, match="repeated: a"):
        Pipeline(steps=(Step("a"), Step("b"), Step("a")))
    pipeline = Pipeline(steps=(Step("a"), Step("b")))
    assert pipeline.step("b").name == "b"
    with pytest.raises(KeyError, match="no step 'c'; the steps are a, b"):
        pipeline.step("c")


def test_a_planned_view_is_created_from_its_planned_query_and_must_exist() -> None:
    """Step.planned_views: the view's query is planned once (`sql_query`) and registered as a table, so every
    reader shares that tree; other views stay DDL."""
    record = Recorder()
    step = Step(
        "a",
        ("CREATE TEMPORARY VIEW cells AS\nSELECT 1 AS x",
         "create temporary view  rows  as SELECT x FROM cells",
         "INSERT INTO t SELECT * FROM rows"),
        planned_views=frozenset({"rows"}),
    )  # fmt: skip
    Pipeline(steps=(step,)).submit(None, record)
    assert record.calls[:4] == [
        ("execute", "CREATE TEMPORARY VIEW cells AS\nSELECT 1 AS x"),
        ("bind", "SELECT x FROM cells"),
        ("view", ("rows", "table of SELECT x FROM cells")),
        ("insert", "INSERT INTO t SELECT * FROM rows"),
    ]
    with pytest.raises(ValueError, match="step 'a' creates no view nope to plan"):
        Pipeline(steps=(Step("a", ("INSERT INTO t SELECT 1",), planned_views=frozenset({"nope"})),))
