"""The durable write buffer: every accepted event, on disk before the client hears "accepted".

Its own SQLite file in the data dir, apart from the cache, so deleting or
rebuilding the cache never touches it (ARCHITECTURE.md: pending events are
the only other durable state). WAL with ``synchronous=FULL`` means a commit
has reached the disk when ``append`` returns, which is what a 202 promises.
On a fleet hub whose state is on PostgreSQL the same tables live in the state
schema (canon/ADR-049), the commit waits for the server's WAL flush, and every
replica shares them.

The ``event`` table is an append-only log in acceptance order (``seq``); only
an event's state moves: pending -> applied | rejected, with a reason. An event
is never deleted. Several processes (the server, a CLI command, replicas) may open the
same buffer at once; their writes are serialised (:class:`~sync._durable.DurableStore`).
An event is stored once per key: on the file the transaction's one writer reads the keys first;
on PostgreSQL the unique index decides (``INSERT ... ON CONFLICT (key) DO NOTHING RETURNING``,
one statement per batch), and the stored event of a key that was there is compared after.

The ``writeback`` table holds the write-backs in flight (files about to be
written, with their hashes before and after, and the HEAD they started from),
so a hub killed between writing a file, committing it and marking its events
applied can tell, on restart, what it had already done. The upstream relay will keep its own state
per event in a table of its own keyed by ``event.key`` (see ADR-006); nothing
here needs to change for it.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from sync._durable import DurableStore
from sync._events_file import EVENTS_FILE_STEPS, EVENTS_PG_STEPS, EVENTS_STORE
from sync.errors import KeyConflict

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sync._durable import BufferDb
    from sync._state_db import StateLocation

__all__ = [
    "HUB_ACTOR",
    "BufferCounts",
    "EventRecord",
    "EventResult",
    "EventResults",
    "EventState",
    "KeyConflict",
    "Listener",
    "Outcome",
    "PendingGroup",
    "Said",
    "Submission",
    "WriteBuffer",
    "Writeback",
    "accepted",
    "insert_events",
    "tell",
]


HUB_ACTOR = "statehub"
"""The actor of what the hub does by itself to a lease: the release of a run-out lease
(``statehub.claims``), the end of one whose ``task.claim`` the file refused."""


class EventState(StrEnum):
    PENDING = "pending"
    APPLIED = "applied"
    REJECTED = "rejected"


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    """Only with ``append(..., conflicts="report")``: the key names a different event; not stored."""


@dataclass(frozen=True, slots=True)
class Submission:
    """One validated event ready to be stored.

    ``payload`` is what the client sent (canonical JSON), compared to tell a
    retry from a conflicting reuse of a key; ``event`` is the full event with
    what the hub filled in (repo, time) and is what gets applied.
    """

    key: str
    kind: str
    repo: str
    payload: dict[str, Any]
    event: dict[str, Any]
    workplan: str | None = None
    task: str | None = None


class EventRecord(msgspec.Struct, frozen=True):
    """One event as the buffer holds it: ``GET /events/{key}``, the items of ``GET /events``.

    ``seq`` is the acceptance order; times are UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``;
    ``commit`` is the commit that applied it (None while pending, when rejected, or
    when the file already said so); ``event`` is the full event as applied (what the
    client sent, with the ``repo`` and ``at`` the hub filled in).
    """

    seq: int
    key: str
    kind: str
    repo: str
    state: EventState
    reason: str | None
    """Why it was rejected, or why it is still pending; None otherwise."""
    accepted_at: str
    applied_at: str | None
    commit: str | None
    event: dict[str, Any]


class PendingGroup(msgspec.Struct, frozen=True):
    """Pending events of one repo that wait for one reason (None: not tried yet)."""

    reason: str | None
    count: int
    oldest_accepted_at: str
    keys: list[str]
    """The first five, oldest first."""


class EventResult(msgspec.Struct, frozen=True):
    """What ``POST /events`` answers for one event, in the order sent: ``{"results": [EventResult]}``.

    ``result``: accepted (stored now), duplicate (stored before under this key
    with the same content), rejected (only with ``?each=true``: invalid, or the
    key names a different event; nothing stored). With ``?each=true`` every
    result also carries ``state`` (the event's state here; None when rejected)
    and ``reason``; without it they are left out of the JSON (``UNSET``).
    """

    key: str | None
    """None when a rejected item carried no usable key."""
    result: Literal["accepted", "duplicate", "rejected"]
    state: EventState | msgspec.UnsetType | None = msgspec.UNSET
    reason: str | msgspec.UnsetType | None = msgspec.UNSET


class EventResults(msgspec.Struct, frozen=True):
    """The body of ``POST /events``' 202."""

    results: list[EventResult]


class BufferCounts(msgspec.Struct, frozen=True):
    """How many events the buffer holds in each state."""

    pending: int
    applied: int
    rejected: int


@dataclass(frozen=True, slots=True)
class Writeback:
    """A write-back that started and has not been marked finished: files, hashes, keys."""

    repo: str
    head: str | None
    keys: list[str]
    files: list[dict[str, str]]
    """``{"path", "before", "after"}``: git blob shas of the text read and the text written."""
    id: int | None = None
    checkout: str = ""
    """The checkout it was made in: the id kept in the clone (``statehub.events.gitwork``), or
    ``<host>:<work tree>`` in a record from before (buffer layout 3), or ``""`` (older still: anyone's).
    Replicas sharing one state schema but not their checkouts resolve only their own (canon/ADR-053)."""
    place: str = ""
    """Where that checkout was when the record was made, ``<host>:<git dir>`` (``""`` before layout 4):
    what tells a copy of a clone from the clone moved."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _canonical(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Said:
    """A change of an event's or a claim's state, for the hub's change log (``statehub.changes``):
    ``type`` (``event.accepted|applied|waiting|rejected``, ``claim.won|renewed|released|expired``),
    the repo, workplan and actor it concerns, and its data (key, kind, reason, ...)."""

    type: str
    repo: str | None
    workplan: str | None
    actor: str | None
    data: dict[str, Any]


Listener = Callable[[list[Said]], None]
"""Told, after each commit, what that commit changed (never inside the transaction)."""


def tell(listeners: Sequence[Listener], said: list[Said]) -> None:
    """Call each listener with ``said`` (nothing when empty)."""
    if said:
        for listener in listeners:
            listener(said)


def claim_said(
    kind: str,
    ref: str,
    repo: str,
    workplan: str,
    task: str,
    actor: str,
    claim: str,
    expires_at: float,
    lease_s: float,
    by: str | None = None,
) -> Said:
    """A ``claim.*`` of a lease (``claim.won|renewed|released|expired``), as the change stream sends
    it: the holder ``actor``, the claim's event key, ``expires_at`` (seconds since the epoch) and the
    lease's length; ``by`` names who ended it."""
    data: dict[str, Any] = {"ref": ref, "workplan": workplan, "task": task, "actor": actor, "claim": claim}
    data |= {"expires_at": expires_at, "lease_s": lease_s}
    if by is not None:
        data["by"] = by
    return Said(kind, repo, workplan, actor, data)


def accepted(submission: Submission) -> Said:
    """The ``event.accepted`` of a stored submission."""
    event = submission.event
    actor = event.get("actor") if isinstance(event.get("actor"), str) else None
    data = {"key": submission.key, "kind": submission.kind, "workplan": submission.workplan}
    data |= {"task": submission.task, "actor": actor, "reason": None}
    return Said("event.accepted", submission.repo, submission.workplan, actor, data)


_EVENT_COLUMNS = (
    "seq, key, kind, repo, state, reason, accepted_at, applied_at, commit_sha, event"  # _record's order
)


class WriteBuffer(DurableStore):
    """The buffer at ``where`` (its file, or the state schema), opened once per process; safe to
    share between threads.

    ``on_states`` listeners hear every event it accepts, leaves waiting with a new
    reason, applies or rejects (:class:`Said`), after the commit that did it.
    """

    def __init__(self, where: StateLocation) -> None:
        super().__init__(
            where, EVENTS_FILE_STEPS, "events file", store=EVENTS_STORE, postgres_steps=EVENTS_PG_STEPS
        )
        self.on_states: list[Listener] = []

    # accepting ---------------------------------------------------------------------------------

    def append(self, submissions: Sequence[Submission], conflicts: str = "raise") -> list[Outcome]:
        """Store new events in order; a key seen before with the same payload is a duplicate.

        Raises KeyConflict (and stores nothing) when a key names a different event,
        unless ``conflicts="report"`` (a relayed batch, ADR-019): then that event
        alone is not stored and its outcome is ``CONFLICT``.
        """
        with self._transaction() as db:
            outcomes = insert_events(db, submissions, conflicts, dialect=self.dialect)
        if self.on_states:
            stored = [s for s, o in zip(submissions, outcomes, strict=False) if o == Outcome.ACCEPTED]
            tell(self.on_states, [accepted(s) for s in stored])
        return outcomes

    # reading -----------------------------------------------------------------------------------

    def get(self, key: str) -> EventRecord | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_EVENT_COLUMNS} FROM event WHERE key = ?", (key,)).fetchone()  # noqa: S608 - constant column names
        return _record(row) if row else None

    def list_events(
        self,
        *,
        state: EventState | None = None,
        repo: str | None = None,
        workplan: str | None = None,
        task: str | None = None,
        kind: str | None = None,
        newest_first: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[EventRecord], int]:
        """Events in acceptance order (``newest_first``: reversed), filtered, and how many match.

        ``workplan`` and ``task`` (a task id such as ``T02``, with its workplan) match the
        event's own fields; ``kind`` its kind (``task.status``)."""
        where, args = _filters(state=state, repo=repo, workplan=workplan, task=task, kind=kind)
        order = "DESC" if newest_first else "ASC"
        with self._lock:
            total = self._db.execute(f"SELECT count(*) FROM event{where}", args).fetchone()[0]  # noqa: S608 - `where` holds constant column names and ? placeholders
            rows = self._db.execute(
                f"SELECT {_EVENT_COLUMNS} FROM event{where} ORDER BY seq {order} LIMIT ? OFFSET ?",  # noqa: S608 - `where` holds constant column names and ? placeholders, `order` a constant
                [*args, limit, offset],
            ).fetchall()
        return [_record(r) for r in rows], int(total)

    def states(self, keys: Sequence[str]) -> dict[str, tuple[EventState, str | None]]:
        """The state and reason of each known key (a relay asks what became of its events)."""
        found: dict[str, tuple[EventState, str | None]] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(f"SELECT key, state, reason FROM event WHERE key IN ({marks})", chunk)  # noqa: S608 - only the ? placeholders are interpolated
                found.update({r[0]: (EventState(r[1]), r[2]) for r in rows})
        return found

    def stored_as_sent(self, items: Sequence[Any]) -> dict[int, tuple[str, EventState, str | None]]:
        """Which of ``items`` (raw events) are stored exactly as sent: index -> (key, state, reason).

        A relaying hub resends what it sent until it is applied; this answers
        those resends without validating them again.
        """
        wanted = {
            i: item["key"]
            for i, item in enumerate(items)
            if isinstance(item, dict) and isinstance(item.get("key"), str)
        }
        rows: dict[str, tuple[str, EventState, str | None]] = {}
        keys = list(set(wanted.values()))
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                found = self._db.execute(
                    f"SELECT key, payload, state, reason FROM event WHERE key IN ({marks})",  # noqa: S608 - only the ? placeholders are interpolated
                    chunk,
                )
                rows.update({r[0]: (r[1], EventState(r[2]), r[3]) for r in found})
        same: dict[int, tuple[str, EventState, str | None]] = {}
        for index, key in wanted.items():
            if key in rows and rows[key][0] == _canonical(items[index]):
                same[index] = (key, rows[key][1], rows[key][2])
        return same

    def pending(self, repo: str | None = None, limit: int = 5000) -> list[EventRecord]:
        where, args = _filters(state=EventState.PENDING, repo=repo)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_EVENT_COLUMNS} FROM event{where} ORDER BY seq LIMIT ?",  # noqa: S608 - `where` holds constant column names and ? placeholders
                [*args, limit],
            )
            return [_record(r) for r in rows.fetchall()]

    def pending_repos(self) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT repo FROM event WHERE state = 'pending' GROUP BY repo ORDER BY min(seq)"
            ).fetchall()
        return [r[0] for r in rows]

    def oldest_pending_at(self) -> str | None:
        """``accepted_at`` (UTC, ISO 8601 with ``Z``) of the oldest pending event, None when none wait."""
        with self._lock:
            found = self._db.execute("SELECT min(accepted_at) FROM event WHERE state = 'pending'").fetchone()
        return found[0] if found and isinstance(found[0], str) else None

    def pending_groups(self, repo: str) -> list[PendingGroup]:
        """The pending events of ``repo`` grouped by the reason they wait for, the group waiting
        longest first (what ``statehub doctor`` shows)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT reason, count(*), min(accepted_at), min(seq) FROM event "
                "WHERE state = 'pending' AND repo = ? GROUP BY reason ORDER BY min(seq)",
                (repo,),
            ).fetchall()
            groups = []
            same = "IS" if self.dialect == "sqlite" else "IS NOT DISTINCT FROM"
            for reason, count, oldest, _seq in rows:
                keys = self._db.execute(
                    f"SELECT key FROM event WHERE state = 'pending' AND repo = ? AND reason {same} ? "  # noqa: S608 - a constant operator
                    "ORDER BY seq LIMIT 5",
                    (repo, reason),
                ).fetchall()
                groups.append(PendingGroup(reason, int(count), oldest, [k[0] for k in keys]))
        return groups

    def pending_task_adds(self, workplan: str) -> dict[str, str]:
        """Task ids that pending ``task.add`` events will create in ``workplan``, with their titles."""
        with self._lock:
            rows = self._db.execute(
                "SELECT task, event FROM event WHERE state = 'pending' AND kind = 'task.add' "
                "AND workplan = ?",
                (workplan,),
            ).fetchall()
        return {r[0]: json.loads(r[1]).get("title", "") for r in rows}

    def counts(self) -> BufferCounts:
        with self._lock:
            found = dict(self._db.execute("SELECT state, count(*) FROM event GROUP BY state").fetchall())
        return BufferCounts(**{state.value: int(found.get(state.value, 0)) for state in EventState})

    # applying ----------------------------------------------------------------------------------

    def wait(self, keys: Sequence[str], reason: str) -> None:
        """Leave events pending, saying why they did not apply yet (``event.waiting`` when the reason
        is new for an event)."""
        with self._transaction() as db:
            said = self._states(db, keys, "event.waiting", lambda _key: reason, only_new_reason=reason)
            db.executemany(
                "UPDATE event SET reason = ? WHERE key = ? AND state = 'pending'",
                [(reason, key) for key in keys],
            )
        tell(self.on_states, said)

    def _states(
        self,
        db: BufferDb,
        keys: Sequence[str],
        kind: str,
        reason: Callable[[str], str | None],
        *,
        only_new_reason: str | None = None,
        commits: dict[str, str | None] | None = None,
    ) -> list[Said]:
        """What marking the pending events ``keys`` as ``kind`` will say (nothing without listeners)."""
        if not self.on_states or not keys:
            return []
        said = []
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = db.execute(
                f"SELECT key, kind, repo, workplan, task, reason, event FROM event "  # noqa: S608 - only ? placeholders
                f"WHERE state = 'pending' AND key IN ({marks}) ORDER BY seq",
                chunk,
            ).fetchall()
            for key, event_kind, repo, workplan, task, old_reason, text in rows:
                if only_new_reason is not None and old_reason == only_new_reason:
                    continue
                actor = json.loads(text).get("actor")
                actor = actor if isinstance(actor, str) else None
                data: dict[str, Any] = {"key": key, "kind": event_kind, "workplan": workplan, "task": task}
                data |= {"actor": actor, "reason": reason(key)}
                if commits is not None:
                    data["commit"] = commits.get(key)
                said.append(Said(kind, repo, workplan, actor, data))
        return said

    def begin_writeback(self, writeback: Writeback) -> int:
        """Record a write-back before its files are touched; returns its id for ``finish``."""
        with self._transaction() as db:
            row = db.execute(
                "INSERT INTO writeback (repo, head, keys, files, started_at, checkout, place) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    writeback.repo,
                    writeback.head,
                    json.dumps(writeback.keys),
                    json.dumps(writeback.files),
                    _now(),
                    writeback.checkout,
                    writeback.place,
                ),
            ).fetchone()
            return int(row[0])

    def writebacks(self, repo: str, *checkouts: str) -> list[Writeback]:
        """Write-backs of ``repo`` left unfinished that name one of ``checkouts`` (a checkout's id and
        the name records gave it before) or none (recorded before records named their checkout),
        oldest first. Which of them a checkout resolves is the caller's to decide (their ``place``)."""
        names = [*dict.fromkeys(checkouts), ""]
        marks = ",".join("?" * len(names))
        with self._lock:
            rows = self._db.execute(
                f"SELECT repo, head, keys, files, id, checkout, place FROM writeback "  # noqa: S608 - only ? placeholders
                f"WHERE repo = ? AND checkout IN ({marks}) ORDER BY id",
                (repo, *names),
            ).fetchall()
        return [
            Writeback(r[0], r[1], json.loads(r[2]), json.loads(r[3]), int(r[4]), r[5], r[6]) for r in rows
        ]

    def finish(
        self,
        applied: dict[str, str | None],
        rejected: dict[str, str],
        writebacks: Sequence[int] = (),
    ) -> None:
        """Mark events applied (with their commit, None when the file already said so) or rejected,
        and close the write-backs that did it, in one transaction."""
        stamp = _now()
        with self._transaction() as db:
            said = self._states(db, list(applied), "event.applied", lambda _key: None, commits=applied)
            said += self._states(db, list(rejected), "event.rejected", rejected.__getitem__)
            db.executemany(
                "UPDATE event SET state = 'applied', reason = NULL, applied_at = ?, commit_sha = ? "
                "WHERE key = ? AND state = 'pending'",
                [(stamp, commit, key) for key, commit in applied.items()],
            )
            db.executemany(
                "UPDATE event SET state = 'rejected', reason = ?, applied_at = ? "
                "WHERE key = ? AND state = 'pending'",
                [(reason, stamp, key) for key, reason in rejected.items()],
            )
            db.executemany("DELETE FROM writeback WHERE id = ?", [(i,) for i in writebacks])
            # A claim the file refused (a person changed the task after it was accepted) ends its
            # lease with it, in this transaction: the task is not held by a claim never written
            # (canon/ADR-032). The lease names its own claim as what ended it.
            ended_at = time.time()
            for key in rejected:  # what the change stream says of each lease ended so
                for ref, repo, workplan, task, actor, expires_at, lease_s in db.execute(
                    "SELECT ref, repo, workplan, task, actor, expires_at, lease_s FROM lease "
                    "WHERE claim_key = ? AND state = 'held'",
                    (key,),
                ):
                    said.append(
                        claim_said(
                            "claim.released",
                            ref,
                            repo,
                            workplan,
                            task,
                            actor,
                            key,
                            expires_at,
                            lease_s,
                            HUB_ACTOR,
                        )
                    )
            db.executemany(
                "UPDATE lease SET state = 'released', release_key = ?, released_by = ?, released_at = ? "
                "WHERE claim_key = ? AND state = 'held'",
                [(key, HUB_ACTOR, ended_at, key) for key in rejected],
            )
        tell(self.on_states, said)


