"""Apply an event to a file's text, changing only what the event names.

The front matter is edited with tomlkit, which keeps comments, key order and
spacing; the body is left byte-for-byte alone except that progress notes are
appended to its Progress section, found as a CommonMark reader finds it
(:mod:`workplans.progress`). Every line an event does not change keeps its
bytes, line ending and byte order mark included; new and changed lines take
the line ending of their neighbourhood (:func:`workplans.lines.keep_line_endings`).
Applying an event the text already reflects returns the same text, which is
what makes the hub's write-back safe to repeat after a crash.

Extension point: every kind is a row of an :class:`~workplans.events.EventKinds`
table (an :class:`~workplans.events.EventKind` with a ``read`` and an ``apply``
function), built once and passed in. A fleet kind, say ``fleet.workload.state``,
is a row with ``fixed_path = "registry/fleet.toml"`` and an ``apply(text, event)
-> text`` that edits that TOML file (``registry.event_kinds``);
:func:`apply_event` and the hub's write-back then handle it like the four
workplan kinds (:func:`workplans.event_kinds.workplan_event_kinds`).
"""

from __future__ import annotations

import re
import threading
import tomllib
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Table

from workplans.errors import ApplyError, BrokenTarget, NoLongerApplies, UnclosedFrontMatter
from workplans.front_matter import split_front_matter
from workplans.lines import ending, keep_line_endings, split_lines, strip_ending
from workplans.progress import add_progress_line

if TYPE_CHECKING:
    from workplans.events import (
        Event,
        EventKinds,
        ProgressNoteEvent,
        TaskAddEvent,
        TaskClaimEvent,
        TaskReleaseEvent,
        TaskStatusEvent,
        WorkplanStatusEvent,
    )

__all__ = [
    "ApplyError",
    "BrokenTarget",
    "NoLongerApplies",
    "apply_event",
    "apply_progress_note",
    "apply_task_add",
    "apply_task_claim",
    "apply_task_release",
    "apply_task_status",
    "apply_workplan_status",
    "event_marker",
    "progress_line",
]


def apply_event(text: str, event: Event, kinds: EventKinds) -> str:
    """Apply ``event`` to ``text`` through its kind's applier in ``kinds`` (see the module docstring)."""
    kind = kinds.get(event.kind)
    if kind is None:
        raise NoLongerApplies(f"unknown event kind {event.kind!r}")
    result: str = kind.apply(text, event)
    return result


def event_marker(key: str) -> str:
    return f"<!-- event:{key} -->"


def progress_line(at: str, ref: str, actor: str, note: str, key: str) -> str:
    """One line of ``## Progress``, exactly as FORMAT.md shows it."""
    return f"- {at} {ref} @{actor}: {note} {event_marker(key)}"


# the file's parts --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Parts:
    """A workplan file cut at its fences; an applier replaces ``toml`` or ``body`` and joins them back."""

    opening: str
    toml: str
    closing: str
    body: str

    def join(self) -> str:
        closing = self.closing
        if self.body and not ending(closing):  # the file ended at the fence and now has a body
            closing += self.closing_ending()
        return self.opening + self.toml + closing + self.body

    def closing_ending(self) -> str:
        """The closing fence's line ending, or the one it gets from its neighbours when it has none."""
        return ending(self.closing) or ending(split_lines(self.toml)[-1] if self.toml else self.opening)

    def body_line(self) -> int:
        """The file line of the body's first line (TOML holds no lone CR, so LF counts its lines)."""
        return self.toml.count("\n") + 3


def _split(text: str) -> _Parts:
    try:
        front = split_front_matter(text)
    except UnclosedFrontMatter:
        raise BrokenTarget("the front matter opened with '+++' is never closed") from None
    if front is None:
        raise BrokenTarget("the file no longer opens with '+++' front matter")
    return _Parts(front.opening, front.toml, front.closing, front.body)


