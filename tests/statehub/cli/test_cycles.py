"""``statehub repos refresh`` and ``statehub rebuild`` print a dependency cycle like any file error."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.clijson import cli_data
from tests.gitfixtures import GitRepo, workplan_text

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.statehub.cli.conftest import Run

CYCLE = "dependency cycle OPS-WP-0001-T02 -> OPS-WP-0002-T01 -> OPS-WP-0001-T02"


def test_refresh_and_rebuild_print_the_cycle(run: Run, make_repo: Callable[[str], GitRepo]) -> None:
    repo = make_repo("ops")
    one = [{"id": "T01", "title": "a"}, {"id": "T02", "title": "b", "depends_on": ["OPS-WP-0002-T01"]}]
    repo.write("workplans/one.md", workplan_text("OPS-WP-0001", one))
    repo.write("workplans/two.md", workplan_text("OPS-WP-0002", [{"id": "T01", "title": "c"}]))
    repo.commit()
    assert run("repos", "add", str(repo.root)).exit_code == 0
    repo.write(
        "workplans/two.md",
        workplan_text("OPS-WP-0002", [{"id": "T01", "title": "c", "depends_on": ["OPS-WP-0001-T02"]}]),
    )
    refreshed = run("repos", "refresh", "ops").output
    assert f"workplans/one.md: {CYCLE}" in refreshed and f"workplans/two.md: {CYCLE}" in refreshed
    rebuilt = run("rebuild").output
    assert "2 file errors" in rebuilt and f"ops/workplans/two.md: {CYCLE}" in rebuilt
    summary = cli_data(run("rebuild", "--json").output)
    assert [(e["path"], e["message"].startswith(CYCLE)) for e in summary["errors"]] == [
        ("workplans/one.md", True),
        ("workplans/two.md", True),
    ]
    assert cli_data(run("tasks", "--ready", "--json").output)["total"] == 1  # OPS-WP-0001-T01 only
