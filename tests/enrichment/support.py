"""Helpers of the enrichment tests: `io.uxstream.udf.EnrichCli` (the jar's UA and geo enrichment, no Flink
needed) as a subprocess, and the corpus."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyflink

from tests.decode.support import UDF_JAR, require_jar


def yauaa_jar() -> Path:
    """YAUAA's rule and test files are inside the shaded uxstream-udf jar."""
    return require_jar()


def enrich_cli_command(*args: str) -> list[str]:
    lib = Path(pyflink.__file__).parent / "lib"
    jars = [
        UDF_JAR,
        *sorted(lib.glob("flink-dist-*.jar")),
        *sorted(lib.glob("flink-table-api-java-uber-*.jar")),
    ]
    jars += sorted(lib.glob("log4j-*.jar"))
    return ["java", "-Xmx512m", "-cp", ":".join(str(j) for j in jars), "io.uxstream.udf.EnrichCli", *args]


def run_enrich_cli(lines: Sequence[str], *args: str) -> tuple[int, list[dict[str, Any]]]:
    require_jar()
    proc = subprocess.run(
        enrich_cli_command(*args),
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()]
