"""Apply an event to a file's text, changing only what the event names.

The front matter is edited with tomlkit, which keeps comments, key order and
spacing; the body is left byte-for-byte alone except that progress notes are
appended under ``## Progress``. Applying an event the text already reflects
returns the same text, which is what makes the hub's write-back safe to repeat
after a crash.

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

from workplans.errors import ApplyError, BrokenTarget, NoLongerApplies
from workplans.front_matter import FENCE

if TYPE_CHECKING:
    from workplans.events import (
        Event,
        EventKinds,
        ProgressNoteEvent,
        TaskAddEvent,
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
    "apply_task_status",
    "apply_workplan_status",
    "event_marker",
    "progress_line",
]

PROGRESS_HEADING = "## Progress"
_BARE_LF = re.compile(r"(?<!\r)\n")


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
    opening: str
    toml: str
    closing: str
    body: str
    newline: str

    def join(self) -> str:
        return self.opening + self.toml + self.closing + self.body


def _split(text: str) -> _Parts:
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip("\r\n") != FENCE:
        raise BrokenTarget("the file no longer opens with '+++' front matter")
    for index in range(1, len(lines)):
        if lines[index].rstrip("\r\n") == FENCE:
            newline = "\r\n" if lines[0].endswith("\r\n") else "\n"
            return _Parts(
                lines[0], "".join(lines[1:index]), lines[index], "".join(lines[index + 1 :]), newline
            )
    raise BrokenTarget("the front matter opened with '+++' is never closed")


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
    text = tomlkit.dumps(doc)
    if parts.newline == "\r\n":  # tomlkit writes new lines with "\n"; keep the file's line endings
        text = _BARE_LF.sub("\r\n", text)
    parts.toml = text
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


# the four workplan kinds -------------------------------------------------------------------------


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
        parts.body = _with_progress(parts.body, parts.newline, event, event.ref, event.note)
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
        parts.toml = _append_task_table(parts.toml, values, parts.newline)
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
    text = tomlkit.dumps(doc)
    if parts.newline == "\r\n":
        text = _BARE_LF.sub("\r\n", text)
    if text == parts.toml:
        _remember(_PARSED.docs, parts.toml, doc)


def _append_task_table(toml_text: str, values: dict[str, Any], newline: str) -> str:
    lines = ["[[tasks]]"] + [f"{key} = {tomlkit.item(value).as_string()}" for key, value in values.items()]
    block = newline.join(lines) + newline
    if toml_text and not toml_text.endswith("\n"):
        toml_text += newline
    separator = newline if toml_text.strip() else ""
    result = toml_text + separator + block
    _remember(_PARSED.data, result, tomllib.loads(result))  # the table must keep the front matter valid
    return result


def apply_progress_note(text: str, event: ProgressNoteEvent) -> str:
    parts = _split(text)
    data = _data(parts, event.workplan)
    if event.task is not None and _task_data(data, event.task) is None:
        raise NoLongerApplies(f"task {event.ref} is no longer in the workplan (removed or renamed)")
    parts.body = _with_progress(parts.body, parts.newline, event, event.ref, event.note)
    return parts.join()


def _with_progress(body: str, newline: str, event: Event, ref: str, note: str) -> str:
    """Append one progress line under ``## Progress``, creating the section at the end if absent."""
    if event_marker(event.key) in body:
        return body
    line = progress_line(event.at, ref, event.actor, note, event.key) + newline
    lines = body.splitlines(keepends=True)
    heading = next((i for i, raw in enumerate(lines) if raw.rstrip() == PROGRESS_HEADING), None)
    if heading is None:
        if body and not body.endswith(("\n", "\r")):
            body += newline
        lead = newline if body.strip() else ""
        return body + lead + PROGRESS_HEADING + newline + newline + line
    if not lines[heading].endswith(("\n", "\r")):
        lines[heading] += newline
    end = next(
        (i for i in range(heading + 1, len(lines)) if lines[i].startswith(("# ", "## "))),
        len(lines),
    )
    last = max((i for i in range(heading + 1, end) if lines[i].strip()), default=None)
    if last is None:
        insert = [newline, line]
        at = heading + 1
    else:
        insert = [line]
        at = last + 1
        if not lines[last].endswith(("\n", "\r")):
            lines[last] += newline
    if at >= len(lines) and lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += newline
    lines[at:at] = insert
    return "".join(lines)
