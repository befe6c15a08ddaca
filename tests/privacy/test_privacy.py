"""Privacy rules (SEMANTICS.md "Privacy"): keyed-HMAC pseudonyms, key configuration, IP truncation."""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
from pathlib import Path

import pytest

from jobs.common import privacy
from jobs.common.privacy import PrivacySettings, Pseudonymizer, ensure_key, truncate_ip
from jobs.common.settings import Secret, SettingsError
from tests.decode.support import jvm_classpath
from uxstream.paths import CACHE

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


# --- the key ring: earlier keys stay resolvable until retired (issue 16 item 2) ---


def key_file(folder: Path, name: str, value: str) -> Path:
    path = folder / name
    path.write_text(value + "\n", encoding="utf-8")
    return path


def test_every_id_gets_a_pseudonym_under_the_current_key_and_each_earlier_key_not_retired(
    tmp_path: Path,
) -> None:
    old, older = key_file(tmp_path, "k1.key", KEY + "-k1"), key_file(tmp_path, "k0.key", KEY + "-k0")
    env = {
        privacy.ENV_KEY: KEY,
        privacy.ENV_KEY_ID: "k2",
        privacy.ENV_PREVIOUS_KEYS: f"k1={old}, k0={older}",
    }
    settings = PrivacySettings.from_env(env)
    assert [key_id for key_id, _ in settings.ring()] == ["k2", "k1", "k0"]
    assert privacy.all_pseudonyms(settings, "usr_1") == (
        Pseudonymizer(PrivacySettings(Secret(KEY), "k2"))("usr_1"),
        Pseudonymizer(PrivacySettings(Secret(KEY + "-k1"), "k1"))("usr_1"),
        Pseudonymizer(PrivacySettings(Secret(KEY + "-k0"), "k0"))("usr_1"),
    )
    retired = PrivacySettings.from_env({**env, privacy.ENV_PREVIOUS_KEYS: f"k1={old}"})
    assert [key_id for key_id, _ in retired.ring()] == ["k2", "k1"]


def test_a_bad_key_ring_fails_with_a_message_that_says_what_to_do(tmp_path: Path) -> None:
    old = key_file(tmp_path, "k1.key", KEY + "-k1")
    base = {privacy.ENV_KEY: KEY, privacy.ENV_KEY_ID: "k2"}
    with pytest.raises(SettingsError, match=r"'k1' is not <key id>=<key file>"):
        PrivacySettings.from_env({**base, privacy.ENV_PREVIOUS_KEYS: "k1"})
    with pytest.raises(SettingsError, match=r"\(k1\)=.*missing.key: cannot read the key"):
        PrivacySettings.from_env({**base, privacy.ENV_PREVIOUS_KEYS: f"k1={tmp_path / 'missing.key'}"})
    with pytest.raises(SettingsError, match=r"key ids must differ .* \(got k2, k2\)"):
        PrivacySettings.from_env({**base, privacy.ENV_PREVIOUS_KEYS: f"k2={old}"})
    short = key_file(tmp_path, "short.key", "short")
    with pytest.raises(SettingsError, match=r"\(k1\): the key must have at least 16 characters"):
        PrivacySettings.from_env({**base, privacy.ENV_PREVIOUS_KEYS: f"k1={short}"})
    with pytest.raises(SettingsError, match=r"UXSTREAM_ERASED_REFRESH_MS='soon' is not a whole number"):
        PrivacySettings.from_env({**base, privacy.ENV_ERASED_REFRESH_MS: "soon"})


def test_the_jobs_get_key_files_never_key_values(tmp_path: Path) -> None:
    old = key_file(tmp_path, "k1.key", KEY + "-k1")
    current = key_file(tmp_path, "k2.key", KEY)
    files = privacy.key_files(
        {privacy.ENV_KEY_FILE: str(current), privacy.ENV_KEY_ID: "k2", privacy.ENV_PREVIOUS_KEYS: f"k1={old}"}
    )
    assert files == f"k2={current},k1={old}"
    by_value = privacy.key_files({privacy.ENV_KEY: KEY})
    assert KEY not in by_value
    key_id, _, path = by_value.partition("=")
    assert key_id == "k1" and Path(path).read_text(encoding="utf-8") == KEY
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert privacy.key_files({}) == f"k1={privacy.LOCAL_KEY_FILE}"  # read by the JVM when the job runs


def test_the_jvm_key_ring_computes_the_python_pseudonyms(tmp_path: Path) -> None:
    old = key_file(tmp_path, "k1.key", KEY + "-k1")
    current = key_file(tmp_path, "k2.key", KEY)
    env = {
        privacy.ENV_KEY_FILE: str(current),
        privacy.ENV_KEY_ID: "k2",
        privacy.ENV_PREVIOUS_KEYS: f"k1={old}",
    }
    users = ["usr_1", "anon-ü-€-𝄞", ""]
    done = subprocess.run(
        ["java", "-cp", jvm_classpath(), "io.uxstream.udf.KeyRing", privacy.key_files(env), *users],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    settings = PrivacySettings.from_env(env)
    assert done.stdout.splitlines() == ["\t".join(privacy.all_pseudonyms(settings, u)) for u in users]


def test_the_jvm_lookup_fails_clearly_when_it_cannot_load_the_erased_list() -> None:
    """A job never runs without the list: the first load fails the task, naming what it read, as whom and
    where (no password: it stays in its file)."""
    driver = sorted((CACHE / "jars" / "flink-lib").glob("postgresql-*.jar"))
    assert driver, "the PostgreSQL JDBC driver is missing: run `make jars`"
    url = "jdbc:postgresql://127.0.0.1:9/nodb?sslmode=disable"
    classpath = f"{jvm_classpath()}:{driver[0]}"
    done = subprocess.run(
        ["java", "-cp", classpath, "io.uxstream.udf.ErasedList", url, "reader", "", "200"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert (
        "IllegalStateException: erased-pseudonym list: cannot read SELECT pseudonym FROM erased_pseudonyms "
        f"as reader at {url}: Connection to 127.0.0.1:9 refused." in done.stderr
    )
