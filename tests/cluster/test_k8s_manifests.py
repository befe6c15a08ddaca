"""deploy/k8s: one FlinkDeployment per job (Flink Kubernetes Operator, application mode), with the
cluster configuration of flink-conf/config.yaml. Validated structurally (no Kubernetes cluster here)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from uxstream.cluster.config import load
from uxstream.paths import ROOT

K8S = ROOT / "deploy" / "k8s"

JOBS = {"sessionize": "jobs.sessionize.job", "funnels": "jobs.funnels.job", "anomaly": "jobs.anomaly.job"}
"""Job name → Python module of its entry point (`main()`)."""

OPERATOR_OWNED = {
    "rest.address",
    "rest.bind-address",
    "jobmanager.rpc.address",
    "jobmanager.bind-host",
    "taskmanager.host",
    "taskmanager.bind-host",
}
"""Addresses the operator sets for the pods: left out of the manifests (loopback would cut it off)."""

KUBERNETES_ONLY = {
    "high-availability.type": "kubernetes",
    "high-availability.storageDir": "file:///opt/flink/state/ha",
}


def manifest(job: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((K8S / f"{job}.yaml").read_text(encoding="utf-8"))
    return document


def test_there_is_one_manifest_per_job_and_no_other() -> None:
    others = {"namespace", "collector"}  # the collector's Deployment: tests/collector/test_deploy.py
    assert sorted(p.stem for p in K8S.glob("*.yaml") if p.stem not in others) == sorted(JOBS)


@pytest.mark.parametrize("job", sorted(JOBS))
def test_the_manifest_is_an_application_mode_flink_deployment_of_the_job(job: str) -> None:
    doc = manifest(job)
    assert doc["apiVersion"] == "flink.apache.org/v1beta1"
    assert doc["kind"] == "FlinkDeployment"
    assert doc["metadata"] == {
        "name": f"uxstream-{job}",
        "namespace": "uxstream",
        "labels": {"app.kubernetes.io/part-of": "uxstream", "app.kubernetes.io/name": job},
    }
    spec = doc["spec"]
    assert spec["image"].rsplit("/", 1)[-1].startswith("uxstream-flink:")
    assert spec["flinkVersion"] == "v2_2"
    assert spec["serviceAccount"] == "flink"
    python = "/opt/uxstream/.venv/bin/python"
    entry = ["-pym", JOBS[job], "-pyfs", "/opt/uxstream/jobs"]
    assert spec["job"] == {
        "jarURI": "local:///opt/flink/lib/flink-python-2.2.1.jar",
        "entryClass": "org.apache.flink.client.python.PythonDriver",
        "args": [*entry, "-pyclientexec", python, "-pyexec", python],
        "parallelism": 1,
        "upgradeMode": "savepoint",
        "state": "running",
        "allowNonRestoredState": False,
    }
    assert (ROOT / "jobs" / job).is_dir()


@pytest.mark.parametrize("job", sorted(JOBS))
def test_the_flink_configuration_is_flink_conf_config_yaml_without_the_operator_owned_addresses(
    job: str,
) -> None:
    cluster = {k: v for k, v in load().items() if k not in OPERATOR_OWNED}
    configuration = manifest(job)["spec"]["flinkConfiguration"]
    assert all(isinstance(v, str) for v in configuration.values()), "the CRD takes string values only"
    assert configuration == {**cluster, **KUBERNETES_ONLY}


@pytest.mark.parametrize("job", sorted(JOBS))
def test_resources_match_the_configured_memory_and_state_and_secrets_come_from_mounts(job: str) -> None:
    spec = manifest(job)["spec"]
    options = load()
    assert spec["jobManager"]["resource"]["memory"] == options["jobmanager.memory.process.size"]
    assert spec["taskManager"]["resource"]["memory"] == options["taskmanager.memory.process.size"]
    [container] = spec["podTemplate"]["spec"]["containers"]
    assert container["name"] == "flink-main-container"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"uxstream-secrets": "/etc/uxstream", "flink-state": "/opt/flink/state"}
    assert options["execution.checkpointing.dir"].startswith("file:///opt/flink/state/")
    env = {e["name"]: e.get("value") for e in container["env"]}
    secrets = [n for n in env if n.endswith(("PASSWORD", "KEY", "SECRET"))]
    assert secrets == [], f"secrets must come from files (NAME_FILE): {secrets}"
    assert env["UXSTREAM_PG_PASSWORD_FILE"].startswith("/etc/uxstream/")


def test_the_namespace_file_holds_the_namespace_service_account_and_state_volume() -> None:
    documents = list(yaml.safe_load_all((K8S / "namespace.yaml").read_text(encoding="utf-8")))
    assert [(d["kind"], d["metadata"]["name"]) for d in documents] == [
        ("Namespace", "uxstream"),
        ("ServiceAccount", "flink"),
        ("PersistentVolumeClaim", "uxstream-flink-state"),
    ]
    assert documents[2]["spec"]["accessModes"] == ["ReadWriteMany"]


def test_manifests_only_name_files_that_exist_in_the_image_build() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text(encoding="utf-8")
    assert "mv /opt/flink/opt/flink-python-*.jar /opt/flink/lib/" in dockerfile
    assert "uv venv --python 3.11 /opt/uxstream/.venv" in dockerfile
    assert "COPY jobs jobs" in dockerfile and "WORKDIR /opt/uxstream" in dockerfile
