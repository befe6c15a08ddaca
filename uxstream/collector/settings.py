"""Typed, frozen settings of `uxstream collect`, read from the environment and the command line.

Every variable is documented in the README ("Collector"). Write keys are secrets: they are kept only as
SHA-256 digests (a key never appears in a repr, a log line or an error message).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from jobs.common import topics
from jobs.common.contract import EVENT_SUBJECT, load_catalog
from jobs.common.settings import KafkaSettings, Secret, SettingsError, env_int, env_secret, env_str
from uxstream.collector.logic import BodyLimits, Limit

PREFIX: Final = "UXSTREAM_COLLECTOR_"
DEFAULT_PORT: Final = 18090
DEFAULT_GRPC_PORT: Final = 18091
DEFAULT_BODY: Final = BodyLimits(
    max_body_bytes=1_048_576, max_decompressed_bytes=4_194_304, max_ratio=100, max_batch_events=500
)
DEFAULT_KEY_LIMIT: Final = Limit(rate=100_000, burst=200_000)
DEFAULT_IP_LIMIT: Final = Limit(rate=2_000, burst=10_000)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class WriteKey:
    project: str
    revoked: bool = False


@dataclass(frozen=True)
class WriteKeys:
    """Write keys by SHA-256 digest."""

    by_digest: Mapping[str, WriteKey] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        return f"WriteKeys({len(self.by_digest)} keys)"

    def lookup(self, key: str) -> WriteKey | None:
        """The key's project, None for an unknown or revoked key."""
        found = self.by_digest.get(digest(key))
        return None if found is None or found.revoked else found

    @classmethod
    def parse_env(cls, text: Secret, name: str) -> WriteKeys:
        """`project:key,project:key` (a key cannot contain a comma)."""
        keys: dict[str, WriteKey] = {}
        for position, item in enumerate(text.reveal().split(","), 1):
            item = item.strip()
            if not item:
                continue
            project, sep, key = item.partition(":")
            if not sep or not project.strip() or not key.strip():
                raise SettingsError(f"{name}: entry #{position} is not 'project:key'")
            keys[digest(key.strip())] = WriteKey(project.strip())
        return cls(keys)

    @classmethod
    def parse_file(cls, path: Path) -> WriteKeys:
        """`{"keys": [{"project": "shop", "key": "…", "revoked": false}, …]}`."""
        try:
            raw: Any = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SettingsError(f"{PREFIX}WRITE_KEYS_FILE={path}: cannot read it ({exc.strerror})") from None
        except json.JSONDecodeError as exc:
            raise SettingsError(
                f"{PREFIX}WRITE_KEYS_FILE={path}: not valid JSON (line {exc.lineno})"
            ) from None
        rows = raw.get("keys") if isinstance(raw, dict) else None
        if not isinstance(rows, list):
            raise SettingsError(f"{PREFIX}WRITE_KEYS_FILE={path}: expected an object with a 'keys' list")
        keys: dict[str, WriteKey] = {}
        for position, row in enumerate(rows, 1):
            ok = isinstance(row, dict) and isinstance(row.get("project"), str) and row["project"]
            ok = ok and isinstance(row.get("key"), str) and row["key"]
            if not ok or not isinstance(row.get("revoked", False), bool):
                raise SettingsError(
                    f"{PREFIX}WRITE_KEYS_FILE={path}: keys[{position}] needs a non-empty 'project' and "
                    "'key' (strings) and an optional boolean 'revoked'"
                )
            keys[digest(row["key"])] = WriteKey(row["project"], row.get("revoked", False))
        return cls(keys)


@dataclass(frozen=True)
class JwtSettings:
    """Signed JWTs for server-side sources: HS256 with a shared secret or RS256/ES256 with a public key.
    The token's `project` claim (else `sub`) names the project; `exp` and `aud` are required."""

    key: Secret
    algorithms: tuple[str, ...]
    audience: str