def insert_events(
    db: BufferDb,
    submissions: Sequence[Submission],
    conflicts: str = "raise",
    *,
    dialect: Literal["sqlite", "postgresql"],
) -> list[Outcome]:
    """``WriteBuffer.append`` inside a write transaction the caller holds on the buffer ``db``
    (the lease store stores a claim and its event in one, ``sync.leases``).

    On the file the keys already stored are read first and only new events inserted (the
    transaction is the file's one writer). On PostgreSQL the unique index on ``key`` decides:
    the batch's first event of each key goes in with ``ON CONFLICT (key) DO NOTHING RETURNING
    key`` (one statement for the batch), and only keys that were not inserted have their stored
    payload read back to tell a duplicate from a conflict; a conflict that raises rolls the
    caller's transaction back, so nothing of the batch is stored."""
    outcomes: list[Outcome] = []
    accepted_at = _now()
    payloads = [_canonical(s.payload) for s in submissions]
    if dialect == "postgresql":
        known = _insert_new(db, submissions, payloads, accepted_at)
    else:
        known = _stored_payloads(db, list({s.key for s in submissions}))
    rows = []
    for submission, payload in zip(submissions, payloads, strict=True):
        if submission.key in known:
            if known[submission.key] != payload:
                if conflicts == "report":
                    outcomes.append(Outcome.CONFLICT)
                    continue
                raise KeyConflict(submission.key)
            outcomes.append(Outcome.DUPLICATE)
            continue
        known[submission.key] = payload
        outcomes.append(Outcome.ACCEPTED)
        rows.append(
            (
                submission.key,
                submission.kind,
                submission.repo,
                submission.workplan,
                submission.task,
                payload,
                _canonical(submission.event),
                accepted_at,
            )
        )
    if dialect == "sqlite":
        db.executemany(
            "INSERT INTO event (key, kind, repo, workplan, task, payload, event, accepted_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return outcomes


def _stored_payloads(db: BufferDb, keys: list[str]) -> dict[str, str]:
    """The stored payload of each of ``keys`` the buffer holds."""
    known: dict[str, str] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = db.execute(f"SELECT key, payload FROM event WHERE key IN ({marks})", chunk)  # noqa: S608 - only the ? placeholders are interpolated
        known.update({r[0]: r[1] for r in rows})
    return known


_INSERT_NEW = (
    "INSERT INTO event (key, kind, repo, workplan, task, payload, event, accepted_at) "
    "SELECT e->>0, e->>1, e->>2, e->>3, e->>4, e->>5, e->>6, ? "
    "FROM json_array_elements(?::json) WITH ORDINALITY AS batch (e, n) ORDER BY n "
    "ON CONFLICT (key) DO NOTHING RETURNING key"
)
"""The batch's new events in one statement, ``seq`` in the batch's order (PostgreSQL). The rows go
as one JSON array of arrays (one parameter, encoded in C): psycopg's text arrays escape each
element in Python, several times slower for a batch of 100."""


def _insert_new(
    db: BufferDb, submissions: Sequence[Submission], payloads: list[str], accepted_at: str
) -> dict[str, str]:
    """Insert the first event of each key in ``submissions`` unless the key is stored; answer the
    stored payload of each key that was (what ``insert_events`` tells duplicates by)."""
    first: dict[str, tuple[Submission, str]] = {}
    for submission, payload in zip(submissions, payloads, strict=True):
        first.setdefault(submission.key, (submission, payload))
    if not first:
        return {}
    rows = [
        (s.key, s.kind, s.repo, s.workplan, s.task, payload, _canonical(s.event))
        for s, payload in first.values()
    ]
    inserted = {r[0] for r in db.execute(_INSERT_NEW, (accepted_at, json.dumps(rows)))}
    there = [key for key in first if key not in inserted]
    if not there:
        return {}
    stored = db.execute(
        "SELECT key, payload FROM event WHERE key IN (SELECT json_array_elements_text(?::json))",
        (json.dumps(there),),
    )
    return {r[0]: r[1] for r in stored}


def _filters(**given: str | None) -> tuple[str, list[Any]]:
    """``WHERE column = ? AND ...`` for each given value (the names are this module's column names)."""
    clauses, args = [], []
    for column, value in given.items():
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(str(value))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def _record(row: Sequence[Any]) -> EventRecord:
    """An event from the columns of ``_EVENT_COLUMNS``, in that order."""
    seq, key, kind, repo, state, reason, accepted_at, applied_at, commit, event = row
    return EventRecord(
        seq=int(seq),
        key=key,
        kind=kind,
        repo=repo,
        state=EventState(state),
        reason=reason,
        accepted_at=accepted_at,
        applied_at=applied_at,
        commit=commit,
        event=json.loads(event),
    )
