"""The local Kafka broker: Apache Kafka 4.2, single node KRaft (broker + controller in one JVM).

Layout under `LocalKafka.home` (default `.local/kafka/`):

    server.properties   written on every start from `broker_properties()` (edit the code, not the file)
    log4j2.properties   console logging at INFO with the chatty loggers at WARN
    cluster.id          generated once; `data/` is formatted with it on the first start
    data/               log.dirs and the KRaft metadata log
    logs/broker.out     the JVM's stdout and stderr (its only log)
    broker.pid          pid of the JVM, which leads its own process group

The first start runs `kafka.tools.StorageTool format --standalone` (a single-voter *dynamic* quorum:
`controller.quorum.bootstrap.servers` instead of `controller.quorum.voters`, as Kafka 4's own
config/server.properties does). Readiness means: the broker answers a metadata request and a
transactional producer can initialise (the transaction coordinator and `__transaction_state` work).
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from jobs.common.settings import LOCAL_KAFKA_CONTROLLER_PORT, LOCAL_KAFKA_PORT, KafkaSettings
from uxstream import paths
from uxstream.errors import UserError
from uxstream.services import common
from uxstream.services.common import Progress, ServiceStatus, WaitFailed

MIN_JAVA = 17
READINESS_TRANSACTIONAL_ID = "uxstream-readiness-check"
_ROTATE_LOG_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class LocalKafka:
    """One local broker instance. The default is the shared dev/test broker on 127.0.0.1:19092."""

    home: Path = field(default_factory=lambda: paths.LOCAL / "kafka")
    host: str = "127.0.0.1"
    port: int = LOCAL_KAFKA_PORT
    controller_port: int = LOCAL_KAFKA_CONTROLLER_PORT
    jars: Path = field(default_factory=lambda: paths.KAFKA_BROKER_JARS)
    heap: tuple[str, ...] = ("-Xms256m", "-Xmx512m")
    secure: SecureListener | None = None
    """An extra SASL_SSL listener (SCRAM users created when the storage is formatted), for clients that
    test the secured path; the PLAINTEXT listener stays for readiness checks and the broker itself."""

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "broker.out"

    @property
    def properties_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def log4j_file(self) -> Path:
        return self.home / "log4j2.properties"

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def cluster_id_file(self) -> Path:
        return self.home / "cluster.id"

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def settings(self) -> KafkaSettings:
        """Client settings pointing at this instance."""
        return KafkaSettings(bootstrap_servers=self.bootstrap_servers)

    def is_our_broker(self, cmdline: list[str]) -> bool:
        return "kafka.Kafka" in cmdline and str(self.properties_file) in cmdline


@dataclass(frozen=True)
class SecureListener:
    """A SASL_SSL listener: TLS with the PKCS12 `keystore`, SCRAM-SHA-256/512 logins of `users`."""

    port: int
    keystore: Path
    keystore_password: str = field(repr=False)
    users: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """(name, password) pairs, created as SCRAM-SHA-512 and SCRAM-SHA-256 credentials at format time."""


def _secure_properties(local: LocalKafka, plain: str, controller: str) -> dict[str, str]:
    secure = local.secure
    assert secure is not None
    address = f"{local.host}:{secure.port}"
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    return {
        "listeners": f"PLAINTEXT://{plain},SASL_SSL://{address},CONTROLLER://{controller}",
        "advertised.listeners": f"PLAINTEXT://{plain},SASL_SSL://{address},CONTROLLER://{controller}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512,SCRAM-SHA-256",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": scram,
        "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config": scram,
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(secure.keystore),
        "ssl.keystore.password": secure.keystore_password,
        "ssl.key.password": secure.keystore_password,
    }


def broker_properties(local: LocalKafka) -> dict[str, str]:
    """The broker configuration (single node: every replication factor and min ISR is 1)."""
    plain = f"{local.host}:{local.port}"
    controller = f"{local.host}:{local.controller_port}"
    properties = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": controller,
        "listeners": f"PLAINTEXT://{plain},CONTROLLER://{controller}",
        "advertised.listeners": f"PLAINTEXT://{plain},CONTROLLER://{controller}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "log.dirs": str(local.data_dir),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Jobs and tools create their topics explicitly (partitions, compaction, retention are decisions):
        # a typo in a topic name must fail, not silently create an empty topic.
        "auto.create.topics.enable": "false",
        "group.initial.rebalance.delay.ms": "0",
        # Flink's exactly-once KafkaSink defaults transaction.timeout.ms to 1 h; Kafka allows 15 min.
        "transaction.max.timeout.ms": "3600000",
        # No time-based retention: time retention compares against record timestamps, and replays of
        # recorded streams carry old event times, which would be deleted right after being written.
        # A size cap per partition keeps the dev disk bounded instead.
        "log.retention.ms": "-1",
        "log.retention.bytes": str(4 * 1024**3),
    }
    if local.secure is not None:
        properties.update(_secure_properties(local, plain, controller))
    return properties


_LOG4J2 = """\
# Written by uxstream/services/kafka.py on every start.
status = warn
name = uxstream-kafka
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
"""

# Loggers that print per request, per partition or whole config dumps at INFO.
_QUIET_LOGGERS = (
    "kafka.request.logger",
    "kafka.network.RequestChannel$",
    "state.change.logger",
    "kafka.log.LogCleaner",
    "kafka.cluster.Partition",
    "kafka.server.ReplicaFetcherManager",
    "kafka.server.ReplicaAlterLogDirsManager",
    "kafka.coordinator.transaction",
    "org.apache.kafka.common.config.AbstractConfig",
    "org.apache.kafka.common.utils.AppInfoParser",
    "org.apache.kafka.clients",
    "org.apache.kafka.storage.internals.log",
    "org.apache.kafka.coordinator.group",
    "org.apache.kafka.coordinator.transaction",
    "org.apache.kafka.image.loader",
    "org.apache.kafka.metadata",
    "org.apache.kafka.controller",
    "org.apache.kafka.raft",
    "org.apache.kafka.server",
    "org.apache.kafka.queue",
    "kafka.log.LogManager",
    "kafka.server.metadata",
    "kafka.server.ReplicaManager",
    "kafka.server.BrokerLifecycleManager",
    "kafka.raft",
)


def log4j2_properties() -> str:
    lines = [_LOG4J2]
    for index, name in enumerate(_QUIET_LOGGERS):
        lines.append(f"logger.q{index}.name = {name}\nlogger.q{index}.level = WARN\n")
    return "".join(lines)


# ------------------------------------------------------------------------------------------ public API


def ensure_kafka(
    settings: KafkaSettings | None = None,
    *,
    local: LocalKafka | None = None,
    timeout: float = 60.0,
    out: TextIO | None = None,
) -> None:
    """Make sure Kafka answers: start the local broker unless it already runs (idempotent).

    `settings` default to the environment; external settings start nothing and only check the broker
    answers. `local` overrides the instance (home folder, ports). Raises UserError with the reason.
    """
    settings = KafkaSettings.from_env() if settings is None else settings
    if settings.external and local is None:
        _check_external(settings, out)
        return
    local = LocalKafka() if local is None else local
    with common.locked(local.home / ".lock"):
        _ensure_kafka_locked(local, timeout, out)


def _ensure_kafka_locked(local: LocalKafka, timeout: float, out: TextIO | None) -> None:
    pid = running_pid(local, cleanup=True)
    if pid is not None:
        if _metadata_ok(local.settings(), timeout=5.0):
            common.stream(out).write(f"kafka already running on {local.bootstrap_servers} (pid {pid})\n")
            return
        progress = Progress(out, f"kafka (pid {pid}) is starting on {local.bootstrap_servers}, waiting")
        _wait_ready(local, pid, timeout, progress)
        return

    hint = "stop it or set UXSTREAM_KAFKA_BOOTSTRAP_SERVERS to use an external Kafka"
    common.ensure_port_free(local.host, local.port, "broker", hint)
    common.ensure_port_free(local.host, local.controller_port, "broker (controller listener)", hint)
    java = java_executable()
    classpath = _classpath(local)

    _write_config(local)
    first = not (local.data_dir / "meta.properties").exists()
    note = " (first start: formatting the storage)" if first else ""
    progress = Progress(out, f"starting kafka on {local.bootstrap_servers}{note}")
    if first:
        try:
            _format_storage(local, java, classpath)
        except UserError:
            progress.close()
            raise
    _rotate(local.log_file)
    argv = [
        java,
        *local.heap,
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        f"-XX:ErrorFile={local.log_dir}/hs_err_pid%p.log",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={local.log4j_file}",
        f"-Dkafka.logs.dir={local.log_dir}",
        "-cp",
        classpath,
        "kafka.Kafka",
        str(local.properties_file),
    ]
    with local.log_file.open("a") as log:
        log.write(f"---- uxstream: starting the broker at {time.strftime('%Y-%m-%d %H:%M:%S')} ----\n")
    pid = common.spawn_detached(argv, log=local.log_file)
    common.write_pid(local.pid_file, pid)
    _wait_ready(local, pid, timeout, progress)


def stop_kafka(
    settings: KafkaSettings | None = None,
    *,
    local: LocalKafka | None = None,
    timeout: float = 30.0,
    force: bool = False,
    out: TextIO | None = None,
) -> None:
    """Stop the local broker: SIGTERM to its process group, SIGKILL after `timeout` (at once with
    `force`, for crash tests). Idempotent; external settings stop nothing."""
    settings = KafkaSettings.from_env() if settings is None else settings
    if settings.external and local is None:
        common.stream(out).write(f"kafka is external ({settings.bootstrap_servers}): nothing to stop\n")
        return
    local = LocalKafka() if local is None else local
    with common.locked(local.home / ".lock"):
        _stop_kafka_locked(local, timeout, force, out)


def _stop_kafka_locked(local: LocalKafka, timeout: float, force: bool, out: TextIO | None) -> None:
    pid = running_pid(local, cleanup=True)
    if pid is None:
        common.stream(out).write("kafka is not running\n")
        return
    progress = Progress(out, f"{'killing' if force else 'stopping'} kafka (pid {pid})")
    graceful = common.stop_process_group(pid, timeout=timeout, force=force)
    common.remove_file(local.pid_file)
    progress.done("stopped" if graceful or force else "killed (SIGKILL after timeout)")


def kafka_status(settings: KafkaSettings | None = None, *, local: LocalKafka | None = None) -> ServiceStatus:
    """Whether the broker answers (and, when local, its pid and data folder)."""
    settings = KafkaSettings.from_env() if settings is None else settings
    if settings.external and local is None:
        ok = _metadata_ok(settings, timeout=10.0)
        detail = "" if ok else "not reachable"
        return ServiceStatus("kafka", ok, settings.bootstrap_servers, external=True, detail=detail)
    local = LocalKafka() if local is None else local
    pid = running_pid(local, cleanup=False)
    detail = ""
    running = pid is not None
    if running and not _metadata_ok(local.settings(), timeout=5.0):
        running, detail = False, "process alive but not answering"
    return ServiceStatus(
        "kafka", running, local.bootstrap_servers, pid=pid, data_dir=local.data_dir, detail=detail
    )


def running_pid(local: LocalKafka, *, cleanup: bool) -> int | None:
    """Pid of this instance's broker JVM, or None. A stale pid file is removed when `cleanup`."""
    pid = common.read_pid(local.pid_file)
    if pid is not None:
        cmdline = common.process_cmdline(pid)
        if cmdline is not None and local.is_our_broker(cmdline) and common.process_alive(pid):
            return pid
        if cleanup:
            common.remove_file(local.pid_file)
    # The pid file got lost but the broker runs: find it by its command line.
    found = common.find_process(local.is_our_broker)
    if found is not None and cleanup:
        common.write_pid(local.pid_file, found)
    return found


