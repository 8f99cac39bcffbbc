"""Browser sessions: a token exchanged once for a cookie, kept in ``<data dir>/sessions.sqlite3`` (ADR-040),
or on a fleet hub whose state is on PostgreSQL in the state schema's ``session`` table (ADR-046).

A browser cannot add ``Authorization`` to a page load, so the web UI signs in
with ``POST /auth/session {"token": ...}`` and gets a session cookie. The
session is only a handle on the token: every request made with the cookie
verifies the token again (signature, revocation list, every check of every
block, the time), so a session can do exactly what its token can, no more,
stops at once when the token is revoked, and never outlives the token.

What the store holds, and what it does not:

- the row key is SHA-256 of the session id; the id itself (32 random bytes,
  256 bits, :data:`SESSION_BYTES`) is only in the browser's cookie;
- the token is kept sealed: XORed with a SHAKE-256 keystream derived from the
  session id, so the file alone opens no session and yields no token (each
  id seals exactly one token, so a keystream is never reused);
- the token's revocation ids (public: ``revoked-tokens.txt`` lists them), its
  actor, when the session began and when it ends.

A session ends at the earliest of: the token's expiry (the ``time`` checks of
its blocks, :func:`token_expiry`), :data:`SESSION_LIFETIME` after sign-in,
sign-out (``DELETE /auth/session``), or the revocation of its token. At most
:data:`MAX_SESSIONS_PER_TOKEN` sessions per minted token (signing in again
ends the oldest) and :data:`MAX_SESSIONS` in all (then sign-in is refused with
503 until some end): a token holder cannot fill the disk with sessions.

The CSRF token of a session is derived from its id (:func:`csrf_token`):
SHA-256 of a label and the id, so it needs no storage, names one session, and
does not reveal the id. A cookie-authenticated request that changes state must
send it in :data:`CSRF_HEADER` (statehub.auth.guard).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from statehub.errors import Unavailable
from sync._state_db import open_state_db

if TYPE_CHECKING:
    from types import TracebackType

    from statehub.auth.verify import VerifiedToken
    from sync._state_db import StateLocation

__all__ = [
    "COOKIE_NAME",
    "CSRF_HEADER",
    "MAX_SESSIONS",
    "MAX_SESSIONS_PER_TOKEN",
    "MAX_TOKEN_CHARS",
    "SECURE_COOKIE_NAME",
    "SESSION_BYTES",
    "SESSION_FILE",
    "SESSION_LIFETIME",
    "SessionStore",
    "StoredSession",
    "cookie_name",
    "csrf_token",
    "is_session_id",
    "token_expiry",
]

SESSION_FILE = "sessions.sqlite3"
COOKIE_NAME = "statehub_session"
"""The cookie's name over plain HTTP (a loopback dev or LAN hub): browsers allow no prefix there."""
SECURE_COOKIE_NAME = "__Host-statehub_session"
"""The cookie's name over TLS. A browser keeps a ``__Host-`` cookie only when the host itself set it
with ``Secure``, ``Path=/`` and no ``Domain``: a page on a sibling name (``evil.example.com`` next
to ``hub.example.com``) or a plain-HTTP answer forged on the network cannot plant one, so it cannot
sign the hub's visitors in as itself (session fixation, login CSRF by cookie tossing). Over TLS the
hub reads only this name."""
CSRF_HEADER = "x-statehub-csrf"
"""The header a cookie-authenticated POST, PUT, PATCH or DELETE carries its session's CSRF token in."""
SESSION_BYTES = 32
"""Random bytes of a session id (256 bits, ``secrets.token_bytes``); the cookie holds them base64url."""
SESSION_LIFETIME = dt.timedelta(hours=12)
"""The longest a session lasts, whatever its token allows: a browser left signed in on a shared
machine is signed out by the next working day."""
MAX_SESSIONS = 10_000
MAX_SESSIONS_PER_TOKEN = 20
MAX_TOKEN_CHARS = 16 * 1024
"""The longest token sign-in reads (a token of ~40 narrowing blocks); longer is 400, never parsed."""

_ID_TEXT = re.compile(r"^[A-Za-z0-9_-]{43}$")
"""A session id as the cookie holds it: 32 bytes, base64url without padding."""
_TIME_CHECK = re.compile(r"check if time\(\$(?P<var>\w+)\),\s*\$(?P=var)\s*<=\s*(?P<when>[0-9T:.+\-Z]+)\s*;")
"""An expiry check as ``statehub token mint --ttl`` and ``attenuate`` write it (statehub.auth.contract)."""

