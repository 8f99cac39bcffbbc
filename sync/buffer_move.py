"""A buffer file moving into the PostgreSQL state schema: copied whole, once, nothing lost.

A hub switched to PostgreSQL state (canon/ADR-049) may hold events in
``buffer.sqlite3`` that wait to be applied or relayed, leases on tasks and the
relay's decisions. :func:`move_buffer_file` copies all of it into the state
schema in one transaction holding the buffer's write lock, then renames the
file ``buffer.sqlite3.moved-to-postgresql`` (never deletes it), as the rooms'
file moves (canon/ADR-046):

- every event, in acceptance order, with its state, reason and commit; it takes
  a new ``seq`` after those the schema holds. A key the schema already holds
  (another replica's file moved first) keeps the schema's event; a different
  event under it is logged, and the renamed file still holds it;
- unfinished write-backs, the relay's rows (each event's relay state, under its
  new ``seq``) and decisions, and the relay's watermark: an event the file's relay
  had not queued yet is queued, one accepted before the relay was set up is not;
- every lease whose task the schema has no lease for.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sync._durable import open_store
from sync._events_file import EVENTS_FILE_STEPS, EVENTS_PG_STEPS, EVENTS_STORE
from sync.applier_lock import ApplierLock

if TYPE_CHECKING:
    import sqlite3

    from sync._durable_pg import PgState, PgStateDb

__all__ = ["MOVED_SUFFIX", "MovedBuffer", "move_buffer_file"]

log = logging.getLogger(__name__)

MOVED_SUFFIX = ".moved-to-postgresql"
_BATCH = 1000

_EVENT = "key, kind, repo, workplan, task, payload, event, state, reason, accepted_at, applied_at, commit_sha"
_LEASE = (
    "ref, repo, workplan, task, actor, claim_key, prior_owner, lease_s, claimed_at, expires_at, state, "
    "release_key, released_at, released_by"
)


@dataclass(frozen=True, slots=True)
class MovedBuffer:
    """What one move copied: events, of them still pending, and the keys the schema kept its own of."""

    events: int
    pending: int
    leases: int
    kept: list[str]
    renamed_to: Path


def move_buffer_file(path: Path, state: PgState) -> MovedBuffer | None:
    """Copy the buffer file at ``path`` into ``state``'s schema and rename it (see the module
    docstring); None when there is no such file. The file is migrated to the current layout
    first (StoreTooNew for one from a newer State Hub, left as it is). Two processes of one data
    dir starting at once (a server and a CLI command) take turns on a lock file beside it; the
    second finds the file gone."""
    if not path.is_file():
        return None
    with ApplierLock(path.with_name(path.name + ".moving")):
        if not path.is_file():
            return None
        return _move(path, state)


def _move(path: Path, state: PgState) -> MovedBuffer:
    from sync._durable_pg import PgStateDb

    source = open_store(path, EVENTS_FILE_STEPS, "events file", synchronous="FULL")
    try:
        target = PgStateDb(state, EVENTS_STORE, EVENTS_PG_STEPS, "events file")
        try:
            with target.transaction():
                target.serialize("write")
                moved = _copy(source, target)
        finally:
            target.close()
    finally:
        source.close()
    renamed = path.with_name(path.name + MOVED_SUFFIX)
    if renamed.exists():  # moved before (and a file buffer used since): keep both
        renamed = path.with_name(f"{path.name}{MOVED_SUFFIX}.{time.strftime('%Y%m%dT%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):  # closed: the WAL was checkpointed; move whatever is left
        part = path.with_name(path.name + suffix)
        if part.exists():
            part.rename(renamed.with_name(renamed.name + suffix))
    result = MovedBuffer(*moved, renamed_to=renamed)
    log.warning(
        "moved %d event(s) (%d pending) and %d lease(s) from %s into %s; %s; the file is now %s",
        result.events,
        result.pending,
        result.leases,
        path,
        target.where,
        f"kept the state schema's own event of {', '.join(result.kept)}" if result.kept else "no key clashed",
        renamed,
    )
    return result


def _copy(source: sqlite3.Connection, target: PgStateDb) -> tuple[int, int, int, list[str]]:
    """Everything of ``source`` into ``target`` inside the caller's transaction: (events, pending,
    leases, keys kept)."""
    meta = source.execute("SELECT value FROM relay_meta WHERE key = 'enqueued_seq'").fetchone()
    file_mark = int(meta[0]) if meta is not None else None
    schema_mark = target.execute("SELECT value FROM relay_meta WHERE key = 'enqueued_seq'").fetchone()
    if schema_mark is not None:  # queue the schema's own events first, as its relay would
        top = target.execute("SELECT coalesce(max(seq), 0) FROM event").fetchone()[0]
        target.execute(
            "INSERT INTO relay (key, seq, queued_at) SELECT key, seq, accepted_at FROM event "
            "WHERE seq > ? ORDER BY seq ON CONFLICT (key) DO NOTHING",
            (int(schema_mark[0]),),
        )
        target.execute("UPDATE relay_meta SET value = ? WHERE key = 'enqueued_seq'", (str(top),))

    new_seq: dict[str, int] = {}
    old_seq: dict[str, int] = {}
    kept: list[str] = []
    events = pending = 0
    rows = source.execute(f"SELECT seq, {_EVENT} FROM event ORDER BY seq")  # noqa: S608 - constant column names
    while batch := rows.fetchmany(_BATCH):
        columns: list[list[Any]] = [[] for _ in range(12)]
        for row in batch:
            old_seq[row[1]] = int(row[0])
            for column, value in zip(columns, row[1:], strict=True):
                column.append(value)
        inserted = target.execute(
            f"INSERT INTO event ({_EVENT}) SELECT k, ki, r, w, t, p, e, s, re, a, ap, c FROM unnest("  # noqa: S608 - constant
            + ", ".join(["?::text[]"] * 12)
            + ") WITH ORDINALITY AS u (k, ki, r, w, t, p, e, s, re, a, ap, c, n) ORDER BY n "
            "ON CONFLICT (key) DO NOTHING RETURNING key, seq, state",
            columns,
        ).fetchall()
        for key, seq, event_state in inserted:
            new_seq[key] = int(seq)
            events += 1
            pending += event_state == "pending"
        clashed = {row[1]: row[6] for row in batch if row[1] not in new_seq}
        if clashed:
            stored = target.execute("SELECT key, payload FROM event WHERE key = ANY(?)", (list(clashed),))
            kept += [key for key, payload in stored if payload != clashed[key]]

    target.executemany(
        "INSERT INTO writeback (repo, head, keys, files, started_at, checkout, place) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",  # each record keeps its checkout: a replica resolves only its own
        source.execute(
            "SELECT repo, head, keys, files, started_at, checkout, place FROM writeback ORDER BY id"
        ).fetchall(),
    )
    relayed = source.execute(
        "SELECT key, state, attempts, reason, queued_at, sent_at, confirmed_at FROM relay ORDER BY seq"
    ).fetchall()
    target.executemany(
        "INSERT INTO relay (key, seq, state, attempts, reason, queued_at, sent_at, confirmed_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
        [(r[0], new_seq[r[0]], *r[1:]) for r in relayed if r[0] in new_seq],
    )
    if file_mark is not None:  # what the file's relay had not queued yet is queued now
        queued = {r[0] for r in relayed}
        target.executemany(
            "INSERT INTO relay (key, seq, queued_at) SELECT key, seq, accepted_at FROM event WHERE key = ? "
            "ON CONFLICT (key) DO NOTHING",
            [(k,) for k, seq in new_seq.items() if old_seq[k] > file_mark and k not in queued],
        )
    if file_mark is not None or schema_mark is not None:  # moved events are queued above, or never
        target.execute(
            "INSERT INTO relay_meta (key, value) SELECT 'enqueued_seq', CAST(coalesce(max(seq), 0) AS TEXT) "
            "FROM event WHERE true ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        )
    target.executemany(
        "INSERT INTO relay_decision (key, decision, reason, actor, event, at) VALUES (?, ?, ?, ?, ?, ?)",
        source.execute(
            "SELECT key, decision, reason, actor, event, at FROM relay_decision ORDER BY id"
        ).fetchall(),
    )
    leases = source.execute(f"SELECT {_LEASE} FROM lease").fetchall()  # noqa: S608 - constant column names
    marks = ", ".join("?" * 14)
    before = target.execute("SELECT count(*) FROM lease").fetchone()[0]
    target.executemany(
        f"INSERT INTO lease ({_LEASE}) VALUES ({marks}) ON CONFLICT (ref) DO NOTHING",  # noqa: S608 - constant
        leases,
    )
    after = target.execute("SELECT count(*) FROM lease").fetchone()[0]
    return events, pending, int(after) - int(before), kept
