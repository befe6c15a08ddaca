"""Privacy rules of SEMANTICS.md ("Privacy"): keyed-HMAC pseudonyms of user keys, IP truncation.

Every table that holds a user key stores its pseudonym `<key id>_<HMAC-SHA256(key, user key), 128 bits hex>`,
never the raw `user_id` / `anonymous_id`. The key is a secret (`UXSTREAM_PSEUDONYM_KEY`, or a file named by
`UXSTREAM_PSEUDONYM_KEY_FILE`); `UXSTREAM_PSEUDONYM_KEY_ID` (default `k1`) labels it, so a rotated key
gives pseudonyms that say which key made them (rotation starts new pseudonyms: a user's rows before and
after it are not linked, by design). Erasure and export recompute the pseudonym from the raw id with the
same key, and with every earlier key that is not retired yet: `UXSTREAM_PSEUDONYM_PREVIOUS_KEYS` lists them
as `<key id>=<key file>,…` (files only: a secret never travels in a list); retiring a key is removing it
from that list.

The jobs drop the events of erased users (the erased-pseudonym list, `tables.ERASED_PSEUDONYMS`) in the
JVM: io.uxstream.udf.ErasedUser computes the pseudonyms of an event's user key under every key of the ring
(`key_files`) and looks them up in the list, which it reloads every `UXSTREAM_ERASED_REFRESH_MS` ms.

Without a configured key, the key file `.local/secrets/pseudonym.key` is used: the job's client generates
it once (`ensure_key`, 0600) for local runs (MiniCluster, local standalone cluster). The Flink workers only
ever read a key, never create one, so every worker of a job uses the same key or fails with a clear
error (a TaskManager on another machine needs the key configured).

No job stores IP addresses today (the events carry `country` already resolved); `truncate_ip` is the one
place that truncates an address (IPv4 to /24, IPv6 to /48) before anything derived from it is stored.
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from jobs.common.settings import Secret, SettingsError, env_str

ENV_KEY: Final = "UXSTREAM_PSEUDONYM_KEY"
ENV_KEY_FILE: Final = "UXSTREAM_PSEUDONYM_KEY_FILE"
ENV_KEY_ID: Final = "UXSTREAM_PSEUDONYM_KEY_ID"
DEFAULT_KEY_ID: Final = "k1"
LOCAL_KEY_FILE: Final = (
    Path(os.environ.get("UXSTREAM_LOCAL_DIR", Path(__file__).resolve().parents[2] / ".local"))
    / "secrets"
    / "pseudonym.key"
)
"""Where local runs keep the generated key (ignored by git, like all of .local)."""
MIN_KEY_LENGTH: Final = 16
PSEUDONYM_HEX_CHARS: Final = 32
"""128 bits of the HMAC: collisions are negligible for any user population."""
_KEY_ID = re.compile(r"[a-z0-9]{1,16}")
ENV_PREVIOUS_KEYS: Final = "UXSTREAM_PSEUDONYM_PREVIOUS_KEYS"
ENV_ERASED_REFRESH_MS: Final = "UXSTREAM_ERASED_REFRESH_MS"
DEFAULT_ERASED_REFRESH_MS: Final = 10_000
"""How often a running job reloads the erased-pseudonym list (an erase takes effect within this time)."""


@dataclass(frozen=True)
class PreviousKey:
    """An earlier pseudonym key that is not retired: rows made under it are still found by erase/export."""

    key_id: str
    key: Secret


@dataclass(frozen=True)
class PrivacySettings:
    key: Secret
    key_id: str = DEFAULT_KEY_ID
    previous: tuple[PreviousKey, ...] = ()
    erased_refresh_ms: int = DEFAULT_ERASED_REFRESH_MS

    def __post_init__(self) -> None:
        if len(self.key.reveal()) < MIN_KEY_LENGTH:
            raise SettingsError(
                f"the pseudonym key must have at least {MIN_KEY_LENGTH} characters "
                f"(generate one with: python -c 'import secrets; print(secrets.token_hex(32))')"
            )
        if not _KEY_ID.fullmatch(self.key_id):
            raise SettingsError(
                f"{ENV_KEY_ID}={self.key_id!r}: use 1-16 lowercase letters or digits (e.g. k2)"
            )
        ids = [self.key_id, *(p.key_id for p in self.previous)]
        if len(set(ids)) != len(ids):
            raise SettingsError(
                f"{ENV_PREVIOUS_KEYS}: key ids must differ from each other and from "
                f"{ENV_KEY_ID}={self.key_id!r} (got {', '.join(ids)})"
            )
        if self.erased_refresh_ms < 100:
            raise SettingsError(f"{ENV_ERASED_REFRESH_MS}={self.erased_refresh_ms}: use at least 100 ms")

    def ring(self) -> tuple[tuple[str, Secret], ...]:
        """(key id, key) of the current key, then of every earlier non-retired key."""
        return ((self.key_id, self.key), *((p.key_id, p.key) for p in self.previous))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PrivacySettings:
        """The configured key; raises SettingsError (naming the variables) when there is none."""
        env = os.environ if env is None else env
        key_id = env_str(env, ENV_KEY_ID, DEFAULT_KEY_ID) or DEFAULT_KEY_ID
        previous = _previous_keys(env)
        refresh = _refresh_ms(env)
        path = env_str(env, ENV_KEY_FILE)
        if path is not None:
            return cls(_read_key(ENV_KEY_FILE, path), key_id, previous, refresh)
        value = env.get(ENV_KEY, "").strip()
        if value:
            return cls(Secret(value), key_id, previous, refresh)
        if LOCAL_KEY_FILE.exists():
            return cls(_read_key(ENV_KEY_FILE, str(LOCAL_KEY_FILE)), key_id, previous, refresh)
        raise SettingsError(
            f"no pseudonym key: set {ENV_KEY_FILE} to a file holding the secret key (or {ENV_KEY}) on the "
            "client and on every TaskManager"
        )


def _read_key(variable: str, path: str) -> Secret:
    try:
        return Secret(Path(path).read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise SettingsError(f"{variable}={path}: cannot read the key ({exc.strerror})") from None


def _previous_keys(env: Mapping[str, str]) -> tuple[PreviousKey, ...]:
    """`UXSTREAM_PSEUDONYM_PREVIOUS_KEYS=k1=/run/secrets/k1.key,k0=/run/secrets/k0.key`."""
    text = env_str(env, ENV_PREVIOUS_KEYS)
    if not text:
        return ()
    keys = []
    for item in text.split(","):
        key_id, sep, path = (part.strip() for part in item.partition("="))
        if not sep or not path or not _KEY_ID.fullmatch(key_id):
            raise SettingsError(
                f"{ENV_PREVIOUS_KEYS}: {item.strip()!r} is not <key id>=<key file> (key id: 1-16 lowercase "
                "letters or digits), e.g. k1=/run/secrets/pseudonym-k1.key"
            )
        key = _read_key(f"{ENV_PREVIOUS_KEYS} ({key_id})", path)
        if len(key.reveal()) < MIN_KEY_LENGTH:
            raise SettingsError(
                f"{ENV_PREVIOUS_KEYS} ({key_id}): the key must have at least {MIN_KEY_LENGTH} characters"
            )
        keys.append(PreviousKey(key_id, key))
    return tuple(keys)


def _refresh_ms(env: Mapping[str, str]) -> int:
    text = env_str(env, ENV_ERASED_REFRESH_MS)
    if text is None:
        return DEFAULT_ERASED_REFRESH_MS
    try:
        return int(text)
    except ValueError:
        raise SettingsError(
            f"{ENV_ERASED_REFRESH_MS}={text!r} is not a whole number of milliseconds"
        ) from None


def all_pseudonyms(settings: PrivacySettings, user_key: str) -> tuple[str, ...]:
    """The pseudonyms of `user_key` under every key of the ring, the current key's first."""
    return tuple(Pseudonymizer(PrivacySettings(key, key_id))(user_key) for key_id, key in settings.ring())


