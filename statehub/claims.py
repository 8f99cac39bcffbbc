"""Claims with leases: take a task so nobody else does, keep it alive, give it back (ADR-032).

The library behind ``POST /tasks/{ref}/claim | heartbeat | release``, ``GET
/tasks?claimable=true``, ``statehub claim | heartbeat | release`` and whatever
else takes tasks for an agent (``statehub next --claim``, an MCP tool): each
calls :func:`claim`, :func:`heartbeat`, :func:`release`, :func:`claim_state`,
:func:`list_claimable` with an open :class:`~statehub.events.EventDesk`.

Rules (the source is ADR-032 and docs/format.md "Claims and leases"):

- A task is **claimable** when its status is ``todo``, every dependency is
  ``done``, and nobody else holds a live lease on it. Status and owner are the
  cache's, with the task's pending status events (``task.status``,
  ``task.claim``, ``task.release`` still in the write buffer) laid over them, so
  a claim accepted a moment ago counts before it reaches the file.
- Exactly one claim wins: the decision and the won claim's ``task.claim`` event
  are one ``BEGIN IMMEDIATE`` transaction on the buffer file
  (:class:`sync.leases.LeaseStore`), whichever process (server, CLI) asks.
  The holder claiming again renews the lease (same key, no new event).
- A lost claim is :class:`~statehub.errors.Conflict` (409, exit 5) naming why:
  held by whom until when, which dependency is open, or the status; ``details``
  says it for a program (``reason``: ``held`` | ``dependency`` | ``status`` |
  ``contested`` | ``not_held``). An unknown task is NotFound (404, exit 4).
- :func:`release` ends the holder's lease with a ``task.release`` event: the
  status given (todo | done | blocked), the owner from before the claim, the
  note to Progress. A lease that runs out is released by the hub (actor
  ``statehub``, note ``lease expired``, status todo): by :func:`expire_leases`
  (the server's :class:`LeaseWorker`, every second) and by any claim, heartbeat
  or release that meets it first, in whichever process.
- Who may: ``authorise.check(repo, actor, kind)`` (``statehub.auth.event_policy``),
  as for ``POST /events``: a token claims and releases as its own actor unless it
  is admin on the repo.
- On a dev hub with an upstream, claims and releases are events like any other
  and are relayed; the upstream decides a relayed claim with the same rules
  (:func:`decide_relayed`) and refuses it when it gave the task to someone else,
  and the relay parks it with that reason: the task then shows as contested
  (:func:`claim_state`) and is not listed as claimable.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from statehub.cache import queries
from statehub.cache.answers import TaskItem
from statehub.errors import BadRequest, Conflict
from statehub.events.intake import new_event_key
from sync.buffer import HUB_ACTOR, Submission
from sync.leases import DEFAULT_LEASE_S, MAX_LEASE_S, Lease, LeaseStore, LeaseTransaction
from workplans import TaskStatus, is_task_ref, parse_event
from workplans.events import ACTOR_RULE, RELEASE_STATUSES, format_at, is_actor
from workplans.ids import split_task_ref

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from statehub.answers import Page
    from statehub.auth.event_policy import EventAuthoriser
    from statehub.events import EventDesk
    from statehub.hub import Hub
    from sync.leader import Leader
    from workplans.events import Event

__all__ = [
    "DEFAULT_LEASE_S",
    "EXPIRED_NOTE",
    "HUB_ACTOR",
    "MAX_LEASE_S",
    "Claim",
    "ClaimState",
    "LeaseWorker",
    "NextClaimed",
    "Released",
    "claim",
    "claim_state",
    "decide_relayed",
    "expire_leases",
    "heartbeat",
    "list_claimable",
    "release",
]

log = logging.getLogger(__name__)

EXPIRED_NOTE = "lease expired"


class Claim(msgspec.Struct, frozen=True):
    """A live claim: ``POST /tasks/{ref}/claim`` and ``/heartbeat`` answer it.

    ``lease_expires_at`` is UTC, ``YYYY-MM-DDTHH:MM:SSZ``; ``key`` is the key of
    the ``task.claim`` event (``GET /events/{key}`` follows it into the file).
    """

    ref: str
    actor: str
    lease_expires_at: str
    key: str


class Released(msgspec.Struct, frozen=True):
    """A claim ended: what ``POST /tasks/{ref}/release`` answers. ``key`` is the ``task.release``
    event's, ``claim`` the key of the claim it ended; ``owner`` the owner the task gets back."""

    ref: str
    actor: str
    status: TaskStatus
    owner: str | None
    key: str
    claim: str


