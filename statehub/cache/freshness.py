"""How fresh the cache is for a set of repos: when each was last indexed, and whether its files
changed since (canon/ADR-033).

A stat walk of each repo's indexable files (``statehub.cache.scan``, the walk a
refresh starts with) is compared with what the cache recorded of them
(``source_file``: path, modification time, size): a file added, removed, or with
another size or time is a change not yet indexed. No file is read, no git
process runs. The two queries are plain SQL both cache backends answer, run by
the caller (sqlite3 on the CLI's read path, SQLAlchemy in the server), so this
module loads no database library.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from statehub.answers import Freshness, LastIndex, RepoFreshness
from statehub.cache.scan import scan_sources

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["INDEXED_SQL", "SOURCES_SQL", "IndexState", "freshness", "read_index_state", "utc_now"]

INDEXED_SQL = "SELECT key, value FROM cache_meta WHERE key LIKE 'indexed:%'"
"""The repos' last-index notes (``statehub.cache.indexed``)."""
SOURCES_SQL = "SELECT repo, path, mtime_ns, size FROM source_file"
"""What the cache recorded of every indexed file."""

Execute = Callable[[str], Iterable[Sequence[Any]]]
"""Runs one of the statements above and returns its rows."""

_INDEXED = "indexed:"
_decode_note = msgspec.json.Decoder(LastIndex).decode


@dataclass(slots=True)
class IndexState:
    """What the cache knows of each repo's last index: notes and file stats, by slug."""

    notes: dict[str, LastIndex] = field(default_factory=dict)
    files: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)
    """slug -> path -> (mtime_ns, size)."""


def read_index_state(execute: Execute) -> IndexState:
    """The notes and file stats of every repo in the cache (two queries)."""
    state = IndexState()
    for key, value in execute(INDEXED_SQL):
        try:
            state.notes[str(key)[len(_INDEXED) :]] = _decode_note(value)
        except msgspec.DecodeError:
            continue  # a note that cannot be read is no note: the repo shows as never indexed
    for repo, path, mtime_ns, size in execute(SOURCES_SQL):
        state.files.setdefault(repo, {})[path] = (int(mtime_ns), int(size))
    return state


def changed_since(root: Path, known: dict[str, tuple[int, int]]) -> bool | None:
    """Whether ``root``'s indexable files differ from ``known`` (path -> (mtime_ns, size)); None
    when ``root`` is no directory to walk."""
    if not root.is_dir():
        return None
    scanned = scan_sources(root)
    if scanned.keys() != known.keys():
        return True
    return any((found.mtime_ns, found.size) != known[path] for path, found in scanned.items())


def utc_now() -> str:
    """Now, UTC, to the second, as every time in the hub's answers."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def freshness(
    repos: Iterable[tuple[str, Path]], state: IndexState, *, watching: bool, checked_at: str | None = None
) -> Freshness:
    """The freshness of an answer drawn from ``repos`` ((slug, work tree) pairs, in the order
    given) as the cache's ``state`` and the files now say; ``watching``: a watcher keeps the
    cache in step."""
    found = []
    for slug, root in repos:
        note = state.notes.get(slug)
        changed = changed_since(root, state.files.get(slug, {})) if note is not None else True
        found.append(
            RepoFreshness(
                repo=slug,
                indexed_at=None if note is None else note.at,
                commit=None if note is None else note.commit,
                changed_since=changed,
            )
        )
    return Freshness(
        checked_at=checked_at or utc_now(),
        watching=watching,
        stale=any(r.changed_since is not False for r in found),
        repos=found,
    )
