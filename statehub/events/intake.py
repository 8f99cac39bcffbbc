"""Accepting events: check each against the format and the cache, then store the batch.

A batch is all or nothing: if any event is malformed or names a workplan or
task the hub does not know, the answer is 422 with a message per field and
nothing is stored, so a client can fix and resend the whole batch with the
same keys.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Connection, and_, false, select

from statehub.cache.schema import TASKS, WORKPLANS
from statehub.errors import Forbidden, Unauthorized, Unprocessable, as_hub_error
from statehub.events.fleet_intake import FleetIntake
from statehub.settings import default_actor
from sync.buffer import EventResult, KeyConflict, Outcome, Submission, WriteBuffer
from workplans import Event, EventKinds, InvalidEvent, TaskAddEvent, parse_event
from workplans.events import format_at
from workplans.fleet_event_types import FleetEvent

if TYPE_CHECKING:
    from statehub.auth.event_policy import EventAuthoriser
    from statehub.hub import Hub

__all__ = ["MAX_BATCH", "InvalidEvents", "default_actor", "new_event_key", "next_task_id", "submit_events"]

MAX_BATCH = 5000
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class InvalidEvents(Unprocessable):
    """422: one entry per bad field, ``{"index", "key", "field", "message"}``."""

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        self.problems = problems
        said = "; ".join(f"event #{p['index']} {p['field']}: {p['message']}" for p in problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        super().__init__(f"invalid events, nothing was stored: {said}{more}")
        self.details = {"problems": problems}


def new_event_key() -> str:
    """A fresh ULID-like key: 10 characters of milliseconds, 16 of randomness (Crockford base32)."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(secrets.token_bytes(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


@dataclass(slots=True)
class _Known:
    """What the cache says about the workplans a batch names."""

    plans: dict[str, list[str]]
    """workplan id -> repos holding it (more than one: the id is claimed twice)."""
    tasks: dict[tuple[str, str], str]
    """(workplan id, task id) -> title."""