class ClaimState(msgspec.Struct, frozen=True):
    """Who holds a task (``GET /tasks/{ref}/claim``): ``held`` with the holder and lease end, or
    not. ``contested``: why the upstream refused this hub's last claim of it (a dev hub), else None.
    ``claimable``: whether a claim by someone new would win now; ``why_not`` says why not."""

    ref: str
    held: bool
    actor: str | None
    lease_expires_at: str | None
    key: str | None
    contested: str | None
    claimable: bool
    why_not: str | None


def _stamp(seconds: float) -> str:
    return format_at(dt.datetime.fromtimestamp(seconds, dt.UTC))


def _check_actor(actor: str) -> None:
    if not is_actor(actor):
        raise BadRequest(f"actor {actor[:200]!r} is not valid: use {ACTOR_RULE} characters")


def _check_lease(lease_s: float) -> None:
    if not 1 <= lease_s <= MAX_LEASE_S:
        raise BadRequest(f"lease_s {lease_s} is out of range: use 1 to {MAX_LEASE_S} seconds")


def _task(hub: Hub, ref: str) -> TaskItem:
    """The task from the cache: NotFound (404) when unknown, Conflict when its id is claimed twice."""
    with hub.engine.connect() as conn:
        return queries.get_task(conn, ref)


def _cached(hub: Hub, refs: Sequence[str]) -> dict[str, tuple[str, str | None]]:
    """ref -> (status, owner) as the cache has them now."""
    if not refs:
        return {}
    with hub.engine.connect() as conn:
        return queries.task_states(conn, refs)


@dataclass(frozen=True, slots=True)
class _Refusal:
    reason: str
    """``held`` | ``dependency`` | ``status`` | ``contested`` | ``not_held``."""
    message: str
    details: dict[str, Any]

    def error(self) -> Conflict:
        return Conflict(self.message, details={"reason": self.reason, **self.details})


def _refusal(tx: LeaseTransaction, hub: Hub, task: TaskItem, actor: str, now: float) -> _Refusal | None:
    """Why ``actor`` may not claim ``task`` now (inside the transaction), or None: claimable."""
    return _decision(tx, hub, task, actor, now)[0]


def _decision(
    tx: LeaseTransaction, hub: Hub, task: TaskItem, actor: str, now: float
) -> tuple[_Refusal | None, str | None]:
    """(why ``actor`` may not claim ``task`` now or None, the task's owner now): one cache read."""
    lease = tx.lease(task.ref)
    if lease is not None and lease.live(now) and lease.actor != actor:
        until = _stamp(lease.expires_at)
        return _Refusal(
            "held",
            f"task {task.ref} is held by {lease.actor} until {until} (claim {lease.claim_key})",
            {"holder": lease.actor, "until": until, "claim": lease.claim_key},
        ), None
    if lease is not None and lease.state == "held":
        contested = tx.contested(lease.claim_key)
        if contested is not None:
            return _Refusal(
                "contested",
                f"task {task.ref} is contested: the upstream refused this hub's claim by "
                f"{lease.actor}: {contested}",
                {"holder": lease.actor, "upstream": contested},
            ), None
    refs = [task.ref, *task.depends_on]
    cached = _cached(hub, refs)
    status, owner = _effective(tx, task.ref, cached)
    if status != TaskStatus.TODO.value:
        return _Refusal(
            "status",
            f"task {task.ref} is {status}, not todo: only a todo task can be claimed",
            {"status": status},
        ), owner
    for dependency in task.depends_on:
        if dependency not in cached:
            return _Refusal(
                "dependency",
                f"task {task.ref} depends on {dependency}, which no registered repo has",
                {"dependency": dependency, "status": None},
            ), owner
        dep_status, _ = _effective(tx, dependency, cached)
        if dep_status != TaskStatus.DONE.value:
            return _Refusal(
                "dependency",
                f"task {task.ref} depends on {dependency}, which is {dep_status}, not done",
                {"dependency": dependency, "status": dep_status},
            ), owner
    return None, owner