class _Parsed(threading.local):
    """Front matter parsed in this thread, keyed by its exact text.

    Write-back applies runs of events to a few files, each call getting the
    text the previous call returned, so the same front matter is read again and
    again. Checks read it with tomllib (fast); only an edit needs tomlkit's
    style-keeping document (slow). Both are reused for a byte-identical text
    only, which gives the same result as a fresh parse. An edited document is
    taken out (:func:`_document`) and put back under the text it now renders
    to (:func:`_store`), so it is never found under a text it no longer matches.
    """

    def __init__(self) -> None:
        self.data: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.docs: OrderedDict[str, tomlkit.TOMLDocument] = OrderedDict()


_PARSED = _Parsed()
_KEEP = 256
"""Documents kept per thread: enough for every workplan a busy fleet touches between two passes."""


def _remember(cache: OrderedDict[str, Any], text: str, value: Any) -> None:
    cache[text] = value
    cache.move_to_end(text)
    while len(cache) > _KEEP:
        cache.popitem(last=False)


def _data(parts: _Parts, workplan: str) -> dict[str, Any]:
    """The front matter as plain data, for checks; raises when it is not this workplan's."""
    data = _PARSED.data.get(parts.toml)
    if data is None:
        try:
            data = tomllib.loads(parts.toml)
        except tomllib.TOMLDecodeError as error:
            raise BrokenTarget(f"the front matter is not valid TOML ({error}); fix the file") from None
        _remember(_PARSED.data, parts.toml, data)
    if data.get("id") != workplan:
        raise NoLongerApplies(f"the file now holds workplan {data.get('id')!r}, not {workplan}")
    return data


def _document(parts: _Parts) -> tomlkit.TOMLDocument:
    """The style-keeping document to edit; the caller hands it back through :func:`_store`."""
    doc = _PARSED.docs.pop(parts.toml, None)
    if doc is None:
        try:
            doc = tomlkit.parse(parts.toml)
        except TOMLKitError as error:
            raise BrokenTarget(f"the front matter is not valid TOML ({error}); fix the file") from None
    return doc


def _store(parts: _Parts, doc: tomlkit.TOMLDocument, data: dict[str, Any] | None = None) -> None:
    """Render the edited ``doc`` into ``parts`` and keep it for the next call; ``data``, when the
    caller knows it, is what tomllib reads from the new text (kept too: the next check is free)."""
    parts.toml = keep_line_endings(parts.toml, tomlkit.dumps(doc), ending(parts.opening))
    _remember(_PARSED.docs, parts.toml, doc)
    if data is not None:
        _remember(_PARSED.data, parts.toml, data)


def _task_data(data: dict[str, Any], task_id: str) -> dict[str, Any] | None:
    tasks = data.get("tasks")
    if not isinstance(tasks, list):
        return None
    return next((t for t in tasks if isinstance(t, dict) and t.get("id") == task_id), None)


def _task_data_with(data: dict[str, Any], task: dict[str, Any], **values: Any) -> dict[str, Any]:
    """``data`` with ``values`` set in its task ``task`` (a new dict; the cached one is never changed):
    what tomllib reads once the same values are set through tomlkit."""
    tasks = [{**t, **values} if t is task else t for t in data["tasks"]]
    return {**data, "tasks": tasks}


def _find_task(doc: tomlkit.TOMLDocument, task_id: str) -> Table | None:
    tasks = doc.get("tasks")
    if not isinstance(tasks, AoT | list):
        return None
    for table in tasks:
        if isinstance(table, dict) and table.get("id") == task_id:
            return table  # type: ignore[return-value]
    return None


# the workplan kinds -------------------------------------------------------------------------


