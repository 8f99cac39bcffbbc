"""``LISTEN`` on a PostgreSQL channel from a thread of its own, with a reconnect that says so.

A replica learns what another replica wrote through ``NOTIFY`` (canon/ADR-046,
ADR-051). :class:`PgListener` holds one connection of its own (autocommit, so
every notification is delivered as soon as its sender commits), ``LISTEN``s on
one channel and hands each payload to ``on_notify`` from its thread. When the
connection drops (a server restart, a fail-over), notifications sent meanwhile
are lost: it connects again (every :data:`RETRY_SECONDS`) and calls
``on_reconnect`` once ``LISTEN`` is in place again, so its owner reads what it
may have missed from the tables (a notification is a wake-up; the rows are the
truth).

Both callbacks run on the listener's thread: an asyncio owner passes them on
with ``loop.call_soon_threadsafe``. psycopg is imported only here and in
:mod:`sync._durable_pg`, and only when a listener starts.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    import psycopg

    from sync._durable_pg import PgState

__all__ = ["NOTIFY_LIMIT", "RETRY_SECONDS", "PgListener"]

log = logging.getLogger(__name__)

NOTIFY_LIMIT = 7900
"""Bytes of a ``NOTIFY`` payload we send (PostgreSQL refuses 8000 or more)."""
RETRY_SECONDS = 1.0
"""How long a listener waits before connecting again after its connection dropped."""
_WAKE_SECONDS = 0.5
"""How often the listener's thread looks whether it was closed, between notifications."""


class PgListener:
    """``LISTEN channel`` on its own connection to ``state``, in a daemon thread, until :meth:`close`.

    ``on_notify(payload)`` is called for each notification, in the order the
    server delivers them; ``on_reconnect()`` after a dropped connection is
    listening again. An exception from a callback is logged and the listener
    goes on. :meth:`start` returns once the first ``LISTEN`` is in place
    (StoreUnreachable when the server cannot be reached then).
    """

    def __init__(
        self,
        state: PgState,
        channel: str,
        on_notify: Callable[[str], None],
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        if not channel.isidentifier():
            raise ValueError(f"{channel!r} is not a plain channel name")
        self.state = state
        self.channel = channel
        self._on_notify = on_notify
        self._on_reconnect = on_reconnect
        self._stop = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._conn = self._listen()
        self._thread = threading.Thread(target=self._run, name=f"statehub-listen {self.channel}", daemon=True)
        self._thread.start()

    def _listen(self) -> psycopg.Connection[Any]:
        conn = self.state.connect()
        try:
            conn.execute(f"LISTEN {self.channel}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            conn = self._conn
            if conn is None or conn.closed:
                if not self._reconnect():
                    continue
                conn = self._conn
                assert conn is not None
            try:
                for note in conn.notifies(timeout=_WAKE_SECONDS):
                    self._call(self._on_notify, note.payload)
                    if self._stop.is_set():
                        break
            except psycopg.Error as error:
                if self._stop.is_set():
                    return
                log.warning(
                    "listening on %s: the connection dropped (%s); connecting again", self.channel, error
                )
                conn.close()

    def _reconnect(self) -> bool:
        """A new listening connection, then ``on_reconnect``; False (after a pause) when it failed."""
        import psycopg

        from sync.errors import StoreUnreachable

        try:
            self._conn = self._listen()
        except (StoreUnreachable, OSError, psycopg.Error) as error:
            log.warning("listening on %s: %s; trying again in %s s", self.channel, error, RETRY_SECONDS)
            self._stop.wait(RETRY_SECONDS)
            return False
        if self._on_reconnect is not None:
            self._call(self._on_reconnect)
        return True

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("a listener of %s failed on a notification", self.channel)

    def close(self) -> None:
        """Stop listening and wait for the thread (at most a few seconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._conn is not None:
            self._conn.close()
