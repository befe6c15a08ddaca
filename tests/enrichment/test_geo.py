"""IP → country (issue 22 item 2): the jar (GeoCountry via EnrichCli) and the oracle (maxminddb) look the
truncated address up (IPv4 /24, IPv6 /48) in the same .mmdb; a missing or invalid database fails clearly.
Check tier (subprocess, no Flink). The two addresses below sit in networks smaller than their /24 or /48
in the pinned DB-IP Lite file (tools/geoip), so the full address and the truncated one disagree."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.common import enrichment
from jobs.common.settings import SettingsError
from tests.enrichment.support import run_enrich_cli

DB = enrichment.DEFAULT_GEOIP_DB
# (address, country of the full address, country of its /24 or /48: what uxstream stores)
CASES = [
    ("1.32.202.129", "HK", "SG"),
    ("2001:218:200f:1::1", "US", "JP"),
    ("::ffff:1.32.202.129", None, "SG"),  # IPv4-mapped IPv6 counts as IPv4 (jobs.common.privacy.truncate_ip)
    ("8.8.8.8", "US", "US"),
    ("2a00:1450:4001:81c::200e", "DE", "DE"),
    ("203.0.113.9", None, None),  # documentation range: no record
    ("fe80::1%eth0", None, None),
]


def full_address_country(ip: str) -> str | None:
    import maxminddb

    with maxminddb.open_database(str(DB)) as reader:
        record = reader.get(ip.split("%")[0])
    code = record.get("country_code") if isinstance(record, dict) else None
    return code if isinstance(code, str) else None


@pytest.mark.parametrize(("ip", "full", "stored"), CASES)
def test_the_oracle_looks_up_the_truncated_address(ip: str, full: str | None, stored: str | None) -> None:
    assert full_address_country(ip) == full  # (the mmdb has no record under ::ffff:0:0/96)
    assert enrichment.GeoOracle(DB).country(ip) == stored


def test_the_jar_gives_the_oracle_s_country_for_every_case() -> None:
    code, rows = run_enrich_cli([ip for ip, _, _ in CASES], "--geo", str(DB))
    assert code == 0
    assert [r["country"] for r in rows] == [stored for _, _, stored in CASES]


def test_jar_and_oracle_agree_on_many_addresses() -> None:
    import random

    rng = random.Random(22)
    ips = [
        f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"
        for _ in range(400)
    ]
    ips += [
        f"2{rng.getrandbits(12):03x}:{rng.getrandbits(16):x}:{rng.getrandbits(16):x}::{rng.getrandbits(16):x}"
        for _ in range(200)
    ]
    code, rows = run_enrich_cli(ips, "--geo", str(DB))
    oracle = enrichment.GeoOracle(DB)
    assert code == 0
    assert [r["country"] for r in rows] == [oracle.country(ip) for ip in ips]
    assert sum(1 for r in rows if r["country"]) > 300  # the sample mostly hits records


def test_a_missing_database_fails_with_the_setting_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mmdb"
    code, rows = run_enrich_cli(["8.8.8.8"], "--geo", str(missing))
    assert code == 2
    assert rows == [
        {"error": f"UXSTREAM_GEOIP_DB: {missing} does not exist or is not a file (an .mmdb country database)"}
    ]
    with pytest.raises(SettingsError, match=f"UXSTREAM_GEOIP_DB: {missing} does not exist"):
        enrichment.EnrichmentSettings.from_env({"UXSTREAM_GEOIP_DB": str(missing)})


def test_a_file_that_is_no_mmdb_fails_with_the_setting_and_path(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.mmdb"
    bogus.write_bytes(b"not a database" * 100)
    code, rows = run_enrich_cli(["8.8.8.8"], "--geo", str(bogus))
    assert code == 2 and rows[0]["error"].startswith(f"UXSTREAM_GEOIP_DB: {bogus} is not a MaxMind-format")
    with pytest.raises(SettingsError, match="is not a MaxMind-format"):
        enrichment.EnrichmentSettings.from_env({"UXSTREAM_GEOIP_DB": str(bogus)})


def test_settings_defaults_and_switches() -> None:
    default = enrichment.EnrichmentSettings.from_env({})
    assert (default.user_agents, default.geoip_db, default.exclude_bots) == (True, DB, True)
    off = enrichment.EnrichmentSettings.from_env(
        {"UXSTREAM_GEOIP_DB": "off", "UXSTREAM_EXCLUDE_BOTS": "false", "UXSTREAM_ENRICH_USER_AGENT": "0"}
    )
    assert (off.user_agents, off.geoip_db, off.exclude_bots) == (False, None, False)
    with pytest.raises(SettingsError, match="UXSTREAM_EXCLUDE_BOTS='maybe' is not a boolean"):
        enrichment.EnrichmentSettings.from_env({"UXSTREAM_EXCLUDE_BOTS": "maybe"})