def apply_task_status(text: str, event: TaskStatusEvent) -> str:
    parts = _split(text)
    task = _task_data(_data(parts, event.workplan), event.task)
    if task is None:
        raise NoLongerApplies(f"task {event.ref} is no longer in the workplan (removed or renamed)")
    if task.get("status", "todo") != event.status.value:
        doc = _document(parts)
        table = _find_task(doc, event.task)
        assert table is not None  # the same text parsed with tomllib has it
        table["status"] = event.status.value
        data = _task_data_with(_data(parts, event.workplan), task, status=event.status.value)
        _store(parts, doc, data)
    if event.note:
        _with_progress(parts, event, event.ref, event.note)
    return parts.join()


def _set_task_fields(parts: _Parts, workplan: str, task_id: str, ref: str, values: dict[str, Any]) -> None:
    """Set (value) or remove (None) keys of one task's table, touching nothing else; no-op when the
    front matter already says so."""
    data = _data(parts, workplan)
    task = _task_data(data, task_id)
    if task is None:
        raise NoLongerApplies(f"task {ref} is no longer in the workplan (removed or renamed)")
    if all(task.get(key) == value for key, value in values.items()):
        return
    after = {key: value for key, value in {**task, **values}.items() if value is not None}
    tasks = [after if t is task else t for t in data["tasks"]]
    expected = {**data, "tasks": tasks}
    if _splice_task_fields(parts, task_id, values, expected):
        return
    doc = _document(parts)
    table = _find_task(doc, task_id)
    assert table is not None  # the same text parsed with tomllib has it
    for key, value in values.items():
        if value is None:
            if key in table:
                del table[key]
        elif table.get(key) != value:
            table[key] = value
    _store(parts, doc, expected)


_PLAIN_VALUE = re.compile(r"[A-Za-z0-9 ._@:+/-]*")
"""A value written as a basic string with nothing to escape (statuses, actors)."""
_KEY_LINE = re.compile(
    r'(?P<indent>[ \t]*)(?P<key>[A-Za-z0-9_-]+)(?P<sep>[ \t]*=[ \t]*)"(?P<value>[^"\\\r\n]*)"[ \t]*'
)
"""``key = "value"``: a bare key and a basic string with nothing escaped, no comment."""
_ONE_LINE = re.compile(r"[ \t]*(?P<key>[A-Za-z0-9_-]+)[ \t]*=[ \t]*(?P<rest>\S.*)")
"""Any ``key = value`` line; :func:`_single_line` tells whether its value ends on it."""


def _single_line(rest: str) -> bool:
    """Whether a value written as ``rest`` (what follows ``=``) ends on its line: not a multi-line
    string, and an array or inline table closed on the line (the tomllib check catches the rest)."""
    if rest.startswith(('"""', "'''")):
        return False
    closing = {"[": "]", "{": "}"}.get(rest[0])
    return closing is None or rest.rstrip().endswith(closing)