# ------------------------------------------------------------------------------------------------ Java


def java_executable() -> str:
    """`$JAVA_HOME/bin/java` or `java` from PATH, checked to be Java 17 or newer."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = str(Path(java_home) / "bin" / "java") if java_home else None
    if candidate is None or not os.access(candidate, os.X_OK):
        candidate = shutil.which("java")
    if candidate is None:
        raise UserError(
            f"Java {MIN_JAVA} or newer is needed to run the Kafka broker, but `java` was not found "
            "on PATH (install a JDK 17, e.g. `apt-get install openjdk-17-jre-headless`, or set JAVA_HOME)"
        )
    version = java_major_version(candidate)
    if version < MIN_JAVA:
        raise UserError(
            f"the Kafka broker needs Java {MIN_JAVA} or newer, but {candidate} is Java {version} "
            "(put a JDK 17 first on PATH or set JAVA_HOME)"
        )
    return candidate


def java_major_version(java: str) -> int:
    try:
        result = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"cannot run {java} -version ({exc}); Java {MIN_JAVA} is needed for Kafka") from None
    match = re.search(r'version "([^"]+)"', result.stderr + result.stdout)
    if match is None:
        raise UserError(f"cannot tell the Java version of {java}; Java {MIN_JAVA} is needed for Kafka")
    parts = match.group(1).split(".")
    major = int(re.sub(r"\D.*", "", parts[1] if parts[0] == "1" and len(parts) > 1 else parts[0]) or 0)
    return major


# ---------------------------------------------------------------------------------------------- start


def _classpath(local: LocalKafka) -> str:
    if not any(local.jars.glob("kafka_2.13-*.jar")):
        raise UserError(
            f"the Kafka broker jars are missing from {common.display_path(local.jars)}; "
            "run `make jars` (needs Maven) to fetch them"
        )
    return f"{local.jars}/*"


def _write_config(local: LocalKafka) -> None:
    for folder in (local.home, local.data_dir, local.log_dir):
        folder.mkdir(parents=True, exist_ok=True)
    header = "# Written by uxstream/services/kafka.py on every start: change the code, not this file.\n"
    body = "".join(f"{key}={value}\n" for key, value in broker_properties(local).items())
    local.properties_file.write_text(header + body)
    local.log4j_file.write_text(log4j2_properties())


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding, not starting with '-'."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def _format_storage(local: LocalKafka, java: str, classpath: str) -> None:
    cluster_id = local.cluster_id_file.read_text().strip() if local.cluster_id_file.exists() else ""
    if not cluster_id:
        cluster_id = new_cluster_id()
        local.cluster_id_file.write_text(cluster_id + "\n")
    command = [
        java,
        "-Xmx256m",
        f"-Dlog4j2.configurationFile={local.log4j_file}",
        "-cp",
        classpath,
        "kafka.tools.StorageTool",
        "format",
        "--standalone",
        "--ignore-formatted",
        "-t",
        cluster_id,
        "-c",
        str(local.properties_file),
    ]
    for name, password in local.secure.users if local.secure is not None else ():
        for mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256"):
            command += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()[-20:]
        raise UserError(
            f"formatting the Kafka storage in {common.display_path(local.data_dir)} failed "
            f"(exit {result.returncode}):\n" + "\n".join(f"    {line}" for line in output)
        )


def _rotate(log: Path) -> None:
    if log.exists() and log.stat().st_size > _ROTATE_LOG_BYTES:
        log.replace(log.with_name(log.name + ".1"))


def _wait_ready(local: LocalKafka, pid: int, timeout: float, progress: Progress) -> None:
    client = local.settings()

    def died() -> str | None:
        return None if common.process_alive(pid) else "the broker process exited"

    try:
        # Cheap TCP polling first: a client started before the listener backs off for seconds.
        common.wait_until(
            lambda: common.port_accepts(local.host, local.port),
            timeout=timeout,
            progress=progress,
            failed=died,
        )
        remaining = max(5.0, timeout - progress.elapsed)
        common.wait_until(
            lambda: _metadata_ok(client, timeout=2.0), timeout=remaining, progress=progress, failed=died
        )
        remaining = max(5.0, timeout - progress.elapsed)
        _transactions_ok(client, remaining)
    except (WaitFailed, TransactionCheckFailed) as exc:
        progress.close()
        if common.process_alive(pid):  # don't leave a half-started broker holding the ports
            common.stop_process_group(pid, timeout=10)
        common.remove_file(local.pid_file)
        what = f"kafka on {local.bootstrap_servers} did not start"
        raise common.failure(what, str(exc), local.log_file) from None
    progress.done("ready")


# ------------------------------------------------------------------------------------------- clients


def _quiet_logger() -> logging.Logger:
    logger = logging.getLogger("uxstream.services.kafka.client")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
    return logger


def client_config(settings: KafkaSettings, **extra: Any) -> dict[str, Any]:
    """librdkafka configuration for the readiness checks (logs silenced: failures are expected)."""
    return {**settings.client_config(), "logger": _quiet_logger(), **extra}


def _metadata_ok(settings: KafkaSettings, *, timeout: float) -> bool:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(client_config(settings, **{"socket.connection.setup.timeout.ms": 2000}))
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException:
        return False
    return bool(metadata.brokers)


class TransactionCheckFailed(Exception):
    pass


def _transactions_ok(settings: KafkaSettings, timeout: float) -> None:
    """A transactional producer initialises: the transaction coordinator answers."""
    from confluent_kafka import KafkaException, Producer

    producer = Producer(client_config(settings, **{"transactional.id": READINESS_TRANSACTIONAL_ID}))
    try:
        producer.init_transactions(timeout)
    except KafkaException as exc:
        raise TransactionCheckFailed(f"the transaction coordinator did not answer ({exc})") from None
    finally:
        producer.flush(1.0)


def _check_external(settings: KafkaSettings, out: TextIO | None) -> None:
    if not _metadata_ok(settings, timeout=15.0):
        raise UserError(
            f"the external Kafka at {settings.bootstrap_servers} (UXSTREAM_KAFKA_BOOTSTRAP_SERVERS) "
            "does not answer; check the address and security settings, or unset the variable to use "
            "the local broker"
        )
    common.stream(out).write(f"kafka: using the external broker at {settings.bootstrap_servers}\n")
