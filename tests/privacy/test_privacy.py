"""Privacy rules (SEMANTICS.md "Privacy"): keyed-HMAC pseudonyms, key configuration, IP truncation."""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import pytest

from jobs.common import privacy
from jobs.common.privacy import PrivacySettings, Pseudonymizer, ensure_key, truncate_ip
from jobs.common.settings import Secret, SettingsError

KEY = "0123456789abcdef-test-key"


def test_a_pseudonym_is_the_key_id_and_128_bits_of_hmac_sha256_of_the_user_key() -> None:
    pseudonym = Pseudonymizer(PrivacySettings(Secret(KEY)))("usr_42")
    digest = hmac.new(KEY.encode(), b"usr_42", hashlib.sha256).hexdigest()
    assert pseudonym == "k1_" + digest[:32]


def test_pseudonyms_are_stable_differ_per_user_and_change_with_the_key_and_its_id() -> None:
    first = Pseudonymizer(PrivacySettings(Secret(KEY)))
    again = Pseudonymizer(PrivacySettings(Secret(KEY)))
    rotated = Pseudonymizer(PrivacySettings(Secret(KEY + "-rotated"), key_id="k2"))
    assert first("usr_1") == again("usr_1")
    assert first("usr_1") != first("usr_2")
    assert rotated("usr_1").startswith("k2_")
    assert rotated("usr_1")[3:] != first("usr_1")[3:]


def test_the_key_never_prints_itself() -> None:
    settings = PrivacySettings(Secret(KEY))
    assert KEY not in repr(settings) and KEY not in str(settings)
    assert KEY not in repr(Pseudonymizer(settings))


def test_the_key_comes_from_a_file_before_the_variable(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("from-the-file-0123456789\n")
    env = {privacy.ENV_KEY_FILE: str(key_file), privacy.ENV_KEY: "from-the-variable-0123456789"}
    assert PrivacySettings.from_env(env).key.reveal() == "from-the-file-0123456789"
    assert PrivacySettings.from_env({privacy.ENV_KEY: KEY, privacy.ENV_KEY_ID: "k7"}).key_id == "k7"


def test_bad_key_configuration_fails_with_a_message_that_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^the pseudonym key must have at least 16 characters"):
        PrivacySettings.from_env({privacy.ENV_KEY: "short"})
    with pytest.raises(SettingsError) as missing_file:
        PrivacySettings.from_env({privacy.ENV_KEY_FILE: str(tmp_path / "absent")})
    assert str(missing_file.value) == (
        f"UXSTREAM_PSEUDONYM_KEY_FILE={tmp_path / 'absent'}: cannot read the key (No such file or directory)"
    )
    with pytest.raises(SettingsError, match=r"UXSTREAM_PSEUDONYM_KEY_ID='K-1': use 1-16 lowercase"):
        PrivacySettings.from_env({privacy.ENV_KEY: KEY, privacy.ENV_KEY_ID: "K-1"})


def test_without_a_configured_key_workers_fail_clearly_unless_the_local_key_file_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = tmp_path / "secrets" / "pseudonym.key"
    monkeypatch.setattr(privacy, "LOCAL_KEY_FILE", local)
    with pytest.raises(SettingsError) as none:
        PrivacySettings.from_env({})
    assert str(none.value) == (
        "no pseudonym key: set UXSTREAM_PSEUDONYM_KEY_FILE to a file holding the secret key "
        "(or UXSTREAM_PSEUDONYM_KEY) on the client and on every TaskManager"
    )
    assert ensure_key({}, local) == local
    assert oct(local.stat().st_mode & 0o777) == "0o600"
    assert len(local.read_text().strip()) == 64
    assert PrivacySettings.from_env({}).key.reveal() == local.read_text().strip()
    # Created once: later clients keep it, so pseudonyms stay stable across runs.
    before = local.read_text()
    assert ensure_key({}, local) is None
    assert local.read_text() == before
    assert [p.name for p in local.parent.iterdir()] == ["pseudonym.key"]


def test_a_configured_key_means_no_local_key_file_is_created(tmp_path: Path) -> None:
    local = tmp_path / "pseudonym.key"
    assert ensure_key({privacy.ENV_KEY: KEY}, local) is None
    assert ensure_key({privacy.ENV_KEY_FILE: os.devnull}, local) is None
    assert not local.exists()


@pytest.mark.parametrize(
    ("address", "truncated"),
    [
        ("203.0.113.77", "203.0.113.0"),
        ("203.0.113.0", "203.0.113.0"),
        (" 10.1.2.255 ", "10.1.2.0"),
        ("2001:db8:abcd:12:3456::1", "2001:db8:abcd::"),
        ("::ffff:203.0.113.77", "203.0.113.0"),
        ("fe80::1", "fe80::"),
    ],
)
def test_ipv4_is_truncated_to_24_bits_and_ipv6_to_48(address: str, truncated: str) -> None:
    assert truncate_ip(address) == truncated


def test_truncating_something_that_is_not_an_ip_address_names_it() -> None:
    with pytest.raises(ValueError, match=r"^'203.0.113' is not an IPv4 or IPv6 address$"):
        truncate_ip("203.0.113")
