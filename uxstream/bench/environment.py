"""What a benchmark ran on: the machine and the versions of everything in the measured path."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

from jobs.common.settings import PostgresSettings
from uxstream.paths import ROOT

POM = ROOT / "jvm" / "pom.xml"
POM_PROPERTIES = {
    "kafka": "kafka.version",
    "flink_connector_kafka": "flink.kafka.connector.version",
    "flink_connector_jdbc": "flink.jdbc.connector.version",
    "postgresql_jdbc": "postgresql.jdbc.version",
    "avro_java": "avro.version",
}


def machine() -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    memory_mb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_mb = int(line.split()[1]) // 1024
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_mb": memory_mb,
        "kernel": platform.release(),
        "platform": platform.platform(),
    }


def pom_versions(pom: Path = POM) -> dict[str, str]:
    """The JVM artifact versions declared in jvm/pom.xml."""
    try:
        root = ElementTree.parse(pom).getroot()
    except (OSError, ElementTree.ParseError):
        return {}
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    properties = root.find("m:properties", namespace)
    if properties is None:
        return {}
    found = {child.tag.split("}", 1)[1]: (child.text or "").strip() for child in properties}
    return {name: found[key] for name, key in POM_PROPERTIES.items() if key in found}


def _package(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _command(args: list[str]) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=30, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def versions(pg: PostgresSettings | None = None) -> dict[str, Any]:
    import confluent_kafka

    result: dict[str, Any] = {
        "python": platform.python_version(),
        "apache_flink": _package("apache-flink"),
        "java": _command(["java", "-version"]),
        "confluent_kafka": _package("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
        "fastavro": _package("fastavro"),
        "psycopg": _package("psycopg"),
        **pom_versions(),
    }
    commit = _command(["git", "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=ROOT).stdout
    result["uxstream_commit"] = commit + ("+uncommitted" if dirty.strip() else "")
    if pg is not None:
        from uxstream.db import connect

        with contextlib.suppress(Exception), connect(pg) as conn:
            result["postgresql"] = str(conn.execute("SHOW server_version").fetchone()[0])
    return result
