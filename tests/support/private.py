"""Private service instances for tests that stop or kill a service: their own broker or PostgreSQL server
on free ports in the test's folder, so the outage never reaches another test (tests run side by side)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from jobs.common.settings import KafkaSettings, PostgresSettings
from uxstream.services.common import free_port
from uxstream.services.kafka import LocalKafka, ensure_kafka, stop_kafka
from uxstream.services.postgres import LocalPostgres, ensure_postgres, ensure_secrets, stop_postgres


@dataclass(frozen=True)
class PrivateKafka:
    local: LocalKafka
    settings: KafkaSettings

    @property
    def env(self) -> dict[str, str]:
        """The environment that points a job or a `uxstream` command at this broker."""
        return {"UXSTREAM_KAFKA_BOOTSTRAP_SERVERS": self.settings.bootstrap_servers}

    def kill(self) -> None:
        stop_kafka(local=self.local, force=True, out=io.StringIO())

    def start(self) -> None:
        ensure_kafka(local=self.local, out=io.StringIO())


@dataclass(frozen=True)
class PrivatePostgres:
    local: LocalPostgres
    settings: PostgresSettings

    @property
    def env(self) -> dict[str, str]:
        """The environment that points a job or a `uxstream` command at this server (add UXSTREAM_PG_DB):
        every role, over TLS verified against the local CA."""
        return self.local.env

    def stop(self) -> None:
        stop_postgres(local=self.local, out=io.StringIO())

    def start(self) -> None:
        ensure_postgres(local=self.local, out=io.StringIO())


@contextlib.contextmanager
def private_kafka(folder: Path) -> Iterator[PrivateKafka]:
    """A broker of the test's own (the shared one's configuration, free ports), stopped at the end."""
    local = LocalKafka(home=folder / "kafka", port=free_port(), controller_port=free_port())
    broker = PrivateKafka(local, KafkaSettings(bootstrap_servers=local.bootstrap_servers, external=True))
    broker.start()
    try:
        yield broker
    finally:
        stop_kafka(local=local, force=True, out=io.StringIO())


@contextlib.contextmanager
def private_postgres(folder: Path) -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of the test's own (free port), stopped at the end."""
    local = LocalPostgres(home=folder / "postgres", port=free_port())
    ensure_secrets(local)
    server = PrivatePostgres(local, local.settings("admin"))
    server.start()
    try:
        yield server
    finally:
        stop_postgres(local=local, out=io.StringIO())
