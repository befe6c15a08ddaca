"""The bench's floor run (uxstream.bench.jobrun `floor_statements`): sessionize's own source, decode step and
events view, then exactly two hash exchanges, each feeding a keyed operator (io.uxstream.udf.KeyedFloor):
the events view's whole row by bucket of event ids (sessionize's dedup key), then the device key and the
packed session fields by device key (its sessions' key). Sessionize ÷ floor and floor ÷ bare
(BENCHMARKS.md) mean what they say only while the floor ships what sessionize's first exchange ships and
keys as sessionize must.

Flink tier (the planner's JVM starts): no job is started."""

from __future__ import annotations

import re

import pytest

from jobs.common.flink_env import create_environments
from jobs.sessionize import job as sessionize
from jobs.sessionize.settings import DIMENSIONS, SessionizeSettings
from uxstream.bench.jobrun import FLOOR_UIDS, floor_statements

pytestmark = [pytest.mark.services, pytest.mark.flink]


@pytest.fixture(scope="module")
def plan() -> str:
    settings = SessionizeSettings.from_env(None)
    _, t_env = create_environments(settings.flink, "plan-floor")
    statements = floor_statements(t_env, settings, "floor-plan")
    return str(statements.explain()).split("== Optimized Execution Plan ==")[-1]


def floor_branch(plan: str) -> list[str]:
    """The operator lines of the floor sink's branch, sink first."""
    branch = plan.split("Sink(table=[default_catalog.default_database.bench_floor_sink]")[1]
    return [line.strip() for line in branch.split("\n\n")[0].splitlines()[1:]]


def test_two_hash_exchanges_by_event_id_bucket_then_device_key_each_feed_a_keyed_operator(plan: str) -> None:
    lines = floor_branch(plan)
    assert lines[0].startswith("+- ProcessTableFunction(invocation=[keyed_floor("), lines[0]
    assert f"uid=[{FLOOR_UIDS[1]}]" in lines[0]
    assert lines[1] == "+- Exchange(distribution=[hash[device_key]])"
    assert lines[2].startswith("+- ProcessTableFunction(invocation=[keyed_floor_forward("), lines[2]
    assert f"uid=[{FLOOR_UIDS[0]}]" in lines[2] and "select=[dedup_bucket,device_key,packed,n]" in lines[2]
    assert lines[3] == "+- Exchange(distribution=[hash[dedup_bucket]])"
    assert len(re.findall(r"Exchange\(", plan)) == 2, plan


def output_names(select: str) -> list[str]:
    """The output column names of a Calc's select list (items split at top-level commas)."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(select):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            items.append(select[start:i])
            start = i + 1
    items.append(select[start:])
    return [item.strip().rsplit(" AS ", 1)[-1] for item in items]


def test_the_exchange_ships_the_columns_sessionize_reads_and_the_packed_session_fields(plan: str) -> None:
    calc = floor_branch(plan)[4]
    selected = re.search(r"Calc\(select=\[(.*)\], where=", calc)
    assert selected is not None, calc
    expected = [
        *sessionize.EVENT_COLUMNS,
        "packed",
        *(f"dim_{d}" for d in DIMENSIONS),
        "device_key",
        "dedup_bucket",
    ]
    assert output_names(selected.group(1)) == expected
