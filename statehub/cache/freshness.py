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
import logging
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

logger = logging.getLogger(__name__)

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
    answers many reads a second; one stat walk of every repo a second bounds what they cost).

    Without a refresher (a command, a test that starts none), the read that finds the memo ``ttl``
    old works it out before it answers, as every read did before (canon/ADR-033). A server starts
    one (:meth:`start`, canon/ADR-047): a thread that works it out again every ``ttl`` seconds
    while reads keep coming, so no read waits for the stat walk of every repo. A read answers from
    the memo as it stands, its ``checked_at`` saying when it was worked out, unless the memo is
    ``max_age`` old (the refresher fell behind, or reads stopped and the refresher with them): then
    that read works it out itself, so no answer is ever older than ``max_age``. A repo this process
    indexed (:meth:`forget`) is worked out again by the next read itself, at once, as before.
    """

    def __init__(self, ttl: float = 1.0, *, max_age: float | None = None, idle_s: float = 10.0) -> None:
        self.ttl = ttl
        self.max_age = 3 * ttl if max_age is None else max_age
        """How old an answer a read takes from the memo without working it out itself (seconds)."""
        self.idle_s = idle_s
        """The refresher rests once no read has asked for this long (seconds)."""
        self._lock = threading.Lock()
        """Guards the memo's fields; held only to read or swap them, never over a walk."""
        self._work = threading.Lock()
        """Held while a walk is worked out: one at a time, the refresher's or a read's."""
        self._at = -float("inf")
        self._key: tuple[tuple[str, Path], ...] = ()
        self._repos: dict[str, RepoFreshness] = {}
        self._checked_at = ""
        self._everything: Freshness | None = None
        self._forgotten: set[str] = set()
        """Repos this process indexed since the memo was built: worked out again at the next ask."""
        self._epoch = 0
        """Raised by ``forget()`` of everything: a walk begun before it must not stand for after it."""
        self._asked_at = -float("inf")
        self._source: tuple[Execute, tuple[tuple[str, Path], ...]] | None = None
        """What the last read asked with: the refresher works the memo out from it."""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def repos(
        self, execute: Execute, registered: Sequence[tuple[str, Path]]
    ) -> tuple[dict[str, RepoFreshness], str]:
        """By slug, the freshness of each of ``registered`` ((slug, work tree) pairs), and when it
        was checked (the oldest check among them). ``execute`` runs the two queries when this read
        must work the memo out itself: the memo is older than ``ttl`` with no refresher, or older
        than ``max_age``, or ``registered`` changed; or a repo was forgotten, whose work tree alone
        is walked again then."""
        key = tuple(registered)
        with self._lock:
            now = time.monotonic()
            self._asked_at, self._source = now, (execute, key)
            age = now - self._at
            if key == self._key and not self._forgotten:
                if age < self.ttl:
                    return self._repos, self._checked_at
                if self._thread is not None and age < self.max_age:
                    self._wake.set()  # the refresher works it out; this read does not wait
                    return self._repos, self._checked_at
        self._work_out(execute, key, inline=True)
        with self._lock:
            return self._repos, self._checked_at

    def _work_out(self, execute: Execute, key: tuple[tuple[str, Path], ...], *, inline: bool) -> None:
        """Work the memo out again: every repo when it is out of date (for ``key``), else the
        forgotten repos alone. ``inline``: a read asks, and finds it done if a walk it waited for
        did it meanwhile."""
        with self._work:
            with self._lock:
                whole = key != self._key or time.monotonic() - self._at >= (
                    self.max_age if inline and self._thread is not None else self.ttl
                )
                forgotten = set(self._forgotten)
                epoch = self._epoch
            if not whole and not forgotten:
                return  # done meanwhile, by the walk this one waited for
            started, checked_at = time.monotonic(), utc_now()
            state = read_index_state(execute)
            if whole:
                found = {slug: repo_freshness(slug, root, state) for slug, root in key}
            else:  # a repo just indexed: walk it alone, not every registered one
                found = {slug: repo_freshness(slug, root, state) for slug, root in key if slug in forgotten}
            with self._lock:
                if whole:
                    self._repos, self._key, self._checked_at = found, key, checked_at
                    self._at = started if epoch == self._epoch else -float("inf")
                else:
                    self._repos = {**self._repos, **found}
                self._forgotten -= forgotten  # forgotten again meanwhile: the next read asks again
                self._everything = None

    def everything(
        self, execute: Execute, registered: Sequence[tuple[str, Path]], *, watching: bool
    ) -> Freshness:
        """The freshness of an answer drawn from every one of ``registered``, built once per memo."""
        repos, checked_at = self.repos(execute, registered)
        with self._lock:
            found = self._everything
            if found is None or found.watching != watching or found.checked_at != checked_at:
                found = freshness(list(repos.values()), watching=watching, checked_at=checked_at)
                if repos is self._repos:  # not replaced by a walk since this read's
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
                self._epoch += 1
            else:
                self._forgotten.update(slugs)

    def start(self) -> None:
        """Start the refresher thread (the server does, in its lifespan); :meth:`stop` ends it."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._refresh, name="statehub-freshness", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the refresher and wait for it; reads then work the memo out themselves again."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            self._wake.set()
            thread.join()

    def _refresh(self) -> None:
        """The refresher: asleep until a read finds the memo ``ttl`` old, then working it out every
        ``ttl`` seconds until no read has asked for ``idle_s``."""
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            while not self._stop.is_set():
                with self._lock:
                    source, asked_at, at = self._source, self._asked_at, self._at
                if source is None or time.monotonic() - asked_at >= self.idle_s:
                    break  # reads stopped: rest until one comes
                wait = at + self.ttl - time.monotonic()
                if wait > 0:
                    if self._stop.wait(wait):
                        return
                    continue
                try:
                    self._work_out(*source, inline=False)
                except Exception:
                    logger.warning("working out the cache's freshness failed", exc_info=True)
                    with self._lock:
                        self._source = None  # nothing to work from until a read asks again