def _splice_task_fields(
    parts: _Parts, task_id: str, values: dict[str, Any], expected: dict[str, Any]
) -> bool:
    """Set or remove ``values`` (plain strings or None) in task ``task_id``'s ``[[tasks]]`` table by
    editing its lines, when the table is written plainly: one-line ``key = value`` lines and blank
    lines, the keys to change as ``key = "value"`` (no comment, nothing escaped). A key it lacks
    goes after its last key line, as tomlkit puts it. Kept only when tomllib reads the result as
    ``expected`` (the data the tomlkit edit gives); otherwise nothing changes and False sends the
    caller to tomlkit. For these tables it writes
    what tomlkit writes (tests/workplans/test_apply_splice.py) at a fraction of the cost: a parse
    with tomlkit, two keys set and a render took ~1.5 ms of a claim's write-back, the tomllib read
    that checks the splice ~0.1 ms (bench/claims.py, canon/ADR-042)."""
    if not all(v is None or (isinstance(v, str) and _PLAIN_VALUE.fullmatch(v)) for v in values.values()):
        return False
    lines = split_lines(parts.toml)
    headers = [number for number, line in enumerate(lines) if line.lstrip().startswith("[")]
    found: list[tuple[int, int]] = []
    for start, end in zip(headers, [*headers[1:], len(lines)], strict=True):
        if lines[start].strip() != "[[tasks]]":
            continue
        for line in lines[start + 1 : end]:
            key = _KEY_LINE.fullmatch(strip_ending(line))
            if key is not None and key["key"] == "id" and key["value"] == task_id:
                found.append((start, end))
    if len(found) != 1:
        return False
    start, end = found[0]
    table = lines[start + 1 : end]
    keyed: dict[str, tuple[int, re.Match[str]]] = {}
    last = -1
    for index, line in enumerate(table):
        if not line.strip():
            continue
        any_key = _ONE_LINE.fullmatch(strip_ending(line))
        if any_key is None or not _single_line(any_key["rest"]) or not ending(line):
            return False  # a comment, a value over several lines, the last line unended
        last = index
        key = _KEY_LINE.fullmatch(strip_ending(line))
        if key is not None:
            if key["key"] in keyed:
                return False
            keyed[key["key"]] = (index, key)
        elif any_key["key"] in values:
            return False  # a key to change written another way (a comment after it, an escape)
    edited: list[str | None] = list(table)
    added: list[str] = []
    for name, value in values.items():
        if name not in keyed:
            if value is not None:  # after the last key line, written like the id's
                _, model = keyed["id"]
                added.append(f'{model["indent"]}{name}{model["sep"]}"{value}"' + ending(table[last]))
            continue
        index, key = keyed[name]
        line_end = ending(table[index])
        edited[index] = None if value is None else f'{key["indent"]}{name}{key["sep"]}"{value}"{line_end}'
    kept = [line for line in edited[: last + 1] if line is not None]
    rest = [line for line in edited[last + 1 :] if line is not None]
    toml = "".join([*lines[: start + 1], *kept, *added, *rest, *lines[end:]])
    try:
        if tomllib.loads(toml) != expected:
            return False
    except tomllib.TOMLDecodeError:
        return False
    _PARSED.docs.pop(parts.toml, None)  # a style-keeping document of the old text is stale
    parts.toml = toml
    _remember(_PARSED.data, toml, expected)
    return True


def _task_now(parts: _Parts, workplan: str, task_id: str, ref: str) -> tuple[str, Any]:
    """(status, owner) of the task as the file has it now; NoLongerApplies when it is gone."""
    task = _task_data(_data(parts, workplan), task_id)
    if task is None:
        raise NoLongerApplies(f"task {ref} is no longer in the workplan (removed or renamed)")
    return str(task.get("status", "todo")), task.get("owner")


def apply_task_claim(text: str, event: TaskClaimEvent) -> str:
    """owner := the claiming actor, status := in-progress (ADR-032).

    Only over a task the file still has ``todo`` (or already in progress under the claimer: a
    re-application). A claim accepted while the file said todo can wait (a person's uncommitted
    change); when the person's commit marked the task done or gave it to someone meanwhile, the
    claim raises NoLongerApplies and the person's edit stands (canon/ADR-032).
    """
    parts = _split(text)
    status, owner = _task_now(parts, event.workplan, event.task, event.ref)
    if status != "todo" and (status, owner) != ("in-progress", event.actor):
        held = f" by {owner}" if owner else ""
        raise NoLongerApplies(
            f"task {event.ref} is {status}{held} in the file now, not todo: it changed after the "
            "claim was accepted, and the claim does not undo that"
        )
    values = {"owner": event.actor, "status": "in-progress"}
    _set_task_fields(parts, event.workplan, event.task, event.ref, values)
    return parts.join()


