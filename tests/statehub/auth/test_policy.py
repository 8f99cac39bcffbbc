"""Profiles: the fleet hub refuses to start without token verification, and says how to fix it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from statehub.app import create_app
from statehub.auth import AuthPolicy
from statehub.auth.keys import format_public_key, init_root_key
from statehub.cli import main
from statehub.errors import SetupError
from statehub.settings import Settings


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings.from_env({"STATEHUB_HOME": str(tmp_path / "home")}).with_overrides(
        watch=False, **overrides
    )


def test_fleet_without_a_key_refuses_and_explains(tmp_path: Path) -> None:
    with pytest.raises(SetupError) as refused:
        create_app(_settings(tmp_path, profile="fleet"))
    message = refused.value.message
    for how in ("statehub token init", "STATEHUB_TOKEN_ROOT_KEY_FILE", "STATEHUB_TOKEN_PUBLIC_KEY"):
        assert how in message


def test_fleet_with_a_root_key_requires_tokens(tmp_path: Path) -> None:
    settings = _settings(tmp_path, profile="fleet")
    init_root_key(settings.root_key_file)
    assert AuthPolicy.from_settings(settings).required


def test_fleet_with_only_a_public_key_verifies(tmp_path: Path) -> None:
    public = init_root_key(tmp_path / "elsewhere.key")
    settings = _settings(tmp_path, profile="fleet", token_public_key=format_public_key(public))
    assert AuthPolicy.from_settings(settings).required


def test_fleet_cannot_be_opened(tmp_path: Path) -> None:
    settings = _settings(tmp_path, profile="fleet", auth="open")
    init_root_key(settings.root_key_file)
    with pytest.raises(SetupError, match="always requires tokens"):
        AuthPolicy.from_settings(settings)


def test_dev_is_open_on_loopback_only(tmp_path: Path) -> None:
    assert not AuthPolicy.from_settings(_settings(tmp_path)).required
    assert not AuthPolicy.from_settings(_settings(tmp_path, host="::1")).required
    with pytest.raises(SetupError, match=r"127\.0\.0\.1 only"):
        AuthPolicy.from_settings(_settings(tmp_path, host="0.0.0.0"))
    # said explicitly (compose/dev.yaml publishes the port on the host's loopback only)
    assert not AuthPolicy.from_settings(_settings(tmp_path, host="0.0.0.0", auth="open")).required


def test_dev_requires_tokens_when_configured(tmp_path: Path) -> None:
    public = init_root_key(tmp_path / "k")
    assert AuthPolicy.from_settings(_settings(tmp_path, token_public_key=format_public_key(public))).required
    with pytest.raises(SetupError, match="statehub token init"):
        AuthPolicy.from_settings(_settings(tmp_path, auth="required"))


def test_a_bad_public_key_setting_is_a_setup_error(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match="STATEHUB_TOKEN_PUBLIC_KEY is not an Ed25519 public key"):
        AuthPolicy.from_settings(_settings(tmp_path, profile="fleet", token_public_key="ed25519/zz"))


def test_a_bad_root_key_file_is_a_setup_error(tmp_path: Path) -> None:
    key = tmp_path / "root.key"
    key.write_text("not a key\n", encoding="utf-8")
    with pytest.raises(SetupError, match="does not hold an Ed25519 private key"):
        AuthPolicy.from_settings(_settings(tmp_path, profile="fleet", token_root_key_file=key))


def test_settings_read_auth_from_the_environment(tmp_path: Path) -> None:
    env = {
        "STATEHUB_HOME": str(tmp_path),
        "STATEHUB_AUTH": "required",
        "STATEHUB_TOKEN_PUBLIC_KEY": "ed25519/00",
        "STATEHUB_TOKEN_ROOT_KEY_FILE": "/run/secrets/statehub_root_key",
    }
    settings = Settings.from_env(env)
    assert settings.auth == "required"
    assert settings.token_public_key == "ed25519/00"
    assert settings.root_key_file == Path("/run/secrets/statehub_root_key")
    assert settings.revocation_file == tmp_path / "config" / "revoked-tokens.txt"
    with pytest.raises(ValueError, match="STATEHUB_AUTH='maybe'"):
        Settings.from_env({**env, "STATEHUB_AUTH": "maybe"})


def test_serve_fleet_without_key_exits_with_the_instructions(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["serve", "--profile", "fleet"], env={"STATEHUB_HOME": str(tmp_path / "home")}
    )
    assert result.exit_code == SetupError.exit_code
    assert "statehub token init" in result.output


def test_database_password_comes_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cr@t/\n", encoding="utf-8")
    env = {
        "STATEHUB_HOME": str(tmp_path),
        "STATEHUB_DATABASE_URL": "postgresql+psycopg://statehub@postgres:5432/statehub",
        "STATEHUB_DATABASE_PASSWORD_FILE": str(secret),
    }
    url = Settings.from_env(env).database_url
    assert url == "postgresql+psycopg://statehub:s3cr%40t%2F@postgres:5432/statehub"
    with pytest.raises(ValueError, match="cannot read it"):
        Settings.from_env({**env, "STATEHUB_DATABASE_PASSWORD_FILE": str(tmp_path / "absent")})
