"""Which replica does the work that must run once: the holder of one advisory lock (canon/ADR-052).

Several ``statehub serve --profile fleet`` processes may share one PostgreSQL
state database. Work that must happen once per hub, not once per process
(releasing run-out leases, relaying events upstream, queueing scheduled
sweeps), runs only on the *leader*: the process whose dedicated session holds
``pg_try_advisory_lock(LEADER_LOCK)`` in that database.

A :class:`Leader` on PostgreSQL runs one thread (``statehub-leader``) with a
connection of its own, kept for the process's life:

- a *follower* asks for the lock every ``retry_s`` seconds (a failed try costs
  one round trip and waits for nothing);
- the *leader* watches its connection: it wakes as soon as the socket turns
  readable (the server ended the session: a restart, ``pg_terminate_backend``,
  a fail-over) and checks at least every ``retry_s`` seconds that the session
  still holds the lock. Any failure (a dropped connection, a probe that does
  not answer within the connection's TCP user timeout, the lock not found)
  ends leadership *first* (``is_leader`` turns False and the callbacks hear
  it before anything else), then closes the session, so the server frees the
  lock if it still held it, then tries again like any follower.

A process that dies (even SIGKILL) closes its socket; the server ends the
session and frees the lock at once, and the next follower's try wins within
``retry_s``. A leader cut off from the database by the network stops leading
within about ``3 * retry_s`` (its probe fails after the TCP user timeout); the
server frees the lock only after its own keepalives give up on the session
(set on the session to about ``8 * retry_s``), so the two never overlap unless
the clocks of both hosts' TCP stacks are far off. Work that must never run
twice even then is also decided in the database (claims by row locks, the
relay's batches by ``FOR UPDATE SKIP LOCKED``; ADR-046): leadership says who
*starts* the run-once work, not who may write.

Without a state database (the files backend: a dev hub, a hub on SQLite, any
CLI command) there is one process per data dir, and it always leads:
``Leader(None)`` is the leader from its construction and starts no thread.

psycopg is imported only when a PostgreSQL leader starts.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import select
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from sync.errors import StoreUnreachable

if TYPE_CHECKING:
    from collections.abc import Callable

    import psycopg

    from sync._durable_pg import PgState

__all__ = ["DEFAULT_RETRY_S", "LEADER_LOCK", "Leader", "LeaderStatus", "replica_name"]

log = logging.getLogger(__name__)

LEADER_LOCK = int.from_bytes(b"SHleader", "big")
"""The advisory lock (one bigint key, per database) the leader's session holds."""
DEFAULT_RETRY_S = 2.0
"""Seconds between a follower's tries (``STATEHUB_LEADER_RETRY``); the leader probes as often."""
_SLICE_S = 0.2
"""The longest the thread waits without looking at whether it should stop."""


class LeaderStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Whether this process leads (``GET /state/diagnostics`` ``hub.leader``); times UTC, to the second.

    ``backend``: ``files`` (one process: it always leads) or ``postgresql`` (the advisory lock
    decides). ``since``: when this process last became leader (None while it follows).
    ``terms``: how many times it became leader since it started. ``last_error``: the last failure
    to reach the lock's database or keep its session (None once a try succeeded after it).
    ``replica``: this process's name (:func:`replica_name`), as the stream's ``hub.leader`` says it.
    """

    backend: Literal["files", "postgresql"]
    leader: bool
    replica: str
    since: str | None
    terms: int
    retry_s: float
    last_error: str | None
    detail: str
    """One sentence: who leads, from this process's point of view."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def replica_name() -> str:
    """This process's name among the replicas: ``<host name>:<process id>`` (a container's host name
    is its own, so replicas on one host or in one compose project have different names)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Leader:
    """Leadership of this process: ``start()`` it, read :attr:`is_leader`, ``stop()`` it.

    ``state`` None: the files backend, always the leader. ``on_change`` callbacks are called
    with True on gaining and False on losing leadership, from the leader thread (on losing,
    after ``is_leader`` already answers False); one that raises is logged, never stops the rest.
    """

    def __init__(self, state: PgState | None, *, retry_s: float = DEFAULT_RETRY_S) -> None:
        if not 0 < retry_s <= 3600:
            raise ValueError(f"retry_s={retry_s!r}: give seconds above 0, at most 3600")
        self.state = state
        self.retry_s = retry_s
        self.replica = replica_name()
        """This process's name (:func:`replica_name`)."""
        self.on_change: list[Callable[[bool], None]] = []
        self._changed = threading.Condition()
        self._leading = state is None
        self._since: str | None = _now() if state is None else None
        self._terms = 1 if state is None else 0
        self._last_error: str | None = None
        self._stop = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._thread: threading.Thread | None = None

    @property
    def is_leader(self) -> bool:
        """Whether this process may start the run-once work now (a plain read: cheap, any thread)."""
        return self._leading

    def start(self) -> None:
        """Begin trying for the lock (PostgreSQL); nothing to do on the files backend."""
        if self.state is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="statehub-leader", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        """Give leadership up (callbacks hear False) and close the session, which frees the lock."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait(self, leading: bool, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until :attr:`is_leader` is ``leading``; whether it is."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._leading is not leading:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def status(self) -> LeaderStatus:
        leading = self._leading
        if self.state is None:
            detail = "one process serves this hub (no state database), so it leads"
        elif leading:
            detail = "this process holds the leader's advisory lock: it runs the run-once work"
        elif self._conn is None:
            detail = f"this process cannot reach the {self.state.where}; it tries every {self.retry_s:g} s"
        else:
            detail = (
                f"another process holds the leader's advisory lock; this one tries every {self.retry_s:g} s"
            )
        return LeaderStatus(
            backend="files" if self.state is None else "postgresql",
            leader=leading,
            replica=self.replica,
            since=self._since if leading else None,
            terms=self._terms,
            retry_s=self.retry_s,
            last_error=self._last_error,
            detail=detail,
        )

    # the thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        import psycopg

        try:
            while not self._stop.is_set():
                try:
                    if self._conn is None:
                        self._conn = self._connect()
                    if self._leading:
                        self._hold()
                    elif self._try():
                        self._gain()
                    else:
                        self._stop.wait(self.retry_s)
                except (psycopg.Error, StoreUnreachable, OSError) as error:
                    self._fail(error)
                    self._stop.wait(self.retry_s)
        finally:
            self._lose("the hub is stopping")
            self._close()

    def _connect(self) -> psycopg.Connection[Any]:
        """A session of its own: keepalives so a dead peer is noticed on both sides (see the module
        docstring for the timing), and ``application_name`` so ``pg_stat_activity`` shows it."""
        import psycopg

        assert self.state is not None
        retry = max(1, round(self.retry_s))
        server_side = (
            f"-c tcp_keepalives_idle={5 * retry} -c tcp_keepalives_interval={retry} "
            "-c tcp_keepalives_count=3 "
            f"-c statement_timeout={int(2000 * self.retry_s) + 1000}"
        )
        try:
            return psycopg.connect(
                self.state.url,
                autocommit=True,
                application_name="statehub-leader",
                connect_timeout=max(2, int(3 * self.retry_s)),
                options=server_side,
                keepalives=1,
                keepalives_idle=retry,
                keepalives_interval=retry,
                keepalives_count=2,
                tcp_user_timeout=int(2000 * self.retry_s),
            )
        except psycopg.OperationalError as error:
            raise StoreUnreachable(self.state.where, _first_line(error)) from None

    def _try(self) -> bool:
        assert self._conn is not None
        row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK,)).fetchone()
        self._last_error = None
        return bool(row and row[0])

    def _hold(self) -> None:
        """While leading: sleep until the socket turns readable or ``retry_s`` passed, then check the
        lock is still this session's (a dropped session raises; a missing lock ends leadership)."""
        assert self._conn is not None
        deadline = time.monotonic() + self.retry_s
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            readable, _, _ = select.select([self._conn.fileno()], [], [], min(left, _SLICE_S))
            if readable:  # the server said something unasked: most likely that it ended the session
                break
        if self._stop.is_set():
            return
        row = self._conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
            "AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1 AND granted",
            (LEADER_LOCK >> 32, LEADER_LOCK & 0xFFFFFFFF),
        ).fetchone()
        if not row or not row[0]:
            self._lose("the leader's session no longer holds the advisory lock")
            self._close()

    def _gain(self) -> None:
        with self._changed:
            self._leading = True
            self._since = _now()
            self._terms += 1
            self._changed.notify_all()
        log.info("this process is now the leader (%s)", self.state.where if self.state else "files")
        self._tell(True)

    def _lose(self, why: str) -> None:
        if not self._leading or self.state is None:
            return
        with self._changed:
            self._leading = False  # first: the run-once work reads this before its next round
            self._changed.notify_all()
        log.warning("this process is no longer the leader: %s", why)
        self._tell(False)

    def _fail(self, error: BaseException) -> None:
        reason = (str(error) if isinstance(error, StoreUnreachable) else _first_line(error))[:500]
        if not self._leading and reason != self._last_error:  # once per new reason, not every try
            log.warning("trying for the leader's lock failed: %s; retrying every %g s", reason, self.retry_s)
        self._last_error = reason
        self._lose(f"its session failed ({reason})")
        self._close()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()  # the server frees a session lock when its session ends
            except Exception:
                log.debug("closing the leader's connection failed", exc_info=True)

    def _tell(self, leading: bool) -> None:
        for callback in list(self.on_change):
            try:
                callback(leading)
            except Exception:
                log.exception("a leadership callback failed")


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
