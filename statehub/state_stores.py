"""Where the hub's durable stores live: SQLite files in the data dir, or the PostgreSQL state schema.

``Settings.state_url`` decides (canon/ADR-046): None keeps every store in its
file under the data dir (the dev hub, and any hub on a SQLite cache); a
PostgreSQL URL puts every durable store (the write buffer with its relay queue
and leases, and the applier lock, canon/ADR-049; the change log, canon/ADR-050;
rooms, sessions) in the schema ``statehub_state`` of that database, where every
replica of a fleet hub finds them. A change log left in ``changes.sqlite3``
is not moved: the stream's ids start again in the state schema, and a client
resuming from an id the new log never gave gets ``reset`` (reload, then follow).

A hub that moves to PostgreSQL with unsaved drafts in ``rooms.sqlite3`` keeps
them: :func:`open_room_store` copies each lineage the state schema lacks, then
renames the file ``rooms.sqlite3.moved-to-postgresql`` (never deletes it). Browser
sessions are not moved: people sign in again once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from statehub.settings import Settings
    from sync._state_db import StateLocation
    from sync.leader import Leader
    from sync.room_store import RoomStore

__all__ = ["MOVED_SUFFIX", "leader_of", "open_room_store", "room_store_location", "state_location"]

log = logging.getLogger(__name__)

ROOM_STORE_FILE = "rooms.sqlite3"
MOVED_SUFFIX = ".moved-to-postgresql"


def state_location(settings: Settings, file_name: str) -> StateLocation:
    """Where the store whose file is ``<data dir>/<file_name>`` lives for these settings."""
    if settings.state_url is None:
        return settings.data_dir / file_name
    from sync._durable_pg import PgState

    return PgState(settings.state_url, settings.pg_dead_peer_s)


def leader_of(settings: Settings) -> Leader:
    """This server's leadership (canon/ADR-052), not started: on PostgreSQL state, the advisory
    lock of the state database decides; on files the one process always leads."""
    from sync.leader import Leader

    if settings.state_url is None:
        return Leader(None, retry_s=settings.leader_retry_s)
    from sync._durable_pg import PgState

    return Leader(PgState(settings.state_url, settings.pg_dead_peer_s), retry_s=settings.leader_retry_s)


def room_store_location(settings: Settings) -> StateLocation:
    return state_location(settings, ROOM_STORE_FILE)


def open_room_store(settings: Settings) -> RoomStore:
    """The rooms' store for these settings, with a rooms file left from before moved into it."""
    from sync.room_store import RoomStore  # here: the change log's commands never load the CRDT

    where = room_store_location(settings)
    store = RoomStore(where)
    if not isinstance(where, Path):
        try:
            move_rooms_file(settings.data_dir / ROOM_STORE_FILE, store)
        except BaseException:
            store.close()
            raise
    return store


def move_rooms_file(path: Path, store: RoomStore) -> list[str]:
    """Copy the lineages of the rooms file at ``path`` that ``store`` lacks; rename the file. Answer
    the documents copied. A lineage ``store`` already holds (another replica moved it, or began a
    newer one) is kept there; the renamed file still holds the old one."""
    if not path.is_file():
        return []
    from sync.room_store import RoomStore

    moved, kept = [], []
    with RoomStore(path) as old:
        for doc in old.docs():
            pending = old.load(doc)
            if pending is None:
                continue
            if store.load(doc) is not None:
                kept.append(doc)
                continue
            store.adopt(doc, pending, old.editors(doc))
            moved.append(doc)
    target = path.with_name(path.name + MOVED_SUFFIX)
    for suffix in ("", "-wal", "-shm"):  # closed: the WAL was checkpointed; move whatever is left
        part = path.with_name(path.name + suffix)
        if part.exists():
            part.rename(target.with_name(target.name + suffix))
    if moved or kept:
        log.warning(
            "moved %d room lineage(s) from %s into %s; %s; the file is now %s",
            len(moved),
            path,
            store.where,
            f"kept the state schema's own for {', '.join(kept)}" if kept else "none was there already",
            target,
        )
    return moved
