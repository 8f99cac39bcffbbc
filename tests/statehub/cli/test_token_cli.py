"""``statehub token ...`` end to end, in-process, against a temp hub home."""

from __future__ import annotations

import stat
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from biscuit_auth import Biscuit, PublicKey
from click.testing import CliRunner, Result

from statehub.cli import main
from statehub.errors import BadRequest, SetupError, Unauthorized
from tests.clijson import cli_data

if TYPE_CHECKING:
    from pathlib import Path

Run = Callable[..., Result]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    home = tmp_path / "home"
    for name in ("STATEHUB_TOKEN_PUBLIC_KEY", "STATEHUB_TOKEN_ROOT_KEY_FILE", "STATEHUB_AUTH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STATEHUB_HOME", str(home))

    def invoke(*args: str, stdin: str | None = None) -> Result:
        return CliRunner().invoke(main, list(args), input=stdin)

    return invoke


def test_init_mint_attenuate_inspect_revoke(run: Run, tmp_path: Path) -> None:
    init = run("token", "init")
    assert init.exit_code == 0, init.output
    public = init.stdout.strip()
    assert public.startswith("ed25519/")
    key_file = tmp_path / "home" / "data" / "token-root.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert run("token", "init", "--print-public-key").stdout.strip() == public
    again = run("token", "init")
    assert again.exit_code == 5
    assert "--force" in again.stderr

    minted = run("token", "mint", "--actor", "agt-codex", "--right", "write", "--repo", "ops", "--ttl", "8h")
    assert minted.exit_code == 0, minted.output
    token = minted.stdout.strip()
    assert len(minted.stdout.splitlines()) == 1
    assert token not in minted.stderr
    assert "statehub token revoke" in minted.stderr
    assert Biscuit.from_base64(token, PublicKey(public)).block_count() == 1

    narrowed = run("token", "attenuate", "-", "--right", "read", stdin=token + "\n")
    assert narrowed.exit_code == 0, narrowed.output
    child = narrowed.stdout.strip()
    info = cli_data(run("token", "inspect", "--json", child).stdout)
    assert info["actor"] == ["agt-codex"]
    assert info["verified"] is True
    assert len(info["revocation_ids"]) == 2
    assert 'check if operation($op), ["read"].contains($op)' in info["blocks"][1]
    text = run("token", "inspect", child).stdout
    assert "signature verifies" in text
    assert "block 1 (attenuation)" in text

    revoked = run("token", "revoke", info["revocation_ids"][0], "--note", "test")
    assert revoked.exit_code == 0, revoked.output
    listed = (tmp_path / "home" / "config" / "revoked-tokens.txt").read_text(encoding="utf-8")
    assert info["revocation_ids"][0] in listed
    assert "already revoked" in run("token", "revoke", info["revocation_ids"][0]).stderr


def test_attenuate_offline_with_only_the_public_key(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    public = run("token", "init", "--print-public-key").stdout.strip()
    token = run("token", "mint", "--actor", "agt", "--right", "admin").stdout.strip()
    monkeypatch.setenv("STATEHUB_HOME", str(tmp_path / "agent-laptop"))  # no root key here
    missing = run("token", "attenuate", token, "--repo", "ops")
    assert missing.exit_code == SetupError.exit_code
    assert "--public-key" in missing.stderr
    narrowed = run("token", "attenuate", token, "--repo", "ops", "--public-key", public)
    assert narrowed.exit_code == 0, narrowed.output
    monkeypatch.setenv("STATEHUB_TOKEN_PUBLIC_KEY", public)
    assert run("token", "attenuate", token, "--ttl", "1h").exit_code == 0


@pytest.mark.parametrize(
    ("args", "exit_code", "says"),
    [
        (("token", "mint", "--actor", "agt", "--right", "read"), SetupError.exit_code, "statehub token init"),
        (("token", "revoke", "nope"), BadRequest.exit_code, "128 hex digits"),
        (("token", "inspect", "garbage!"), BadRequest.exit_code, "not a Biscuit token"),
        (
            ("token", "attenuate", "garbage!", "--right", "read", "--public-key", "ed25519/" + "00" * 32),
            Unauthorized.exit_code,
            "not a Biscuit token",
        ),
        (("token", "mint", "--actor", "agt", "--right", "root"), 2, "'root' is not one of"),
    ],
)
def test_bad_input_gets_a_clear_error(run: Run, args: tuple[str, ...], exit_code: int, says: str) -> None:
    result = run(*args)
    assert result.exit_code == exit_code, result.output
    assert says in result.stderr


def test_mint_rejects_a_bad_ttl_and_repo(run: Run) -> None:
    run("token", "init")
    bad_ttl = run("token", "mint", "--actor", "agt", "--right", "read", "--ttl", "soon")
    assert bad_ttl.exit_code == BadRequest.exit_code
    assert "invalid ttl" in bad_ttl.stderr
    bad_repo = run("token", "mint", "--actor", "agt", "--right", "read", "--repo", "Not A Slug")
    assert bad_repo.exit_code == BadRequest.exit_code
    assert bad_repo.stdout == ""
