"""The tier guards of tests/conftest.py: a test's markers must say what it starts, or it fails."""

from __future__ import annotations

import pytest

from tests.conftest import starts_flink
from uxstream.paths import ROOT

pytest_plugins = ["pytester"]

CONFTEST = "from tests.conftest import *  # noqa: F403\n"
"""The inner session uses the project's conftest (its hooks and fixtures)."""


def inner_pytest(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run pytest on the files `pytester` made, in a process of its own (this test's own guard patches
    subprocess in this process), with the project importable."""
    pytester._monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


@pytest.mark.parametrize(
    "argv",
    [
        ["/usr/bin/python3", "-m", "jobs.sessionize.job", "--bounded"],
        ["python", "-m", "jobs.funnels.job"],
        ["python", "-m", "uxstream.cli", "run", "anomaly", "--bounded"],
        ["python", "-m", "uxstream.cli", "demo"],
        ["python", "-m", "uxstream.cli", "bench", "--smoke"],
        ["python", "-m", "uxstream.cli", "cluster", "up"],
        ["/opt/flink/bin/flink", "run", "-pym", "jobs.sessionize.job"],
        [b"python", b"-m", b"jobs.smoke.job"],
    ],
)
def test_command_lines_that_start_flink_are_recognised(argv: list[str]) -> None:
    assert starts_flink(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["python", "-m", "uxstream.cli", "generate", "--dry-run"],
        ["python", "-m", "uxstream.cli", "cluster", "savepoint", "sessionize"],
        ["python", "-m", "uxstream.cli", "validate"],
        ["java", "-cp", "udf.jar", "io.uxstream.udf.DecodeCli"],
        ["python", "-m", "jobs.common.contract"],
        "ls -l",
    ],
)
def test_command_lines_that_start_no_flink_job_pass(argv: list[str] | str) -> None:
    assert not starts_flink(argv)


def test_an_unmarked_test_using_a_service_fixture_fails_collection(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile("def test_x(pg_settings):\n    pass\n")
    result = inner_pytest(pytester, "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_x: uses pg_settings but is not marked `services`*"])


def test_contradicting_markers_fail_collection(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        "import pytest\n"
        "@pytest.mark.fault\ndef test_fault():\n    pass\n"
        "@pytest.mark.flink\ndef test_flink():\n    pass\n"
    )
    result = inner_pytest(pytester, "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*test_fault: a `fault` or `cluster` test runs Flink: mark it `flink` too*",
            "*test_fault: a `fault` test needs the services: mark it `services`*",
            "*test_flink: a `flink` test needs the services: mark it `services`*",
        ]
    )


def test_an_unmarked_test_that_starts_a_job_fails_before_the_job_starts(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        "import subprocess, sys\n"
        "def test_sneaky(tmp_path):\n"
        "    marker = tmp_path / 'ran'\n"
        "    subprocess.run([sys.executable, '-m', 'jobs.sessionize.job', '--help'])\n"
        "    marker.write_text('the job command ran')\n"
    )
    result = inner_pytest(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*test_sneaky starts a Flink job (*jobs.sessionize.job*) but is not marked `flink`*"]
    )


def test_an_unmarked_test_that_creates_a_flink_environment_fails(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        "from jobs.common import flink_env\n"
        "def test_in_process():\n"
        "    flink_env.create_environments(flink_env.FlinkSettings(), 'x')\n"
    )
    result = inner_pytest(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*test_in_process creates a Flink environment but is not marked `flink`*"])


def test_a_marked_test_may_start_a_job_command(pytester: pytest.Pytester) -> None:
    """The guard is off for `flink` tests (here the job only prints its help: nothing starts)."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        "import pytest, subprocess, sys\n"
        "pytestmark = [pytest.mark.services, pytest.mark.flink]\n"
        "def test_job_help():\n"
        "    command = [sys.executable, '-m', 'jobs.sessionize.job', '--help']\n"
        "    proc = subprocess.run(command, capture_output=True)\n"
        "    assert proc.returncode == 0\n"
    )
    result = inner_pytest(pytester)
    result.assert_outcomes(passed=1)
