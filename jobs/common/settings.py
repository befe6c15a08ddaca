"""Typed, frozen settings for every component, read from the environment in `main()` only.

Every variable is documented in the README ("Configuration"). Defaults point at the local services that
`make up` starts on 127.0.0.1; setting the variables points uxstream at an external deployment instead.

Secrets are `Secret` values: their repr and str never show the value. A secret can be given directly
(`UXSTREAM_PG_PASSWORD`) or as a file path (`UXSTREAM_PG_PASSWORD_FILE`), the latter winning.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, Literal
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


PgRole = Literal["admin", "migrator", "writer", "reader", "eraser"]
"""Who connects (README "Security: PostgreSQL roles and TLS"): `admin` is the server's superuser (the local
server's setup, tests creating databases); the others are the roles the migrations create and grant."""
PG_ROLES: Final[tuple[PgRole, ...]] = ("admin", "migrator", "writer", "reader", "eraser")
PG_ROLE_NAMES: Final[Mapping[PgRole, str]] = {
    "admin": LOCAL_PG_USER,
    "migrator": "uxstream_migrator",
    "writer": "uxstream_writer",
    "reader": "uxstream_reader",
    "eraser": "uxstream_eraser",
}
"""The database role of each; the migrations grant to the last four (migrations/V0007__roles.sql)."""
PG_CA_FILE: Final = "ca.crt"
"""The CA certificate in a PostgreSQL secrets folder (UXSTREAM_PG_SECRETS_DIR)."""


def local_pg_secrets_dir(env: Mapping[str, str]) -> Path:
    """Where the local server's setup keeps the role passwords and the CA: `.local/secrets/postgres`."""
    local = env_str(env, "UXSTREAM_LOCAL_DIR") or str(Path(__file__).resolve().parents[2] / ".local")
    return Path(local) / "secrets" / "postgres"


def pg_password_file(secrets_dir: Path | str, role: PgRole) -> Path:
    return Path(secrets_dir) / f"{role}.password"


@dataclass(frozen=True)
class PostgresSettings:
    """How jobs and tools reach PostgreSQL/TimescaleDB, as one role."""

    host: str = "127.0.0.1"
    port: int = LOCAL_PG_PORT
    dbname: str = LOCAL_PG_DB
    user: str = LOCAL_PG_USER
    password: Secret | None = None
    sslmode: str = "prefer"
    sslrootcert: str | None = None
    external: bool = False
    """True when the host came from the environment: `make up` then starts no local server."""
    role: PgRole = "admin"
    password_file: str | None = None
    """The file the password was read from, if any: the JDBC sink reads it in the JVM (the value never
    travels in the job's SQL options)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, role: PgRole = "admin") -> PostgresSettings:
        """The settings of `role`. For the local server (no UXSTREAM_PG_HOST) and whenever
        UXSTREAM_PG_SECRETS_DIR is set, the defaults come from the secrets folder: user `uxstream_<role>`,
        password file `<role>.password`, `sslmode=verify-full` with its `ca.crt`. For an external server
        without one, every role defaults to UXSTREAM_PG_USER / UXSTREAM_PG_PASSWORD (one account, as
        before). UXSTREAM_PG_<ROLE>_USER / _PASSWORD / _PASSWORD_FILE win over both."""
        env = os.environ if env is None else env
        host = env_str(env, "UXSTREAM_PG_HOST")
        folder = env_str(env, "UXSTREAM_PG_SECRETS_DIR")
        secrets_dir = Path(folder) if folder else (None if host is not None else local_pg_secrets_dir(env))
        default_mode = "verify-full" if secrets_dir is not None else "prefer"
        sslmode = env_str(env, "UXSTREAM_PG_SSLMODE", default_mode) or default_mode
        modes = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
        if sslmode not in modes:
            raise SettingsError(f"UXSTREAM_PG_SSLMODE={sslmode!r} is not one of {', '.join(modes)}")
        default_ca = str(secrets_dir / PG_CA_FILE) if secrets_dir is not None else None
        prefix = "UXSTREAM_PG" if role == "admin" else f"UXSTREAM_PG_{role.upper()}"
        user = env_str(env, f"{prefix}_USER")
        if user is None:
            user = (
                PG_ROLE_NAMES[role]
                if secrets_dir is not None
                else env_str(env, "UXSTREAM_PG_USER", cls.user) or cls.user
            )
        password, password_file = _pg_password(env, f"{prefix}_PASSWORD")
        if password is None and secrets_dir is not None:
            path = pg_password_file(secrets_dir, role)
            if path.is_file():
                password, password_file = _pg_password(
                    {f"{prefix}_PASSWORD_FILE": str(path)}, f"{prefix}_PASSWORD"
                )
        elif password is None and role != "admin":
            password, password_file = _pg_password(env, "UXSTREAM_PG_PASSWORD")
        return cls(
            host=host or cls.host,
            port=env_int(env, "UXSTREAM_PG_PORT", cls.port),
            dbname=env_str(env, "UXSTREAM_PG_DB", cls.dbname) or cls.dbname,
            user=user,
            password=password,
            sslmode=sslmode,
            sslrootcert=env_str(env, "UXSTREAM_PG_SSLROOTCERT", default_ca),
            external=host is not None,
            role=role,
            password_file=password_file,
        )

    def as_role(self, role: PgRole, env: Mapping[str, str] | None = None) -> PostgresSettings:
        """The same server and database, as another role (its user and password from the environment)."""
        other = PostgresSettings.from_env(env, role)
        return replace(
            self, role=role, user=other.user, password=other.password, password_file=other.password_file
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


def _pg_password(env: Mapping[str, str], name: str) -> tuple[Secret | None, str | None]:
    """(the secret, the file it came from) of `name` / `name_FILE`."""
    secret = env_secret(env, name)
    return secret, (env_str(env, f"{name}_FILE") if secret is not None else None)


_DURATION_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration_ms(name: str, raw: str) -> int:
    """`8d`, `36h`, `90m`, `30s`, `500ms` or a whole number of milliseconds → milliseconds (positive)."""
    text = raw.strip().lower()
    number, unit = text, "ms"
    for suffix in sorted(_DURATION_UNITS, key=len, reverse=True):
        if text.endswith(suffix):
            number, unit = text[: -len(suffix)].strip(), suffix
            break
    if not number.isdigit():
        raise SettingsError(
            f"{name}={raw!r} is not a duration: a whole number with a unit ms, s, m, h or d (e.g. 8d)"
        )
    value = int(number) * _DURATION_UNITS[unit]
    if value <= 0:
        raise SettingsError(f"{name}={raw!r} must be positive")
    return value


IDENTITY_TTL_ENV: Final = "UXSTREAM_IDENTITY_TTL"
DEFAULT_IDENTITY_TTL_MS: Final = 30 * 86_400_000
"""How long (event time) a login on a device attributes the device's later anonymous events to the user
(README "Identity: one visitor across a login"); sessionize and funnels read the same setting."""


def identity_ttl_ms(env: Mapping[str, str]) -> int:
    """UXSTREAM_IDENTITY_TTL (`30d`, `12h`, … or milliseconds), default 30 days."""
    raw = env_str(env, IDENTITY_TTL_ENV)
    return DEFAULT_IDENTITY_TTL_MS if raw is None else parse_duration_ms(IDENTITY_TTL_ENV, raw)
