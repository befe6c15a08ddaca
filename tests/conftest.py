"""Shared fixtures and the test tiers.

`kafka_settings` and `pg_settings` start the local services once per test session (the same idempotent
start as `make up`: services that already run are reused) and fail the session's tests that need them,
with the reason, when a service cannot start. Tests never skip for a missing service.

Services are left running at the end of the session, whoever started them: the next run (or the
developer's `make run-local`) reuses them instantly, and `make down` stops them. Set the environment
(UXSTREAM_KAFKA_BOOTSTRAP_SERVERS, UXSTREAM_PG_HOST, ...) to run the tests against external services.

Tiers (tests/README.md): a test that needs a service carries the `services` marker, one that runs a Flink
job `flink` (plus `fault` or `cluster` where it applies). The fast tier (`make check`) runs the tests with
none of these markers, so two guards keep it fast: collection fails when a test without `services` uses
a service fixture, and a test without `flink` fails the moment it starts a Flink job.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import time
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from jobs.common.settings import KafkaSettings, PostgresSettings, SettingsError
from uxstream.cluster.local import CLUSTER_JVM_ARGS_ENV
from uxstream.errors import UserError
from uxstream.paths import ROOT
from uxstream.services import ensure_kafka, ensure_postgres

pytest.register_assert_rewrite("tests.support")  # the helpers' asserts explain their failures too

TEST_JVM_ARGS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
"""JVM options of the MiniCluster jobs the tests start (PyFlink's gateway reads JVM_ARGS; flink_env adds
the time zone). Test jobs run seconds over small inputs, so start-up and JIT work dominate: C1 only and
the serial collector cut a bounded smoke run from ~45 s to ~30 s on 2 cores (NOTES.md). Production runs and
`make bench` keep the jobs' own (flink_env.local_jvm_args: C2 and the parallel collector, which a GC choice
here replaces); a JVM_ARGS set by the caller wins. The local standalone cluster's
JobManager, TaskManagers and `flink run` client get the same options (uxstream/cluster/local.py)."""
os.environ.setdefault("JVM_ARGS", TEST_JVM_ARGS)
os.environ.setdefault(CLUSTER_JVM_ARGS_ENV, TEST_JVM_ARGS)

SERVICE_FIXTURES = frozenset(
    {"kafka_settings", "pg_settings", "make_database", "flink_cluster", "redis_settings"}
)
"""Fixtures that start (or need) the local Kafka broker, PostgreSQL, Redis or a Flink cluster."""

EXPENSIVE = frozenset({"flink", "fault", "cluster", "exclusive"})
"""Markers that imply `services`."""

FLINK_TIERS = ("flink", "fault", "cluster")
"""Markers of tests that run Flink jobs; `fault` and `cluster` tests are `flink` tests too."""

TIERS = ("check", "services", "flink", "fault", "cluster", "browser")
"""The tiers a test belongs to, cheapest first: a test's tier is its most expensive marker."""

SERVICES_LOCK = ROOT / ".local" / "pytest-services.lock"
"""Taken shared by every `services` test and exclusively by an `exclusive` one (it stops a shared service),
so that with several workers (pytest-xdist) an outage never hits another worker's test."""


@pytest.fixture(scope="session")
def kafka_settings() -> Iterator[KafkaSettings]:
    """Settings of a Kafka broker that answers (the local one, started if needed)."""
    try:
        settings = KafkaSettings.from_env()
        ensure_kafka(settings)
    except (UserError, SettingsError) as exc:
        pytest.fail(f"Kafka is not available: {exc}", pytrace=False)
    yield settings


@pytest.fixture(scope="session")
def pg_settings() -> Iterator[PostgresSettings]:
    """Settings of a PostgreSQL server that accepts connections (the local one, started if needed)."""
    try:
        ensure_postgres(PostgresSettings.from_env())
        # Again: a first start creates the local server's passwords and CA, which the settings read.
        settings = PostgresSettings.from_env()
    except (UserError, SettingsError) as exc:
        pytest.fail(f"PostgreSQL is not available: {exc}", pytrace=False)
    yield settings


# --------------------------------------------------------------------------------------------- tiers


def tier_errors(items: Sequence[pytest.Item]) -> list[str]:
    """Tests whose markers do not say what they start (the collection check)."""
    errors = []
    for item in items:
        marks = {m.name for m in item.iter_markers()}
        used = sorted(set(getattr(item, "fixturenames", ())) & SERVICE_FIXTURES)
        if used and "services" not in marks:
            errors.append(f"{item.nodeid}: uses {', '.join(used)} but is not marked `services`")
        if marks & {"fault", "cluster"} and "flink" not in marks:
            errors.append(f"{item.nodeid}: a `fault` or `cluster` test runs Flink: mark it `flink` too")
        implying = sorted(marks & EXPENSIVE)
        if implying and "services" not in marks:
            errors.append(
                f"{item.nodeid}: a `{'`, `'.join(implying)}` test needs the services: mark it `services`"
            )
    return errors


