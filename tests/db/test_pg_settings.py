"""Which user, password, TLS mode and CA each role gets from the environment, and what the JDBC sink's
options carry (README "Security: PostgreSQL roles and TLS"). Starts nothing."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from jobs.common.connectors import jdbc_upsert_options
from jobs.common.settings import PgRole, PostgresSettings


def folder_with_passwords(path: Path) -> Path:
    path.mkdir(parents=True)
    for role in ("admin", "migrator", "writer", "reader", "eraser"):
        (path / f"{role}.password").write_text(f"{role}-secret\n")
    return path


@pytest.mark.parametrize(
    ("role", "user"),
    [
        ("admin", "uxstream"),
        ("migrator", "uxstream_migrator"),
        ("writer", "uxstream_writer"),
        ("reader", "uxstream_reader"),
        ("eraser", "uxstream_eraser"),
    ],
)
def test_the_local_server_gives_each_role_its_user_its_password_file_and_verify_full(
    tmp_path: Path, role: PgRole, user: str
) -> None:
    folder_with_passwords(tmp_path / "secrets" / "postgres")
    pg = PostgresSettings.from_env({"UXSTREAM_LOCAL_DIR": str(tmp_path)}, role)
    assert (pg.host, pg.port, pg.user, pg.role, pg.external) == ("127.0.0.1", 15432, user, role, False)
    assert pg.password is not None and pg.password.reveal() == f"{role}-secret"
    assert pg.password_file == str(tmp_path / "secrets" / "postgres" / f"{role}.password")
    assert (pg.sslmode, pg.sslrootcert) == ("verify-full", str(tmp_path / "secrets" / "postgres" / "ca.crt"))


def test_an_external_server_without_role_settings_is_one_account_as_before() -> None:
    env = {"UXSTREAM_PG_HOST": "db.example", "UXSTREAM_PG_USER": "app", "UXSTREAM_PG_PASSWORD": "pw"}
    for role in ("admin", "migrator", "writer", "reader", "eraser"):
        pg = PostgresSettings.from_env(env, role)
        assert (pg.host, pg.user, pg.sslmode, pg.sslrootcert, pg.external) == (
            "db.example", "app", "prefer", None, True,
        )  # fmt: skip
        assert pg.password is not None and pg.password.reveal() == "pw"


def test_an_external_server_with_a_secrets_folder_uses_the_role_files_and_its_ca(tmp_path: Path) -> None:
    folder = folder_with_passwords(tmp_path / "pg")
    env = {"UXSTREAM_PG_HOST": "db.example", "UXSTREAM_PG_SECRETS_DIR": str(folder)}
    pg = PostgresSettings.from_env(env, "reader")
    assert (pg.user, pg.sslmode, pg.sslrootcert) == ("uxstream_reader", "verify-full", str(folder / "ca.crt"))
    assert pg.password is not None and pg.password.reveal() == "reader-secret"


def test_role_variables_win_over_the_secrets_folder(tmp_path: Path) -> None:
    folder = folder_with_passwords(tmp_path / "pg")
    (tmp_path / "w.pw").write_text("from-the-variable\n")
    env = {
        "UXSTREAM_PG_SECRETS_DIR": str(folder),
        "UXSTREAM_PG_WRITER_USER": "jobs",
        "UXSTREAM_PG_WRITER_PASSWORD_FILE": str(tmp_path / "w.pw"),
        "UXSTREAM_PG_SSLROOTCERT": "/etc/their-ca.pem",
    }
    pg = PostgresSettings.from_env(env, "writer")
    assert (pg.user, pg.password_file, pg.sslrootcert) == (
        "jobs",
        str(tmp_path / "w.pw"),
        "/etc/their-ca.pem",
    )
    assert pg.password is not None and pg.password.reveal() == "from-the-variable"


def test_the_jdbc_sink_options_name_the_password_file_never_the_password(tmp_path: Path) -> None:
    folder = folder_with_passwords(tmp_path / "pg")
    pg = PostgresSettings.from_env({"UXSTREAM_PG_SECRETS_DIR": str(folder)}, "writer")
    options = jdbc_upsert_options(pg, "sessions")
    assert options["username"] == "uxstream_writer"
    assert options["password-file"] == str(folder / "writer.password")
    assert "password" not in options
    assert not any("writer-secret" in value for value in options.values())
    assert options["url"] == (
        f"jdbc:postgresql://127.0.0.1:15432/uxstream?sslmode=verify-full&sslrootcert={folder}/ca.crt"
    )


def test_a_password_given_by_value_reaches_the_sink_through_a_private_file() -> None:
    pg = PostgresSettings.from_env(
        {"UXSTREAM_PG_HOST": "db.example", "UXSTREAM_PG_PASSWORD": "by-value"}, "writer"
    )
    options = jdbc_upsert_options(pg, "sessions")
    path = Path(options["password-file"])
    assert path.read_text() == "by-value"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not any("by-value" in value for value in options.values())