def apply_task_release(text: str, event: TaskReleaseEvent) -> str:
    """The status given, the owner from before the claim (removed when it had none), the note to
    Progress (ADR-032).

    Status and owner change only while the file says ``in-progress`` (what the claim made it):
    a task a person marked done, blocked or todo meanwhile keeps what they wrote, and the release
    adds only its note (canon/ADR-032).
    """
    parts = _split(text)
    status, _ = _task_now(parts, event.workplan, event.task, event.ref)
    if status == "in-progress":
        values = {"owner": event.owner, "status": event.status.value}
        _set_task_fields(parts, event.workplan, event.task, event.ref, values)
    if event.note:
        _with_progress(parts, event, event.ref, event.note)
    return parts.join()


def apply_workplan_status(text: str, event: WorkplanStatusEvent) -> str:
    parts = _split(text)
    data = _data(parts, event.workplan)
    if data.get("status") != event.status.value:
        doc = _document(parts)
        doc["status"] = event.status.value
        _store(parts, doc, {**data, "status": event.status.value})
    return parts.join()


def apply_task_add(text: str, event: TaskAddEvent) -> str:
    parts = _split(text)
    data = _data(parts, event.workplan)
    existing = _task_data(data, event.task)
    if existing is not None:
        if existing.get("title") == event.title:
            return text
        raise NoLongerApplies(
            f"task {event.ref} already exists with title {existing.get('title')!r}; "
            "add the task again under a free id"
        )
    values: dict[str, Any] = {"id": event.task, "title": event.title, "status": "todo"}
    if event.owner:
        values["owner"] = event.owner
    if event.depends_on:
        values["depends_on"] = list(event.depends_on)
    tables = any(line.strip().startswith("[[tasks]]") for line in parts.toml.splitlines())
    if "tasks" not in data or tables:
        before = parts.toml
        parts.toml = _append_task_table(parts.toml, values, ending(parts.opening))
        _extend_document(before, parts, values)
    else:  # an inline array of tables: let tomlkit extend it in place
        doc = _document(parts)
        doc["tasks"].append(values)
        _store(parts, doc)
    return parts.join()


def _extend_document(before: str, parts: _Parts, values: dict[str, Any]) -> None:
    """Keep the document of ``before`` (if one is kept) for the text with the table appended,
    when tomlkit renders the same table to exactly that text; else drop it (speed: the next
    edit would otherwise parse the whole front matter again)."""
    doc = _PARSED.docs.pop(before, None)
    tasks = doc.get("tasks") if doc is not None else None
    if doc is None or not isinstance(tasks, AoT) or not len(tasks):
        return
    table = tomlkit.table()
    for key, value in values.items():
        table[key] = value
    tasks[-1].add(tomlkit.nl())
    tasks.append(table)
    if keep_line_endings(before, tomlkit.dumps(doc), ending(parts.opening)) == parts.toml:
        _remember(_PARSED.docs, parts.toml, doc)


def _append_task_table(toml_text: str, values: dict[str, Any], default: str) -> str:
    lines = ["[[tasks]]"] + [f"{key} = {tomlkit.item(value).as_string()}" for key, value in values.items()]
    block = "\n".join(lines) + "\n"
    separator = "\n" if toml_text.strip() else ""
    result = keep_line_endings(toml_text, toml_text + separator + block, default)
    _remember(_PARSED.data, result, tomllib.loads(result))  # the table must keep the front matter valid
    return result


def apply_progress_note(text: str, event: ProgressNoteEvent) -> str:
    parts = _split(text)
    data = _data(parts, event.workplan)
    if event.task is not None and _task_data(data, event.task) is None:
        raise NoLongerApplies(f"task {event.ref} is no longer in the workplan (removed or renamed)")
    _with_progress(parts, event, event.ref, event.note)
    return parts.join()


def _with_progress(parts: _Parts, event: Event, ref: str, note: str) -> None:
    """Append one progress line to the Progress section (:mod:`workplans.progress`), once per event."""
    if event_marker(event.key) in parts.body:
        return
    line = progress_line(event.at, ref, event.actor, note, event.key)
    parts.body = add_progress_line(parts.body, line, parts.closing_ending(), parts.body_line())
