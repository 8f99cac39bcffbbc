"""The benchmark corpus, registered through the CLI, gives exact counts, names every broken file,
and gives the same answers after the cache file is deleted (issue 2's acceptance check, small)."""

from __future__ import annotations

import tomllib
from typing import TYPE_CHECKING

from click.testing import CliRunner

from bench.corpus import build_corpus
from statehub.cli import main
from tests.clijson import cli_data
from tests.gitfixtures import lose_cache

if TYPE_CHECKING:
    from pathlib import Path

    from statehub.settings import Settings


def _ready_by_definition(repos: list[Path], broken: set[str]) -> set[str]:
    """ADR-004 in plain Python over the files, independent of the cache's SQL."""
    tasks: dict[str, dict[str, object]] = {}
    for repo in repos:
        for path in sorted((repo / "workplans").glob("*.md")):
            if f"{repo.name}/workplans/{path.name}" in broken or path.name == "README.md":
                continue
            front = path.read_text(encoding="utf-8").split("+++\n")[1]
            plan = tomllib.loads(front)
            for task in plan.get("tasks", []):
                deps = [d if "-" in d else f"{plan['id']}-{d}" for d in task.get("depends_on", [])]
                tasks[f"{plan['id']}-{task['id']}"] = {"status": task.get("status", "todo"), "deps": deps}
    return {
        ref
        for ref, task in tasks.items()
        if task["status"] not in ("done", "cancelled")
        and all(d in tasks and tasks[d]["status"] == "done" for d in task["deps"])  # type: ignore[attr-defined]
    }


def test_corpus_counts_errors_and_ready_survive_a_lost_cache(settings: Settings, tmp_path: Path) -> None:
    corpus = build_corpus(tmp_path / "corpus", repos=4, workplans=6, broken_every=2)
    runner = CliRunner()
    added = runner.invoke(main, ["repos", "add", "--json", *map(str, corpus.repos)], catch_exceptions=False)
    details = cli_data(added.output)

    def answers() -> tuple[object, ...]:
        summary = cli_data(runner.invoke(main, ["rebuild", "--json"], catch_exceptions=False).output)
        ready = cli_data(runner.invoke(main, ["tasks", "--ready", "--limit", "1000", "--json"]).output)
        return summary, sorted(t["ref"] for t in ready["items"])

    broken = {f"{d['slug']}/{e['path']}" for d in details for e in d["errors"]}
    assert broken == {"repo-000/workplans/broken.md", "repo-002/workplans/broken.md"}
    assert sum(d["counts"]["workplans"] for d in details) == corpus.workplans
    assert sum(d["counts"]["tasks"] for d in details) == corpus.tasks
    assert sum(d["counts"]["canon"] for d in details) == corpus.canon

    before = answers()
    assert before[1] == sorted(_ready_by_definition(corpus.repos, broken))
    lose_cache(settings.database_url, settings.default_cache_file)
    assert answers() == before