_SCHEMA = [
    """
    CREATE TABLE sessions (
        key BLOB PRIMARY KEY,
        sealed BLOB NOT NULL,
        revocation_ids TEXT NOT NULL,
        root_id TEXT NOT NULL,
        actor TEXT NOT NULL,
        created REAL NOT NULL,
        expires REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX sessions_by_expiry ON sessions (expires);
    CREATE INDEX sessions_by_root ON sessions (root_id, created);
    """,
]
_PG_SCHEMA = [
    """
    CREATE TABLE session (
        key bytea PRIMARY KEY,
        sealed bytea NOT NULL,
        revocation_ids text NOT NULL,
        root_id text NOT NULL,
        actor text NOT NULL,
        created double precision NOT NULL,
        expires double precision NOT NULL
    );
    CREATE INDEX session_by_expiry ON session (expires);
    CREATE INDEX session_by_root ON session (root_id, created);
    """,
]
"""The same layout in the PostgreSQL state schema (store ``sessions``; the table named ``session``
beside the other stores' tables)."""
_TABLE = {"sqlite": "sessions", "postgresql": "session"}


@dataclass(frozen=True, slots=True)
class StoredSession:
    """A live session: its token's text (unsealed), who it acts as, and when it ends (UTC)."""

    token: str
    actor: str
    revocation_ids: tuple[str, ...]
    created: dt.datetime
    expires: dt.datetime


def cookie_name(secure: bool) -> str:
    """The session cookie's name for a request over TLS (``secure``) or plain HTTP."""
    return SECURE_COOKIE_NAME if secure else COOKIE_NAME


def is_session_id(value: str) -> bool:
    return bool(_ID_TEXT.match(value))


def _key(session_id: str) -> bytes:
    return hashlib.sha256(b"statehub-session-key\x00" + session_id.encode()).digest()


def _seal(session_id: str, data: bytes) -> bytes:
    """XOR ``data`` with SHAKE-256(label, id): sealing and unsealing are the same operation.

    As one big-integer XOR: a byte-wise generator took 1.36 ms for a 16 KiB token (27x the SHAKE
    floor of 50 us) on every cookie request, on the event loop; this takes 0.16 ms (3x)."""
    stream = hashlib.shake_256(b"statehub-session-seal\x00" + session_id.encode()).digest(len(data))
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(len(data), "big")


