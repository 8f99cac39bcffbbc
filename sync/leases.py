"""The lease store: who holds which task until when, in the write buffer's own store (ADR-032).

A claim must be decided once for every process on one hub home (the server, a
CLI command) and every replica of a fleet hub: so the decision is made in a
write transaction of the buffer (:class:`sync._durable.DurableStore`): ``BEGIN
IMMEDIATE`` on ``buffer.sqlite3``, or on PostgreSQL a transaction that first
takes the buffer's write lock (an advisory lock, canon/ADR-049), either of which
queues every other writer, and the won claim's ``task.claim`` event is inserted
in the same transaction (:func:`sync.buffer.insert_events`). A claim is
therefore never won without its event, nor its event stored without the lease;
two claims can never both win, whichever replica decides them. The cache is not
consulted for who holds what: it is disposable and lags.

The ``lease`` table (version 2 of the file, :mod:`sync._events_file`) keeps one
row per task that was ever claimed: its live claim (``held``) or its last one
(``released``, with the key of the ``task.release`` event that ended it and who
sent it). Times are POSIX seconds (UTC). Rows are never deleted: the next claim
of the task replaces its row.

Group commit: a commit on this file waits for the disk (``synchronous=FULL``),
so one transaction per claim would cap claims at the disk's fsync rate. Claims
that arrive while another batch is being decided wait in a queue; the next
thread to take the store's turn runs all of them in one transaction, each in its
own savepoint (an error in one undoes that one only), and commits once
(:meth:`LeaseStore.run`). Each decision still sees every decision before it.

This module stores and reads; the rules (what is claimable, what a 409 says)
are the hub's (``statehub.claims``), which works inside :meth:`LeaseStore.transaction`.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import astuple, dataclass, fields
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from sync._durable import DurableStore
from sync._events_file import EVENTS_FILE_STEPS, EVENTS_PG_STEPS, EVENTS_STORE
from sync.buffer import Listener, Outcome, Said, Submission, accepted, claim_said, insert_events, tell
from sync.lease_bounds import DEFAULT_LEASE_S, MAX_LEASE_S

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from sync._durable import BufferDb
    from sync._durable_pg import PgStateDb
    from sync._state_db import StateLocation

T = TypeVar("T")

__all__ = [
    "DEFAULT_LEASE_S",
    "IDLE_READERS",
    "MAX_LEASE_S",
    "STATUS_KINDS",
    "Lease",
    "LeaseStore",
    "LeaseTransaction",
    "PendingChange",
]

IDLE_READERS = 8
"""Read connections the lease store keeps open between reads; on the file more are opened while
more threads read at once, and closed after; on PostgreSQL (a connection is a server process) no
more are opened: a read waits for one of these."""
STATUS_KINDS = ("task.status", "task.claim", "task.release")
"""The event kinds that change a task's status: what a pending event overlays on the cache."""


@dataclass(frozen=True, slots=True)
class Lease:
    """One row of the ``lease`` table (see the module docstring)."""

    ref: str
    repo: str
    workplan: str
    task: str
    actor: str
    claim_key: str
    prior_owner: str | None
    """The task's owner before this claim (restored on release); None: it had none."""
    lease_s: float
    """The lease's length in seconds, what a heartbeat extends it by unless told otherwise."""
    claimed_at: float
    expires_at: float
    state: str
    """``held`` or ``released``."""
    release_key: str | None = None
    released_at: float | None = None
    released_by: str | None = None

    def live(self, now: float) -> bool:
        """Held and not run out at ``now``."""
        return self.state == "held" and self.expires_at > now


@dataclass(frozen=True, slots=True)
class PendingChange:
    """What the task's pending status events, folded in acceptance order, will make of it."""

    status: str
    owner: str | None
    owner_changed: bool
    """False: the events leave the owner as the file has it (``task.status`` only)."""


_COLUMNS = ", ".join(f.name for f in fields(Lease))


def _lease(row: Sequence[Any] | None) -> Lease | None:
    return Lease(*row) if row is not None else None


_HOLD = (
    f"INSERT INTO lease ({_COLUMNS}) VALUES ({', '.join('?' * len(fields(Lease)))}) "  # noqa: S608 - constant column names
    f"ON CONFLICT (ref) DO UPDATE SET {', '.join(f'{f.name} = excluded.{f.name}' for f in fields(Lease)[1:])}"
)
"""A task's new claim, replacing its last one."""

_CONCAT = {
    "sqlite": "SELECT group_concat(ref, char(31)) FROM ({query})",
    "postgresql": "SELECT string_agg(ref, chr(31)) FROM ({query}) AS refs",
}
"""A query's refs as one row, separated by U+001F (:meth:`LeaseTransaction._refs`)."""


