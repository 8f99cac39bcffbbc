"""Per-event relay state, kept in the write buffer's own store (ADR-018): its SQLite file, or its
tables in the PostgreSQL state schema (canon/ADR-049).

The ``event`` table stays the append-only log it is (ADR-006); the relay
keeps, per event key, where the event stands with the upstream:

- ``queued``: accepted here, not yet known to be stored upstream;
- ``sent``: the upstream stored it (it answered accepted or duplicate) and has
  not applied it yet;
- ``confirmed``: the upstream applied it (or its files already said so);
- ``parked``: the upstream refused it, with its reason. Parked events never
  block later ones; ``retry`` puts one back in the queue.

Events enter the queue by a watermark over ``event.seq``: whatever any process
(the server or a CLI command) accepted after the relay table was first made is
queued, so nothing accepted while the server was down is missed. ``drop`` is
the only way an event leaves the queue unconfirmed, and it is logged with its
reason in ``relay_decision``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import UNSET, UnsetType

from sync._durable import DurableStore
from sync._events_file import EVENTS_FILE_STEPS, EVENTS_PG_STEPS, EVENTS_STORE
from sync.buffer import Listener, Said, tell
from sync.errors import DropWithoutReason, UnknownRelayKey

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sync._state_db import StateLocation

__all__ = [
    "ParkedEvent",
    "RelayCounts",
    "RelayDecision",
    "RelayDropped",
    "RelayItem",
    "RelayQueue",
    "RelayState",
    "RelayStatus",
    "RelayedLease",
    "UnknownRelayKey",
]


class RelayState(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    CONFIRMED = "confirmed"
    PARKED = "parked"


class RelayCounts(msgspec.Struct, frozen=True):
    """Relayed events by state."""

    queued: int
    sent: int
    confirmed: int
    parked: int


class ParkedEvent(msgspec.Struct, frozen=True):
    """An event the upstream refused: why, after how many attempts."""

    key: str
    reason: str | None
    attempts: int


class RelayDecision(msgspec.Struct, frozen=True):
    """A person's decision on a relayed event (``retry`` or ``drop``), newest first in the status."""

    key: str
    decision: str
    reason: str | None
    actor: str
    at: str


class RelayDropped(msgspec.Struct, frozen=True):
    """What :meth:`RelayQueue.drop` did: the event it stopped relaying and the decision's words."""

    key: str
    was: RelayState
    """The relay state it left: queued, sent or parked."""
    event: dict[str, Any]
    """The event as it was accepted (its JSON form); its local record stays in the buffer."""
    reason: str
    actor: str


class RelayStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Where the relay stands: what the relay loop last saw, the queue's counts, parked events,
    the last 20 decisions. ``last_error`` and ``retry_in_s`` are left out (``UNSET``) until the
    relay loop has said something about them."""

    upstream: str | None
    reachable: bool | None
    """None until the relay loop has tried the upstream."""
    paused: str | None
    """Why relaying is paused (the upstream refused the token), else None."""
    last_error: str | UnsetType | None = UNSET
    retry_in_s: float | UnsetType | None = UNSET
    """Seconds until the next attempt after a failure."""
    counts: RelayCounts
    pending: int
    """Queued plus sent: not yet confirmed."""
    parked: int
    oldest_pending_age_s: float | None
    parked_events: list[ParkedEvent]
    """The first 100, oldest first."""
    decisions: list[RelayDecision]


@dataclass(frozen=True, slots=True)
class RelayItem:
    key: str
    seq: int
    state: RelayState
    attempts: int
    reason: str | None
    body: dict[str, Any]
    """What goes upstream: the fields the client sent, plus the time it was accepted here."""
    queued_at: str


@dataclass(frozen=True, slots=True)
class RelayedLease:
    """A live lease here whose claim the upstream has stored: what the relay keeps alive there."""

    ref: str
    actor: str
    claim_key: str
    expires_at: float
    """POSIX seconds (UTC), as the lease store holds it here."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def relay_body(payload: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """The event as the client sent it, with the original ``at`` (key and actor are in it).

    The local repo slug is not sent: workplan ids are global, and the upstream
    names its own repos. A client's own ``repo`` field (fixed-path kinds) stays.
    """
    body = dict(payload)
    if "at" in event:
        body["at"] = event["at"]
    return body


_ITEM = (
    "SELECT r.key, r.seq, r.state, r.attempts, r.reason, r.queued_at, e.payload, e.event "  # _item's order
    "FROM relay r JOIN event e ON e.key = r.key"
)


class RelayQueue(DurableStore):
    """The relay tables of the write buffer at ``where`` (``buffer.sqlite3``, or the state schema);
    one per process, safe to share between threads."""

    def __init__(self, where: StateLocation) -> None:
        super().__init__(
            where, EVENTS_FILE_STEPS, "events file", store=EVENTS_STORE, postgres_steps=EVENTS_PG_STEPS
        )
        self.on_states: list[Listener] = []
        with self._transaction() as db:
            # The first time a relay is set up, it relays what is accepted from now on.
            db.execute(
                "INSERT INTO relay_meta (key, value) "
                "SELECT 'enqueued_seq', CAST(COALESCE(MAX(seq), 0) AS TEXT) FROM event WHERE true "
                "ON CONFLICT (key) DO NOTHING"
            )

    # queueing ----------------------------------------------------------------------------------

    def enqueue_new(self) -> int:
        """Queue every event accepted since the last call (by any process); returns how many."""
        with self._transaction() as db:
            mark = int(db.execute("SELECT value FROM relay_meta WHERE key = 'enqueued_seq'").fetchone()[0])
            top = db.execute("SELECT MAX(seq) FROM event").fetchone()[0]
            if top is None or top <= mark:
                return 0
            cursor = db.execute(
                "INSERT INTO relay (key, seq, queued_at) "
                "SELECT key, seq, ? FROM event WHERE seq > ? AND seq <= ? ORDER BY seq "
                "ON CONFLICT (key) DO NOTHING",
                (_now(), mark, top),
            )
            db.execute("UPDATE relay_meta SET value = ? WHERE key = 'enqueued_seq'", (str(top),))
            return int(cursor.rowcount)

    def batch(self, state: RelayState, limit: int, after: int = 0) -> list[RelayItem]:
        """The oldest events in ``state`` (past ``after``, a seq), in acceptance order, with what to send."""
        with self._lock:
            rows = self._db.execute(
                f"{_ITEM} WHERE r.state = ? AND r.seq > ? ORDER BY r.seq LIMIT ?",
                (state.value, after, limit),
            ).fetchall()
        return [_item(r) for r in rows]

    def get(self, key: str) -> RelayItem | None:
        with self._lock:
            row = self._db.execute(f"{_ITEM} WHERE r.key = ?", (key,)).fetchone()
        return _item(row) if row else None

    def relayed_leases(self, now: float, limit: int = 500) -> list[RelayedLease]:
        """Leases held here and live at ``now`` whose ``task.claim`` the upstream stored (relay state
        sent or confirmed, so it decided the claim too), those running out first; at most ``limit``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT l.ref, l.actor, l.claim_key, l.expires_at FROM lease l JOIN relay r "
                "ON r.key = l.claim_key WHERE l.state = 'held' AND l.expires_at > ? "
                "AND r.state IN ('sent', 'confirmed') ORDER BY l.expires_at LIMIT ?",
                (now, limit),
            ).fetchall()
        return [RelayedLease(r[0], r[1], r[2], float(r[3])) for r in rows]

    # answers -----------------------------------------------------------------------------------

    def record(
        self,
        sent: Sequence[str] = (),
        confirmed: Sequence[str] = (),
        parked: dict[str, str] | None = None,
    ) -> None:
        """Move events on after an upstream answer, in one transaction."""
        stamp = _now()
        with self._transaction() as db:
            db.executemany(
                "UPDATE relay SET state = 'sent', reason = NULL, attempts = attempts + 1, "
                "sent_at = COALESCE(sent_at, ?) WHERE key = ? AND state = 'queued'",
                [(stamp, k) for k in sent],
            )
            db.executemany(
                "UPDATE relay SET state = 'confirmed', reason = NULL, confirmed_at = ?, "
                "sent_at = COALESCE(sent_at, ?) WHERE key = ? AND state IN ('queued', 'sent')",
                [(stamp, stamp, k) for k in confirmed],
            )
            db.executemany(
                "UPDATE relay SET state = 'parked', reason = ?, attempts = attempts + 1 "
                "WHERE key = ? AND state IN ('queued', 'sent')",
                [(reason, k) for k, reason in (parked or {}).items()],
            )

    def retry(self, key: str, actor: str) -> None:
        """Put a parked event back in the queue (after the cause was fixed); logged."""
        with self._transaction() as db:
            row = db.execute("SELECT state, reason FROM relay WHERE key = ?", (key,)).fetchone()
            if row is None or row[0] != RelayState.PARKED:
                said = "not in the relay queue" if row is None else f"{row[0]}, not parked"
                raise UnknownRelayKey(f"event {key!r} is {said}; only a parked event can be retried")
            db.execute("UPDATE relay SET state = 'queued', reason = NULL WHERE key = ?", (key,))
            db.execute(
                "INSERT INTO relay_decision (key, decision, reason, actor, at) VALUES (?, 'retry', ?, ?, ?)",
                (key, f"was parked: {row[1]}", actor, _now()),
            )

    def drop(self, key: str, reason: str, actor: str) -> RelayDropped:
        """Stop relaying an event: the one way an event leaves the queue unconfirmed, logged with
        the event itself and the reason. Its local record (the ``event`` row) stays."""
        if not reason.strip():
            raise DropWithoutReason("a drop needs a reason: say why this event must never reach the upstream")
        with self._transaction() as db:
            row = db.execute(
                "SELECT r.state, e.event FROM relay r JOIN event e ON e.key = r.key WHERE r.key = ?", (key,)
            ).fetchone()
            if row is None or row[0] == RelayState.CONFIRMED:
                said = "not in the relay queue" if row is None else "already confirmed by the upstream"
                raise UnknownRelayKey(f"event {key!r} is {said}; nothing to drop")
            db.execute("DELETE FROM relay WHERE key = ?", (key,))
            db.execute(
                "INSERT INTO relay_decision (key, decision, reason, actor, event, at) "
                "VALUES (?, 'drop', ?, ?, ?, ?)",
                (key, reason, actor, row[1], _now()),
            )
        return RelayDropped(key, RelayState(row[0]), json.loads(row[1]), reason, actor)

    # status ------------------------------------------------------------------------------------

    def set_status(self, **values: object) -> None:
        """What the relay loop last saw (reachable, paused, last error), for health and the CLI.

        ``on_states`` listeners hear a ``relay.state`` (:class:`sync.buffer.Said`) when upstream,
        reachable, paused or last error changed."""
        said: list[Said] = []
        with self._transaction() as db:
            before = dict(
                db.execute("SELECT key, value FROM relay_meta WHERE key LIKE 'status.%'").fetchall()
            )
            db.executemany(
                "INSERT INTO relay_meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [(f"status.{k}", json.dumps(v)) for k, v in values.items()],
            )
            after = before | {f"status.{k}": json.dumps(v) for k, v in values.items()}
            shown = ("upstream", "reachable", "paused", "last_error")
            if any(before.get(f"status.{k}") != after.get(f"status.{k}") for k in shown):
                state = {k: json.loads(after.get(f"status.{k}", "null")) for k in shown}
                said.append(Said("relay.state", None, None, None, state))
        tell(self.on_states, said)

    def status(self) -> RelayStatus:
        """Counts per state, pending (queued + sent), the oldest pending event's age, parked events."""
        with self._lock:
            counts = dict(self._db.execute("SELECT state, count(*) FROM relay GROUP BY state").fetchall())
            oldest = self._db.execute(
                "SELECT min(queued_at) FROM relay WHERE state IN ('queued', 'sent')"
            ).fetchone()[0]
            parked = self._db.execute(
                "SELECT key, reason, attempts FROM relay WHERE state = 'parked' ORDER BY seq LIMIT 100"
            ).fetchall()
            meta = self._db.execute("SELECT key, value FROM relay_meta WHERE key LIKE 'status.%'").fetchall()
            decisions = self._db.execute(
                "SELECT key, decision, reason, actor, at FROM relay_decision ORDER BY id DESC LIMIT 20"
            ).fetchall()
        found = RelayCounts(**{state.value: int(counts.get(state.value, 0)) for state in RelayState})
        age = None
        if oldest is not None:
            started = dt.datetime.strptime(oldest, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
            age = round((dt.datetime.now(dt.UTC) - started).total_seconds(), 3)
        seen = {k.removeprefix("status."): json.loads(v) for k, v in meta}
        return RelayStatus(
            upstream=seen.get("upstream"),
            reachable=seen.get("reachable"),
            paused=seen.get("paused"),
            last_error=seen.get("last_error", UNSET),
            retry_in_s=seen.get("retry_in_s", UNSET),
            counts=found,
            pending=found.queued + found.sent,
            parked=found.parked,
            oldest_pending_age_s=age,
            parked_events=[ParkedEvent(r[0], r[1], int(r[2])) for r in parked],
            decisions=[RelayDecision(r[0], r[1], r[2], r[3], r[4]) for r in decisions],
        )


def _item(row: Sequence[Any]) -> RelayItem:
    """A relay item from the columns of ``_ITEM``, in that order."""
    key, seq, state, attempts, reason, queued_at, payload, event = row
    return RelayItem(
        key=key,
        seq=int(seq),
        state=RelayState(state),
        attempts=int(attempts),
        reason=reason,
        body=relay_body(json.loads(payload), json.loads(event)),
        queued_at=queued_at,
    )
