"""When each repo was last indexed, and at which commit: what ``statehub doctor`` shows.

Kept in the cache's ``cache_meta`` table, one row per repo (key ``indexed:<slug>``,
value JSON ``{"at": <UTC time>, "commit": <HEAD sha or null>}``), written by every
``index_repo`` call (a refresh that found nothing changed too) and dropped with the
repo's rows. Like the rest of the cache it is rebuilt from the files: a rebuild
indexes every repo again. HEAD is read from the files under ``.git`` (no git
process, ``statehub.gitstate.read_head``).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import msgspec
from sqlalchemy import Connection, delete, select

from statehub.answers import LastIndex
from statehub.cache.schema import META
from statehub.gitfiles import head_commit

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

__all__ = [
    "LastIndex",
    "forget_indexed",
    "head_commit",
    "indexed_row",
    "last_indexed",
    "last_indexed_commits",
    "record_indexed",
]

_PREFIX = "indexed:"


def record_indexed(conn: Connection, slug: str, root: Path) -> LastIndex:
    """Note that ``slug`` (work tree ``root``) was indexed now, inside the caller's transaction."""
    row = indexed_row(slug, head_commit(root))
    forget_indexed(conn, slug)
    conn.execute(META.insert(), [row])
    return msgspec.json.decode(row["value"], type=LastIndex)


def indexed_row(slug: str, commit: str | None) -> dict[str, str]:
    """The ``cache_meta`` row noting that ``slug`` was indexed now, at ``commit``."""
    found = LastIndex(dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), commit)
    return {"key": _PREFIX + slug, "value": msgspec.json.encode(found).decode()}


def last_indexed(conn: Connection, slug: str) -> LastIndex | None:
    """When ``slug`` was last indexed; None when the cache has no note of it."""
    value = conn.execute(select(META.c.value).where(META.c.key == _PREFIX + slug)).scalar()
    return None if value is None else msgspec.json.decode(value, type=LastIndex)


def last_indexed_commits(conn: Connection, slugs: Sequence[str]) -> dict[str, str | None]:
    """The commit each of ``slugs`` was last indexed at (None: no note, or no commit), in one query
    (a rebuild's comparison asks for every repo: one round trip each on PostgreSQL)."""
    keys = {_PREFIX + slug: slug for slug in slugs}
    found: dict[str, str | None] = dict.fromkeys(slugs)
    if keys:
        for key, value in conn.execute(select(META.c.key, META.c.value).where(META.c.key.in_(list(keys)))):
            found[keys[key]] = msgspec.json.decode(value, type=LastIndex).commit
    return found


def forget_indexed(conn: Connection, slug: str) -> None:
    conn.execute(delete(META).where(META.c.key == _PREFIX + slug))
