"""Every error the ``sync`` package raises, in one tree.

    SyncError              the root: catch this to catch anything the buffer, relay or stores refuse
    ├── KeyConflict        an event key already names a different event; nothing of the batch was stored
    ├── UnknownRelayKey    a relay retry or drop named a key the relay does not hold in a fitting state
    ├── DropWithoutReason  a relay drop was asked for without saying why
    ├── StoreTooNew        a durable store was written by a newer State Hub; it is never dropped
    ├── StoreFull          the disk under a durable store is full: nothing of the write was kept
    ├── StoreUnreachable   the PostgreSQL database holding a durable store does not answer
    ├── StoreNotPermitted  the database user may not create the state schema or its tables
    ├── ApplierLockLost    the session holding a repo's applier lock ended: stop writing that repo
    └── RoomError          a room refuses something; ``status`` is the HTTP-like status to answer
        ├── RoomFileError  the room's file may not be read or written (ADR-022): nothing of it is sent
        └── RoomInputError a client's message or name the room does not take

The relay's own outcomes (``_Pause``, ``_Transient``, ``_Refused`` in
``sync.relay``) derive from ``SyncError`` too but never leave that module.
``details`` is structured data for a client (None when the message says it
all); the hub maps this tree to its own in ``statehub.errors``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "ApplierLockLost",
    "DropWithoutReason",
    "KeyConflict",
    "RoomError",
    "RoomFileError",
    "RoomInputError",
    "StoreFull",
    "StoreNotPermitted",
    "StoreTooNew",
    "StoreUnreachable",
    "SyncError",
    "UnknownRelayKey",
]


class SyncError(Exception):
    """The root of the tree; the message tells the person what to do."""

    details: dict[str, Any] | None = None


class KeyConflict(SyncError):
    """A key already names a different event; nothing of the batch was stored."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(
            f"event key {key!r} was already used for a different event; "
            "an idempotency key must be sent again only with the same event, so pick a new key"
        )


class UnknownRelayKey(SyncError):
    """A ``retry`` or ``drop`` named a key the relay does not hold in a fitting state."""


class DropWithoutReason(SyncError, ValueError):
    """A relay ``drop`` needs a reason, logged with the event."""


class StoreTooNew(SyncError):
    """A durable store's schema version is newer than this code knows: refuse to open, never drop."""

    def __init__(self, path: Path | str, what: str, version: int, known: int) -> None:
        self.path = path
        """The store's file, or (on PostgreSQL) the schema and database it lives in."""
        self.version = version
        kept = "the file" if not isinstance(path, str) else "the schema"
        super().__init__(
            f"{path} was written by a newer State Hub ({what} version {version}, this one knows up to "
            f"{known}); upgrade State Hub, and keep {kept}: it holds what nothing else does"
        )


class StoreFull(SyncError):
    """The disk under a durable store is full: the write was rolled back, nothing of it was kept.

    ``retry_after`` is the seconds a client should wait before sending again; the
    store takes writes again by itself once there is room.
    """

    retry_after = 10

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        super().__init__(
            f"the disk holding {path} is full: the {what} could not store this, and nothing of it was "
            f"kept; free space there, then send it again (retry after {self.retry_after} s)"
        )


class StoreUnreachable(SyncError):
    """The PostgreSQL database holding a durable store refused or dropped the connection: nothing
    of the operation was kept (canon/ADR-046); the next one connects again."""

    retry_after = 10

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        super().__init__(
            f"the {where} does not answer ({reason}); nothing of this was kept: check that PostgreSQL "
            f"runs and the hub may connect (STATEHUB_STATE_URL, STATEHUB_DATABASE_URL), then try again"
        )


class ApplierLockLost(SyncError):
    """The PostgreSQL session holding a repo's applier lock ended (a dropped connection, a
    restarted server, ``pg_terminate_backend``): the lock went with it and another replica may
    hold it now, so this one must not publish a commit nor mark an event of the repo; its events
    stay pending and the next pass, whoever runs it, applies them (canon/ADR-054)."""

    def __init__(self, repo: str, reason: str) -> None:
        self.repo = repo
        super().__init__(
            f"the applier lock of repo {repo!r} was lost ({reason}); nothing more is written there "
            "in this pass, and its events stay pending for the next"
        )


class StoreNotPermitted(SyncError):
    """The state database's user may not create what a store needs (``CREATE`` on the database
    for the schema :data:`sync._durable_pg.STATE_SCHEMA`, or on that schema for its tables):
    nothing was created; the message names the grant to ask for (docs/deployment.md, "Durable
    state on PostgreSQL"). A setup problem: no retry helps until an administrator acts."""

    def __init__(self, where: str, user: str, database: str, reason: str) -> None:
        self.where = where
        super().__init__(
            f"the {where} cannot be created: the database user {user} may not ({reason}); "
            f"as an administrator run GRANT CREATE ON DATABASE {database} TO {user} once, or create "
            f"the schema for it: CREATE SCHEMA statehub_state AUTHORIZATION {user}"
        )


class RoomError(SyncError):
    """Something a room refuses; ``status`` is the HTTP-like status the hub answers with."""

    status = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        self.message = message
        if status is not None:
            self.status = status
        super().__init__(message)


class RoomFileError(RoomError):
    """The room's file may not be read or written: nothing of it is sent to anyone (ADR-022)."""


class RoomInputError(RoomError):
    """A client's message or name that the room does not take."""