def _effective(
    tx: LeaseTransaction, ref: str, cached: dict[str, tuple[str, str | None]]
) -> tuple[str, str | None]:
    """(status, owner) of ``ref``: the cache's, with its pending status events laid over."""
    status, owner = cached.get(ref, ("todo", None))
    parts = split_task_ref(ref)
    change = tx.pending_change(*parts) if parts is not None else None
    if change is None:
        return status, owner
    return change.status, change.owner if change.owner_changed else owner


def _submission(task: TaskItem, event: dict[str, Any]) -> Submission:
    """A hub-made event as the buffer stores it: the payload is the whole event (no client sent it)."""
    full = dict(sorted({**event, "repo": task.repo}.items()))
    return Submission(event["key"], event["kind"], task.repo, full, full, task.workplan, task.id)


def _release_event(
    task: TaskItem, lease: Lease, actor: str, status: TaskStatus, note: str | None, now: float
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "key": new_event_key(),
        "kind": "task.release",
        "actor": actor,
        "at": _stamp(now),
        "workplan": task.workplan,
        "task": task.id,
        "claim": lease.claim_key,
        "status": status.value,
    }
    if lease.prior_owner is not None:
        event["owner"] = lease.prior_owner
    if note:
        event["note"] = note
    return event


def _expire(tx: LeaseTransaction, hub: Hub, task: TaskItem, lease: Lease, now: float) -> None:
    """Release a lease that ran out, as the hub (inside the transaction).

    When the task is no longer what the claim made it (status in-progress, owner the holder:
    a person edited the file meanwhile, e.g. marked it done or gave it to someone), the file's
    word stands: the lease ends with no event, so the hub never undoes a person's edit.
    """
    status, owner = _effective(tx, task.ref, _cached(hub, [task.ref]))
    if (status, owner) != (TaskStatus.IN_PROGRESS.value, lease.actor):
        log.info(
            "lease on %s ran out after the file changed it (%s, %s); ended without an event",
            task.ref,
            status,
            owner,
        )
        tx.release(lease.ref, new_event_key(), HUB_ACTOR, now, expired=True)
        return
    event = _release_event(task, lease, HUB_ACTOR, TaskStatus.TODO, EXPIRED_NOTE, now)
    tx.release(lease.ref, event["key"], HUB_ACTOR, now, expired=True)
    tx.insert([_submission(task, event)])


def _accepted(desk: EventDesk) -> None:
    """Wake the applier and the relay, as ``EventDesk.submit`` does for accepted events."""
    desk.accepted.set()
    for callback in desk.on_accepted:
        callback()


@dataclass(slots=True)
class _Outcome:
    """What one decision inside the lease store's transaction came to."""

    claim: Claim | None = None
    released: Released | None = None
    refused: _Refusal | None = None
    stored: bool = False
    """Whether it stored an event (a claim, a release, the release of a run-out lease)."""


def _finish(desk: EventDesk, outcome: _Outcome) -> None:
    """After the commit: wake the applier and relay for stored events, raise a refusal."""
    if outcome.stored:
        _accepted(desk)
    if outcome.refused is not None:
        raise outcome.refused.error()


