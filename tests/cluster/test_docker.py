"""docker/: the compose file validates with `docker compose config`, and every Grafana dashboard query
reads tables and columns that the migrations create (checked against a freshly migrated database, so new
migrations — funnels V0003, anomaly V0004, later ones — are picked up without editing this test)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jobs.common import counters
from jobs.common.settings import PostgresSettings
from tests.support.db import drop_database, fresh_database
from uxstream.collector.metrics import exported_names
from uxstream.db import connect
from uxstream.paths import ROOT

DOCKER = ROOT / "docker"
DASHBOARDS = sorted((DOCKER / "grafana" / "dashboards").glob("*.json"))
MIGRATIONS = ROOT / "migrations"
DB_DATASOURCE = "uxstream-db"


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    sql: str

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel}"


def sql_queries() -> list[Query]:
    queries = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                if target["datasource"]["uid"] == DB_DATASOURCE:
                    queries.append(Query(path.name, panel["title"], target["rawSql"]))
    return queries


GRAFANA_MACROS = (
    (re.compile(r"\$__timeFilter\(([^)]+)\)"), r"\1 BETWEEN now() - INTERVAL '6 hours' AND now()"),
    (re.compile(r"\$__timeFrom\(\)"), "(now() - INTERVAL '6 hours')"),
    (re.compile(r"\$__timeTo\(\)"), "now()"),
    (re.compile(r"\$__interval"), "'1 minute'"),
)


def plain_sql(query: str) -> str:
    """The query as PostgreSQL sees it once Grafana expanded its macros for a 6-hour range."""
    for pattern, replacement in GRAFANA_MACROS:
        query = pattern.sub(replacement, query)
    assert "$" not in query, f"unknown Grafana macro or variable in: {query}"
    return query


def migration_relations() -> set[str]:
    """Tables and views that the plain-PostgreSQL migrations create (parsed from migrations/V*.sql)."""
    created = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:TABLE|VIEW|MATERIALIZED\s+VIEW)\s+(\w+)", re.I)
    names: set[str] = set()
    for path in sorted(MIGRATIONS.glob("V*.sql")):
        names.update(n.lower() for n in created.findall(path.read_text(encoding="utf-8")))
    return names


def referenced_relations(query: str) -> set[str]:
    return {n.lower() for n in re.findall(r"\b(?:FROM|JOIN)\s+(\w+)", query, re.I)}


def test_there_are_the_three_provisioned_dashboards_with_panels() -> None:
    titles = {}
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        titles[dashboard["uid"]] = [p["title"] for p in dashboard["panels"]]
    assert sorted(titles) == ["uxstream-collector", "uxstream-pipeline", "uxstream-ux-kpis"]
    ux = " ".join(titles["uxstream-ux-kpis"]).lower()
    for kpi in ("active users", "page views", "error rate", "p75", "sessions", "funnel conversion", "alerts"):
        assert kpi in ux, f"UX KPIs dashboard lacks a {kpi} panel"
    health = " ".join(titles["uxstream-pipeline"]).lower()
    for metric in ("throughput", "consumer lag", "checkpoint duration", "dead-letter", "late"):
        assert metric in health, f"pipeline dashboard lacks a {metric} panel"


def test_every_dashboard_query_reads_relations_that_the_migrations_create() -> None:
    relations = migration_relations()
    assert {"kpi_1m", "sessions"} <= relations
    missing = {f"{q}: {name}" for q in sql_queries() for name in referenced_relations(q.sql) - relations}
    assert not missing, f"dashboard queries read relations no migration creates: {sorted(missing)}"


@pytest.fixture(scope="module")
def migrated_db(pg_settings: PostgresSettings) -> Iterator[PostgresSettings]:
    pg = fresh_database(pg_settings, f"uxstream_test_dashboards_{uuid.uuid4().hex[:8]}")
    yield pg
    drop_database(pg_settings, pg)


@pytest.mark.services
@pytest.mark.parametrize("query", sql_queries(), ids=str)
def test_every_dashboard_query_plans_against_the_migrated_schema(
    migrated_db: PostgresSettings, query: Query
) -> None:
    """EXPLAIN fails on any table or column the migrations do not create (or a type error)."""
    with connect(migrated_db) as conn:
        try:
            conn.execute(f"EXPLAIN {plain_sql(query.sql)}")
        except Exception as exc:  # psycopg.errors.*: report the panel and PostgreSQL's message
            pytest.fail(f"{query}: {exc}", pytrace=False)


JOB_COUNTER_METRICS = {
    *(counters.prometheus_name(c) for names in counters.PER_JOB.values() for c in names),
    "flink_taskmanager_job_task_operator_uxstream_dead_letters_reason_count",
}
"""The jobs' own counters a dashboard may chart (jobs/common/counters.py)."""


def test_every_prometheus_query_uses_flink_or_uxstream_metrics() -> None:
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]:
            for target in panel["targets"]:
                if target["datasource"]["uid"] == "prometheus":
                    collector = set(re.findall(r"\b(uxstream_collector_[A-Za-z0-9_]+)", target["expr"]))
                    if collector:  # the collector's own metrics (uxstream/collector/metrics.py)
                        assert collector <= exported_names(), (
                            f"{path.name} / {panel['title']}: no such metric"
                        )
                        continue
                    names = set(re.findall(r"\b(flink_[A-Za-z0-9_]+)", target["expr"]))
                    assert names, f"{path.name} / {panel['title']}: no flink_* metric"
                    own = {n for n in names if "_uxstream_" in n}
                    assert own <= JOB_COUNTER_METRICS, f"{path.name} / {panel['title']}: no such counter"


def _compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False, timeout=60)
    return probe.returncode == 0


@pytest.mark.skipif(not _compose_available(), reason="no docker CLI with the compose plugin on this machine")
def test_the_compose_file_validates_with_docker_compose_config(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(Path.home()),
        "UXSTREAM_PG_PASSWORD": "only-for-validation",
        "UXSTREAM_GRAFANA_ADMIN_PASSWORD": "only-for-validation",
        "UXSTREAM_PSEUDONYM_KEY": "only-for-validation",
    }
    proc = subprocess.run(
        ["docker", "compose", "-f", str(DOCKER / "compose.yaml"), "config", "--format", "json"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    config: dict[str, Any] = json.loads(proc.stdout)
    assert set(config["services"]) >= {
        "kafka", "timescaledb", "jobmanager", "taskmanager", "prometheus", "grafana", "sessionize", "migrate",
    }  # fmt: skip
    assert "only-for-validation" not in json.dumps(config["services"]), "a secret leaked into a service"
    for service in config["services"].values():
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", f"{port} is published beyond loopback"


def test_the_image_is_built_on_the_flink_and_uv_versions_the_project_pins() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    [flink] = re.findall(r'"apache-flink==([^"]+)"', pyproject)
    [uv] = re.findall(r"^UV_VERSION := (\S+)$", makefile, re.M)
    assert f"ARG FLINK_IMAGE=flink:{flink}-scala_2.12-java17" in dockerfile
    assert f"ARG UV_IMAGE=ghcr.io/astral-sh/uv:{uv}" in dockerfile
    assert "uv pip sync --require-hashes requirements/lock.txt" in dockerfile
