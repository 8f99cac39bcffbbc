"""Workplans: Markdown files whose TOML front matter lists the plan and its tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workplans._fields import KeyLines, Reader
from workplans._toml import load_toml
from workplans.front_matter import FENCE, missing_front_matter, split_front_matter
from workplans.ids import TASK_ID, WORKPLAN_ID, is_task_id, is_task_ref
from workplans.models import Task, TaskStatus, Workplan, WorkplanStatus
from workplans.problems import FileProblem, FormatError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["SKIPPED_WITHOUT_FRONT_MATTER", "parse_workplan", "render_workplan"]

SKIPPED_WITHOUT_FRONT_MATTER = frozenset({"README.md", "index.md"})
"""File names under ``workplans/`` that may be plain Markdown (FORMAT.md)."""

_WORKPLAN_KEYS = frozenset(("id", "title", "status", "owner", "related", "tasks"))
_TASK_KEYS = frozenset(("id", "title", "status", "owner", "depends_on"))


def parse_workplan(text: str, path: str) -> Workplan | None:
    """Parse a workplan file; None for a README/index without front matter.

    Raises FormatError listing every problem found, each with path and line.
    """
    try:
        front = split_front_matter(text)
    except ValueError as error:
        raise FormatError([FileProblem(path, 1, str(error))]) from None
    if front is None:
        if path.rsplit("/", 1)[-1] in SKIPPED_WITHOUT_FRONT_MATTER:
            return None
        line, message = missing_front_matter(text, "a workplan")
        raise FormatError([FileProblem(path, line, message)])
    data = load_toml(front.toml, path, front.first_line)
    lines = KeyLines(front.toml, front.first_line)
    problems: list[FileProblem] = []
    top = Reader(data, path, lines, problems)
    plan_id = top.pattern("id", WORKPLAN_ID, "CUST-WP-0054")
    title = top.string("title", required=True)
    status = top.choice("status", WorkplanStatus)
    owner = top.string("owner", required=False)
    related = top.strings("related")
    tasks = _parse_tasks(data.get("tasks", []), path, lines, problems, top)
    if problems:
        raise FormatError(problems)
    assert plan_id is not None and title is not None and status is not None
    return Workplan(
        id=plan_id,
        title=title,
        status=status,
        owner=owner,
        related=related,
        tasks=tasks,
        body=front.body,
        extra=top.extra(_WORKPLAN_KEYS),
    )


def _parse_tasks(
    raw: Any, path: str, lines: KeyLines, problems: list[FileProblem], top: Reader
) -> tuple[Task, ...]:
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        top.problem("tasks", "'tasks' must be an array of tables written as [[tasks]]")
        return ()
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    for index, table in enumerate(raw):
        reader = Reader(table, path, lines, problems, "tasks", index, _task_label(table, index))
        task_id = reader.pattern("id", TASK_ID, "T01")
        title = reader.string("title", required=True)
        status = reader.choice("status", TaskStatus, default=TaskStatus.TODO)
        owner = reader.string("owner", required=False)
        depends_on = reader.strings("depends_on")
        for dependency in depends_on:
            if not (is_task_id(dependency) or is_task_ref(dependency)):
                reader.problem(
                    "depends_on",
                    f"depends_on entry {dependency!r} is neither a task id (T01) "
                    "nor a task reference (CUST-WP-0054-T01)",
                )
        if task_id is not None:
            if task_id in seen:
                reader.problem("id", f"duplicate task id {task_id} (first defined in task #{seen[task_id]})")
            else:
                seen[task_id] = index + 1
        if task_id is None or title is None or status is None:
            continue
        tasks.append(
            Task(
                id=task_id,
                title=title,
                status=status,
                owner=owner,
                depends_on=depends_on,
                extra=reader.extra(_TASK_KEYS),
            )
        )
    return tuple(tasks)


def _task_label(table: dict[str, Any], index: int) -> Callable[[], str]:
    """How problems name a task ("task #2 (T02)"); built only when there is a problem."""

    def label() -> str:
        task_id = table.get("id")
        return f"task #{index + 1}" + (f" ({task_id})" if isinstance(task_id, str) else "")

    return label


def render_workplan(workplan: Workplan) -> str:
    """Write a workplan as a file; ``parse_workplan(render_workplan(w)) == w``."""
    import tomlkit  # only to write: reading and indexing never load it (canon/ADR-033)

    doc = tomlkit.document()
    doc["id"] = workplan.id
    doc["title"] = workplan.title
    doc["status"] = workplan.status.value
    if workplan.owner is not None:
        doc["owner"] = workplan.owner
    if workplan.related:
        doc["related"] = list(workplan.related)
    for key, value in workplan.extra.items():
        doc[key] = value
    if workplan.tasks:
        tasks = tomlkit.aot()
        for task in workplan.tasks:
            table = tomlkit.table()
            table["id"] = task.id
            table["title"] = task.title
            table["status"] = task.status.value
            if task.owner is not None:
                table["owner"] = task.owner
            if task.depends_on:
                table["depends_on"] = list(task.depends_on)
            for key, value in task.extra.items():
                table[key] = value
            tasks.append(table)
        doc["tasks"] = tasks
    return f"{FENCE}\n{tomlkit.dumps(doc)}{FENCE}\n{workplan.body}"
