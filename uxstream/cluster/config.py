"""The cluster configuration: `flink-conf/config.yaml`, read flat, and the local cluster's conf dir.

`flink-conf/config.yaml` is the one source of the cluster settings (docker/ mounts it, deploy/k8s repeats
its keys, a test compares them). The local standalone cluster (`uxstream cluster up`) gets a generated
conf dir in `.local/flink-cluster/conf`: the same settings plus local paths (checkpoints, savepoints,
temporary files under `.local/`) and faster failure detection (LOCAL_OVERRIDES), and Flink's log4j files.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from jobs.common.settings import SettingsError, env_str
from uxstream.errors import UserError
from uxstream.paths import FLINK_CONF, LOCAL

CONFIG_FILE: Final = FLINK_CONF / "config.yaml"

LOCAL_OVERRIDES: Final[Mapping[str, str]] = {
    # A killed TaskManager is noticed after two failed heartbeat RPCs or 10 s, not 50 s (tests kill one).
    "heartbeat.interval": "2 s",
    "heartbeat.timeout": "10 s",
    # Slots of a killed TaskManager are re-requested quickly.
    "slot.request.timeout": "2 min",
}
"""Keys the local cluster sets beyond (or instead of) flink-conf/config.yaml, besides its paths."""


def _flat(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested or flat YAML → flat `key: value` strings, as Flink reads config.yaml."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, list):
            flat[name] = ";".join(_flat(v) for v in value)
        else:
            flat[name] = _flat(value)
    return flat


def load(path: Path = CONFIG_FILE) -> dict[str, str]:
    """flink-conf/config.yaml as flat string options."""
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read the Flink configuration {path}: {exc.strerror}") from None
    if not isinstance(tree, Mapping):
        raise UserError(f"{path} is not a YAML mapping of Flink options")
    return flatten(tree)


def _port(options: Mapping[str, str], key: str) -> int:
    try:
        return int(options[key])
    except (KeyError, ValueError):
        raise UserError(f"{CONFIG_FILE}: {key} must be a single port number") from None


@dataclass(frozen=True)
class LocalCluster:
    """Where the local standalone cluster lives (`.local/flink-cluster`) and how to reach it."""

    home: Path
    rest_url: str
    options: Mapping[str, str]

    @property
    def conf_dir(self) -> Path:
        return self.home / "conf"

    @property
    def lib_dir(self) -> Path:
        return self.home / "lib"

    @property
    def log_dir(self) -> Path:
        return self.home / "log"

    @property
    def pid_dir(self) -> Path:
        return self.home / "pid"

    @property
    def state_dir(self) -> Path:
        """UXSTREAM_FLINK_STATE_DIR of jobs submitted here: checkpoints/<job>/… below it."""
        return self.home / "state"

    @property
    def savepoint_dir(self) -> Path:
        return self.home / "savepoints"

    @property
    def prometheus_ports(self) -> tuple[int, int]:
        low, _, high = self.options["metrics.reporter.prom.port"].partition("-")
        return int(low), int(high or low)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LocalCluster:
        env = os.environ if env is None else env
        options = load()
        home = Path(env_str(env, "UXSTREAM_FLINK_CLUSTER_DIR", str(LOCAL / "flink-cluster")) or "")
        default_url = f"http://{options.get('rest.address', '127.0.0.1')}:{_port(options, 'rest.port')}"
        url = env_str(env, "UXSTREAM_FLINK_REST_URL", default_url) or default_url
        if not url.startswith(("http://", "https://")):
            raise SettingsError(f"UXSTREAM_FLINK_REST_URL={url!r} must start with http:// or https://")
        return cls(home=home.resolve(), rest_url=url.rstrip("/"), options=options)

    def local_options(self) -> dict[str, str]:
        """The options of the generated conf dir: config.yaml + local paths + LOCAL_OVERRIDES."""
        options = dict(self.options)
        options.update(
            {
                "execution.checkpointing.dir": (self.state_dir / "checkpoints").as_uri(),
                "execution.checkpointing.savepoint-dir": self.savepoint_dir.as_uri(),
                "io.tmp.dirs": str(self.home / "tmp"),
                "web.tmpdir": str(self.home / "tmp" / "web"),
                "blob.storage.directory": str(self.home / "tmp" / "blob"),
                "env.log.dir": str(self.log_dir),
                "env.pid.dir": str(self.pid_dir),
                "state.backend.rocksdb.log.dir": str(self.home / "tmp" / "rocksdb-logs"),
            }
        )
        options.update(LOCAL_OVERRIDES)
        return options

    def write_conf_dir(self, flink_home: Path) -> None:
        """Generate conf/ (config.yaml + Flink's log4j files) and lib/ (Flink's jars + flink-python)."""
        for folder in (self.conf_dir, self.lib_dir, self.log_dir, self.pid_dir, self.home / "tmp"):
            folder.mkdir(parents=True, exist_ok=True)
        for name in (
            "log4j.properties",
            "log4j-cli.properties",
            "log4j-console.properties",
            "logback.xml",
            "logback-console.xml",
        ):
            source = flink_home / "conf" / name
            if source.exists():
                shutil.copyfile(source, self.conf_dir / name)
        header = "# Generated by `uxstream cluster up` from flink-conf/config.yaml: edit that file instead.\n"
        body = yaml.safe_dump(self.local_options(), sort_keys=True, default_flow_style=False, width=10_000)
        (self.conf_dir / "config.yaml").write_text(header + body, encoding="utf-8")
        # Thread-mode Python UDFs need flink-python on the cluster's classpath (as in Flink's PyFlink
        # images), not only in the job's jar: pemja's native library loads once per JVM.
        for old in self.lib_dir.iterdir():
            old.unlink()
        jars = [
            *sorted((flink_home / "lib").glob("*.jar")),
            *sorted((flink_home / "opt").glob("flink-python*.jar")),
        ]
        for jar in jars:
            (self.lib_dir / jar.name).symlink_to(jar)