def claim(
    desk: EventDesk, ref: str, actor: str, lease_s: float = DEFAULT_LEASE_S, *, authorise: EventAuthoriser
) -> Claim:
    """Claim task ``ref`` for ``actor`` for ``lease_s`` seconds (1 to :data:`MAX_LEASE_S`).

    Returns the live :class:`Claim` (a renewal when ``actor`` holds it already).
    Raises BadRequest (a bad actor or lease), NotFound (unknown task),
    Unauthorized/Forbidden (``authorise`` refuses), Conflict with the reason.
    """
    _check_actor(actor)
    _check_lease(lease_s)
    task = _task(desk.hub, ref)
    authorise.check(task.repo, actor, "task.claim")

    def decide(tx: LeaseTransaction) -> _Outcome:
        outcome = _Outcome()
        now = time.time()
        lease = tx.lease(ref)
        if lease is not None and lease.live(now) and lease.actor == actor:
            tx.renew(ref, now + lease_s, lease_s)
            outcome.claim = Claim(ref, actor, _stamp(now + lease_s), lease.claim_key)
            return outcome
        if lease is not None and lease.state == "held" and not lease.live(now):
            _expire(tx, desk.hub, task, lease, now)
            outcome.stored = True
        outcome.refused, owner = _decision(tx, desk.hub, task, actor, now)
        if outcome.refused is not None:
            return outcome
        key = new_event_key()
        event = {
            "key": key,
            "kind": "task.claim",
            "actor": actor,
            "at": _stamp(now),
            "workplan": task.workplan,
            "task": task.id,
        }
        tx.hold(
            Lease(
                ref, task.repo, task.workplan, task.id, actor, key, owner, lease_s, now, now + lease_s, "held"
            )
        )
        tx.insert([_submission(task, event)])
        outcome.stored = True
        outcome.claim = Claim(ref, actor, _stamp(now + lease_s), key)
        return outcome

    outcome = desk.leases.run(decide)
    _finish(desk, outcome)
    assert outcome.claim is not None
    return outcome.claim


def _holder_lease(
    tx: LeaseTransaction, hub: Hub, task: TaskItem, actor: str, now: float, outcome: _Outcome
) -> Lease | None:
    """``actor``'s live lease on ``task``, or None with ``outcome.refused`` saying why (a run-out
    lease is released on the way)."""
    lease = tx.lease(task.ref)
    ended = lease is not None and lease.state != "held" and lease.actor == actor
    refused = tx.refused(lease.claim_key) if ended and lease is not None else None
    if lease is not None and refused is not None:
        outcome.refused = _Refusal(
            "not_held",
            f"the claim of {actor} on task {task.ref} was not written to its file, so it ended: {refused}",
            {"holder": None, "claim": lease.claim_key, "refused": refused},
        )
        return None
    if lease is None or lease.state != "held":
        outcome.refused = _Refusal(
            "not_held", f"task {task.ref} is not claimed: claim it first", {"holder": None}
        )
        return None
    if lease.actor != actor:
        until = _stamp(lease.expires_at)
        outcome.refused = _Refusal(
            "held",
            f"task {task.ref} is held by {lease.actor} until {until}, not by {actor}",
            {"holder": lease.actor, "until": until, "claim": lease.claim_key},
        )
        return None
    if not lease.live(now):
        _expire(tx, hub, task, lease, now)
        outcome.stored = True
        outcome.refused = _Refusal(
            "not_held",
            f"the lease of {actor} on task {task.ref} ran out at {_stamp(lease.expires_at)}; "
            "the hub released it: claim it again",
            {"holder": None, "expired_at": _stamp(lease.expires_at)},
        )
        return None
    return lease


def heartbeat(
    desk: EventDesk, ref: str, actor: str, lease_s: float | None = None, *, authorise: EventAuthoriser
) -> Claim:
    """Extend ``actor``'s live lease on ``ref`` to now + ``lease_s`` (default: the lease's own length).

    No event, no commit. Conflict (``not_held`` | ``held``) when ``actor`` holds no live lease on it.
    """
    _check_actor(actor)
    if lease_s is not None:
        _check_lease(lease_s)
    task = _task(desk.hub, ref)
    authorise.check(task.repo, actor, "task.claim")

    def decide(tx: LeaseTransaction) -> _Outcome:
        outcome = _Outcome()
        now = time.time()
        lease = _holder_lease(tx, desk.hub, task, actor, now, outcome)
        if lease is not None:
            length = lease_s if lease_s is not None else lease.lease_s
            tx.renew(ref, now + length, length)
            outcome.claim = Claim(ref, actor, _stamp(now + length), lease.claim_key)
        return outcome

    outcome = desk.leases.run(decide)
    _finish(desk, outcome)
    assert outcome.claim is not None
    return outcome.claim


