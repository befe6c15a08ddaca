"""Typed, frozen settings for every component, read from the environment in `main()` only.

Every variable is documented in the README ("Configuration"). Defaults point at the local services that
`make up` starts on 127.0.0.1; setting the variables points uxstream at an external deployment instead.

Secrets are `Secret` values: their repr and str never show the value. A secret can be given directly
(`UXSTREAM_PG_PASSWORD`) or as a file path (`UXSTREAM_PG_PASSWORD_FILE`), the latter winning.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

# Local service ports: non-default so a developer's own Kafka/PostgreSQL keep working beside ours.
LOCAL_KAFKA_PORT = 19092
LOCAL_KAFKA_CONTROLLER_PORT = 19093
LOCAL_PG_PORT = 15432
LOCAL_PG_USER = "uxstream"
LOCAL_PG_DB = "uxstream"


ClientConfig = dict[str, str | int | float | bool]
"""A librdkafka (confluent-kafka) configuration mapping."""


class SettingsError(ValueError):
    """A configuration value is missing or invalid. The message names the variable."""


@dataclass(frozen=True)
class Secret:
    """A secret value that never prints itself."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    def __str__(self) -> str:
        return "********"


def env_str(env: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    value = env.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def env_secret(env: Mapping[str, str], name: str) -> Secret | None:
    path = env_str(env, f"{name}_FILE")
    if path is not None:
        try:
            return Secret(Path(path).read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise SettingsError(f"{name}_FILE={path}: cannot read the secret file ({exc.strerror})") from None
    value = env.get(name)
    return Secret(value) if value else None


def env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env_str(env, name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None


FLINK_KAFKA_SHADED = "org.apache.flink.kafka.shaded."
"""Package prefix under which flink-sql-connector-kafka relocates the Kafka client classes."""
_KAFKA_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSettings:
    """How every client (jobs, generator, tools) reaches Kafka."""

    bootstrap_servers: str = f"127.0.0.1:{LOCAL_KAFKA_PORT}"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: Secret | None = None
    ssl_ca_location: str | None = None
    transaction_timeout_ms: int = 900_000
    """Transaction timeout of the exactly-once sinks. Flink asks for 1 h by default, which a default broker
    (transaction.max.timeout.ms = 15 min) refuses; it must also outlast a checkpoint interval."""
    external: bool = False
    """True when the bootstrap servers came from the environment: `make up` then starts no local broker."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KafkaSettings:
        env = os.environ if env is None else env
        bootstrap = env_str(env, "UXSTREAM_KAFKA_BOOTSTRAP_SERVERS")
        protocol = (env_str(env, "UXSTREAM_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT") or "").upper()
        if protocol not in _KAFKA_PROTOCOLS:
            raise SettingsError(
                f"UXSTREAM_KAFKA_SECURITY_PROTOCOL={protocol!r} is not one of {', '.join(_KAFKA_PROTOCOLS)}"
            )
        mechanism = env_str(env, "UXSTREAM_KAFKA_SASL_MECHANISM")
        if mechanism is not None:
            mechanism = mechanism.upper()
            if mechanism not in _SASL_MECHANISMS:
                raise SettingsError(
                    f"UXSTREAM_KAFKA_SASL_MECHANISM={mechanism!r} is not one of {', '.join(_SASL_MECHANISMS)}"
                )
        settings = cls(
            bootstrap_servers=bootstrap or cls.bootstrap_servers,
            security_protocol=protocol,
            sasl_mechanism=mechanism,
            sasl_username=env_str(env, "UXSTREAM_KAFKA_SASL_USERNAME"),
            sasl_password=env_secret(env, "UXSTREAM_KAFKA_SASL_PASSWORD"),
            ssl_ca_location=env_str(env, "UXSTREAM_KAFKA_SSL_CA_LOCATION"),
            transaction_timeout_ms=env_int(
                env, "UXSTREAM_KAFKA_TRANSACTION_TIMEOUT_MS", cls.transaction_timeout_ms
            ),
            external=bootstrap is not None,
        )
        if settings.transaction_timeout_ms <= 0:
            raise SettingsError(
                f"UXSTREAM_KAFKA_TRANSACTION_TIMEOUT_MS={settings.transaction_timeout_ms} must be positive"
            )
        if settings.uses_sasl and (
            settings.sasl_mechanism is None
            or settings.sasl_username is None
            or settings.sasl_password is None
        ):
            raise SettingsError(
                f"UXSTREAM_KAFKA_SECURITY_PROTOCOL={protocol} needs UXSTREAM_KAFKA_SASL_MECHANISM, "
                "UXSTREAM_KAFKA_SASL_USERNAME and UXSTREAM_KAFKA_SASL_PASSWORD (or _FILE)"
            )
        return settings

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    def client_config(self) -> ClientConfig:
        """librdkafka (confluent-kafka) configuration."""
        conf: ClientConfig = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.uses_sasl:
            assert self.sasl_mechanism and self.sasl_username and self.sasl_password
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.sasl_username
            conf["sasl.password"] = self.sasl_password.reveal()
        if self.ssl_ca_location:
            conf["ssl.ca.location"] = self.ssl_ca_location
        return conf

    def java_client_properties(self) -> dict[str, str]:
        """Java Kafka client properties (Flink's Kafka connector takes them as `properties.*`).

        flink-sql-connector-kafka relocates the Kafka client under FLINK_KAFKA_SHADED: a JAAS login module
        must be named with that prefix, or every SASL login fails ("No LoginModule found")."""
        props = {"bootstrap.servers": self.bootstrap_servers, "security.protocol": self.security_protocol}
        if self.uses_sasl:
            assert self.sasl_mechanism and self.sasl_username and self.sasl_password
            module = (
                f"{FLINK_KAFKA_SHADED}org.apache.kafka.common.security.plain.PlainLoginModule"
                if self.sasl_mechanism == "PLAIN"
                else f"{FLINK_KAFKA_SHADED}org.apache.kafka.common.security.scram.ScramLoginModule"
            )
            user = self.sasl_username.replace('"', '\\"')
            password = self.sasl_password.reveal().replace('"', '\\"')
            props["sasl.mechanism"] = self.sasl_mechanism
            props["sasl.jaas.config"] = f'{module} required username="{user}" password="{password}";'
        if self.ssl_ca_location:
            props["ssl.truststore.type"] = "PEM"
            props["ssl.truststore.location"] = self.ssl_ca_location
        return props


@dataclass(frozen=True)
class PostgresSettings:
    """How jobs and tools reach PostgreSQL/TimescaleDB."""

    host: str = "127.0.0.1"
    port: int = LOCAL_PG_PORT
    dbname: str = LOCAL_PG_DB
    user: str = LOCAL_PG_USER
    password: Secret | None = None
    sslmode: str = "prefer"
    sslrootcert: str | None = None
    external: bool = False
    """True when the host came from the environment: `make up` then starts no local server."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PostgresSettings:
        env = os.environ if env is None else env
        host = env_str(env, "UXSTREAM_PG_HOST")
        sslmode = env_str(env, "UXSTREAM_PG_SSLMODE", "prefer") or "prefer"
        modes = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
        if sslmode not in modes:
            raise SettingsError(f"UXSTREAM_PG_SSLMODE={sslmode!r} is not one of {', '.join(modes)}")
        return cls(
            host=host or cls.host,
            port=env_int(env, "UXSTREAM_PG_PORT", cls.port),
            dbname=env_str(env, "UXSTREAM_PG_DB", cls.dbname) or cls.dbname,
            user=env_str(env, "UXSTREAM_PG_USER", cls.user) or cls.user,
            password=env_secret(env, "UXSTREAM_PG_PASSWORD"),
            sslmode=sslmode,
            sslrootcert=env_str(env, "UXSTREAM_PG_SSLROOTCERT"),
            external=host is not None,
        )

    def conninfo(self) -> str:
        """libpq connection string for psycopg (contains the password: never log it)."""
        parts = [
            f"host={self.host}",
            f"port={self.port}",
            f"dbname={self.dbname}",
            f"user={self.user}",
            f"sslmode={self.sslmode}",
            "connect_timeout=10",
        ]
        if self.password is not None:
            escaped = self.password.reveal().replace("\\", "\\\\").replace("'", "\\'")
            parts.append(f"password='{escaped}'")
        if self.sslrootcert:
            parts.append(f"sslrootcert={self.sslrootcert}")
        return " ".join(parts)

    def jdbc_url(self, with_user: bool = False) -> str:
        """JDBC URL for Flink's JDBC connector (the password never goes in the URL)."""
        params = [f"sslmode={quote(self.sslmode)}"]
        if with_user:
            params.append(f"user={quote(self.user)}")
        if self.sslrootcert:
            params.append(f"sslrootcert={quote(self.sslrootcert)}")
        return f"jdbc:postgresql://{self.host}:{self.port}/{quote(self.dbname)}?{'&'.join(params)}"

    def describe(self) -> str:
        """Where this points, without the password."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"
