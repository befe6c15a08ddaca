"""Kafka over SASL_SSL with SCRAM-SHA-512 (RELIABILITY.md, security checklist), end to end.

A second local broker with a TLS listener (self-signed certificate made with the JDK's keytool) and SCRAM
users created when its storage is formatted. Every client type goes through it with only the documented
UXSTREAM_KAFKA_* settings: the generator (librdkafka) produces, the sessionize job (Flink's Java Kafka
clients) reads and writes its exactly-once DLQ and KPI topics, and a read_committed consumer checks them.
Neither the password nor the key store's password may appear in any output or log of the run.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobs.common import tables
from jobs.common.oracle import load
from jobs.common.privacy import PrivacySettings, Pseudonymizer
from jobs.common.settings import KafkaSettings, PostgresSettings, Secret
from jobs.sessionize.oracle import expected
from tests.support.kafka import committed_records
from uxstream.db import connect, create_database, migrate
from uxstream.paths import ROOT
from uxstream.services.common import free_port
from uxstream.services.kafka import LocalKafka, SecureListener, ensure_kafka, stop_kafka

pytestmark = [pytest.mark.services, pytest.mark.flink]

USER = "uxstream-app"
PASSWORD = f"scram-{uuid.uuid4().hex}"
STORE_PASSWORD = f"store-{uuid.uuid4().hex}"
PSEUDONYM_KEY = f"pseudonym-{uuid.uuid4().hex}"


@dataclasses.dataclass(frozen=True)
class SecureBroker:
    local: LocalKafka
    env: dict[str, str]
    """The UXSTREAM_KAFKA_* variables a user would set for this broker."""

    @property
    def settings(self) -> KafkaSettings:
        return KafkaSettings.from_env(self.env)


def self_signed_keystore(folder: Path) -> tuple[Path, Path]:
    """(PKCS12 key store for the broker, PEM certificate the clients trust), for 127.0.0.1."""
    keystore, certificate = folder / "broker.p12", folder / "broker-ca.pem"
    common = ["-keystore", str(keystore), "-storepass", STORE_PASSWORD, "-storetype", "PKCS12"]
    subprocess.run(
        ["keytool", "-genkeypair", "-alias", "broker", "-keyalg", "RSA", "-keysize", "2048",
         "-dname", "CN=127.0.0.1", "-ext", "SAN=ip:127.0.0.1,dns:localhost", "-validity", "2",
         "-keypass", STORE_PASSWORD, *common],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    subprocess.run(
        ["keytool", "-exportcert", "-rfc", "-alias", "broker", "-file", str(certificate), *common],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return keystore, certificate


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    folder = tmp_path_factory.mktemp("secure-kafka")
    keystore, certificate = self_signed_keystore(folder)
    secure = SecureListener(free_port(), keystore, STORE_PASSWORD, users=((USER, PASSWORD),))
    local = LocalKafka(home=folder / "kafka", port=free_port(), controller_port=free_port(), secure=secure)
    password_file = folder / "kafka-password"
    password_file.write_text(PASSWORD + "\n")
    env = {
        "UXSTREAM_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{secure.port}",
        "UXSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "UXSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "UXSTREAM_KAFKA_SASL_USERNAME": USER,
        "UXSTREAM_KAFKA_SASL_PASSWORD_FILE": str(password_file),
        "UXSTREAM_KAFKA_SSL_CA_LOCATION": str(certificate),
    }
    try:
        ensure_kafka(local.settings(), local=local, timeout=120)
    except Exception as exc:
        log = local.log_file.read_text()[-3000:] if local.log_file.exists() else "(no log)"
        pytest.fail(f"the SASL_SSL broker did not start: {exc}\n{log}", pytrace=False)
    try:
        yield SecureBroker(local, env)
    finally:
        stop_kafka(local=local, force=True)


def test_a_wrong_password_is_refused_and_the_right_one_is_accepted(secure_broker: SecureBroker) -> None:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    good = secure_broker.settings.client_config()
    assert AdminClient(good).list_topics(timeout=30).brokers
    errors: list[str] = []
    bad: dict[str, Any] = {
        **good,
        "sasl.password": "not-the-password",
        "error_cb": lambda e: errors.append(e.str()),
    }
    admin = AdminClient(bad)
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=10)
    for _ in range(20):  # error callbacks are served by poll()
        if errors:
            break
        admin.poll(0.25)
    assert any(
        "Authentication failed during authentication due to invalid credentials with SASL mechanism "
        "SCRAM-SHA-512" in e
        for e in errors
    ), errors[:3]


def test_generator_and_sessionize_work_over_sasl_ssl_and_leak_no_secret(
    secure_broker: SecureBroker, pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]
    topic, truth_file = f"test.secure.{suffix}", tmp_path / "truth.jsonl"
    env = {
        **os.environ,
        **secure_broker.env,
        "UXSTREAM_PSEUDONYM_KEY": PSEUDONYM_KEY,
        "UXSTREAM_SESSIONIZE_TRANSACTIONAL_ID_PREFIX": topic,
    }
    outputs: list[str] = []
    generated = subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "generate", "--events", "1200", "--duration", "15m",
         "--seed", "21", "--partitions", "1", "--malformed-fraction", "0.01", "--topic", topic,
         "--output", str(truth_file)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    outputs += [generated.stdout, generated.stderr]
    assert generated.returncode == 0, generated.stderr[-3000:]

    dbname = f"uxstream_test_secure_{suffix}"
    pg = create_database(pg_settings, dbname)
    started = time.time()
    try:
        migrate(pg)
        job = subprocess.run(
            [sys.executable, "-m", "jobs.sessionize.job", "--bounded", "--input-topic", topic,
             "--dlq-topic", f"{topic}.dlq", "--kpi-topic", f"{topic}.kpi"],
            cwd=ROOT, env={**env, "UXSTREAM_PG_DB": dbname}, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        outputs += [job.stdout, job.stderr]
        assert job.returncode == 0, f"sessionize over SASL_SSL failed:\n{job.stderr[-5000:]}"

        truth = load(truth_file)
        pseudonym = Pseudonymizer(PrivacySettings(Secret(PSEUDONYM_KEY)))
        want = sorted(
            (r["session_id"], r["event_count"])
            for r in expected(truth.events, pseudonym=pseudonym)[tables.SESSIONS]
        )
        with connect(pg) as conn:
            got = sorted(conn.execute(f"SELECT session_id, event_count FROM {tables.SESSIONS}").fetchall())
        assert want and got == want

        settings = secure_broker.settings
        assert len(committed_records(settings, f"{topic}.dlq")) == len(truth.dead_letters) > 0
        assert len(committed_records(settings, f"{topic}.kpi")) > 0
    finally:
        with connect(pg_settings, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')

    logs = [secure_broker.local.log_file, *flink_logs_since(started)]
    texts = outputs + [path.read_text(errors="replace") for path in logs if path.exists()]
    for secret in (PASSWORD, STORE_PASSWORD, PSEUDONYM_KEY):
        leaks = [i for i, text in enumerate(texts) if secret in text]
        assert not leaks, f"a secret appears in {len(leaks)} output(s)/log(s) of the run"


def flink_logs_since(started: float) -> list[Path]:
    """Flink's client/MiniCluster log files written during the run (PyFlink's log folder)."""
    import pyflink

    folder = Path(pyflink.__file__).parent / "log"
    return [p for p in folder.glob("*") if p.is_file() and p.stat().st_mtime >= started - 1]
