"""How fresh the cache is for a set of repos: when each was last indexed, and whether its files
changed since (canon/ADR-033).

A stat walk of each repo's indexable files (``statehub.cache.scan``, the walk a
refresh starts with) is compared with what the cache recorded of them
(``source_file``: path, size, modification and change time, inode; ADR-030): a file added, removed, or with
another size or time is a change not yet indexed. No file is read, no git
process runs. The two queries are plain SQL both cache backends answer, run by
the caller (sqlite3 on the CLI's read path, SQLAlchemy in the server), so this
module loads no database library.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from statehub.answers import Freshness, LastIndex, RepoFreshness
from statehub.cache.scan import scan_sources

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "INDEXED_SQL",
    "SOURCES_SQL",
    "FreshnessMemo",
    "IndexState",
    "freshness",
    "read_index_state",
    "repo_freshness",
    "utc_now",
]

INDEXED_SQL = "SELECT key, value FROM cache_meta WHERE key >= 'indexed:' AND key < 'indexed;'"
"""The repos' last-index notes (``statehub.cache.indexed``): keys ``indexed:<slug>`` (``;`` follows
``:``), without ``LIKE '...%'``, which psycopg would read as a placeholder."""
SOURCES_SQL = "SELECT repo, path, mtime_ns, size, ctime_ns, inode FROM source_file"
"""What the cache recorded of every indexed file."""

Execute = Callable[[str], Iterable[Sequence[Any]]]
"""Runs one of the statements above and returns its rows."""

_INDEXED = "indexed:"
_decode_note = msgspec.json.Decoder(LastIndex).decode


@dataclass(slots=True)
class IndexState:
    """What the cache knows of each repo's last index: notes and file stats, by slug."""

    notes: dict[str, LastIndex] = field(default_factory=dict)
    files: dict[str, dict[str, tuple[int, int, int, int]]] = field(default_factory=dict)
    """slug -> path -> (mtime_ns, size, ctime_ns, inode): the stat identity a refresh compares (ADR-030)."""


def read_index_state(execute: Execute) -> IndexState:
    """The notes and file stats of every repo in the cache (two queries)."""
    state = IndexState()
    for key, value in execute(INDEXED_SQL):
        try:
            state.notes[str(key)[len(_INDEXED) :]] = _decode_note(value)
        except msgspec.DecodeError:
            continue  # a note that cannot be read is no note: the repo shows as never indexed
    for repo, path, mtime_ns, size, ctime_ns, inode in execute(SOURCES_SQL):
        state.files.setdefault(repo, {})[path] = (int(mtime_ns), int(size), int(ctime_ns), int(inode))
    return state


def changed_since(root: Path, known: dict[str, tuple[int, int, int, int]]) -> bool | None:
    """Whether ``root``'s indexable files differ from ``known`` (path -> (mtime_ns, size, ctime_ns,
    inode), as ``statehub.cache.scan.ScannedFile`` gives them); None when ``root`` is no directory."""
    if not root.is_dir():
        return None
    scanned = scan_sources(root)
    if scanned.keys() != known.keys():
        return True
    return any(
        (found.mtime_ns, found.size, found.ctime_ns, found.inode) != known[path]
        for path, found in scanned.items()
    )


def utc_now() -> str:
    """Now, UTC, to the second, as every time in the hub's answers."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def repo_freshness(slug: str, root: Path, state: IndexState) -> RepoFreshness:
    """One repo's freshness: its last index note, and whether its files changed since (True when the
    cache has no note of it and its work tree is there; None when the work tree cannot be read)."""
    note = state.notes.get(slug)
    if note is None:
        return RepoFreshness(slug, None, None, changed_since=True if root.is_dir() else None)
    return RepoFreshness(slug, note.at, note.commit, changed_since(root, state.files.get(slug, {})))


def freshness(repos: Iterable[RepoFreshness], *, watching: bool, checked_at: str | None = None) -> Freshness:
    """The freshness of an answer drawn from ``repos``; ``stale`` when any changed since, was never
    indexed, or cannot be read."""
    found = list(repos)
    return Freshness(
        checked_at=checked_at or utc_now(),
        watching=watching,
        stale=any(r.changed_since is not False for r in found),
        repos=found,
    )


class FreshnessMemo:
    """Each registered repo's freshness, worked out at most once every ``ttl`` seconds (the server
    answers many reads a second; one stat walk of every repo a second bounds what they cost)."""

    def __init__(self, ttl: float = 1.0) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._at = -float("inf")
        self._key: tuple[tuple[str, Path], ...] = ()
        self._repos: dict[str, RepoFreshness] = {}
        self._checked_at = ""
        self._everything: Freshness | None = None
        self._forgotten: set[str] = set()
        """Repos this process indexed since the memo was built: worked out again at the next ask."""

    def repos(
        self, execute: Execute, registered: Sequence[tuple[str, Path]]
    ) -> tuple[dict[str, RepoFreshness], str]:
        """By slug, the freshness of each of ``registered`` ((slug, work tree) pairs), and when it
        was checked (the oldest check among them); ``execute`` runs the two queries when the memo is
        older than ``ttl``, or when a repo was forgotten, whose work tree alone is walked again then."""
        key = tuple(registered)
        with self._lock:
            now = time.monotonic()
            if key != self._key or now - self._at >= self.ttl:
                state = read_index_state(execute)
                self._repos = {slug: repo_freshness(slug, root, state) for slug, root in key}
                self._key, self._at, self._checked_at = key, now, utc_now()
                self._everything = None
                self._forgotten.clear()
            elif self._forgotten:  # one repo just indexed: walk it alone, not every registered one
                state = read_index_state(execute)
                for slug, root in key:
                    if slug in self._forgotten:
                        self._repos[slug] = repo_freshness(slug, root, state)
                self._everything = None
                self._forgotten.clear()
            return self._repos, self._checked_at

    def everything(
        self, execute: Execute, registered: Sequence[tuple[str, Path]], *, watching: bool
    ) -> Freshness:
        """The freshness of an answer drawn from every one of ``registered``, built once per memo."""
        repos, checked_at = self.repos(execute, registered)
        with self._lock:
            found = self._everything
            if found is None or found.watching != watching or found.checked_at != checked_at:
                found = freshness(list(repos.values()), watching=watching, checked_at=checked_at)
                self._everything = found
            return found

    def forget(self, slugs: Iterable[str] | None = None) -> None:
        """Work it out again at the next ask, after this process indexed ``slugs`` (None: everything).

        Only the repos named are walked again then; the others keep their answer until ``ttl``
        runs out, as they would have without the index. A watcher's refresh of one repo so costs
        one repo's walk, not every registered repo's (74 repos: ~7 ms; bench/watch.py).
        """
        with self._lock:
            if slugs is None:
                self._at = -float("inf")
            else:
                self._forgotten.update(slugs)