def csrf_token(session_id: str) -> str:
    """The CSRF token of a session: base64url SHA-256 of a label and the id (43 characters)."""
    digest = hashlib.sha256(b"statehub-session-csrf\x00" + session_id.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def csrf_matches(session_id: str, sent: str | None) -> bool:
    """Whether ``sent`` is the session's CSRF token (compared in constant time)."""
    return sent is not None and hmac.compare_digest(csrf_token(session_id).encode(), sent.strip().encode())


def token_expiry(token: VerifiedToken) -> dt.datetime | None:
    """The earliest ``check if time($t), $t <= WHEN`` of any block (UTC); None when it has none.

    Only the form the contract writes is read; the session's lifetime is capped anyway, and every
    request checks the token's time itself, so a token with a check in another form still stops.
    """
    found: list[dt.datetime] = []
    for index in range(token.biscuit.block_count()):
        for match in _TIME_CHECK.finditer(token.biscuit.block_source(index)):
            try:
                when = dt.datetime.fromisoformat(match.group("when").replace("Z", "+00:00"))
            except ValueError:
                continue
            if when.tzinfo is not None:
                found.append(when.astimezone(dt.UTC))
    return min(found) if found else None


def _stamp(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


class SessionStore:
    """The hub's sessions in one SQLite file (WAL, ``synchronous=NORMAL``: a session lost to a power
    cut means signing in again), or in the PostgreSQL state schema (``where`` a
    :class:`~sync._durable_pg.PgState`: every replica finds a session any of them began). One
    connection shared by threads behind a lock.

    Sign-in's count-then-insert (the bounds below) runs in one transaction that is the only one
    deciding at a time: ``BEGIN IMMEDIATE`` on the file, an advisory lock on PostgreSQL.
    """

    def __init__(self, where: StateLocation) -> None:
        self._lock = threading.Lock()
        self._db = open_state_db(  # a file is created 0600 (sync._durable.open_store)
            where, store="sessions", sqlite_steps=_SCHEMA, postgres_steps=_PG_SCHEMA, what="browser sessions"
        )
        self.where = self._db.where
        self._table = _TABLE[self._db.dialect]

    def __enter__(self) -> SessionStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def create(self, token_text: str, token: VerifiedToken, now: dt.datetime | None = None) -> str:
        """Start a session for ``token`` (verified, its text ``token_text``); answer its new id.

        Ends at the token's expiry or :data:`SESSION_LIFETIME` from now, whichever is first.
        Ends expired sessions first; then the oldest of this token's when it has
        :data:`MAX_SESSIONS_PER_TOKEN`; Unavailable (503) when the hub holds :data:`MAX_SESSIONS`.
        """
        moment = (now or dt.datetime.now(dt.UTC)).timestamp()
        ends = moment + SESSION_LIFETIME.total_seconds()
        expiry = token_expiry(token)
        if expiry is not None:
            ends = min(ends, expiry.timestamp())
        session_id = base64.urlsafe_b64encode(secrets.token_bytes(SESSION_BYTES)).decode().rstrip("=")
        root = token.revocation_ids[0] if token.revocation_ids else ""
        table = self._table
        with self._lock, self._db.transaction():
            self._db.serialize("sign-in")
            self._db.execute(f"DELETE FROM {table} WHERE expires <= ?", (moment,))  # noqa: S608 - constant
            (mine,) = self._db.execute(
                f"SELECT count(*) FROM {table} WHERE root_id = ?",  # noqa: S608 - constant
                (root,),
            ).fetchone()
            if mine >= MAX_SESSIONS_PER_TOKEN:
                self._db.execute(
                    f"DELETE FROM {table} WHERE key IN (SELECT key FROM {table} WHERE root_id = ? "  # noqa: S608
                    "ORDER BY created LIMIT ?)",
                    (root, mine - MAX_SESSIONS_PER_TOKEN + 1),
                )
            (total,) = self._db.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608 - constant
            if total >= MAX_SESSIONS:
                raise Unavailable(
                    f"the hub holds {MAX_SESSIONS:,} sessions, its limit; try again later, or use the "
                    "token with 'Authorization: Bearer' (the CLI, scripts), which needs no session"
                )
            self._db.execute(
                f"INSERT INTO {table} (key, sealed, revocation_ids, root_id, actor, created, expires) "  # noqa: S608
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    _key(session_id),
                    _seal(session_id, token_text.encode()),
                    " ".join(token.revocation_ids),
                    root,
                    token.actor,
                    moment,
                    ends,
                ),
            )
        return session_id

    def find(self, session_id: str, now: dt.datetime | None = None) -> StoredSession | None:
        """The live session ``session_id`` names; None when there is none or it has ended."""
        if not is_session_id(session_id):
            return None
        moment = (now or dt.datetime.now(dt.UTC)).timestamp()
        with self._lock:
            row = self._db.execute(
                f"SELECT sealed, actor, revocation_ids, created, expires FROM {self._table} WHERE key = ?",  # noqa: S608
                (_key(session_id),),
            ).fetchone()
        if row is None or row[4] <= moment:
            return None
        try:
            text = _seal(session_id, bytes(row[0])).decode()
        except UnicodeDecodeError:
            return None
        return StoredSession(text, row[1], tuple(row[2].split()), _stamp(row[3]), _stamp(row[4]))

    def end(self, session_id: str) -> bool:
        """End a session (sign-out, or its token found revoked); False when there was none."""
        if not is_session_id(session_id):
            return False
        with self._lock:
            cursor = self._db.execute(f"DELETE FROM {self._table} WHERE key = ?", (_key(session_id),))  # noqa: S608
        return cursor.rowcount > 0

    def count(self, now: dt.datetime | None = None) -> int:
        """Live sessions (health and tests read it)."""
        moment = (now or dt.datetime.now(dt.UTC)).timestamp()
        with self._lock:
            (total,) = self._db.execute(
                f"SELECT count(*) FROM {self._table} WHERE expires > ?",  # noqa: S608 - constant
                (moment,),
            ).fetchone()
        return int(total)
