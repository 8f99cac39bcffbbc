"""Who applies the buffer: one process at a time, by an advisory lock beside the buffer.

The server and CLI commands share one buffer (and the replicas of a fleet hub
share one in PostgreSQL). Any of them may apply its pending events, but never
two at once: two appliers reading the same buffer would race to write and
commit the same files.

On the files backend the lock is ``flock`` on a file next to the buffer file
(:class:`ApplierLock`). ``flock`` locks belong to an open file, so each
acquisition opens the lock file anew; that serialises threads of one process as
well as separate processes, and the OS drops the lock when a holder dies (even
by SIGKILL), so a crash never leaves the buffer stuck.

On PostgreSQL (canon/ADR-049) it is a session-level advisory lock
(:class:`AdvisoryApplierLock`) on a connection of its own, tried every
:data:`POLL_S` seconds until the timeout: the server ends the session, and the
lock with it, when the holder's process dies or its connection drops. A session
lock is re-entrant within its session, so threads of one process first take a
thread lock of the object's own.

:func:`applier_lock` picks the one for where the buffer lives.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sync.errors import StoreUnreachable

if TYPE_CHECKING:
    from types import TracebackType

    import psycopg

    from sync._durable_pg import PgState
    from sync._state_db import StateLocation

__all__ = ["POLL_S", "AdvisoryApplierLock", "ApplierLock", "applier_lock"]

POLL_S = 0.05
"""How often a waiting :class:`AdvisoryApplierLock` tries again (flock's wait polls every 10 ms)."""


def applier_lock(where: StateLocation) -> ApplierLock | AdvisoryApplierLock:
    """The applier lock at ``where``: the lock file's path, or the state schema of a database."""
    if isinstance(where, Path):
        return ApplierLock(where)
    return AdvisoryApplierLock(where)


class ApplierLock:
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


class AdvisoryApplierLock:
    """The applier lock of the state schema at ``state``: ``pg_try_advisory_lock`` on the key named
    ``<schema>:<name>``, held by a session (a connection) of this object's own.

    A connection that was dropped while the lock was held has lost it (the server ended the
    session); the next acquisition connects again. StoreUnreachable when the server cannot be
    reached."""

    def __init__(self, state: PgState, name: str = "applier") -> None:
        from sync._durable_pg import STATE_SCHEMA

        self.state = state
        self.name = f"{STATE_SCHEMA}:{name}"
        self._threads = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._held = False

    def acquire(self, timeout: float | None = None) -> bool:
        """Take the lock, waiting up to ``timeout`` seconds (None: wait for ever); False if not taken."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._threads.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
            return False
        try:
            while not self._try():
                if deadline is not None and time.monotonic() >= deadline:
                    self._threads.release()
                    return False
                time.sleep(POLL_S)
        except BaseException:
            self._threads.release()
            raise
        self._held = True
        return True

    def _try(self) -> bool:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = self.state.connect()
        try:
            row = self._conn.execute(
                "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (self.name,)
            ).fetchone()
        except psycopg.OperationalError as error:
            self._conn.close()
            raise StoreUnreachable(self.state.where, str(error).strip().splitlines()[0]) from None
        return bool(row is not None and row[0])

    def release(self) -> None:
        if not self._held:
            return
        import psycopg

        self._held = False
        conn = self._conn
        try:
            if conn is not None and not conn.closed:
                conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (self.name,))
        except psycopg.OperationalError:  # the session is gone, and the lock with it
            if conn is not None:
                conn.close()
        finally:
            self._threads.release()

    def close(self) -> None:
        """Close the lock's connection (the lock, if held, goes with it)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> AdvisoryApplierLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()