_KEY_FILES: dict[str, str] = {}


def key_files(env: Mapping[str, str] | None = None) -> str:
    """`<key id>=<file>,…` of every key of the ring, the current key first: what the JVM functions read
    (io.uxstream.udf.KeyRing), rendered without reading any key (a job's plan is rendered before the local
    key may exist). A key given by value (UXSTREAM_PSEUDONYM_KEY) is first written to a private temporary
    file of this process, so the value never travels in the job's SQL; without a configured key it is the
    local key file."""
    env = os.environ if env is None else env
    key_id = env_str(env, ENV_KEY_ID, DEFAULT_KEY_ID) or DEFAULT_KEY_ID
    if not _KEY_ID.fullmatch(key_id):
        raise SettingsError(f"{ENV_KEY_ID}={key_id!r}: use 1-16 lowercase letters or digits (e.g. k2)")
    current = env_str(env, ENV_KEY_FILE)
    if current is None:
        value = env.get(ENV_KEY, "").strip()
        current = _secret_file(Secret(value)) if value else str(LOCAL_KEY_FILE)
    entries = [f"{key_id}={current}"]
    text = env_str(env, ENV_PREVIOUS_KEYS)
    for item in (text or "").split(",") if text else ():
        previous_id, sep, path = (part.strip() for part in item.partition("="))
        if not sep or not path or not _KEY_ID.fullmatch(previous_id):
            raise SettingsError(f"{ENV_PREVIOUS_KEYS}: {item.strip()!r} is not <key id>=<key file>")
        entries.append(f"{previous_id}={path}")
    for entry in entries:
        if "," in entry.partition("=")[2] or "'" in entry:
            raise SettingsError(f"pseudonym key file names must not contain ',' or quotes: {entry}")
    return ",".join(entries)


