"""Events: the only way a client changes the files (FORMAT.md, "Events").

An event arrives as JSON. :func:`parse_event` turns it into one typed model per
kind, or raises :class:`InvalidEvent` with one message per field, so a client
fixes every mistake in one round trip. The file-level effect of each kind lives
in :mod:`workplans.apply`; the two meet in an :class:`EventKinds` table, built
once from the kinds' definitions (:func:`workplans.event_kinds.workplan_event_kinds`,
``registry.event_kinds.hub_event_kinds``) and passed to whatever parses or applies.
This module imports neither: nothing is registered as a side effect of an import.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

from workplans.errors import DuplicateEventKind, InvalidEvent
from workplans.ids import TASK_ID, WORKPLAN_ID, is_task_id, is_task_ref
from workplans.models import TaskStatus, WorkplanStatus

__all__ = [
    "ACTOR",
    "ACTOR_RULE",
    "EVENT_KEY",
    "RELEASE_STATUSES",
    "Event",
    "EventKind",
    "EventKinds",
    "FieldReader",
    "InvalidEvent",
    "ProgressNoteEvent",
    "TaskAddEvent",
    "TaskClaimEvent",
    "TaskReleaseEvent",
    "TaskStatusEvent",
    "WorkplanStatusEvent",
    "format_at",
    "is_actor",
    "parse_event",
    "read_progress_note",
    "read_task_add",
    "read_task_claim",
    "read_task_release",
    "read_task_status",
    "read_workplan_status",
]

EVENT_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
"""Keys end up in HTML comments and git trailers, so they stay plain."""
ACTOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")
"""Who acts, in events and in tokens alike (ADR-016, ADR-022): use with ``fullmatch`` (``is_actor``).
It ends up in progress lines, commit authors and token facts, so it stays plain and one line."""
ACTOR_RULE = "letters, digits and . _ @ + - (like agt-codex), starting with a letter or digit, at most 128"
_COMMON = ("key", "kind", "repo", "actor", "at")


def is_actor(value: str) -> bool:
    """Whether ``value`` is an actor name (``ACTOR``), for an event and a token alike."""
    return ACTOR.fullmatch(value) is not None


def format_at(moment: dt.datetime) -> str:
    """The one spelling of a moment in events and progress lines: UTC, seconds, ``Z``.

    The year always has four digits (``0001``), so the text sorts and reads back.
    Raises OverflowError when the moment in UTC falls outside years 1-9999.
    """
    utc = moment.astimezone(dt.UTC)
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}Z"


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """What every event carries. ``repo`` may be left out by a client; the hub fills it in."""

    key: str
    kind: str
    actor: str
    at: str
    repo: str | None = None

    @property
    def workplan_id(self) -> str | None:
        """The workplan whose file this event changes, or None for kinds with a fixed file."""
        return None

    def to_json(self) -> dict[str, Any]:
        """The canonical form: what the buffer stores and compares for duplicates."""
        out: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None or value == ():
                continue
            out[item.name] = list(value) if isinstance(value, tuple) else str(value)
        return dict(sorted(out.items()))


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkplanEvent(Event):
    """An event that changes one workplan's file."""

    workplan: str

    @property
    def workplan_id(self) -> str:
        return self.workplan


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskEvent(WorkplanEvent):
    """An event about one task of a workplan."""

    task: str

    @property
    def ref(self) -> str:
        return f"{self.workplan}-{self.task}"


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskStatusEvent(TaskEvent):
    status: TaskStatus
    note: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskAddEvent(TaskEvent):
    title: str
    owner: str | None = None
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskClaimEvent(TaskEvent):
    """``task.claim``: ``actor`` took the task under a lease (ADR-032): owner := actor, status :=
    in-progress. The lease itself (who, until when) lives in the hub's lease store, not the file."""


