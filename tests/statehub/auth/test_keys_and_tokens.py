"""Keys, ttl parsing, minting, narrowing, describing and the revocation file."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest
from biscuit_auth import KeyPair

from statehub.auth.keys import format_public_key, init_root_key, load_root_key, parse_public_key
from statehub.auth.revocation import RevocationList, add_revocation, check_revocation_id
from statehub.auth.tokens import attenuate, describe, mint, parse_ttl
from statehub.auth.verify import TokenVerifier, authorize
from statehub.errors import BadRequest, Conflict, Forbidden, SetupError, Unauthorized


def test_root_key_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        public = init_root_key(tmp_path / "data" / "root.key")
    finally:
        os.umask(old)
    path = tmp_path / "data" / "root.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert format_public_key(load_root_key(path).public_key) == format_public_key(public)
    with pytest.raises(Conflict, match="--force"):
        init_root_key(path)
    replaced = init_root_key(path, force=True)
    assert format_public_key(replaced) != format_public_key(public)


def test_missing_root_key_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match="statehub token init"):
        load_root_key(tmp_path / "absent.key")


def test_public_keys_parse_with_or_without_prefix() -> None:
    key = KeyPair().public_key
    text = format_public_key(key)
    assert text.startswith("ed25519/")
    assert format_public_key(parse_public_key(text)) == text
    assert format_public_key(parse_public_key(text.removeprefix("ed25519/"))) == text
    with pytest.raises(BadRequest, match="64 hex digits"):
        parse_public_key("ed25519/xyz")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", dt.timedelta(seconds=90)),
        ("8h", dt.timedelta(hours=8)),
        ("1h30m", dt.timedelta(minutes=90)),
        ("2w", dt.timedelta(weeks=2)),
        ("30D", dt.timedelta(days=30)),
    ],
)
def test_ttl(text: str, expected: dt.timedelta) -> None:
    assert parse_ttl(text) == expected


@pytest.mark.parametrize("text", ["", "8", "h", "8x", "-1h", "0s", "1h 30m", "8hours"])
def test_bad_ttl_is_explained(text: str) -> None:
    with pytest.raises(BadRequest, match="ttl"):
        parse_ttl(text)


def test_mint_refuses_bad_input() -> None:
    root = KeyPair()
    with pytest.raises(BadRequest, match="invalid actor"):
        mint(root, "has space", "read")
    with pytest.raises(BadRequest, match="valid values are read, write, edit, admin"):
        mint(root, "agt", "root")
    with pytest.raises(BadRequest, match="invalid repo slug"):
        mint(root, "agt", "read", ["Bad Slug"])
    with pytest.raises(ValueError, match="timezone-aware"):
        mint(root, "agt", "read", ttl=dt.timedelta(hours=1), now=dt.datetime(2026, 1, 1))  # noqa: DTZ001 - naive on purpose


def test_attenuate_needs_a_limit_and_a_genuine_token() -> None:
    root = KeyPair()
    token = mint(root, "agt", "write").to_base64()
    with pytest.raises(BadRequest, match="nothing to narrow"):
        attenuate(token, root.public_key)
    with pytest.raises(Unauthorized, match="signature does not verify"):
        attenuate(token, KeyPair().public_key, right="read")
    with pytest.raises(Unauthorized, match="not a Biscuit token"):
        attenuate("%%%", root.public_key, right="read")


def test_describe_reads_without_a_key_and_checks_with_one() -> None:
    root = KeyPair()
    token = attenuate(mint(root, "agt", "edit", ["ops"]).to_base64(), root.public_key, right="read")
    info = describe(token.to_base64())
    assert info.verified is None
    assert info.facts == {"actor": ["agt"], "right": ["edit"]}
    assert len(info.blocks) == len(info.revocation_ids) == 2
    assert 'check if operation($op), ["read"].contains($op)' in info.blocks[1]
    assert describe(token.to_base64(), root.public_key).verified is True
    assert describe(token.to_base64(), KeyPair().public_key).verified is False
    with pytest.raises(BadRequest):
        describe("definitely not")


def test_the_authorizer_is_given_the_time_explicitly() -> None:
    root = KeyPair()
    verifier = TokenVerifier(root.public_key, RevocationList(Path("/nonexistent/revoked")))
    start = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)
    token = verifier.verify(mint(root, "agt", "read", ttl=dt.timedelta(hours=8), now=start).to_base64())
    authorize(token, "read", now=start + dt.timedelta(hours=7, minutes=59))
    # the same instant expressed in another zone is the same instant
    authorize(
        token, "read", now=(start + dt.timedelta(hours=7)).astimezone(dt.timezone(dt.timedelta(hours=-5)))
    )
    with pytest.raises(Unauthorized, match="expired"):
        authorize(token, "read", now=start + dt.timedelta(hours=8, seconds=1))
    with pytest.raises(ValueError, match="timezone-aware"):
        authorize(token, "read", now=dt.datetime(2026, 11, 23, 9, 0))  # noqa: DTZ001 - naive on purpose
    with pytest.raises(Forbidden):
        authorize(token, "write", now=start)


def test_revocation_file_is_reloaded_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "config" / "revoked-tokens.txt"
    revocations = RevocationList(path)
    root = KeyPair()
    token = mint(root, "agt", "read")
    verifier = TokenVerifier(root.public_key, revocations)
    verifier.verify(token.to_base64())
    assert add_revocation(path, token.revocation_ids[0].upper(), "lost laptop")
    assert not add_revocation(path, token.revocation_ids[0])
    with pytest.raises(Unauthorized, match="revoked"):
        verifier.verify(token.to_base64())
    assert "lost laptop" in path.read_text(encoding="utf-8")
    path.write_text("# nothing revoked any more\n", encoding="utf-8")
    verifier.verify(token.to_base64())
    path.unlink()
    verifier.verify(token.to_base64())


def test_revocation_ids_are_checked_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "revoked.txt"
    token = mint(KeyPair(), "agt", "read").to_base64()
    for bad in ("abc", token, "g" * 128):
        with pytest.raises(BadRequest, match="128 hex digits"):
            add_revocation(path, bad)
    assert not path.exists()
    assert check_revocation_id(" " + "A" * 128 + "\n") == "a" * 128
