"""A job as a short list of named steps: what `job.py` declares and the one place that submits it.

Each step is rendered by one module from typed specs (`decode.source_step`, `decode.classify_step`,
`decode.dead_letter_step`, the job's own recipe rendered by `connectors.render_sql`, the job's windows) and
is either SQL or a DataStream part:

    def pipeline(settings: SessionizeSettings) -> Pipeline:
        spec = decode_spec(settings)
        return Pipeline(
            config=(("table.exec.state.ttl", f"{settings.dedup_ttl_ms} ms"), decode.SHARED_VIEWS),
            steps=(
                decode.source_step(spec),                   # Kafka source, decode, DLQ table
                decode.classify_step("ux_events", ...),     # late / future / on time, occurrence numbers
                Step("sinks", connectors.render_sql(SQL, ...)),
                decode.dead_letter_step(spec),              # invalid records → DLQ
                Step("windows", statements(settings), functions=python_functions),
            ),
        )

`Pipeline.submit` runs the steps in order: a step's Python functions are registered first, then its DDL
and views are executed and its INSERTs are added to the job's one statement set, then its DataStream part
(`stream`) runs; at the end the statement set is executed (a SQL job: the runner waits for the result) or
attached to the DataStream environment (a job with a DataStream part: the runner executes `env`).

The order of the INSERTs and DataStream operators is the job's plan order: the planner numbers stateful SQL
operators in that order (their uids, `runner.uid_format`), so re-ordering steps changes the job's state
layout. `Pipeline.sql()` lists every statement with its step (no pyflink needed): tests check the rendered
SQL without starting Flink.

This module has no pyflink import at module level.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import StatementSet, StreamTableEnvironment
    from pyflink.table.table_result import TableResult


@dataclass(frozen=True)
class Flow:
    """What a DataStream step works with: the environments, the job's statement set, and the DataStreams
    earlier steps made (by name: a later step continues them without a round trip through a table)."""

    env: StreamExecutionEnvironment
    t_env: StreamTableEnvironment
    statements: StatementSet
    streams: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """One named part of a job."""

    name: str
    sql: tuple[str, ...] = ()
    """DDL and views (executed at once) and INSERTs (added to the job's statement set), in order."""
    functions: Callable[[], Mapping[str, Any]] | None = None
    """Python UDFs the SQL calls, by SQL name (a callable, so that rendering imports no pyflink)."""
    stream: Callable[[Flow], None] | None = None
    """A DataStream part, run after the SQL (reads views created before it, creates views after it)."""
    planned_views: frozenset[str] = frozenset()
    """Views of `sql` (`CREATE TEMPORARY VIEW name AS query`) created from their planned query (Table API)
    instead of as DDL: every reader then shares one relational tree, so the planner's block reuse
    (decode.SHARED_VIEWS) feeds them all from one copy even when the query has a correlation (an UNNEST).
    A DDL view is expanded anew in each reader, with new correlation ids, so each reader got its own copy
    of it and of everything it reads that sits above the correlation."""


_VIEW = re.compile(r"\s*CREATE\s+TEMPORARY\s+VIEW\s+(\w+)\s+AS\s+(.*)\Z", re.IGNORECASE | re.DOTALL)


def create(t_env: StreamTableEnvironment, step: Step, statement: str) -> None:
    """Execute one DDL statement or view of `step` (a planned view through the Table API)."""
    match = _VIEW.match(statement)
    if match and match.group(1) in step.planned_views:
        t_env.create_temporary_view(match.group(1), t_env.sql_query(match.group(2)))
    else:
        t_env.execute_sql(statement)


def view_names(step: Step) -> set[str]:
    """The names of the views `step`'s SQL creates."""
    return {m.group(1) for m in map(_VIEW.match, step.sql) if m}


def is_insert(statement: str) -> bool:
    return statement.lstrip().upper().startswith("INSERT")


@dataclass(frozen=True)
class Pipeline:
    """A job: table configuration, then its steps in plan order."""

    steps: tuple[Step, ...]
    config: tuple[tuple[str, str], ...] = ()
    """Table options the job needs (`table.exec.state.ttl`, ...), set before the first step."""

    def __post_init__(self) -> None:
        names = [step.name for step in self.steps]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"pipeline steps must have distinct names; repeated: {', '.join(duplicates)}")
        for step in self.steps:
            missing = sorted(step.planned_views - view_names(step))
            if missing:
                raise ValueError(f"step {step.name!r} creates no view {', '.join(missing)} to plan")

    @property
    def datastream(self) -> bool:
        """True when a step is a DataStream part: the statement set is attached to `env`, which runs it."""
        return any(step.stream is not None for step in self.steps)

    def sql(self) -> list[tuple[str, str]]:
        """Every SQL statement with the name of its step, in submission order."""
        return [(step.name, statement) for step in self.steps for statement in step.sql]

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"no step {name!r}; the steps are {', '.join(s.name for s in self.steps)}")

    def submit(
        self, env: StreamExecutionEnvironment | None, t_env: StreamTableEnvironment
    ) -> TableResult | None:
        """Add the job to the environments. A SQL-only job is executed here (the caller waits on the result);
        a job with a DataStream part returns None and the caller executes `env`."""
        config = t_env.get_config()
        for key, value in self.config:
            config.set(key, value)
        statements = t_env.create_statement_set()
        inserts: list[str] = []
        flow = None if env is None else Flow(env, t_env, statements)
        for step in self.steps:
            if step.functions is not None:
                for name, function in step.functions().items():
                    t_env.create_temporary_function(name, function)
            for statement in step.sql:
                if is_insert(statement):
                    statements.add_insert_sql(statement)
                    inserts.append(statement)
                else:
                    create(t_env, step, statement)
            if step.stream is not None:
                if flow is None:
                    raise ValueError(
                        f"step {step.name!r} is a DataStream part: it needs the stream environment"
                    )
                step.stream(flow)
        bind_planner_thread(t_env)
        if self.datastream:
            statements.attach_as_datastream()
            return None
        try:
            return statements.execute()
        except Exception as exc:  # py4j's Py4JJavaError
            if PLANNER_THREAD_RACE not in str(exc):
                raise
        # The failed execute() planned nothing and cleared its statements: plan them once more.
        again = t_env.create_statement_set()
        for statement in inserts:
            again.add_insert_sql(statement)
        bind_planner_thread(t_env)
        return again.execute()


PLANNER_THREAD_RACE = "metadataHandlerProvider"
"""The message of the planner's NullPointerException when it optimizes on a py4j gateway thread where
Calcite's per-thread metadata providers were never set (FLINK-23020): Calcite sets them on the thread
that converts a query, and py4j may serve the next call from another of its threads (seen once, in the
latency run of the bench smoke test, session 13)."""


def bind_planner_thread(t_env: StreamTableEnvironment) -> None:
    """Convert a trivial query right before planning: Calcite then has Flink's metadata providers on the
    gateway thread that serves this Python thread's next call (py4j reuses the connection it was just
    given back)."""
    t_env.sql_query("SELECT 1")