RELEASE_STATUSES = (TaskStatus.TODO, TaskStatus.DONE, TaskStatus.BLOCKED)
"""What a released task may become (ADR-032)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskReleaseEvent(TaskEvent):
    """``task.release``: the claim ``claim`` (the key of its ``task.claim`` event) ends.

    The task gets ``status`` (todo | done | blocked) and its owner back: ``owner``
    is the owner it had before the claim, None when it had none (the key goes).
    ``note``, when given, is appended to ``## Progress``.
    """

    claim: str
    status: TaskStatus
    owner: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkplanStatusEvent(WorkplanEvent):
    status: WorkplanStatus


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgressNoteEvent(WorkplanEvent):
    note: str
    task: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.workplan}-{self.task}" if self.task else self.workplan


class FieldReader:
    """Read an event's fields, collecting one message per bad field instead of stopping."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.problems: dict[str, str] = {}
        self.read: set[str] = set()

    def problem(self, name: str, message: str) -> None:
        self.problems.setdefault(name, message)

    def text(self, name: str, *, required: bool, one_line: bool = True) -> str | None:
        self.read.add(name)
        value = self.data.get(name)
        if value is None:
            if required:
                self.problem(name, "required")
            return None
        if not isinstance(value, str):
            self.problem(name, f"must be a string, not {type(value).__name__}")
            return None
        if required and not value.strip():
            self.problem(name, "must not be empty")
            return None
        if one_line and ("\n" in value or "\r" in value):
            self.problem(name, "must be a single line")
            return None
        return value

    def actor(self) -> str | None:
        value = self.text("actor", required=True)
        if value is not None and not is_actor(value):
            self.problem("actor", f"{value[:200]!r} is not valid: use {ACTOR_RULE} characters")
            return None
        return value

    def matching(self, name: str, pattern: re.Pattern[str], example: str, *, required: bool) -> str | None:
        value = self.text(name, required=required)
        if value is not None and not pattern.fullmatch(value):
            self.problem(name, f"{value!r} is not valid (e.g. {example})")
            return None
        return value

    def choice(self, name: str, enum: type[TaskStatus] | type[WorkplanStatus]) -> Any:
        value = self.text(name, required=True)
        if value is None:
            return None
        try:
            return enum(value)
        except ValueError:
            valid = " | ".join(member.value for member in enum)
            self.problem(name, f"{value!r} is not one of {valid}")
            return None

    def strings(self, name: str) -> tuple[str, ...]:
        self.read.add(name)
        value = self.data.get(name, [])
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(name, "must be an array of strings")
            return ()
        return tuple(value)

    def note(self, name: str, *, required: bool) -> str | None:
        value = self.text(name, required=required)
        if value is not None and not value.strip():
            self.problem(name, "must not be blank")
            return None
        if value is not None and "-->" in value:
            self.problem(name, "must not contain '-->' (it would end the progress line's event marker)")
            return None
        if value is not None and len(value) > 2000:
            self.problem(name, "must be at most 2000 characters")
            return None
        return value


@dataclass(frozen=True, slots=True)
class EventKind:
    """One kind of event: how to read it from JSON, and how it changes a file's text.

    ``fixed_path`` names the repo-relative file a kind always changes (a fleet
    kind would say ``registry/fleet.toml``); None means "the file of the
    event's workplan", which the hub looks up in its cache.
    """

    name: str
    read: Callable[[FieldReader, dict[str, Any]], Event | None]
    """Build the typed event from the common fields and a reader of the rest; None if invalid."""
    apply: Callable[[str, Any], str]
    """(file text, event) -> new text; the same text when the file already reflects the event."""
    fixed_path: str | None = None


class EventKinds(Mapping[str, EventKind]):
    """Every kind a reader of events accepts, by name: fixed once built.

    Build it from the kinds' definitions and pass it in; a kind named twice is a
    mistake and refused. ``EventKinds([*workplan_event_kinds(), my_kind])``
    teaches a hub one more kind.
    """

    __slots__ = ("_kinds",)

    def __init__(self, kinds: Iterable[EventKind]) -> None:
        table: dict[str, EventKind] = {}
        for kind in kinds:
            if kind.name in table:
                raise DuplicateEventKind(f"event kind {kind.name!r} is defined twice")
            table[kind.name] = kind
        self._kinds = table

    def __getitem__(self, name: str) -> EventKind:
        return self._kinds[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)

    def __len__(self) -> int:
        return len(self._kinds)

    def names(self) -> list[str]:
        return sorted(self._kinds)

    def __repr__(self) -> str:
        return f"EventKinds({self.names()})"


def _read_at(reader: FieldReader) -> str | None:
    value = reader.text("at", required=True)
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        reader.problem("at", f"{value!r} is not an ISO 8601 date-time (e.g. 2026-07-03T22:29:55Z)")
        return None
    if moment.tzinfo is None:
        reader.problem("at", f"{value!r} has no time zone; write UTC with a Z, e.g. 2026-07-03T22:29:55Z")
        return None
    try:
        return format_at(moment)
    except OverflowError:
        # ADR-022: refused at intake, never accepted and failing later in the buffer or a file.
        reader.problem("at", f"{value!r} falls outside years 0001-9999 in UTC; write UTC with a Z")
        return None


def _task_field(reader: FieldReader, *, required: bool) -> str | None:
    return reader.matching("task", TASK_ID, "T02", required=required)