def release(
    desk: EventDesk,
    ref: str,
    actor: str,
    status: TaskStatus,
    note: str | None = None,
    *,
    authorise: EventAuthoriser,
) -> Released:
    """End ``actor``'s claim on ``ref`` with a ``task.release`` event: ``status`` (todo | done |
    blocked), the owner from before the claim, ``note`` to Progress (one line, at most 2,000
    characters, no ``-->``). Conflict when ``actor`` holds no live lease on it."""
    _check_actor(actor)
    if status not in RELEASE_STATUSES:
        valid = " | ".join(s.value for s in RELEASE_STATUSES)
        raise BadRequest(f"status {status.value!r} is not one of {valid} (what a released task becomes)")
    if note is not None:
        _check_note(note)
    task = _task(desk.hub, ref)
    authorise.check(task.repo, actor, "task.release")

    def decide(tx: LeaseTransaction) -> _Outcome:
        outcome = _Outcome()
        now = time.time()
        lease = _holder_lease(tx, desk.hub, task, actor, now, outcome)
        if lease is not None:
            event = _release_event(task, lease, actor, status, note, now)
            tx.release(ref, event["key"], actor, now)
            tx.insert([_submission(task, event)])
            outcome.stored = True
            outcome.released = Released(ref, actor, status, lease.prior_owner, event["key"], lease.claim_key)
        return outcome

    outcome = desk.leases.run(decide)
    _finish(desk, outcome)
    assert outcome.released is not None
    return outcome.released


def _check_note(note: str) -> None:
    if not note.strip():
        raise BadRequest("note must not be blank")
    if "\n" in note or "\r" in note:
        raise BadRequest("note must be a single line")
    if "-->" in note:
        raise BadRequest("note must not contain '-->' (it would end the progress line's event marker)")
    if len(note) > 2000:
        raise BadRequest("note must be at most 2000 characters")


def claim_state(desk: EventDesk, ref: str) -> ClaimState:
    """Who holds ``ref`` now, whether it is contested, and whether a new claim would win."""
    task = _task(desk.hub, ref)
    with desk.leases.reading() as tx:
        now = time.time()
        lease = tx.lease(ref)
        live = lease is not None and lease.live(now)
        contested = tx.contested(lease.claim_key) if lease is not None and lease.state == "held" else None
        refused = _refusal(tx, desk.hub, task, "", now)
    return ClaimState(
        ref=ref,
        held=live,
        actor=lease.actor if live and lease is not None else None,
        lease_expires_at=_stamp(lease.expires_at) if live and lease is not None else None,
        key=lease.claim_key if live and lease is not None else None,
        contested=contested,
        claimable=refused is None,
        why_not=refused.message if refused is not None else None,
    )


