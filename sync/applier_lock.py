"""Who applies a repo's events: one process at a time per repo, by an advisory lock beside the buffer.

The server and CLI commands share one buffer (and the replicas of a fleet hub
share one in PostgreSQL). Any of them may apply pending events, but never two
the same repo's at once: two appliers of one repo would race to write and commit
the same files. Appliers of different repos do not wait for each other
(canon/ADR-054). :func:`applier_lock` gives the one way to take a repo's lock,
for where the buffer lives: ``acquire(repo, timeout)``, ``check(repo)`` before
anything leaves the process, ``release(repo)``. A process takes one repo's lock
at a time and takes it before any write transaction of the buffer (whose
``buffer:write`` lock lasts one transaction), never inside one: no lock order
can cross.

On the files backend (:class:`RepoLocks`) a repo's lock is ``flock`` on its own
file next to the buffer file, ``applier.<16 hex of sha256(slug)>.lock``
(:class:`ApplierLock`). ``flock`` locks belong to an open file, so each
acquisition opens the lock file anew; that serialises threads of one process as
well as separate processes, and the OS drops the lock when a holder dies (even
by SIGKILL), so a crash never leaves a repo stuck.

On PostgreSQL (canon/ADR-049) it is a session-level advisory lock on the key
``<schema>:applier:<slug>`` (:class:`AdvisoryRepoLocks`), every repo's on one
connection of the object's own, tried every :data:`POLL_S` seconds until the
timeout: the server ends the session, and the locks with it, when the holder's
process dies or its connection drops. Such a holder has lost its locks without
knowing; ``check`` finds out (the session it took the lock on must still answer)
and raises ``ApplierLockLost``. A session lock is re-entrant within its
session, so threads of one process first take a thread lock per repo.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sync.errors import ApplierLockLost, StoreUnreachable

if TYPE_CHECKING:
    from types import TracebackType

    import psycopg

    from sync._durable_pg import PgState
    from sync._state_db import StateLocation

__all__ = ["POLL_S", "AdvisoryRepoLocks", "ApplierLock", "RepoLocks", "applier_lock"]

POLL_S = 0.05
"""How often a waiting :class:`AdvisoryRepoLocks` tries again (flock's wait polls every 10 ms)."""


def applier_lock(where: StateLocation) -> RepoLocks | AdvisoryRepoLocks:
    """The per-repo applier locks at ``where``: ``<data dir>/applier.lock`` (each repo's file is
    named after it), or the state schema of a database."""
    if isinstance(where, Path):
        return RepoLocks(where)
    return AdvisoryRepoLocks(where)


def lock_file(path: Path, repo: str) -> Path:
    """The flock file of ``repo`` beside ``path`` (``applier.lock``): ``applier.<hash>.lock``, the
    hash the first 16 hex digits of the slug's sha256 (any slug, a safe file name)."""
    digest = hashlib.sha256(repo.encode()).hexdigest()[:16]
    return path.with_name(f"{path.stem}.{digest}{path.suffix}")


class ApplierLock:
    """``flock`` on one file (a repo's applier lock; also ``hub.toml``'s and the buffer move's)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, timeout: float | None = None) -> bool:
        """Take the lock, waiting up to ``timeout`` seconds (None: wait for ever); False if not taken."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.01)
                continue
            self._fd = fd
            return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        """Nothing to close: each acquisition opens the lock file (the lock goes with its release)."""

    def __enter__(self) -> ApplierLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()


class RepoLocks:
    """Each repo's applier lock as a ``flock`` on its own file beside ``path`` (:func:`lock_file`).

    A held ``flock`` cannot be lost while its file stays open, so :meth:`check` only asks that
    the caller holds it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._held: dict[str, ApplierLock] = {}

    def acquire(self, repo: str, timeout: float | None = None) -> bool:
        """Take ``repo``'s lock, waiting up to ``timeout`` seconds (None: for ever); False if not taken."""
        lock = ApplierLock(lock_file(self.path, repo))
        if not lock.acquire(timeout):
            return False
        self._held[repo] = lock
        return True

    def check(self, repo: str) -> None:
        """ApplierLockLost unless this object holds ``repo``'s lock."""
        if repo not in self._held:
            raise ApplierLockLost(repo, "it is not held")

    def release(self, repo: str) -> None:
        lock = self._held.pop(repo, None)
        if lock is not None:
            lock.release()

    def close(self) -> None:
        """Nothing to close: each acquisition opens its lock file (the lock goes with its release)."""


class AdvisoryRepoLocks:
    """Each repo's applier lock in the state schema at ``state``: ``pg_try_advisory_lock`` on the
    key named ``<schema>:<name>:<slug>``, held by a session (a connection) of this object's own,
    one for all repos.

    A connection that was dropped while a lock was held has lost it (the server ended the
    session): :meth:`check` says so, and the next acquisition connects again. StoreUnreachable
    when the server cannot be reached."""

    def __init__(self, state: PgState, name: str = "applier") -> None:
        from sync._durable_pg import STATE_SCHEMA

        self.state = state
        self.name = f"{STATE_SCHEMA}:{name}"
        self._guard = threading.Lock()
        """Held for each statement on the shared connection, and to look up a repo's thread lock."""
        self._threads: dict[str, threading.Lock] = {}
        self._conn: psycopg.Connection[Any] | None = None
        self._held: dict[str, psycopg.Connection[Any]] = {}
        """Each held repo's lock, with the session (connection) it was taken on."""

    def key(self, repo: str) -> str:
        """The advisory lock's name for ``repo`` (its key is ``hashtextextended(name, 0)``)."""
        return f"{self.name}:{repo}"

    def acquire(self, repo: str, timeout: float | None = None) -> bool:
        """Take ``repo``'s lock, waiting up to ``timeout`` seconds (None: for ever); False if not taken."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._guard:
            threads = self._threads.setdefault(repo, threading.Lock())
        if not threads.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
            return False
        try:
            while not self._try(repo):
                if deadline is not None and time.monotonic() >= deadline:
                    threads.release()
                    return False
                time.sleep(POLL_S)
        except BaseException:
            threads.release()
            raise
        return True

    def _try(self, repo: str) -> bool:
        import psycopg

        with self._guard:
            for attempt in (1, 2):  # a session that ended since (its locks with it): connect again
                if self._conn is None or self._conn.closed:
                    self._conn = self.state.connect()
                try:
                    row = self._conn.execute(
                        "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (self.key(repo),)
                    ).fetchone()
                except psycopg.OperationalError as error:
                    self._conn.close()
                    if attempt == 2:
                        raise StoreUnreachable(self.state.where, str(error).strip().splitlines()[0]) from None
                    continue
                if row is not None and row[0]:
                    self._held[repo] = self._conn
                    return True
                return False
        return False  # pragma: no cover - the loop returns or raises

    def check(self, repo: str) -> None:
        """ApplierLockLost unless ``repo``'s lock is still held: taken by this object, on the
        connection it still has, whose session still answers (one round trip)."""
        import psycopg

        with self._guard:
            conn = self._held.get(repo)
            if conn is None:
                raise ApplierLockLost(repo, "it is not held")
            if conn is not self._conn or conn.closed:
                raise ApplierLockLost(repo, "the session holding it ended")
            try:
                conn.execute("SELECT 1")
            except psycopg.OperationalError as error:
                conn.close()
                raise ApplierLockLost(repo, str(error).strip().splitlines()[0]) from None

    def release(self, repo: str) -> None:
        import psycopg

        with self._guard:
            conn = self._held.pop(repo, None)
            threads = self._threads.get(repo)
            if conn is None:
                return
            try:
                if conn is self._conn and not conn.closed:
                    conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (self.key(repo),))
            except psycopg.OperationalError:  # the session is gone, and the lock with it
                conn.close()
            finally:
                if threads is not None:
                    threads.release()

    def close(self) -> None:
        """Close the locks' connection (the locks, if held, go with it)."""
        with self._guard:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
