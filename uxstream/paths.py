"""Where things live on disk. One place for every path the project uses."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The project checkout (the folder holding pyproject.toml)."""

CACHE = ROOT / ".cache"
"""Downloads that can be re-fetched (jars). Ignored by git."""

JARS = CACHE / "jars"
FLINK_LIB_JARS = JARS / "flink-lib"
KAFKA_BROKER_JARS = JARS / "kafka-broker"

LOCAL = Path(os.environ.get("UXSTREAM_LOCAL_DIR", ROOT / ".local"))
"""Data and logs of the local services. Ignored by git; `make clean` removes it."""

SCHEMAS = ROOT / "schemas" / "avro"
FLINK_CONF = ROOT / "flink-conf"