def list_claimable(
    desk: EventDesk,
    *,
    claimable: bool = True,
    repo: str | None = None,
    workplan: str | None = None,
    status: TaskStatus | Collection[TaskStatus] | None = None,
    owner: str | None = None,
    owner_prefix: str | None = None,
    ready: bool | None = None,
    sort: queries.TaskSort = "workplan",
    descending: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> Page[TaskItem]:
    """Tasks a claim would win now (``claimable=False``: would not), in workplan id then file order,
    with the filters of ``GET /tasks``: the cache's todo tasks with every dependency done, minus
    live leases, contested tasks and tasks with pending status events."""
    excluded = desk.leases.excluded_refs(time.time())
    with desk.hub.engine.connect() as conn:
        return queries.list_claimable(
            conn,
            excluded=excluded,
            claimable=claimable,
            repo=repo,
            workplan=workplan,
            status=status,
            owner=owner,
            owner_prefix=owner_prefix,
            ready=ready,
            sort=sort,
            descending=descending,
            limit=limit,
            offset=offset,
            memo=desk.hub.candidate_memo,
        )


def expire_leases(desk: EventDesk, limit: int = 500, warned: set[str] | None = None) -> int:
    """Release every lease that has run out (actor ``statehub``, note ``lease expired``, status
    todo, owner restored); returns how many. A task gone from the cache keeps its lease row until
    it comes back (its release could not name a file); it is logged once per ref in ``warned``."""
    now = time.time()
    with desk.leases.reading() as tx:
        if not tx.held(now, expired=True, limit=1):
            return 0
    done = 0
    with desk.leases.transaction() as tx:
        now = time.time()
        for lease in tx.held(now, expired=True, limit=limit):
            try:
                task = _task(desk.hub, lease.ref)
            except Exception:  # noqa: BLE001 - a task gone from the cache (or claimed twice) waits
                if warned is None or lease.ref not in warned:
                    log.warning("lease on %s ran out but the task is not in the cache; kept", lease.ref)
                    if warned is not None:
                        warned.add(lease.ref)
                continue
            _expire(tx, desk.hub, task, lease, now)
            done += 1
    if done:
        _accepted(desk)
    return done


class LeaseWorker:
    """The server's thread that releases run-out leases every ``every`` seconds (:func:`expire_leases`).

    With replicas, only the leader releases them (canon/ADR-052): ``leader`` is asked before each
    round; None (one process, or a test) always releases. A claim meeting a run-out lease still
    releases it itself, in its own transaction, on whichever replica decides the claim."""

    def __init__(self, desk: EventDesk, every: float = 1.0, leader: Leader | None = None) -> None:
        self.desk = desk
        self.every = every
        self.leader = leader
        self._stop = threading.Event()
        self._warned: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="statehub-leases", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            if self.leader is not None and not self.leader.is_leader:
                continue
            try:
                expire_leases(self.desk, warned=self._warned)
            except Exception:  # a full disk or a busy file must not end the thread
                log.exception("releasing run-out leases failed; will retry")


# relayed claims (a dev hub's task.claim / task.release arriving through POST /events) --------------


def decide_relayed(leases: LeaseStore, hub: Hub, submissions: Sequence[Submission]) -> dict[int, str]:
    """Decide the ``task.claim`` and ``task.release`` events among ``submissions`` (a batch sent to
    ``POST /events``, authorised, about to be stored): position -> why refused, for those refused.

    A claim wins under the same rules as :func:`claim` with the default lease, and
    is recorded under the event's own key (a resend finds it and wins again); a
    release must name the live claim it ends. Intake stores the events afterwards.
    """
    refused: dict[int, str] = {}
    wanted = [(i, s) for i, s in enumerate(submissions) if s.kind in ("task.claim", "task.release")]
    if not wanted:
        return refused
    with leases.transaction() as tx:
        for index, submission in wanted:
            event = parse_event(submission.event, hub.event_kinds)
            why = _decide_one(tx, hub, event, submission.repo)
            if why is not None:
                refused[index] = why
    return refused


def _decide_one(tx: LeaseTransaction, hub: Hub, event: Event, repo: str) -> str | None:
    data = event.to_json()
    ref = f"{data['workplan']}-{data['task']}"
    if not is_task_ref(ref):
        return None
    now = time.time()
    lease = tx.lease(ref)
    try:
        task = _task(hub, ref)
    except Exception as error:  # noqa: BLE001 - intake already said the task exists; a race says why
        return str(error)
    if event.kind == "task.claim":
        if lease is not None and lease.claim_key == event.key:
            return None  # a resend of a claim decided before
        if lease is not None and lease.state == "held" and not lease.live(now):
            _expire(tx, hub, task, lease, now)
        refused, owner = _decision(tx, hub, task, event.actor, now)
        if refused is not None:
            return refused.message
        length = float(DEFAULT_LEASE_S)
        tx.hold(
            Lease(
                ref,
                repo,
                task.workplan,
                task.id,
                event.actor,
                event.key,
                owner,
                length,
                now,
                now + length,
                "held",
            )
        )
        return None
    claim_key = data["claim"]
    if lease is None or lease.claim_key != claim_key:
        holder = (
            f"; it is held by {lease.actor} (claim {lease.claim_key})" if lease and lease.live(now) else ""
        )
        return f"claim {claim_key} does not hold task {ref}{holder}"
    if lease.state == "released":
        if lease.release_key == event.key:
            return None
        return f"claim {claim_key} on task {ref} already ended: released by {lease.released_by}"
    tx.release(ref, event.key, event.actor, now)
    return None


class NextClaimed(msgspec.Struct, frozen=True):
    """``statehub next --claim``: the task won, its claim (ADR-032), and why it was chosen; ``task``
    and ``claim`` are None when no candidate could be claimed (``reason`` says why)."""

    actor: str
    task: TaskItem | None
    claim: Claim | None
    reason: str
    candidates: int
    """How many tasks were in the running."""
    passed_over: list[str]
    """Better-ranked candidates a claim did not win (held by someone else, taken meanwhile): ``ref: why``."""