_EXCLUDED = (
    "SELECT ref FROM lease WHERE state = 'held' AND expires_at > ? "
    "UNION ALL SELECT l.ref FROM lease l JOIN relay r ON r.key = l.claim_key "
    "WHERE r.state = 'parked' "
    "UNION ALL SELECT workplan || '-' || task FROM event "
    "WHERE state = 'pending' AND kind IN (?, ?, ?)"
)


@dataclass(frozen=True, slots=True)
class _Excluded:
    """:meth:`LeaseStore.excluded_refs` as read at ``read_at``, while the file was at ``version``."""

    version: int
    """``PRAGMA data_version`` of the memo's connection, read before the refs."""
    read_at: float
    until: float
    """The first live lease's end: from then on the set is no longer what a read would give."""
    refs: frozenset[str]


class LeaseTransaction:
    """Reads and writes of one write transaction of the buffer (or, from
    :meth:`LeaseStore.reading`, reads outside one)."""

    def __init__(self, db: BufferDb, dialect: Literal["sqlite", "postgresql"]) -> None:
        self._db = db
        self._dialect = dialect
        self.said: list[Said] = []
        """What this transaction's writes change, told to the store's listeners after it commits."""

    def lease(self, ref: str) -> Lease | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM lease WHERE ref = ?", (ref,)).fetchone()  # noqa: S608 - constant column names
        return _lease(row)

    def pending_change(self, workplan: str, task: str) -> PendingChange | None:
        """The status (and owner) the task's pending events give it, or None when none is pending."""
        rows = self._db.execute(
            "SELECT kind, event FROM event WHERE state = 'pending' AND workplan = ? AND task = ? "
            "AND kind IN (?, ?, ?) ORDER BY seq",
            (workplan, task, *STATUS_KINDS),
        ).fetchall()
        change: PendingChange | None = None
        for kind, text in rows:
            event = json.loads(text)
            if kind == "task.claim":
                change = PendingChange("in-progress", event.get("actor"), owner_changed=True)
            elif kind == "task.release":
                change = PendingChange(event.get("status", "todo"), event.get("owner"), owner_changed=True)
            else:
                owner = change.owner if change else None
                changed = change.owner_changed if change else False
                change = PendingChange(event.get("status", "todo"), owner, owner_changed=changed)
        return change

    def held(self, now: float | None = None, *, expired: bool = False, limit: int = 10_000) -> list[Lease]:
        """Held leases: all (``now`` None), live at ``now``, or run out by ``now`` (``expired``)."""
        args: tuple[float, ...] = ()
        if now is None:
            where = "state = 'held'"
        elif expired:
            where, args = "state = 'held' AND expires_at <= ?", (now,)
        else:
            where, args = "state = 'held' AND expires_at > ?", (now,)
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM lease WHERE {where} ORDER BY expires_at LIMIT ?",  # noqa: S608 - constant SQL
            (*args, limit),
        ).fetchall()
        return [Lease(*r) for r in rows]

    def live_refs(self, now: float) -> set[str]:
        """Refs of every task under a lease that has not run out at ``now``."""
        return self._refs("SELECT ref FROM lease WHERE state = 'held' AND expires_at > ?", (now,))

    def excluded_refs(self, now: float) -> set[str]:
        """Refs no claim can win now whatever the cache says: under a live lease, contested (the
        upstream refused this hub's last claim), or with a pending status event (the claimable list).
        ``UNION ALL``: the set removes repeats; ``UNION`` sorted them first in a temporary b-tree
        (1.1 against 0.65 ms with 1,000 leases held). :meth:`LeaseStore.excluded_refs` remembers it."""
        return self._refs(_EXCLUDED, (now, *STATUS_KINDS))

    def next_expiry(self, now: float) -> float:
        """When the first lease live at ``now`` runs out (infinity when none is live)."""
        row = self._db.execute(
            "SELECT min(expires_at) FROM lease WHERE state = 'held' AND expires_at > ?", (now,)
        ).fetchone()
        return float(row[0]) if row is not None and row[0] is not None else math.inf

    def _refs(self, query: str, args: tuple[object, ...]) -> set[str]:
        """The refs ``query`` selects, read as one row: each row read lets go of the GIL and waits
        to get it back, and these lists run to thousands (bench/claims.py, canon/ADR-037)."""
        row = self._db.execute(_CONCAT[self._dialect].format(query=query), args).fetchone()
        return set(row[0].split("\x1f")) if row is not None and row[0] else set()

    def refused(self, claim_key: str) -> str | None:
        """Why the file refused the ``task.claim`` event ``claim_key`` (rejected), or None."""
        row = self._db.execute(
            "SELECT reason FROM event WHERE key = ? AND state = 'rejected'", (claim_key,)
        ).fetchone()
        return str(row[0] or "rejected") if row is not None else None

    def contested(self, claim_key: str) -> str | None:
        """Why the upstream refused the relayed claim ``claim_key`` (it parked it), or None."""
        row = self._db.execute(
            "SELECT reason FROM relay WHERE key = ? AND state = 'parked'", (claim_key,)
        ).fetchone()
        return str(row[0] or "the upstream refused the claim") if row is not None else None

    def hold(self, lease: Lease) -> None:
        """Record ``lease`` as the task's claim (replacing its last one)."""
        self._db.execute(_HOLD, astuple(lease))
        self._say("claim.won", lease)

    def renew(self, ref: str, expires_at: float, lease_s: float) -> None:
        self._db.execute(
            "UPDATE lease SET expires_at = ?, lease_s = ? WHERE ref = ? AND state = 'held'",
            (expires_at, lease_s, ref),
        )
        self._say("claim.renewed", self.lease(ref))

    def release(
        self, ref: str, release_key: str, released_by: str, at: float, *, expired: bool = False
    ) -> None:
        """End the claim on ``ref``; ``expired``: the hub ends it because its lease ran out."""
        held = self.lease(ref)
        self._db.execute(
            "UPDATE lease SET state = 'released', release_key = ?, released_by = ?, released_at = ? "
            "WHERE ref = ? AND state = 'held'",
            (release_key, released_by, at, ref),
        )
        if held is not None and held.state == "held":
            self._say("claim.expired" if expired else "claim.released", held, by=released_by)

    def insert(self, submissions: Sequence[Submission]) -> list[Outcome]:
        """Store events in this transaction (``sync.buffer.insert_events``; a changed key raises)."""
        outcomes = insert_events(self._db, submissions, dialect=self._dialect)
        self.said += [
            accepted(s) for s, o in zip(submissions, outcomes, strict=False) if o == Outcome.ACCEPTED
        ]
        return outcomes

    def _say(self, kind: str, lease: Lease | None, by: str | None = None) -> None:
        if lease is None:
            return
        self.said.append(
            claim_said(
                kind,
                lease.ref,
                lease.repo,
                lease.workplan,
                lease.task,
                lease.actor,
                lease.claim_key,
                lease.expires_at,
                lease.lease_s,
                by,
            )
        )


