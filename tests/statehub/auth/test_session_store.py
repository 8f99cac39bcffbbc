"""The session store on a real SQLite file (ADR-040): what it keeps, when sessions end, its bounds."""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import TYPE_CHECKING

import pytest
from biscuit_auth import KeyPair

from statehub.auth import sessions as sessions_module
from statehub.auth.revocation import RevocationList
from statehub.auth.sessions import (
    MAX_SESSIONS_PER_TOKEN,
    SESSION_LIFETIME,
    SessionStore,
    csrf_matches,
    csrf_token,
    is_session_id,
    token_expiry,
)
from statehub.auth.tokens import attenuate, mint
from statehub.auth.verify import TokenVerifier, VerifiedToken
from statehub.errors import Unavailable
from sync.errors import StoreTooNew

if TYPE_CHECKING:
    from pathlib import Path

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def root() -> KeyPair:
    return KeyPair()


def verified(root: KeyPair, text: str, tmp_path: Path) -> VerifiedToken:
    return TokenVerifier(root.public_key, RevocationList(tmp_path / "revoked.txt")).verify(text)


def test_a_session_holds_its_token_sealed_and_ends_with_it(root: KeyPair, tmp_path: Path) -> None:
    text = mint(root, "ada", "write", ttl=dt.timedelta(hours=1), now=NOW).to_base64()
    path = tmp_path / "sessions.sqlite3"
    with SessionStore(path) as store:
        session_id = store.create(text, verified(root, text, tmp_path), now=NOW)
        assert is_session_id(session_id)
        found = store.find(session_id, now=NOW)
        assert found is not None and found.token == text and found.actor == "ada"
        assert found.expires == NOW + dt.timedelta(hours=1)  # the token's expiry, before the 12 h cap
        assert store.find(session_id, now=NOW + dt.timedelta(minutes=59)) is not None
        assert store.find(session_id, now=NOW + dt.timedelta(hours=1)) is None
        assert store.find(session_id[:-1] + ("A" if session_id[-1] != "A" else "B"), now=NOW) is None
        files = sorted(tmp_path.glob("sessions.sqlite3*"))  # the file and its WAL, while open
        raw = b"".join(f.read_bytes() for f in files)
        assert text[:40].encode() not in raw and session_id.encode() not in raw
        assert all(f.stat().st_mode & 0o077 == 0 for f in files) and len(files) == 3
    raw = path.read_bytes()  # checkpointed on close
    assert text[:40].encode() not in raw and session_id.encode() not in raw
    with SessionStore(path) as again:  # a restart keeps it
        assert again.find(session_id, now=NOW) is not None
        assert again.end(session_id) and not again.end(session_id)
        assert again.find(session_id, now=NOW) is None


def test_a_token_without_expiry_gets_the_cap_and_narrowing_shortens_it(root: KeyPair, tmp_path: Path) -> None:
    forever = mint(root, "ada", "write").to_base64()
    narrowed = attenuate(forever, root.public_key, ttl=dt.timedelta(minutes=5), now=NOW).to_base64()
    wide = attenuate(narrowed, root.public_key, ttl=dt.timedelta(hours=5), now=NOW).to_base64()
    assert token_expiry(verified(root, forever, tmp_path)) is None
    assert token_expiry(verified(root, wide, tmp_path)) == NOW + dt.timedelta(minutes=5)  # the earliest
    with SessionStore(tmp_path / "s.sqlite3") as store:
        capped = store.find(store.create(forever, verified(root, forever, tmp_path), now=NOW), now=NOW)
        assert capped is not None and capped.expires == NOW + SESSION_LIFETIME


def test_the_csrf_token_is_the_sessions_own(root: KeyPair, tmp_path: Path) -> None:
    text = mint(root, "ada", "read").to_base64()
    with SessionStore(tmp_path / "s.sqlite3") as store:
        one = store.create(text, verified(root, text, tmp_path))
        two = store.create(text, verified(root, text, tmp_path))
    assert csrf_token(one) != csrf_token(two) and csrf_token(one) != one
    assert csrf_matches(one, csrf_token(one)) and csrf_matches(one, f" {csrf_token(one)} ")
    assert (
        not csrf_matches(one, csrf_token(two)) and not csrf_matches(one, None) and not csrf_matches(one, "")
    )


def test_sessions_are_bounded_per_token_and_in_all(
    root: KeyPair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = mint(root, "ada", "read").to_base64()
    token = verified(root, text, tmp_path)
    with SessionStore(tmp_path / "s.sqlite3") as store:
        ids = [
            store.create(text, token, now=NOW + dt.timedelta(seconds=i))
            for i in range(MAX_SESSIONS_PER_TOKEN + 2)
        ]
        assert store.find(ids[0], now=NOW) is None and store.find(ids[1], now=NOW) is None
        assert all(store.find(i, now=NOW) is not None for i in ids[2:])
        assert store.count(now=NOW) == MAX_SESSIONS_PER_TOKEN
        monkeypatch.setattr(sessions_module, "MAX_SESSIONS", MAX_SESSIONS_PER_TOKEN + 1)
        other = mint(root, "bob", "read").to_base64()
        store.create(other, verified(root, other, tmp_path), now=NOW)
        with pytest.raises(Unavailable, match="sessions, its limit"):
            store.create(other, verified(root, other, tmp_path), now=NOW)
        assert store.count(now=NOW) == MAX_SESSIONS_PER_TOKEN + 1  # the refused one left nothing
        later = NOW + SESSION_LIFETIME + dt.timedelta(seconds=MAX_SESSIONS_PER_TOKEN + 5)
        store.create(other, verified(root, other, tmp_path), now=later)  # the expired were cleared first
        assert store.count(now=later) == 1


def test_a_store_written_by_a_newer_state_hub_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreTooNew):
        SessionStore(path)
