"""The uid lint (RELIABILITY.md T11): a stateful DataStream operator without `.uid(...)` fails the build."""

from __future__ import annotations

from pathlib import Path

import pytest

from uxstream.cluster.uid_lint import Finding, check_paths, check_source
from uxstream.paths import ROOT

EXAMPLE = Path("jobs/example/job.py")

HEADER = "from pyflink.datastream import StreamExecutionEnvironment\n"


def lint(body: str) -> list[str]:
    return [str(f) for f in check_source(HEADER + body, EXAMPLE)]


def test_every_stateful_operator_in_the_jobs_has_a_uid() -> None:
    findings = check_paths([ROOT / "jobs"])
    assert findings == [], "\n".join(str(f) for f in findings)


def test_a_keyed_process_function_without_uid_is_reported_with_file_and_line() -> None:
    assert lint('ds.key_by(lambda r: r[0]).process(Fn()).name("sessions")\n') == [
        "jobs/example/job.py:2: .process(...) creates a stateful operator without .uid(...)"
    ]


@pytest.mark.parametrize(
    "body",
    [
        'ds.key_by(k).process(Fn()).uid("example.sessions.v1")\n',
        'ds.key_by(k).process(Fn()).name("sessions").uid("example.sessions.v1")\n',
        'ds.key_by(k).process(Fn()).uid("example.sessions.v1").name("sessions").set_parallelism(2)\n',
        '(\n    ds.key_by(k)\n    .reduce(add)\n    .name("totals")\n    .uid("example.totals.v1")\n)\n',
        'env.from_source(src, wm, "events").uid("example.source.v1")\n',
        "ds.map(parse).filter(valid)\n",  # stateless: not keyed
    ],
)
def test_operators_with_a_uid_or_without_state_pass(body: str) -> None:
    assert lint(body) == []


@pytest.mark.parametrize(
    ("body", "operator"),
    [
        ("ds.key_by(k).reduce(add)\n", "reduce"),
        ("ds.key_by(k).map(RichCounter())\n", "map"),
        ("ds.key_by(k).window(w).aggregate(Agg())\n", "aggregate"),
        ('env.from_source(src, wm, "events")\n', "from_source"),
        ("ds.sink_to(kafka_sink).name('out')\n", "sink_to"),
        ('ds.key_by(k).process(Fn()).uid("a").name("b")\nds.key_by(k).process(Fn())\n', "process"),
    ],
)
def test_stateful_operators_without_uid_are_reported(body: str, operator: str) -> None:
    [finding] = check_source(HEADER + body, EXAMPLE)
    assert finding.operator == operator


def test_files_without_pyflink_are_not_flink_code() -> None:
    assert check_source("self.process(funnels, user, event)\n", EXAMPLE) == []


def test_a_finding_names_file_line_and_operator() -> None:
    assert str(Finding(EXAMPLE, 7, "process")) == (
        "jobs/example/job.py:7: .process(...) creates a stateful operator without .uid(...)"
    )