@dataclass(slots=True)
class _Work(Generic[T]):
    """One caller's decision, waiting for its batch to commit."""

    decide: Callable[[LeaseTransaction], T]
    result: T | None = None
    error: BaseException | None = None
    done: bool = False


class LeaseStore(DurableStore):
    """The lease table of the write buffer at ``where`` (``buffer.sqlite3``, or the state schema);
    one per process, safe to share between threads."""

    def __init__(self, where: StateLocation) -> None:
        super().__init__(
            where, EVENTS_FILE_STEPS, "events file", store=EVENTS_STORE, postgres_steps=EVENTS_PG_STEPS
        )
        self._queue: list[_Work[object]] = []
        self._queue_lock = threading.Lock()
        self._turn = threading.Lock()
        """Held by the thread deciding a batch."""
        self._idle: list[sqlite3.Connection | PgStateDb] = []
        """Read connections not in use (:meth:`reading`): at most :data:`IDLE_READERS` are kept."""
        self._idle_lock = threading.Lock()
        self._readers = threading.BoundedSemaphore(IDLE_READERS) if self.dialect == "postgresql" else None
        """On PostgreSQL, the reads that may run at once (each on one of the kept connections)."""
        self._closed = False
        self._memo_db: sqlite3.Connection | None = None
        """The connection :meth:`excluded_refs` reads on (it never writes: its ``data_version``
        changes exactly when another connection, in any process, committed to the file)."""
        self._memo: _Excluded | None = None
        self._memo_lock = threading.Lock()
        self.on_states: list[Listener] = []
        """Told every claim won, renewed, released or expired, and every event stored with one
        (:class:`sync.buffer.Said`), after the commit that did it."""

    def close(self) -> None:
        with self._idle_lock:
            self._closed = True
            for reader in self._idle:
                reader.close()
            self._idle.clear()
        with self._memo_lock:
            if self._memo_db is not None:
                self._memo_db.close()
            self._memo_db, self._memo = None, None
        super().close()

    def excluded_refs(self, now: float) -> frozenset[str]:
        """What the claimable list leaves out at ``now`` (:meth:`LeaseTransaction.excluded_refs`),
        remembered while the file is unchanged and no live lease has run out.

        The set is read again when ``PRAGMA data_version`` of a connection that only reads this
        file has moved (any other connection, in this process or another, committed since: a
        claim, a release, an event stored or applied), when ``now`` reaches the earliest end of a
        lease it counted as live, or when ``now`` is before the read (a clock set back). The
        version is read before the refs, so a commit between the two only makes the next call read
        again. With 1,000 leases held the read costs ~0.5 ms of SQLite per list (bench/claims.py,
        canon/ADR-042); the check costs a few microseconds. Lists wait for each other's read here
        instead of each making the same one.

        On PostgreSQL nothing tells a connection that another one committed as cheaply: the set is
        read each time (one round trip, on a reading connection).
        """
        if self.dialect == "postgresql":
            with self.reading() as reader:
                return frozenset(reader.excluded_refs(now))
        assert self.path is not None
        with self._memo_lock:
            if self._closed:
                raise sqlite3.ProgrammingError("the lease store is closed")
            if self._memo_db is None:
                self._memo_db = sqlite3.connect(
                    self.path, check_same_thread=False, isolation_level=None, timeout=30
                )
                self._memo_db.execute("PRAGMA busy_timeout=30000")
            db = self._memo_db
            version = int(db.execute("PRAGMA data_version").fetchone()[0])
            memo = self._memo
            if memo is not None and memo.version == version and memo.read_at <= now < memo.until:
                return memo.refs
            tx = LeaseTransaction(db, "sqlite")
            db.execute("BEGIN")  # the refs and the first lease end from one snapshot
            try:
                refs = frozenset(tx.excluded_refs(now))
                until = tx.next_expiry(now)
            finally:
                db.execute("COMMIT")
            self._memo = _Excluded(version, now, until, refs)
            return refs

    def run(self, decide: Callable[[LeaseTransaction], T]) -> T:
        """``decide(tx)`` inside a write transaction shared with the decisions queued beside it
        (group commit, see the module docstring); its result once the transaction committed.

        An exception ``decide`` raises undoes its own writes only (a savepoint) and is raised
        here; a failed commit (a full disk: StoreFull) is raised to every caller of the batch.
        """
        work: _Work[T] = _Work(decide)
        with self._queue_lock:
            self._queue.append(work)  # type: ignore[arg-type]
        while not work.done:
            with self._turn:
                if work.done:
                    break
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._decide(batch)
        if work.error is not None:
            raise work.error
        return work.result  # type: ignore[return-value]

    def _decide(self, batch: list[_Work[object]]) -> None:
        said: list[Said] = []
        try:
            with self._transaction() as db:
                tx = LeaseTransaction(db, self.dialect)
                for work in batch:
                    db.execute("SAVEPOINT decision")
                    told = len(tx.said)
                    try:
                        work.result = work.decide(tx)
                    except Exception as error:  # noqa: BLE001 - handed to its caller, the batch goes on
                        db.execute("ROLLBACK TO SAVEPOINT decision")
                        del tx.said[told:]
                        work.error = error
                    db.execute("RELEASE SAVEPOINT decision")
                said = tx.said
        except Exception as error:  # noqa: BLE001 - the commit failed: every caller of the batch hears it
            said = []
            for work in batch:
                work.result, work.error = None, error
        finally:
            try:
                tell(self.on_states, said)
            finally:
                for work in batch:
                    work.done = True

    @contextmanager
    def transaction(self) -> Iterator[LeaseTransaction]:
        """One write transaction of its own: every other writer of the buffer, in any process or
        replica, waits until it ends; an error inside rolls back whole."""
        with self._transaction() as db:
            tx = LeaseTransaction(db, self.dialect)
            yield tx
        tell(self.on_states, tx.said)

    @contextmanager
    def reading(self) -> Iterator[LeaseTransaction]:
        """Reads on a connection of their own, taken from the idle ones or opened (each statement
        sees the last commit; WAL lets them run beside a write and beside each other): for answers
        that decide nothing, such as the claimable list. On PostgreSQL at most :data:`IDLE_READERS`
        run at once (a connection is a server process there: they are kept, never opened per read)."""
        if self._readers is None:
            with self._reader() as tx:
                yield tx
            return
        with self._readers, self._reader() as tx:
            yield tx

    @contextmanager
    def _reader(self) -> Iterator[LeaseTransaction]:
        with self._idle_lock:
            reader = self._idle.pop() if self._idle else None
        if reader is None:
            reader = self._open_reader()
        try:
            yield LeaseTransaction(reader, self.dialect)
        finally:
            with self._idle_lock:
                keep = not self._closed and len(self._idle) < IDLE_READERS
                if keep:
                    self._idle.append(reader)
            if not keep:
                reader.close()

    def _open_reader(self) -> sqlite3.Connection | PgStateDb:
        """A connection of its own for :meth:`reading`: to the file, or to the state schema."""
        if self.path is None:
            from sync._durable_pg import PgState, PgStateDb

            assert isinstance(self.location, PgState)
            return PgStateDb(self.location, EVENTS_STORE, EVENTS_PG_STEPS, self.what)
        reader = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        reader.execute("PRAGMA busy_timeout=30000")
        return reader
