"""The local standalone Flink cluster: a JobManager and a TaskManager from the PyFlink distribution.

The wheel ships Flink's `bin/` scripts and `lib/`; the cluster runs them with a generated conf dir
(`.local/flink-cluster/conf`, from flink-conf/config.yaml), its own lib dir (Flink's jars + flink-python),
logs in `.local/flink-cluster/log` and pid files in `.local/flink-cluster/pid`. Everything binds to
127.0.0.1; the REST port (18081) and RPC ports (16123-16139) stay clear of Kafka and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from uxstream.cluster.config import LocalCluster
from uxstream.cluster.rest import FlinkRest
from uxstream.errors import UserError

IDENT = "uxstream"
"""FLINK_IDENT_STRING of the local cluster's processes: names their pid and log files."""

CLUSTER_JVM_ARGS_ENV = "UXSTREAM_CLUSTER_JVM_ARGS"
"""Extra JVM options for the local cluster's JobManager, TaskManagers and `flink` client (Flink's scripts
put JVM_ARGS before env.java.opts.all). Unset by default; the test suite sets its C1/serial-GC options."""


def flink_home() -> Path:
    """The Flink distribution inside the installed apache-flink wheel (bin/, lib/, opt/, plugins/)."""
    import pyflink

    home = Path(pyflink.__file__).resolve().parent
    if not (home / "bin" / "flink").exists():
        raise UserError(f"no Flink distribution in {home}: reinstall the apache-flink wheel (`make setup`)")
    return home


def script_env(cluster: LocalCluster, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of Flink's bin/ scripts for the local cluster (`extra`: e.g. the Python workers' secrets,
    which they read from the TaskManager's environment)."""
    home = flink_home()
    env = {
        **os.environ,
        **(extra or {}),
        "FLINK_HOME": str(home),
        "FLINK_CONF_DIR": str(cluster.conf_dir),
        "FLINK_LIB_DIR": str(cluster.lib_dir),
        "FLINK_LOG_DIR": str(cluster.log_dir),
        "FLINK_PID_DIR": str(cluster.pid_dir),
        "FLINK_PLUGINS_DIR": str(home / "plugins"),
        "FLINK_OPT_DIR": str(home / "opt"),
        "FLINK_IDENT_STRING": IDENT,
    }
    env.pop("JVM_ARGS", None)  # flink_env's MiniCluster option; the cluster takes env.java.opts.all
    extra_jvm = os.environ.get(CLUSTER_JVM_ARGS_ENV, "").strip()
    if extra_jvm:
        env["JVM_ARGS"] = extra_jvm
    return env


def _script(cluster: LocalCluster, name: str, *args: str, env: Mapping[str, str] | None = None) -> None:
    proc = subprocess.run(
        [str(flink_home() / "bin" / name), *args],
        env=script_env(cluster, env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise UserError(f"{name} {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def _pid_file(cluster: LocalCluster, daemon: str) -> Path:
    return cluster.pid_dir / f"flink-{IDENT}-{daemon}.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped by its parent) counts as dead.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def pids(cluster: LocalCluster, daemon: str) -> list[int]:
    """Live pids of `standalonesession` (JobManager) or `taskexecutor` (TaskManager) processes."""
    path = _pid_file(cluster, daemon)
    if not path.exists():
        return []
    found = [int(line) for line in path.read_text().split() if line.strip().isdigit()]
    return [pid for pid in found if _alive(pid)]


def taskmanager_pids(cluster: LocalCluster) -> list[int]:
    return pids(cluster, "taskexecutor")


def jobmanager_pids(cluster: LocalCluster) -> list[int]:
    return pids(cluster, "standalonesession")


def _wait(condition_text: str, check: object, timeout_s: float, cluster: LocalCluster) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except UserError:  # e.g. 503 while the JobManager starts
            pass
        time.sleep(0.5)
    raise UserError(f"{condition_text} within {timeout_s:.0f} s: see the logs in {cluster.log_dir}")


def start_taskmanager(
    cluster: LocalCluster, timeout_s: float = 120.0, env: Mapping[str, str] | None = None
) -> None:
    """Start one more TaskManager (`env`: added to its environment) and wait until it registers."""
    rest = FlinkRest(cluster.rest_url)
    before = {tm["id"] for tm in rest.taskmanagers()}
    _script(cluster, "taskmanager.sh", "start", env=env)
    _wait(
        "the new TaskManager did not register",
        lambda: any(tm["id"] not in before for tm in rest.taskmanagers()),
        timeout_s,
        cluster,
    )


def up(cluster: LocalCluster, timeout_s: float = 120.0, env: Mapping[str, str] | None = None) -> str:
    """Start JobManager + one TaskManager unless the cluster already answers; return a status line.

    The processes inherit this environment plus `env`: Python UDFs run in the TaskManager and read their
    secrets (UXSTREAM_PSEUDONYM_KEY[_FILE], ...) from it.
    """
    rest = FlinkRest(cluster.rest_url)
    if rest.is_up() and int(rest.overview()["taskmanagers"]) >= 1:
        return f"Flink cluster already up at {cluster.rest_url} ({_describe(rest)})"
    if not jobmanager_pids(cluster):
        cluster.write_conf_dir(flink_home())
        _script(cluster, "jobmanager.sh", "start")
    _wait(f"the JobManager did not answer at {cluster.rest_url}", rest.is_up, timeout_s, cluster)
    if not taskmanager_pids(cluster):
        _script(cluster, "taskmanager.sh", "start", env=env)
    _wait(
        "the TaskManager did not register",
        lambda: int(rest.overview()["taskmanagers"]) >= 1,
        timeout_s,
        cluster,
    )
    return f"Flink cluster up at {cluster.rest_url} ({_describe(rest)}); logs in {cluster.log_dir}"


def _describe(rest: FlinkRest) -> str:
    overview = rest.overview()
    return (
        f"Flink {overview.get('flink-version', '?')}, {overview['taskmanagers']} TaskManager(s), "
        f"{overview['slots-available']}/{overview['slots-total']} slots free, "
        f"{overview['jobs-running']} job(s) running"
    )


def down(cluster: LocalCluster, timeout_s: float = 30.0) -> str:
    """Stop every TaskManager and the JobManager of the local cluster (idempotent)."""
    running = [*taskmanager_pids(cluster), *jobmanager_pids(cluster)]
    if not running:
        return "Flink cluster not running"
    for pid in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while any(_alive(p) for p in running) and time.monotonic() < deadline:
        time.sleep(0.3)
    for pid in running:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    for daemon in ("taskexecutor", "standalonesession"):
        _pid_file(cluster, daemon).unlink(missing_ok=True)
    return f"Flink cluster stopped ({len(running)} process(es))"


def status(cluster: LocalCluster) -> tuple[bool, str]:
    rest = FlinkRest(cluster.rest_url)
    if not rest.is_up():
        return False, f"flink: down ({cluster.rest_url} does not answer)"
    jobs = ", ".join(f"{j.name}={j.state}" for j in rest.jobs() if j.active) or "no running jobs"
    return True, f"flink: up at {cluster.rest_url} ({_describe(rest)}): {jobs}"
