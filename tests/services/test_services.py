"""The local services: real broker and server processes, no mocks.

The shared services come from the session fixtures; tests that need a failing start run a *separate*
instance (own home folder under tmp_path, own ports), so the shared services are never stopped.
"""

from __future__ import annotations

import argparse
import io
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

# Documented import paths; the package's stubs only re-export them implicitly.
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic  # type: ignore[attr-defined]

from jobs.common.settings import KafkaSettings, PostgresSettings
from uxstream.errors import UserError
from uxstream.services import (
    LocalKafka,
    LocalPostgres,
    commands,
    ensure_kafka,
    ensure_postgres,
    kafka_status,
    postgres_status,
)
from uxstream.services.common import free_port

pytestmark = [pytest.mark.services, pytest.mark.timeout(120)]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port held by this test process (bound, not listening): some other program's port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def run_cli(*argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    out = io.StringIO()
    from contextlib import redirect_stdout

    with redirect_stdout(out):
        code: int = args.handler(args)
    return code, out.getvalue()


# ------------------------------------------------------------------------------------------ idempotency


def test_up_twice_reports_already_running_with_the_same_pid(
    kafka_settings: KafkaSettings, pg_settings: PostgresSettings
) -> None:
    before = (kafka_status(kafka_settings).pid, postgres_status(pg_settings).pid)

    code, output = run_cli("up")
    assert code == 0
    if kafka_settings.external:
        assert "kafka: using the external broker" in output
    else:
        assert f"kafka already running on 127.0.0.1:19092 (pid {before[0]})" in output
    if pg_settings.external:
        assert "postgres: using the external server" in output
    else:
        assert f"postgres already running on 127.0.0.1:{pg_settings.port} (pid {before[1]})" in output

    ensure_kafka(kafka_settings, out=io.StringIO())
    ensure_postgres(pg_settings, out=io.StringIO())
    assert (kafka_status(kafka_settings).pid, postgres_status(pg_settings).pid) == before

    code, output = run_cli("status")
    assert code == 0, output
    assert output.count(" running ") == 3, output  # kafka, postgres and redis (the dashboard's "right now")


# --------------------------------------------------------------------------------------- clear errors


def test_kafka_port_taken_by_another_process_is_a_clear_error(tmp_path: Path, taken_port: int) -> None:
    local = LocalKafka(home=tmp_path / "kafka", port=taken_port, controller_port=free_port())
    with pytest.raises(UserError) as error:
        ensure_kafka(local=local, out=io.StringIO())
    message = str(error.value)
    assert f"port {taken_port} on 127.0.0.1 is already in use by another process" in message
    assert "not uxstream's broker" in message
    assert "UXSTREAM_KAFKA_BOOTSTRAP_SERVERS" in message
    assert not local.pid_file.exists()


def test_stale_kafka_pid_file_is_cleaned_up(tmp_path: Path, taken_port: int) -> None:
    local = LocalKafka(home=tmp_path / "kafka", port=taken_port, controller_port=free_port())
    local.home.mkdir(parents=True)
    local.pid_file.write_text("1\n")  # pid 1 is alive but is not a broker of this instance
    assert not kafka_status(local=local).running
    with pytest.raises(UserError, match="already in use"):
        ensure_kafka(local=local, out=io.StringIO())
    assert not local.pid_file.exists()


def test_postgres_port_taken_by_another_process_is_a_clear_error(tmp_path: Path, taken_port: int) -> None:
    local = LocalPostgres(home=tmp_path / "pg", port=taken_port)
    with pytest.raises(UserError) as error:
        ensure_postgres(local=local, out=io.StringIO())
    message = str(error.value)
    assert f"port {taken_port} on 127.0.0.1 is already in use by another process" in message
    assert "UXSTREAM_PG_HOST" in message
    assert not (local.data_dir / "PG_VERSION").exists()


def test_missing_java_names_java_17(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    local = LocalKafka(home=tmp_path / "kafka", port=free_port(), controller_port=free_port())
    with pytest.raises(UserError, match="Java 17"):
        ensure_kafka(local=local, out=io.StringIO())


def test_missing_broker_jars_say_make_jars(tmp_path: Path) -> None:
    local = LocalKafka(
        home=tmp_path / "kafka", port=free_port(), controller_port=free_port(), jars=tmp_path / "no-jars"
    )
    with pytest.raises(UserError, match=r"make jars.*Maven"):
        ensure_kafka(local=local, out=io.StringIO())


# ---------------------------------------------------------------------------------------------- Kafka


def read_all(settings: KafkaSettings, topic: str, isolation: str) -> list[bytes]:
    consumer = Consumer(
        {
            **settings.client_config(),
            "group.id": f"test-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": isolation,
            "fetch.wait.max.ms": 10,
        }
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    values: list[bytes] = []
    try:
        for _ in range(300):
            message = consumer.poll(0.1)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return values
                raise AssertionError(error)
            value = message.value()
            assert isinstance(value, bytes)
            values.append(value)
    finally:
        consumer.close()
    raise AssertionError(f"no end of partition in 30s; read {values}")


def test_transactions_read_committed_sees_only_committed_data(kafka_settings: KafkaSettings) -> None:
    topic = f"test.services.tx.{uuid.uuid4().hex[:8]}"
    admin = AdminClient(kafka_settings.client_config())
    for future in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).values():
        future.result(timeout=30)
    try:
        producer = Producer({**kafka_settings.client_config(), "transactional.id": f"test-{topic}"})
        producer.init_transactions(30)
        for batch, finish in (("committed-a", "commit"), ("aborted", "abort"), ("committed-b", "commit")):
            producer.begin_transaction()
            for index in range(3):
                producer.produce(topic, value=f"{batch}-{index}".encode())
            producer.flush(10)
            if finish == "commit":
                producer.commit_transaction(30)
            else:
                producer.abort_transaction(30)

        committed = [f"{batch}-{i}".encode() for batch in ("committed-a", "committed-b") for i in range(3)]
        aborted = [f"aborted-{i}".encode() for i in range(3)]
        assert read_all(kafka_settings, topic, "read_committed") == committed
        assert read_all(kafka_settings, topic, "read_uncommitted") == committed[:3] + aborted + committed[3:]
    finally:
        admin.delete_topics([topic])


def test_topics_are_not_auto_created(kafka_settings: KafkaSettings) -> None:
    if kafka_settings.external:
        pytest.skip("broker configuration of an external Kafka is not ours")
    admin = AdminClient(kafka_settings.client_config())
    resource = ConfigResource("broker", "1")
    config = admin.describe_configs([resource])[resource].result(timeout=30)
    assert config["auto.create.topics.enable"].value == "false"
    assert config["transaction.max.timeout.ms"].value == "3600000"


# ------------------------------------------------------------------------------------------ PostgreSQL


def test_postgres_round_trip(pg_settings: PostgresSettings) -> None:
    with psycopg.connect(pg_settings.conninfo()) as conn:
        row = conn.execute("SELECT current_user, current_database(), %s::int + 1", (41,)).fetchone()
        assert row == (pg_settings.user, pg_settings.dbname, 42)
        conn.execute("CREATE TEMP TABLE t (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO t VALUES (1, 'ü'), (2, 'b') ON CONFLICT (id) DO UPDATE SET v = excluded.v")
        assert conn.execute("SELECT v FROM t ORDER BY id").fetchall() == [("ü",), ("b",)]
        if not pg_settings.external:
            version = conn.execute("SHOW server_version_num").fetchone()
            assert version is not None and int(version[0]) >= 180000
