"""Dependency cycles are file errors naming the cycle, and no task in one is ready.

One test per kind: a self-dependency, a cycle inside one workplan, across
workplans of one repo, across repos; a cycle that a done task closes; one that
appears when a missing task is added; one that a refresh breaks in another
file. Shown where file errors are shown: GET /repos/{slug}, ``repos refresh``
and ``rebuild``. Real git repos, a real SQLite cache.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from litestar.testing import TestClient
from sqlalchemy import select

from statehub.cache.schema import FILE_ERRORS, TASKS
from tests.gitfixtures import GitRepo, workplan_text

if TYPE_CHECKING:
    from statehub.hub import Hub

Client = TestClient  # type: ignore[type-arg]


def _task(task_id: str, *depends_on: str, status: str = "todo") -> dict[str, object]:
    return {"id": task_id, "title": f"task {task_id}", "status": status, "depends_on": list(depends_on)}


def _errors(hub: Hub) -> list[tuple[str, str, str]]:
    with hub.engine.connect() as conn:
        rows = conn.execute(
            select(FILE_ERRORS.c.repo, FILE_ERRORS.c.path, FILE_ERRORS.c.message)
            .where(FILE_ERRORS.c.origin == "cycle")
            .order_by(FILE_ERRORS.c.repo, FILE_ERRORS.c.path)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def _tasks(hub: Hub) -> dict[str, tuple[bool, bool]]:
    """ref -> (ready, cyclic)"""
    with hub.engine.connect() as conn:
        rows = conn.execute(select(TASKS.c.ref, TASKS.c.ready, TASKS.c.cyclic))
        return {row.ref: (bool(row.ready), bool(row.cyclic)) for row in rows}


def _registered(hub: Hub, make_repo: Callable[[str], GitRepo], name: str, plans: dict[str, str]) -> GitRepo:
    repo = make_repo(name)
    for path, text in plans.items():
        repo.write(path, text)
    repo.commit()
    hub.register(repo.root)
    return repo


Make = Callable[[str], GitRepo]


def test_a_self_dependency_is_a_finding_and_never_ready(hub: Hub, make_repo: Make) -> None:
    plan = workplan_text("A-WP-0001", [_task("T01", "T01")])
    _registered(hub, make_repo, "a", {"workplans/a.md": plan})
    assert _errors(hub) == [
        (
            "a",
            "workplans/a.md",
            "task T01 in A-WP-0001 depends on itself (T01 -> T01), so it can never be ready; "
            "remove it from its depends_on",
        )
    ]
    assert _tasks(hub) == {"A-WP-0001-T01": (False, True)}


def test_a_cycle_in_one_workplan_names_its_path_and_a_done_task_does_not_open_it(
    hub: Hub, make_repo: Make
) -> None:
    tasks = [_task("T01", "T02"), _task("T02", "T03", status="done"), _task("T03", "T01")]
    tasks.append(_task("T04", "T02"))
    _registered(hub, make_repo, "a", {"workplans/a.md": workplan_text("A-WP-0001", tasks)})
    (error,) = _errors(hub)
    assert error[:2] == ("a", "workplans/a.md")
    assert error[2].startswith("dependency cycle T01 -> T02 -> T03 -> T01: no task in it can become ready")
    # T03 depends only on T01 and T01 only on T02, which is done: each would be ready but for the cycle
    assert _tasks(hub) == {
        "A-WP-0001-T01": (False, True),
        "A-WP-0001-T02": (False, True),
        "A-WP-0001-T03": (False, True),
        "A-WP-0001-T04": (True, False),  # depends on a done task of the cycle: not in it, so ready
    }


def test_a_cycle_across_workplans_and_repos_is_reported_on_every_file_it_runs_through(
    hub: Hub, make_repo: Make
) -> None:
    _registered(
        hub,
        make_repo,
        "a",
        {
            "workplans/one.md": workplan_text("A-WP-0001", [_task("T01", "A-WP-0002-T01")]),
            "workplans/two.md": workplan_text("A-WP-0002", [_task("T01", "B-WP-0001-T02")]),
        },
    )
    b_open = workplan_text("B-WP-0001", [_task("T01"), _task("T02", "T01")])
    b = _registered(hub, make_repo, "b", {"workplans/b.md": b_open})
    assert _errors(hub) == []  # B-WP-0001-T02 leads nowhere back yet
    closing = [_task("T01"), _task("T02", "T01", "A-WP-0001-T01")]
    b.write("workplans/b.md", workplan_text("B-WP-0001", closing))
    hub.refresh("b")
    message = (
        "dependency cycle A-WP-0001-T01 -> A-WP-0002-T01 -> B-WP-0001-T02 -> A-WP-0001-T01: "
        "no task in it can become ready until one depends_on entry along it is removed"
    )
    assert _errors(hub) == [
        ("a", "workplans/one.md", message),
        ("a", "workplans/two.md", message),
        ("b", "workplans/b.md", message),
    ]
    cyclic = {ref for ref, (_, flagged) in _tasks(hub).items() if flagged}
    assert cyclic == {"A-WP-0001-T01", "A-WP-0002-T01", "B-WP-0001-T02"}
    # breaking it in one file clears the finding in all three, and readiness comes back
    b.write("workplans/b.md", workplan_text("B-WP-0001", [_task("T01", status="done"), _task("T02", "T01")]))
    hub.refresh("b")
    assert _errors(hub) == []
    assert _tasks(hub)["B-WP-0001-T02"] == (True, False)


def test_a_cycle_appears_when_the_task_it_was_waiting_for_is_added(hub: Hub, make_repo: Make) -> None:
    plan = workplan_text("A-WP-0001", [_task("T01", "A-WP-0002-T01")])
    repo = _registered(hub, make_repo, "a", {"workplans/a.md": plan})
    assert _errors(hub) == []  # a dependency on a task that does not exist: not ready, no cycle
    repo.write("workplans/b.md", workplan_text("A-WP-0002", [_task("T01", "A-WP-0001-T01")]))
    hub.refresh("a")
    assert [path for _, path, _ in _errors(hub)] == ["workplans/a.md", "workplans/b.md"]
    (repo.root / "workplans" / "b.md").unlink()
    hub.refresh("a")
    assert _errors(hub) == [] and _tasks(hub)["A-WP-0001-T01"] == (False, False)


def test_a_refresh_gives_what_a_rebuild_gives(hub: Hub, make_repo: Make) -> None:
    plan = workplan_text("A-WP-0001", [_task("T01", "T02"), _task("T02")])
    repo = _registered(hub, make_repo, "a", {"workplans/a.md": plan})
    repo.write("workplans/a.md", workplan_text("A-WP-0001", [_task("T01", "T02"), _task("T02", "T01")]))
    hub.refresh("a")
    refreshed = (_errors(hub), _tasks(hub))
    hub.rebuild()
    assert (_errors(hub), _tasks(hub)) == refreshed and refreshed[0]


def test_cycles_show_where_file_errors_show(client: Client, make_repo: Make) -> None:
    repo = make_repo("a")
    repo.write("workplans/a.md", workplan_text("A-WP-0001", [_task("T01", "T02"), _task("T02", "T01")]))
    repo.commit()
    assert client.post("/repos", json={"path": str(repo.root)}).status_code == 201
    shown = client.get("/repos/a").json()
    assert [(e["path"], e["message"].split(":")[0]) for e in shown["errors"]] == [
        ("workplans/a.md", "dependency cycle T01 -> T02 -> T01")
    ]
    assert [r["error_count"] for r in client.get("/repos").json()["items"]] == [1]
    ready = client.get("/tasks", params={"ready": "true"}).json()
    assert ready["items"] == []
