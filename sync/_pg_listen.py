"""``LISTEN`` on a PostgreSQL channel from a connection and a thread of its own, reconnecting.

What carries a store's ``NOTIFY`` to the other processes on the same database
(canon/ADR-050: the change log's fan-out across replicas; canon/ADR-051: the rooms'). A
:class:`PgListener` opens its own autocommit connection to the state database
(:meth:`sync._durable_pg.PgState.connect`: a pool would hide which
connection listens), runs ``LISTEN <channel>`` and calls ``on_notify`` with
each notification's payload, from its thread, as it arrives.

A notification is a hint, never the data: PostgreSQL delivers it only to
connections listening when the notifying transaction commits, so one sent
while this listener was disconnected is lost. So after every (re)connect,
once ``LISTEN`` runs, ``on_notify(None)`` says "you may have missed some:
look now", and a reader keeps its own slower poll as well. A connection the
server dropped (a restart, ``pg_terminate_backend``, a fail-over) is found at
the next wait (or at the liveness check every :data:`CHECK_S` seconds of
silence) and replaced, after :data:`RETRY_S` seconds growing to
:data:`RETRY_MAX_S` while the server stays away; each failure is logged once
per outage.

psycopg is imported here only when a listener starts (as in :mod:`sync._durable_pg`).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import TYPE_CHECKING, Any

from sync.errors import StoreUnreachable

if TYPE_CHECKING:
    from collections.abc import Callable

    import psycopg

    from sync._durable_pg import PgState

__all__ = ["CHECK_S", "NOTIFY_LIMIT", "RETRY_MAX_S", "RETRY_S", "PgListener"]

log = logging.getLogger(__name__)

NOTIFY_LIMIT = 7900
"""Bytes of a ``NOTIFY`` payload a store sends (PostgreSQL refuses 8000 or more)."""
WAIT_S = 0.5
"""Longest wait for a notification before the thread looks at its stop flag (seconds): what
:meth:`PgListener.close` may wait."""
CHECK_S = 10.0
"""Seconds of silence after which the connection is checked (``SELECT 1``): a connection whose
server went away without a word is found then, not only at the next notification."""
RETRY_S = 0.2
"""First wait before connecting again after a failure (seconds); doubled each time up to
:data:`RETRY_MAX_S`."""
RETRY_MAX_S = 5.0
_CHANNEL = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PgListener:
    """``LISTEN channel`` on ``state`` in a daemon thread; ``on_notify(payload)`` per notification,
    ``on_notify(None)`` after each (re)connect. Exceptions of ``on_notify`` are logged, never end
    the thread. :meth:`close` stops it (within :data:`WAIT_S`)."""

    def __init__(self, state: PgState, channel: str, on_notify: Callable[[str | None], None]) -> None:
        if not _CHANNEL.fullmatch(channel):
            raise ValueError(f"{channel!r} is not a channel name (lower-case letters, digits, _)")
        self.state = state
        self.channel = channel
        self.on_notify = on_notify
        self.listening = threading.Event()
        """Set while ``LISTEN`` runs on a live connection (cleared when it is lost)."""
        self.connects = 0
        """How many times it connected and listened (1 after the start; more after reconnects)."""
        self.backend_pid: int | None = None
        """The server process of the listening connection (what ``pg_terminate_backend`` takes)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"statehub-listen-{channel}", daemon=True)

    def start(self, wait_s: float = 0.0) -> PgListener:
        """Start the thread; wait up to ``wait_s`` seconds for the first ``LISTEN`` to be in place
        (a store that publishes right after starting must not lose its peers' first notifications).
        A server that does not answer meanwhile is not an error: the thread keeps trying."""
        self._thread.start()
        if wait_s > 0:
            self.listening.wait(wait_s)
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(WAIT_S * 4)

    def _run(self) -> None:
        import psycopg

        delay = RETRY_S
        outage = False
        while not self._stop.is_set():
            try:
                conn = self.state.connect(wait_for_flush=False)
            except StoreUnreachable as error:
                if not outage:
                    log.warning("listening on %s: cannot connect (%s); trying again", self.channel, error)
                outage = True
                self._stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            try:
                with conn:
                    conn.execute(f"LISTEN {self.channel}")
                    self.backend_pid = conn.info.backend_pid
                    self.connects += 1
                    self.listening.set()
                    if outage:
                        log.warning("listening on %s again", self.channel)
                    outage, delay = False, RETRY_S
                    self._tell(None)
                    self._listen(conn)
            except psycopg.Error as error:
                if not self._stop.is_set():
                    log.warning(
                        "listening on %s: the connection was lost (%s); connecting again", self.channel, error
                    )
                    outage = True
                    self._stop.wait(delay)
                    delay = min(delay * 2, RETRY_MAX_S)
            finally:
                self.listening.clear()

    def _listen(self, conn: psycopg.Connection[Any]) -> None:
        quiet_since = time.monotonic()
        while not self._stop.is_set():
            heard = False
            for notify in conn.notifies(timeout=WAIT_S):
                heard = True
                self._tell(notify.payload)
            if heard:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= CHECK_S:
                conn.execute("SELECT 1")  # raises on a connection the server dropped without a word
                quiet_since = time.monotonic()

    def _tell(self, payload: str | None) -> None:
        try:
            self.on_notify(payload)
        except Exception:
            log.exception("a listener of %s failed on %r", self.channel, payload)