def erased_refresh_ms(env: Mapping[str, str] | None = None) -> int:
    """How often the jobs reload the erased-pseudonym list (`UXSTREAM_ERASED_REFRESH_MS`)."""
    value = _refresh_ms(os.environ if env is None else env)
    if value < 100:
        raise SettingsError(f"{ENV_ERASED_REFRESH_MS}={value}: use at least 100 ms")
    return value


def _secret_file(secret: Secret) -> str:
    value = secret.reveal()
    if value not in _KEY_FILES:
        fd, path = tempfile.mkstemp(prefix="uxstream-pseudonym-", suffix=".key")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(value)
        atexit.register(Path(path).unlink, missing_ok=True)
        _KEY_FILES[value] = path
    return _KEY_FILES[value]


def ensure_key(env: Mapping[str, str] | None = None, path: Path = LOCAL_KEY_FILE) -> Path | None:
    """Client side, before a job starts: when no key is configured, create the local key file once.
    Returns the file created, if any."""
    env = os.environ if env is None else env
    if env_str(env, ENV_KEY_FILE) is not None or env.get(ENV_KEY, "").strip() or path.exists():
        return None
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Written in full under a temporary name, then linked into place: a reader never sees a partial key,
    # and of two jobs starting at once exactly one key wins.
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(secrets.token_hex(32) + "\n")
    try:
        os.link(temporary, path)
    except FileExistsError:
        return None
    finally:
        temporary.unlink()
    return path


class Pseudonymizer:
    """user key → pseudonym, with the configured key."""

    def __init__(self, settings: PrivacySettings) -> None:
        self._key = settings.key.reveal().encode("utf-8")
        self._prefix = f"{settings.key_id}_"

    def __call__(self, user_key: str) -> str:
        digest = hmac.new(self._key, user_key.encode("utf-8"), hashlib.sha256).hexdigest()
        return self._prefix + digest[:PSEUDONYM_HEX_CHARS]

    def __repr__(self) -> str:
        return f"Pseudonymizer(key_id={self._prefix[:-1]!r})"


def truncate_ip(address: str) -> str:
    """IPv4 → its /24 network address, IPv6 → its /48 (`203.0.113.77` → `203.0.113.0`).

    Raises ValueError naming the address when it is not an IP address."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        raise ValueError(f"{address!r} is not an IPv4 or IPv6 address") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:203.0.113.77 is an IPv4 address
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)