def worker_group(item: pytest.Item) -> str | None:
    """With several workers (`--dist loadgroup`), the tests that must run on one worker: every cluster test
    (one local cluster, fixed ports), and the tests of a module that share its expensive fixtures (a job
    run); fault scenarios run a job of their own each, so they spread."""
    if item.get_closest_marker("cluster"):
        return "flink-cluster"
    if item.get_closest_marker("services") and not item.get_closest_marker("fault"):
        return item.nodeid.split("::")[0]
    return None


def tier_of(item: pytest.Item) -> str:
    """A test's tier: its most expensive tier marker, `check` without one."""
    return next((t for t in reversed(TIERS) if item.get_closest_marker(t)), "check")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The collection check; then each test's worker group and tier, and the most expensive tiers first
    (the workers then start on the long job runs and end on short tests instead of one long tail)."""
    errors = tier_errors(items)
    if errors:
        raise pytest.UsageError(
            "tests without the markers of their tier (tests/README.md):\n" + "\n".join(errors)
        )
    for item in items:
        group = worker_group(item)
        if group and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(group))
        item.user_properties.append(("tier", tier_of(item)))
    rank = {"cluster": 0, "fault": 1, "flink": 2, "browser": 3, "services": 4, "check": 5}
    items.sort(key=lambda item: rank[tier_of(item)])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, object, object]:
    """Hold the services lock around a `services` test, its fixtures' setup and teardown included: shared,
    or exclusive for an `exclusive` test."""
    if not item.get_closest_marker("services"):
        return (yield)
    exclusive = item.get_closest_marker("exclusive") is not None
    SERVICES_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with SERVICES_LOCK.open("a") as handle, contextlib.ExitStack() as held:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        held.callback(fcntl.flock, handle, fcntl.LOCK_UN)
        return (yield)


def starts_flink(argv: Any) -> bool:
    """Whether a command line starts a Flink job or cluster: a job module, `uxstream run|demo|bench`,
    `uxstream cluster up`, or Flink's own scripts (what `uxstream cluster submit|upgrade` call)."""
    if isinstance(argv, (str, bytes, Path)):
        args = [str(argv)]
    else:
        args = [a.decode() if isinstance(a, bytes) else str(a) for a in argv]
    for i, arg in enumerate(args):
        if arg == "-m" and i + 1 < len(args):
            module, rest = args[i + 1], args[i + 2 : i + 4]
            if module.startswith("jobs.") and module.endswith(".job"):
                return True
            if module == "uxstream.cli" and rest[:1] and rest[0] in ("run", "demo", "bench"):
                return True
            if module == "uxstream.cli" and rest == ["cluster", "up"]:
                return True
        if Path(arg).name in ("flink", "start-cluster.sh", "jobmanager.sh", "taskmanager.sh"):
            return True
    return False


@pytest.fixture(autouse=True)
def flink_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test without the `flink` marker fails when it starts a Flink job (in a subprocess or in-process)."""
    if any(request.node.get_closest_marker(m) for m in FLINK_TIERS):
        return
    real_popen = subprocess.Popen
    nodeid = request.node.nodeid

    class GuardedPopen(real_popen):  # type: ignore[valid-type,misc]
        def __init__(self, args: Any, *rest: Any, **kwargs: Any) -> None:
            if starts_flink(args):
                pytest.fail(
                    f"{nodeid} starts a Flink job ({args!r}) but is not marked `flink`", pytrace=False
                )
            super().__init__(args, *rest, **kwargs)

    def no_flink(*args: Any, **kwargs: Any) -> Any:
        pytest.fail(f"{nodeid} creates a Flink environment but is not marked `flink`", pytrace=False)

    monkeypatch.setattr(subprocess, "Popen", GuardedPopen)
    monkeypatch.setattr("jobs.common.flink_env.create_environments", no_flink)


# ------------------------------------------------------------------------------------ timing report


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--tier-report",
        metavar="PATH",
        default=None,
        help="write every test's duration (setup + call + teardown), tier and outcome as JSON to PATH "
        "(summarise with `python -m tests.support.durations PATH`)",
    )


_DURATIONS: dict[str, dict[str, Any]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Every phase's duration (also the workers' reports, under pytest-xdist)."""
    tier = dict(report.user_properties).get("tier", "check")
    nodeid = report.nodeid.split("@", 1)[0]  # without pytest-xdist's group suffix
    entry = _DURATIONS.setdefault(nodeid, {"seconds": 0.0, "outcome": "passed", "tier": tier})
    entry["seconds"] += report.duration
    if report.failed:
        entry["outcome"] = "failed"


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--tier-report")
    if path and not hasattr(session.config, "workerinput"):  # the controller (or a run without workers)
        tests = [{"nodeid": k, **v} for k, v in _DURATIONS.items()]
        Path(path).write_text(json.dumps({"finished_at": time.time(), "tests": tests}, indent=1))
