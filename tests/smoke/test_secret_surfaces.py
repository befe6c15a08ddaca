"""No database password shows where Flink shows things (RELIABILITY "Security checklist"; issue 16 item 3).

The smoke job runs unbounded on a MiniCluster and writes to PostgreSQL as the writer role (TLS,
verify-full, its password file). While it runs, the test reads every REST resource of the web UI that
shows configuration, plans or logs; then it stops the job and reads the MiniCluster's log folder and the
job's own output. None of them may contain any role's password."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from jobs.common.settings import PG_ROLES, KafkaSettings, PostgresSettings, pg_password_file
from jobs.common.topics import ensure_topics
from tests.support.db import drop_database, fresh_database
from tests.support.jobs import flink_log
from uxstream.db import connect
from uxstream.paths import ROOT
from uxstream.services.postgres import LocalPostgres
from uxstream.smoke import produce, smoke_events

pytestmark = [pytest.mark.services, pytest.mark.flink]

EVENTS = 30
REST = re.compile(r"Rest endpoint listening at (\S+?):(\d+)")


def wait_for(what: str, check: Callable[[], object], timeout: float = 180.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def get(base: str, path: str) -> str:
    with urllib.request.urlopen(f"{base}{path}", timeout=10) as response:
        body: bytes = response.read()
    return body.decode(errors="replace")


def rest_surfaces(base: str, job_id: str) -> dict[str, str]:
    """Every REST resource that shows configuration, plans, exceptions or logs (what the web UI shows)."""
    paths = [
        "/config", "/jobmanager/config", "/jobmanager/environment", "/jobmanager/logs",
        f"/jobs/{job_id}", f"/jobs/{job_id}/config", f"/jobs/{job_id}/plan", f"/jobs/{job_id}/exceptions",
        f"/jobs/{job_id}/checkpoints/config", "/taskmanagers",
    ]  # fmt: skip
    shown = {path: get(base, path) for path in paths}
    for log in json.loads(shown["/jobmanager/logs"])["logs"]:
        shown[f"/jobmanager/logs/{log['name']}"] = get(base, f"/jobmanager/logs/{log['name']}")
    for manager in json.loads(shown["/taskmanagers"])["taskmanagers"]:
        for suffix in ("", "/logs", "/thread-dump"):
            path = f"/taskmanagers/{manager['id']}{suffix}"
            shown[path] = get(base, path)
        for log in json.loads(shown[f"/taskmanagers/{manager['id']}/logs"])["logs"]:
            path = f"/taskmanagers/{manager['id']}/logs/{log['name']}"
            shown[path] = get(base, path)
    return shown


def test_no_password_appears_in_the_rest_api_the_logs_or_the_job_output(
    kafka_settings: KafkaSettings, pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    secrets = LocalPostgres.from_settings(pg_settings).secrets
    passwords = {role: pg_password_file(secrets, role).read_text().strip() for role in PG_ROLES}
    assert all(len(p) >= 32 for p in passwords.values())
    pg = fresh_database(pg_settings, f"uxstream_test_secrets_{uuid.uuid4().hex[:8]}")
    suffix = uuid.uuid4().hex[:8]
    input_topic, output_topic = f"test.secrets.in.{suffix}", f"test.secrets.out.{suffix}"
    ensure_topics(kafka_settings, [input_topic, output_topic], partitions=1)
    produce(kafka_settings, input_topic, smoke_events(EVENTS, seed=3))
    log_dir, output = tmp_path / "flink-log", tmp_path / "job-output.txt"
    env = {**os.environ, "UXSTREAM_PG_DB": pg.dbname, "FLINK_LOG_DIR": str(log_dir)}
    command = [
        sys.executable, "-m", "jobs.smoke.job", "--no-bounded", "--checkpoint-interval-ms", "1000",
        "--input-topic", input_topic, "--output-topic", output_topic,
    ]  # fmt: skip
    with output.open("w") as out:
        job = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:

        def written() -> bool:
            with connect(pg) as conn:
                return bool(conn.execute("SELECT count(*) FROM smoke_events").fetchone() == (EVENTS,))

        wait_for(f"the job (writing as {pg.as_role('writer').user}) to write {EVENTS} rows", written)
        found = wait_for("the REST endpoint in the log", lambda: REST.search(flink_log(log_dir)))
        assert isinstance(found, re.Match)
        base = f"http://{found.group(1)}:{found.group(2)}"
        jobs = json.loads(get(base, "/jobs/overview"))["jobs"]
        assert [j["state"] for j in jobs] == ["RUNNING"]
        shown = rest_surfaces(base, jobs[0]["jid"])
    finally:
        os.killpg(job.pid, signal.SIGTERM)
        job.wait(timeout=60)
        drop_database(pg_settings, pg)
    shown["MiniCluster log folder"] = flink_log(log_dir)
    assert all(shown.values()), "an empty surface: the test would prove nothing"
    shown["job stdout and stderr"] = output.read_text(errors="replace")  # may be empty
    for where, text in shown.items():
        for role, password in passwords.items():
            assert password not in text, f"the {role} password appears in {where}"