def parse_event(data: Any, kinds: EventKinds) -> Event:
    """Turn one JSON object into a typed event of one of ``kinds``, or raise InvalidEvent with a
    message per field."""
    if not isinstance(data, Mapping):
        raise InvalidEvent({"event": f"must be a JSON object, not {type(data).__name__}"})
    reader = FieldReader(data)
    common: dict[str, Any] = {
        "key": reader.matching("key", EVENT_KEY, "01JZ3K7T2Q9", required=True),
        "actor": reader.actor(),
        "at": _read_at(reader),
        "repo": reader.text("repo", required=False),
    }
    name = reader.text("kind", required=True)
    kind = kinds.get(name) if name is not None else None
    if name is not None and kind is None:
        reader.problem("kind", f"unknown kind {name!r}: valid kinds are {', '.join(kinds.names())}")
    event = kind.read(reader, common) if kind is not None else None
    for unknown in sorted(k for k in set(data) - reader.read - set(_COMMON) if data[k] is not None):
        reader.problem(unknown, "unknown field for this kind of event")
    if reader.problems or event is None:
        raise InvalidEvent(reader.problems or {"event": "invalid"})
    return event


def _ready(reader: FieldReader, common: dict[str, Any], **values: Any) -> dict[str, Any] | None:
    """The constructor arguments, or None when any field was bad (the reader holds why)."""
    if reader.problems or any(common[name] is None for name in ("key", "actor", "at")):
        return None
    return common | values


def read_task_status(reader: FieldReader, common: dict[str, Any]) -> Event | None:
    workplan = reader.matching("workplan", WORKPLAN_ID, "CUST-WP-0054", required=True)
    task = _task_field(reader, required=True)
    status = reader.choice("status", TaskStatus)
    note = reader.note("note", required=False)
    values = _ready(reader, common, workplan=workplan, task=task, status=status, note=note)
    return TaskStatusEvent(kind="task.status", **values) if values else None


def read_task_add(reader: FieldReader, common: dict[str, Any]) -> Event | None:
    workplan = reader.matching("workplan", WORKPLAN_ID, "CUST-WP-0054", required=True)
    task = _task_field(reader, required=True)
    title = reader.text("title", required=True)
    owner = reader.text("owner", required=False)
    depends_on = reader.strings("depends_on")
    for dependency in depends_on:
        if not (is_task_id(dependency) or is_task_ref(dependency)):
            reader.problem("depends_on", f"{dependency!r} is neither a task id (T01) nor a task reference")
    values = _ready(
        reader, common, workplan=workplan, task=task, title=title, owner=owner, depends_on=depends_on
    )
    return TaskAddEvent(kind="task.add", **values) if values else None


def read_workplan_status(reader: FieldReader, common: dict[str, Any]) -> Event | None:
    workplan = reader.matching("workplan", WORKPLAN_ID, "CUST-WP-0054", required=True)
    status = reader.choice("status", WorkplanStatus)
    values = _ready(reader, common, workplan=workplan, status=status)
    return WorkplanStatusEvent(kind="workplan.status", **values) if values else None


def read_progress_note(reader: FieldReader, common: dict[str, Any]) -> Event | None:
    workplan = reader.matching("workplan", WORKPLAN_ID, "CUST-WP-0054", required=True)
    task = _task_field(reader, required=False)
    note = reader.note("note", required=True)
    values = _ready(reader, common, workplan=workplan, task=task, note=note)
    return ProgressNoteEvent(kind="progress.note", **values) if values else None


def read_task_claim(reader: FieldReader, common: dict[str, Any]) -> Event | None:
    workplan = reader.matching("workplan", WORKPLAN_ID, "CUST-WP-0054", required=True)
    task = _task_field(reader, required=True)
    values = _ready(reader, common, workplan=workplan, task=task)
    return TaskClaimEvent(kind="task.claim", **values) if values else None


def read_task_release(reader: FieldReader, common: dict[str, Any]) -> Event | None:
    workplan = reader.matching("workplan", WORKPLAN_ID, "CUST-WP-0054", required=True)
    task = _task_field(reader, required=True)
    claim = reader.matching("claim", EVENT_KEY, "01JZ3K7T2Q9", required=True)
    status = reader.choice("status", TaskStatus)
    if status is not None and status not in RELEASE_STATUSES:
        valid = " | ".join(member.value for member in RELEASE_STATUSES)
        reader.problem("status", f"{status.value!r} is not one of {valid} (what a released task becomes)")
    owner = reader.text("owner", required=False)
    if owner is not None and not owner.strip():
        reader.problem("owner", "must not be blank (leave it out: the task had no owner)")
    note = reader.note("note", required=False)
    values = _ready(
        reader, common, workplan=workplan, task=task, claim=claim, status=status, owner=owner, note=note
    )
    return TaskReleaseEvent(kind="task.release", **values) if values else None
