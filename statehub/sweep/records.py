"""The server's sweeps as records every replica reads: ``GET /sweeps`` and ``GET /sweeps/{id}`` anywhere.

A sweep (``statehub.sweep.scheduler``) runs on the replica that queued it, and
its progress lives in that replica's memory while it runs. Each change of it
(queued, running, each repo swept, ended) is also written here, whole: the
sweep's answer (:class:`~statehub.sweep.scheduler.SweepRun` as JSON: id, trigger,
targets, state, started and finished times, each repo's result, totals, error)
with its ``queued_at`` (the order of ``GET /sweeps``), its ``state`` and the
``replica`` that runs it (``sync.leader.replica_name``). So a replica answers a
sweep another one queued (canon/ADR-052, addendum of 2026-12-01), and the proxy
needs no rule for ``/sweeps``.

Where it lives (``statehub.state_stores.state_location``): ``sweeps.sqlite3``
in the data dir, or the table ``sweep`` of the PostgreSQL state schema (store
``sweeps``), migrated forward by ordered steps like every durable store
(canon/ADR-046). The newest :data:`~statehub.sweep.scheduler.KEEP` records are
kept, whatever their state: a record a dead replica left ``running`` goes with
the older ones, and a live sweep that old (a hundred sweeps queued while it
ran) writes its record again at its next change.

A replica that died mid-sweep cannot end its records. A server starting on the
same host (the same container after a restart, or the one process of a dev hub)
ends as ``failed`` the unfinished records of that host's processes that are gone
(no process of that id, or its own id: a container's pids start again), never
those of a live one (``statehub.sweep.scheduler.Sweeper``). A record of a
replica on another host that died stays ``running`` until it is pruned (the newest
:data:`~statehub.sweep.scheduler.KEEP` are kept): its ``replica`` says which one
ran it.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from sync._state_db import open_state_db
from sync.errors import StoreUnreachable

if TYPE_CHECKING:
    from sync._state_db import StateLocation

__all__ = ["SWEEPS_FILE", "SweepRecords"]

SWEEPS_FILE = "sweeps.sqlite3"
"""The records' file in the data dir (files backend)."""

_STEPS = (
    """
    CREATE TABLE sweep (
        id TEXT PRIMARY KEY,
        queued_at TEXT NOT NULL,
        state TEXT NOT NULL,
        replica TEXT NOT NULL,
        run TEXT NOT NULL
    );
    CREATE INDEX ix_sweep_queued ON sweep (queued_at, id);
    """,
)
"""The SQLite file's layout (``user_version``)."""
_PG_STEPS = (
    """
    CREATE TABLE sweep (
        id text PRIMARY KEY,
        queued_at text NOT NULL,
        state text NOT NULL,
        replica text NOT NULL,
        run text NOT NULL
    );
    CREATE INDEX ix_sweep_queued ON sweep (queued_at, id);
    """,
)
"""The same table in the PostgreSQL state schema (store ``sweeps``)."""

_UNFINISHED = ("queued", "running")
_TRIES = 4
"""Tries of one record's write on PostgreSQL whose session dies (pauses 0.05, 0.1, 0.2 s between)."""
_RETRY_PAUSE_S = 0.05


class SweepRecords:
    """The sweep records at ``where``, opened once per server process; safe to share between threads.

    Records are the sweep's answer as JSON (``bytes`` from :func:`msgspec.json.encode`); this
    store does not decode them (the scheduler owns their type). Raises what opening its store
    raises (:class:`~sync.errors.StoreTooNew`, :class:`~sync.errors.StoreUnreachable`).
    """

    def __init__(self, where: StateLocation, *, keep: int) -> None:
        self.keep = keep
        self._lock = threading.Lock()
        self._db = open_state_db(
            where,
            store="sweeps",
            sqlite_steps=_STEPS,
            postgres_steps=_PG_STEPS,
            what="sweep records",
            synchronous="NORMAL",  # a record lost to a power cut is a sweep's progress, not state
        )
        self.where = self._db.where

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SweepRecords:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def save(self, sweep_id: str, queued_at: str, state: str, replica: str, run: bytes) -> None:
        """Write the sweep's record (insert or replace); prune beyond ``keep`` when it is new.

        On PostgreSQL a write whose session ends (at its COMMIT too) is made again on a new
        connection, up to :data:`_TRIES` tries: it replaces the record by id with the same values,
        so a try that had committed changes nothing (canon/ADR-050 addendum). A record lost would
        show a finished sweep ``running`` to every ``GET /sweeps/{id}``. Then StoreUnreachable."""
        pause = _RETRY_PAUSE_S
        for attempt in range(1, _TRIES + 1):
            try:
                with self._lock, self._db.transaction():
                    self._db.serialize("write")  # PostgreSQL: replicas' prunes and saves in turn
                    self._db.execute(
                        "INSERT INTO sweep (id, queued_at, state, replica, run) VALUES (?, ?, ?, ?, ?) "
                        "ON CONFLICT (id) DO UPDATE SET state = excluded.state, run = excluded.run",
                        (sweep_id, queued_at, state, replica, run.decode()),
                    )
                    if int(self._db.execute("SELECT count(*) FROM sweep").fetchone()[0]) > self.keep:
                        self._prune()
                return
            except StoreUnreachable:
                if self._db.dialect != "postgresql" or attempt == _TRIES:
                    raise
                time.sleep(pause)
                pause *= 2

    def _prune(self) -> None:
        cut = self._db.execute(
            "SELECT queued_at, id FROM sweep ORDER BY queued_at DESC, id DESC LIMIT 1 OFFSET ?",
            (self.keep - 1,),
        ).fetchone()
        if cut is not None:
            self._db.execute(  # unfinished ones too: a dead replica's record goes (ADR-052 addendum)
                "DELETE FROM sweep WHERE queued_at < ? OR (queued_at = ? AND id < ?)",
                (cut[0], cut[0], cut[1]),
            )

    def get(self, sweep_id: str) -> bytes | None:
        """The record of ``sweep_id`` (its JSON), or None."""
        with self._lock:
            row = self._db.execute("SELECT run FROM sweep WHERE id = ?", (sweep_id,)).fetchone()
        return None if row is None else str(row[0]).encode()

    def newest(self, limit: int) -> list[tuple[str, str, bytes]]:
        """The newest ``limit`` records, newest first: (id, queued_at, JSON) each."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, queued_at, run FROM sweep ORDER BY queued_at DESC, id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [(str(r[0]), str(r[1]), str(r[2]).encode()) for r in rows]

    def unfinished(self) -> list[tuple[str, str, bytes]]:
        """Records still queued or running: (id, replica, JSON) each."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, replica, run FROM sweep WHERE state IN (?, ?)", _UNFINISHED
            ).fetchall()
        return [(str(r[0]), str(r[1]), str(r[2]).encode()) for r in rows]