def _known(conn: Connection, workplan_ids: set[str]) -> _Known:
    plans: dict[str, list[str]] = {}
    tasks: dict[tuple[str, str], str] = {}
    ids = sorted(workplan_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for row in conn.execute(select(WORKPLANS.c.id, WORKPLANS.c.repo).where(WORKPLANS.c.id.in_(chunk))):
            plans.setdefault(row.id, []).append(row.repo)
        for task in conn.execute(
            select(TASKS.c.workplan_id, TASKS.c.task_id, TASKS.c.title).where(
                and_(TASKS.c.workplan_id.in_(chunk), TASKS.c.conflicted == false())
            )
        ):
            tasks[(task.workplan_id, task.task_id)] = task.title
    return _Known(plans, tasks)


Decide = Callable[[list[Submission]], dict[int, str]]
"""Decides events that take a resource (claims): position in the list -> why refused."""


def submit_events(
    hub: Hub,
    buffer: WriteBuffer,
    body: Any,
    *,
    authorise: EventAuthoriser,
    each: bool = False,
    decide: Decide | None = None,
) -> list[EventResult]:
    """Validate, authorise and store one event or a list; one ``EventResult`` per event, in order.

    ``authorise`` is required: the token's ``event_authoriser``, or ``OPEN_HUB`` /
    ``LOCAL_COMMAND`` where nobody is to be checked (statehub.auth.event_policy).
    Every item is authorised before anything is stored or answered (ADR-022): each
    event as it will be stored, and for a key already in the buffer also the stored
    event, so resending somebody else's event neither writes nor reads it. One
    refusal refuses the whole request (401/403), with or without ``each``.

    ``each=True`` is how a relaying hub sends (ADR-019): instead of all or
    nothing, every event gets its own answer, ``rejected`` with a ``reason``
    for one that is invalid or reuses a key for a different event, and each
    answer carries the event's ``state`` here (pending, applied, rejected).
    A resend of an event stored exactly as sent is answered from the buffer
    without validating it again.

    ``decide`` (the desk passes ``statehub.claims.decide_relayed``) runs once every
    item is authorised: a ``task.claim`` or ``task.release`` it refuses is a problem
    of that event (422; with ``each``, rejected with the reason, ADR-032).
    """
    items = body if isinstance(body, list) else [body]
    if not items:
        raise InvalidEvents([{"index": 0, "key": None, "field": "events", "message": "the list is empty"}])
    if len(items) > MAX_BATCH:
        raise InvalidEvents(
            [{"index": 0, "key": None, "field": "events", "message": f"at most {MAX_BATCH} events a request"}]
        )
    resent = buffer.stored_as_sent(items) if each else {}
    problems, submissions, indexes = _validate(hub, buffer, items, skip=set(resent))
    _authorise_all(authorise, buffer, items, submissions, indexes)
    if decide is not None and (each or not problems):
        refused = decide(submissions)
        problems.extend(
            {"index": indexes[p], "key": submissions[p].key, "field": "task", "message": reason}
            for p, reason in refused.items()
        )
        submissions = [s for p, s in enumerate(submissions) if p not in refused]
        indexes = [i for p, i in enumerate(indexes) if p not in refused]
    if each:
        answers = _answer_each(buffer, problems, submissions, indexes)
        for index, (key, state, reason) in resent.items():
            answers[index] = EventResult(key, "duplicate", state, reason)
        return [answers[index] for index in range(len(items))]
    if problems:
        raise InvalidEvents(sorted(problems, key=lambda p: p["index"]))
    try:
        outcomes = buffer.append(submissions)
    except KeyConflict as error:
        raise as_hub_error(error) from None
    return [EventResult(s.key, _RESULTS[o]) for s, o in zip(submissions, outcomes, strict=True)]


def _validate(
    hub: Hub, buffer: WriteBuffer, items: list[Any], skip: set[int]
) -> tuple[list[dict[str, Any]], list[Submission], list[int]]:
    """Parse and check every item but ``skip``: (problems, submissions, the index of each submission)."""
    problems: list[dict[str, Any]] = []
    parsed: list[tuple[int, Event, dict[str, Any]]] = []
    now = format_at(dt.datetime.now(dt.UTC))
    for index, item in enumerate(items):
        if index in skip:
            continue
        raw = dict(item) if isinstance(item, Mapping) else item
        sent = dict(raw) if isinstance(raw, dict) else {}
        if isinstance(raw, dict) and raw.get("at") is None:
            raw["at"] = now
        try:
            parsed.append((index, parse_event(raw, hub.event_kinds), sent))
        except InvalidEvent as error:
            key = sent.get("key") if isinstance(sent.get("key"), str) else None
            problems.extend(
                {"index": index, "key": key, "field": name, "message": message}
                for name, message in error.problems.items()
            )
    with hub.engine.connect() as conn:
        known = _known(conn, {e.workplan_id for _, e, _ in parsed if e.workplan_id})
    registered = {r.slug for r in hub.repos()}
    fleet = FleetIntake(hub, buffer)
    adding: dict[tuple[str, str], str] = {}
    submissions: list[Submission] = []
    indexes: list[int] = []
    pending_adds: dict[str, dict[str, str]] = {}
    for index, event, sent in parsed:
        found = _check(event, hub.event_kinds, known, registered, buffer, adding, pending_adds)
        if isinstance(found, dict):
            problems.extend(
                {"index": index, "key": event.key, "field": name, "message": message}
                for name, message in found.items()
            )
            continue
        if isinstance(event, FleetEvent):
            refused = fleet.refusals(event, found)
            if refused:
                problems.extend(
                    {"index": index, "key": event.key, "field": event.rule_field, "message": reason}
                    for reason in refused
                )
                continue
        full = event.to_json() | {"repo": found}
        payload = {k: v for k, v in full.items() if k in sent}
        workplan = full.get("workplan")
        submissions.append(
            Submission(event.key, event.kind, found, payload, full, workplan, full.get("task"))
        )
        indexes.append(index)
    return problems, submissions, indexes


def _authorise_all(
    authorise: EventAuthoriser,
    buffer: WriteBuffer,
    items: list[Any],
    submissions: list[Submission],
    indexes: list[int],
) -> None:
    """Ask ``authorise`` about every item; raise the first refusal, naming the event (ADR-022).

    An item whose key is already stored is checked against the stored event too
    (its repo, actor and kind): answering a resend with its state, or a reused
    key with a conflict, is a read of that repo; storing it is a write.
    """
    keys = {
        index: item["key"]
        for index, item in enumerate(items)
        if isinstance(item, Mapping) and isinstance(item.get("key"), str)
    }
    stored = set(buffer.states(sorted(set(keys.values()))))
    asks: list[tuple[int, str, str, str, str]] = []
    for index, key in keys.items():
        if key in stored and (record := buffer.get(key)) is not None:
            asks.append((index, key, record.repo, str(record.event.get("actor")), record.kind))
    for submission, index in zip(submissions, indexes, strict=True):
        actor = str(submission.event.get("actor"))
        asks.append((index, submission.key, submission.repo, actor, submission.kind))
    for index, key, repo, actor, kind in sorted(asks, key=lambda ask: ask[0]):
        _ask(authorise, index, key, repo, actor, kind)


def _ask(authorise: EventAuthoriser, index: int, key: str, repo: str, actor: str, kind: str) -> None:
    try:
        authorise.check(repo, actor, kind)
    except (Unauthorized, Forbidden) as error:
        raise type(error)(f"event #{index} (key {key!r}, {kind} in repo {repo!r}): {error.message}") from None


_RESULTS: dict[Outcome, Literal["accepted", "duplicate", "rejected"]] = {
    Outcome.ACCEPTED: "accepted",
    Outcome.DUPLICATE: "duplicate",
    Outcome.CONFLICT: "rejected",
}


def _answer_each(
    buffer: WriteBuffer,
    problems: list[dict[str, Any]],
    submissions: list[Submission],
    indexes: list[int],
) -> dict[int, EventResult]:
    """Store the good events of a relayed batch and answer every event on its own, by index."""
    answers: dict[int, EventResult] = {}
    for problem in problems:
        said = f"{problem['field']}: {problem['message']}"
        earlier = answers.get(problem["index"])
        if earlier is not None and isinstance(earlier.reason, str):
            said = f"{earlier.reason}; {said}"
        answers[problem["index"]] = EventResult(problem["key"], "rejected", None, said)
    outcomes = buffer.append(submissions, conflicts="report")
    states = buffer.states([s.key for s in submissions])
    for submission, index, outcome in zip(submissions, indexes, outcomes, strict=True):
        if outcome is Outcome.CONFLICT:
            answers[index] = EventResult(submission.key, "rejected", None, str(KeyConflict(submission.key)))
            continue
        state, reason = states[submission.key]
        answers[index] = EventResult(submission.key, _RESULTS[outcome], state, reason)
    return answers


def _check(
    event: Event,
    kinds: EventKinds,
    known: _Known,
    registered: set[str],
    buffer: WriteBuffer,
    adding: dict[tuple[str, str], str],
    pending_adds: dict[str, dict[str, str]],
) -> str | dict[str, str]:
    """The repo the event goes to, or the problems per field."""
    if kinds[event.kind].fixed_path is not None:
        if event.repo is None:
            return {"repo": "required for this kind of event"}
        if event.repo not in registered:
            return {"repo": f"no repo registered as {event.repo!r}"}
        return event.repo
    plan = event.workplan_id
    assert plan is not None
    repos = known.plans.get(plan, [])
    if not repos:
        return {"workplan": f"no workplan {plan} in any registered repo"}
    if len(repos) > 1:
        return {"workplan": f"workplan id {plan} is claimed by more than one file; rename one first"}
    repo = repos[0]
    if event.repo is not None and event.repo != repo:
        return {"repo": f"workplan {plan} is in repo {repo!r}, not {event.repo!r}"}
    task = getattr(event, "task", None)
    if task is None:
        return repo
    title = known.tasks.get((plan, task)) or adding.get((plan, task))
    if title is None:  # maybe a task that a pending task.add will create
        if plan not in pending_adds:
            pending_adds[plan] = buffer.pending_task_adds(plan)
        title = pending_adds[plan].get(task)
    if isinstance(event, TaskAddEvent):
        if title is not None and title != event.title:
            return {"task": f"task {plan}-{task} already exists with title {title!r}; add it under a free id"}
        adding[(plan, task)] = event.title
        return repo
    if title is None:
        return {"task": f"no task {task} in workplan {plan}"}
    return repo


def next_task_id(hub: Hub, buffer: WriteBuffer, workplan: str) -> str:
    """The next free task id in a workplan, counting tasks that pending events will add."""
    with hub.engine.connect() as conn:
        taken = set(conn.execute(select(TASKS.c.task_id).where(TASKS.c.workplan_id == workplan)).scalars())
    taken |= set(buffer.pending_task_adds(workplan))
    numbers = [int(t[1:]) for t in taken if t[1:].isdigit()]
    return f"T{max(numbers, default=0) + 1:02d}"
