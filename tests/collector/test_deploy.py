"""The collector in docker/ and deploy/k8s/: validated structurally like the jobs' manifests (no Docker
engine or Kubernetes cluster here): a Deployment whose readiness probe is /readyz, an HPA on CPU, secrets
from files, the compose service and Prometheus scrape, and a Grafana dashboard of the collector's metrics."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from uxstream.collector.metrics import exported_names
from uxstream.collector.settings import DEFAULT_GRPC_PORT, DEFAULT_PORT
from uxstream.paths import ROOT

K8S = ROOT / "deploy" / "k8s" / "collector.yaml"
DOCKER = ROOT / "docker"


def documents() -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all(K8S.read_text(encoding="utf-8"))}


def test_the_manifest_holds_a_deployment_a_service_and_an_hpa_in_the_namespace() -> None:
    docs = documents()
    assert sorted(docs) == ["Deployment", "HorizontalPodAutoscaler", "Service"]
    for doc in docs.values():
        assert doc["metadata"]["name"] == "uxstream-collector"
        assert doc["metadata"]["namespace"] == "uxstream"


def test_the_deployment_is_ready_only_when_readyz_says_so_and_alive_on_healthz() -> None:
    spec = documents()["Deployment"]["spec"]
    [container] = spec["template"]["spec"]["containers"]
    assert container["command"][-5:] == ["-m", "uxstream.cli", "collect", "--host", "0.0.0.0"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": DEFAULT_PORT, "grpc": DEFAULT_GRPC_PORT}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["resources"]["requests"]["cpu"]  # the HPA's utilization is relative to it
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()


def test_write_keys_come_from_a_mounted_secret_never_from_the_manifest() -> None:
    pod = documents()["Deployment"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert not [n for n in env if n.endswith(("KEYS", "SECRET", "PASSWORD"))]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["UXSTREAM_COLLECTOR_WRITE_KEYS_FILE"].startswith(mounts["write-keys"] + "/")
    assert pod["volumes"] == [{"name": "write-keys", "secret": {"secretName": "uxstream-collector"}}]


def test_the_hpa_scales_the_deployment_on_cpu() -> None:
    spec = documents()["HorizontalPodAutoscaler"]["spec"]
    assert documents()["HorizontalPodAutoscaler"]["apiVersion"] == "autoscaling/v2"
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "uxstream-collector",
    }
    assert spec["metrics"] == [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}},
        }
    ]
    assert 1 <= spec["minReplicas"] <= spec["maxReplicas"]


def test_the_service_selects_the_pods_and_exposes_both_ports() -> None:
    docs = documents()
    service = docs["Service"]["spec"]
    assert service["selector"].items() <= docs["Deployment"]["spec"]["template"]["metadata"]["labels"].items()
    assert {p["targetPort"] for p in service["ports"]} == {"http", "grpc"}


def test_compose_runs_the_collector_on_loopback_with_readyz_as_health_check() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
    service = compose["services"]["collector"]
    assert service["command"] == ["python", "-m", "uxstream.cli", "collect", "--host", "0.0.0.0"]
    assert all(p.startswith("127.0.0.1:") for p in service["ports"])
    assert "/readyz" in service["healthcheck"]["test"][1]
    assert service["secrets"] == ["collector_write_keys"]
    assert service["environment"]["UXSTREAM_COLLECTOR_WRITE_KEYS_FILE"] == "/run/secrets/collector_write_keys"
    scrape = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    [job] = [j for j in scrape["scrape_configs"] if j["job_name"] == "collector"]
    assert job["static_configs"][0]["targets"] == [f"collector:{DEFAULT_PORT}"]


def test_the_dashboard_charts_every_collector_metric_the_issue_names() -> None:
    dashboard = json.loads((DOCKER / "grafana" / "dashboards" / "collector.json").read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for e in exprs for name in re.findall(r"\b(uxstream_collector_[a-z_]+)", e)}
    assert used <= exported_names()
    assert used == {
        "uxstream_collector_requests_total", "uxstream_collector_events_total",
        "uxstream_collector_produce_latency_seconds_bucket", "uxstream_collector_queue_depth",
        "uxstream_collector_kafka_up",
    }  # fmt: skip
    assert any('status=~"401|413|429|503"' in e for e in exprs)
    assert any("reason" in e and "events_total" in e for e in exprs)
