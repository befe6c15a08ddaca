"""flink-conf/config.yaml, the local cluster's generated conf dir, and the commands' error messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from jobs.common.flink_env import (
    JVM_JIT_OPTIONS,
    FlinkSettings,
    flink_config,
    local_jvm_args,
    prometheus_reporter_jar,
)
from jobs.common.settings import LOCAL_KAFKA_CONTROLLER_PORT, LOCAL_KAFKA_PORT, LOCAL_PG_PORT, SettingsError
from uxstream.cluster import submit
from uxstream.cluster.config import LOCAL_OVERRIDES, LocalCluster, flatten, load
from uxstream.cluster.local import flink_home
from uxstream.cluster.uid_lint import check_paths
from uxstream.errors import UserError
from uxstream.paths import ROOT
from uxstream.run import JOBS


def test_the_cluster_configuration_is_exactly_once_with_retained_incremental_rocksdb_checkpoints() -> None:
    options = load()
    assert options["execution.checkpointing.mode"] == "EXACTLY_ONCE"
    assert options["execution.checkpointing.externalized-checkpoint-retention"] == "RETAIN_ON_CANCELLATION"
    assert options["execution.checkpointing.incremental"] == "true"
    assert options["state.backend.type"] == "rocksdb"
    assert options["restart-strategy.type"] == "exponential-delay"
    assert options["table.exec.uid.generation"] == "ALWAYS"


def test_the_web_ui_cannot_upload_or_run_jars() -> None:
    """issue 16 item 4 (RELIABILITY, Security): `web.submit.enable: false`; the running cluster's REST
    answer is asserted in tests/cluster/test_cluster_e2e.py."""
    assert load()["web.submit.enable"] == "false"


def test_checkpoint_interval_and_timeout_are_the_jobs_defaults() -> None:
    options, defaults = load(), FlinkSettings()
    assert submit.duration_ms(options["execution.checkpointing.interval"]) == defaults.checkpoint_interval_ms
    assert submit.duration_ms(options["execution.checkpointing.timeout"]) == defaults.checkpoint_timeout_ms


def test_rest_is_bound_to_loopback_and_ports_stay_clear_of_kafka_and_postgres() -> None:
    options = load()
    assert options["rest.bind-address"] == options["rest.address"] == "127.0.0.1"
    taken = {LOCAL_KAFKA_PORT, LOCAL_KAFKA_CONTROLLER_PORT, LOCAL_PG_PORT}
    for key in ("rest.port", "jobmanager.rpc.port", "taskmanager.rpc.port", "blob.server.port",
                "metrics.reporter.prom.port"):  # fmt: skip
        low, _, high = options[key].partition("-")
        ports = set(range(int(low), int(high or low) + 1))
        assert not ports & taken, f"{key}={options[key]} collides with a local service port"


def test_the_jvms_run_in_utc_with_the_prometheus_reporter() -> None:
    options = load()
    assert "-Duser.timezone=UTC" in options["env.java.opts.all"].split()
    assert "--add-opens=java.base/java.util=ALL-UNNAMED" in options["env.java.opts.all"].split()
    assert options["metrics.reporters"] == "prom"
    assert options["metrics.reporter.prom.factory.class"] == (
        "org.apache.flink.metrics.prometheus.PrometheusReporterFactory"
    )
    assert (flink_home() / "plugins" / "metrics-prometheus").is_dir()


def test_the_local_jvm_runs_in_utc_with_parallel_gc_and_c2_thresholds_unless_the_caller_chose() -> None:
    jit = JVM_JIT_OPTIONS
    assert local_jvm_args("") == f"-Duser.timezone=UTC -XX:+UseParallelGC -Xms2g {jit}"
    # A caller's heap size wins (an initial heap above a caller's maximum would stop the JVM).
    assert local_jvm_args(" -Xmx1g ") == f"-Xmx1g -Duser.timezone=UTC -XX:+UseParallelGC {jit}"
    assert local_jvm_args("-Xms512m") == f"-Xms512m -Duser.timezone=UTC -XX:+UseParallelGC {jit}"
    assert local_jvm_args("-XX:MaxRAMPercentage=50") == (
        f"-XX:MaxRAMPercentage=50 -Duser.timezone=UTC -XX:+UseParallelGC {jit}"
    )
    # A caller's collector, zone and JIT tiers win (the test suite's serial GC and C1 only; two collectors
    # would stop the JVM).
    assert local_jvm_args("-XX:TieredStopAtLevel=1 -XX:+UseSerialGC") == (
        "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Duser.timezone=UTC"
    )
    assert local_jvm_args("-XX:+UseG1GC -Duser.timezone=UTC") == f"-XX:+UseG1GC -Duser.timezone=UTC {jit}"
    assert local_jvm_args("-XX:+UseZGC") == f"-XX:+UseZGC -Duser.timezone=UTC {jit}"
    assert local_jvm_args("-XX:Tier4InvocationThreshold=5000") == (
        "-XX:Tier4InvocationThreshold=5000 -Duser.timezone=UTC -XX:+UseParallelGC -Xms2g"
    )
    assert local_jvm_args("-XX:-TieredCompilation").endswith("-XX:+UseParallelGC -Xms2g")
    assert local_jvm_args("-XX:CompileThresholdScaling=2").endswith("-XX:+UseParallelGC -Xms2g")
    # Only a collector choice counts: other -XX:+Use…GC… options do not.
    assert local_jvm_args("-XX:+UseGCOverheadLimit") == (
        f"-XX:+UseGCOverheadLimit -Duser.timezone=UTC -XX:+UseParallelGC -Xms2g {jit}"
    )


def test_nested_and_flat_yaml_read_alike() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": True}}, "e.f": "x"}) == {"a.b": "1", "a.c.d": "true", "e.f": "x"}


def test_the_local_conf_dir_is_config_yaml_plus_local_paths_and_overrides(tmp_path: Path) -> None:
    cluster = LocalCluster.from_env({"UXSTREAM_FLINK_CLUSTER_DIR": str(tmp_path / "cluster")})
    cluster.write_conf_dir(flink_home())
    written = yaml.safe_load((cluster.conf_dir / "config.yaml").read_text())
    options = load()
    for key, value in options.items():
        if key not in ("execution.checkpointing.dir", "execution.checkpointing.savepoint-dir"):
            assert str(written[key]).lower() == value.lower() or key in LOCAL_OVERRIDES, key
    assert written["execution.checkpointing.dir"] == (cluster.state_dir / "checkpoints").as_uri()
    assert written["execution.checkpointing.savepoint-dir"] == cluster.savepoint_dir.as_uri()
    assert {k: written[k] for k in LOCAL_OVERRIDES} == dict(LOCAL_OVERRIDES)
    jars = sorted(p.name for p in cluster.lib_dir.iterdir())
    assert "flink-dist-2.2.1.jar" in jars and "flink-python-2.2.1.jar" in jars
    assert (cluster.conf_dir / "log4j.properties").exists()


def test_a_rest_url_must_be_http() -> None:
    with pytest.raises(SettingsError) as error:
        LocalCluster.from_env({"UXSTREAM_FLINK_REST_URL": "127.0.0.1:1"})
    assert str(error.value) == "UXSTREAM_FLINK_REST_URL='127.0.0.1:1' must start with http:// or https://"


def test_submitting_an_unknown_job_names_the_known_ones() -> None:
    cluster = LocalCluster.from_env({})
    with pytest.raises(UserError) as error:
        submit.submit(cluster, "nope")
    assert str(error.value) == f"unknown job 'nope': choose one of {', '.join(sorted(JOBS))}"


def test_submitting_without_a_cluster_says_how_to_start_one() -> None:
    cluster = LocalCluster.from_env({"UXSTREAM_FLINK_REST_URL": "http://127.0.0.1:1"})
    with pytest.raises(UserError) as error:
        submit.submit(cluster, "sessionize")
    assert str(error.value) == (
        "no Flink cluster answers at http://127.0.0.1:1: start the local one with `make cluster-up` "
        "(or point UXSTREAM_FLINK_REST_URL at yours)"
    )


@pytest.mark.parametrize("command", ["savepoint", "upgrade", "stop"])
def test_the_commands_fail_with_one_clear_line(command: str) -> None:
    env = {**os.environ, "UXSTREAM_FLINK_REST_URL": "http://127.0.0.1:1"}
    proc = subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "cluster", command, "sessionize"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == (
        "uxstream cluster: error: no Flink cluster answers at http://127.0.0.1:1: start the local one with "
        "`make cluster-up` (or point UXSTREAM_FLINK_REST_URL at yours)\n"
    )


def test_make_submit_without_job_says_what_to_set() -> None:
    proc = subprocess.run(["make", "-s", "submit"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout.strip() == "error: set JOB=<name>, e.g. make submit JOB=sessionize"


def test_the_prometheus_reporter_is_opt_in_for_minicluster_runs() -> None:
    assert "metrics.reporters" not in flink_config(FlinkSettings(), "x")
    settings = FlinkSettings.from_env({"UXSTREAM_FLINK_PROMETHEUS_PORT": "19299"})
    conf = flink_config(settings, "x")
    assert conf["metrics.reporters"] == "prom"
    assert conf["metrics.reporter.prom.port"] == "19299"
    assert prometheus_reporter_jar().name == "flink-metrics-prometheus-2.2.1.jar"
    with pytest.raises(SettingsError, match=r"UXSTREAM_FLINK_PROMETHEUS_PORT='70000' is not a TCP port"):
        FlinkSettings.from_env({"UXSTREAM_FLINK_PROMETHEUS_PORT": "70000"})


def test_durations_in_the_config_must_have_a_unit() -> None:
    assert submit.duration_ms("10 s") == 10_000
    with pytest.raises(UserError) as error:
        submit.duration_ms("10")
    assert str(error.value) == "'10': write durations in flink-conf/config.yaml as '<n> ms|s|min'"


def test_the_uid_lint_command_target_sees_the_jobs_folder() -> None:
    assert check_paths([ROOT / "jobs"]) == []


def test_an_upgrade_without_options_reuses_those_of_the_last_submission(tmp_path: Path) -> None:
    cluster = LocalCluster.from_env({"UXSTREAM_FLINK_CLUSTER_DIR": str(tmp_path)})
    assert submit.last_args(cluster, "sessionize") == []
    submit._remember_args(cluster, "sessionize", ["--input-topic", "t1"])
    assert submit.last_args(cluster, "sessionize") == ["--input-topic", "t1"]
