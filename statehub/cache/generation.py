"""The cache's generation: a token every transaction that changes indexed rows replaces.

A reader that remembers something worked out from the rows (``queries.CandidateMemo``)
keys it by the generation it read *before* reading the rows: rows read after a
generation are at least that new, and any later change replaces the token in the
same transaction, so a remembered answer is never served past a change. The token is
random (not a counter): a rebuild that drops and recreates ``cache_meta`` cannot bring
an old value back. It lives in the database, so a write by another process (a CLI
``statehub refresh`` beside a server) is seen as well as one by this process.

Writers replace it first (``index_repo``, ``remove_repo_rows``, ``recompute_derived`` each
begin with it), so on PostgreSQL every cache-writing transaction takes this one row's lock
before any other and waits for the one before it to commit: two writers cannot deadlock over
it (one taking it after locking rows the other holds).
"""

from __future__ import annotations

import secrets

from sqlalchemy import Connection, text

__all__ = ["bump_generation", "read_generation"]

_BUMP = text(
    "INSERT INTO cache_meta (key, value) VALUES ('generation', :token) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
_READ = "SELECT value FROM cache_meta WHERE key = 'generation'"


def bump_generation(conn: Connection) -> None:
    """Give the cache a new generation, inside the caller's (writing) transaction."""
    conn.execute(_BUMP, {"token": secrets.token_hex(8)})


def read_generation(conn: Connection) -> str | None:
    """The cache's generation now (None: no change recorded yet, nothing may be remembered)."""
    value = conn.exec_driver_sql(_READ).scalar()
    return None if value is None else str(value)