@dataclass(frozen=True)
class CollectorSettings:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topic: str = topics.EVENTS
    schema_id: int = 0
    """The schema id events are written with: always the latest ux.events-value version (the collector
    writes the reader schema's records), set from the catalog."""
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    grpc_port: int = DEFAULT_GRPC_PORT
    """0 = no gRPC server."""
    write_keys: WriteKeys = field(default_factory=WriteKeys)
    jwt: JwtSettings | None = None
    allowed_origins: tuple[str, ...] = ()
    body: BodyLimits = DEFAULT_BODY
    key_limit: Limit = DEFAULT_KEY_LIMIT
    """Events per second per write key (or JWT project)."""
    ip_limit: Limit = DEFAULT_IP_LIMIT
    """Events per second per client IP."""
    queue_high_water: int = 200_000
    """Records waiting for delivery above which requests get 503 and /readyz fails."""
    delivery_timeout_ms: int = 10_000
    """How long a record may wait for Kafka before its batch is answered 503 (message.timeout.ms)."""
    linger_ms: int = 2
    stream_credits: int = 8
    """Batches a WebSocket/gRPC stream may have unacknowledged."""
    honor_dnt: bool = True
    trusted_proxies: tuple[str, ...] = ()
    """Addresses of TLS-terminating proxies whose X-Forwarded-For names the client."""
    certfile: Path | None = None
    keyfile: Path | None = None
    metrics: bool = True
    snowplow_ping_interval_ms: int = 10_000
    """The engaged time of one Snowplow page ping (a heartbeat): the tracker's
    `enableActivityTracking({heartbeatDelay})` in ms, which the tracker does not send."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "schema_id", load_catalog().latest(EVENT_SUBJECT).id)
        for name, value in (
            ("PORT", self.port),
            ("QUEUE_HIGH_WATER", self.queue_high_water),
            ("DELIVERY_TIMEOUT_MS", self.delivery_timeout_ms),
            ("STREAM_CREDITS", self.stream_credits),
            ("MAX_BODY_BYTES", self.body.max_body_bytes),
            ("MAX_DECOMPRESSED_BYTES", self.body.max_decompressed_bytes),
            ("MAX_GZIP_RATIO", self.body.max_ratio),
            ("MAX_BATCH_EVENTS", self.body.max_batch_events),
            ("SNOWPLOW_PING_INTERVAL_MS", self.snowplow_ping_interval_ms),
        ):
            if value <= 0:
                raise SettingsError(f"{PREFIX}{name}={value} must be positive")
        if not 0 <= self.grpc_port < 65536 or self.port >= 65536:
            raise SettingsError(f"{PREFIX}PORT / GRPC_PORT must be ports (0-65535)")
        if (self.certfile is None) != (self.keyfile is None):
            raise SettingsError("--certfile and --keyfile go together")
        for path in (self.certfile, self.keyfile):
            if path is not None and not path.is_file():
                raise SettingsError(f"{path}: no such file (TLS certificate/key)")
        if not self.write_keys.by_digest and self.jwt is None:
            raise SettingsError(
                f"no write keys: set {PREFIX}WRITE_KEYS (project:key,…) or {PREFIX}WRITE_KEYS_FILE, "
                f"or {PREFIX}JWT_SECRET / {PREFIX}JWT_PUBLIC_KEY_FILE"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> CollectorSettings:
        env = os.environ if env is None else env
        keys_file = env_str(env, f"{PREFIX}WRITE_KEYS_FILE")
        keys_env = env_secret(env, f"{PREFIX}WRITE_KEYS")
        if keys_file is not None:
            keys = WriteKeys.parse_file(Path(keys_file))
        elif keys_env is not None:
            keys = WriteKeys.parse_env(keys_env, f"{PREFIX}WRITE_KEYS")
        else:
            keys = WriteKeys()
        jwt = _jwt(env)
        body = BodyLimits(
            max_body_bytes=env_int(env, f"{PREFIX}MAX_BODY_BYTES", 1_048_576),
            max_decompressed_bytes=env_int(env, f"{PREFIX}MAX_DECOMPRESSED_BYTES", 4_194_304),
            max_ratio=env_int(env, f"{PREFIX}MAX_GZIP_RATIO", 100),
            max_batch_events=env_int(env, f"{PREFIX}MAX_BATCH_EVENTS", 500),
        )
        values: dict[str, Any] = {
            "kafka": KafkaSettings.from_env(env),
            "topic": env_str(env, f"{PREFIX}TOPIC", topics.EVENTS),
            "host": env_str(env, f"{PREFIX}HOST", "127.0.0.1"),
            "port": env_int(env, f"{PREFIX}PORT", DEFAULT_PORT),
            "grpc_port": env_int(env, f"{PREFIX}GRPC_PORT", DEFAULT_GRPC_PORT),
            "write_keys": keys,
            "jwt": jwt,
            "allowed_origins": _list(env, f"{PREFIX}ALLOWED_ORIGINS"),
            "body": body,
            "key_limit": _limit(env, "KEY", DEFAULT_KEY_LIMIT),
            "ip_limit": _limit(env, "IP", DEFAULT_IP_LIMIT),
            "queue_high_water": env_int(env, f"{PREFIX}QUEUE_HIGH_WATER", 200_000),
            "delivery_timeout_ms": env_int(env, f"{PREFIX}DELIVERY_TIMEOUT_MS", 10_000),
            "linger_ms": env_int(env, f"{PREFIX}LINGER_MS", 2),
            "stream_credits": env_int(env, f"{PREFIX}STREAM_CREDITS", 8),
            "honor_dnt": _bool(env, f"{PREFIX}HONOR_DNT", True),
            "trusted_proxies": _list(env, f"{PREFIX}TRUSTED_PROXIES"),
            "snowplow_ping_interval_ms": env_int(env, f"{PREFIX}SNOWPLOW_PING_INTERVAL_MS", 10_000),
        }
        values.update(overrides)
        return cls(**values)


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = env_str(env, name) or ""
    return tuple(item.strip().rstrip("/") for item in raw.split(",") if item.strip())


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env_str(env, name) or "").lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r}: use true or false")


def _limit(env: Mapping[str, str], which: str, default: Limit) -> Limit:
    rate = env_int(env, f"{PREFIX}RATE_PER_{which}", int(default.rate))
    burst = env_int(env, f"{PREFIX}BURST_PER_{which}", int(default.burst))
    if rate < 0 or burst < 0 or (rate > 0 and burst == 0):
        raise SettingsError(f"{PREFIX}RATE_PER_{which}={rate} / BURST_PER_{which}={burst}: burst must be > 0")
    return Limit(rate, burst)


def _jwt(env: Mapping[str, str]) -> JwtSettings | None:
    audience = env_str(env, f"{PREFIX}JWT_AUDIENCE", "uxstream") or "uxstream"
    secret = env_secret(env, f"{PREFIX}JWT_SECRET")
    public = env_str(env, f"{PREFIX}JWT_PUBLIC_KEY_FILE")
    if secret is not None and public is not None:
        raise SettingsError(f"set {PREFIX}JWT_SECRET or {PREFIX}JWT_PUBLIC_KEY_FILE, not both")
    if secret is not None:
        if len(secret.reveal()) < 32:
            raise SettingsError(f"{PREFIX}JWT_SECRET must have at least 32 characters")
        return JwtSettings(secret, ("HS256",), audience)
    if public is not None:
        try:
            text = Path(public).read_text(encoding="utf-8")
        except OSError as exc:
            raise SettingsError(
                f"{PREFIX}JWT_PUBLIC_KEY_FILE={public}: cannot read it ({exc.strerror})"
            ) from None
        return JwtSettings(Secret(text), ("RS256", "ES256"), audience)
    return None
