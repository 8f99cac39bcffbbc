"""Which manifests are editable, how they are validated, and how a save writes and commits."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from statehub.collab import ManifestSaver
from statehub.errors import BadRequest, NotFound
from statehub.manifests import resolve_doc, validate
from sync.saving import Person, SaveRequest

if TYPE_CHECKING:
    from collections.abc import Callable

    from statehub.hub import Hub
    from tests.gitfixtures import GitRepo

FLEET = (
    '[[machines]]\nname = "railiance01"\nrole = "production-home"\n\n'
    '[[workloads]]\nname = "api"\ncurrent_host = "railiance01"\n'
)


def test_only_the_two_manifests_of_a_registered_repo_are_editable(
    hub: Hub, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = make_repo("demo")
    repo.commit()
    hub.register(repo.root)
    assert resolve_doc(hub, "demo/registry/fleet.toml").file == repo.root / "registry/fleet.toml"
    with pytest.raises(BadRequest, match="not an editable manifest"):
        resolve_doc(hub, "demo/workplans/a.md")
    with pytest.raises(BadRequest):
        resolve_doc(hub, "demo/../statehub.toml")
    with pytest.raises(NotFound, match="no repo registered"):
        resolve_doc(hub, "other/statehub.toml")


def test_fleet_problems_have_lines_and_columns() -> None:
    assert validate("registry/fleet.toml", FLEET) == []
    problems = validate("registry/fleet.toml", FLEET + '\n[[lanes]]\nfrom = "railiance01"\nto = "a"\n')
    assert problems == [
        {"line": 9, "column": 1, "message": "lane #1: missing required key 'name'"},
        {
            "line": 11,
            "column": 1,
            "message": "lane #1: 'to' = 'a' is not a machine in this file (machines: railiance01)",
        },
    ]
    assert validate("registry/fleet.toml", "machines = 3\n")[0]["line"] == 1
    syntax = validate("registry/fleet.toml", '[[machines]]\nname = "a\n')
    assert syntax[0]["line"] == 2 and syntax[0]["column"] is not None


def test_a_manifest_schema_problem_points_at_its_line() -> None:
    problems = validate("statehub.toml", '[repo]\nslug = "Bad Slug"\n')
    assert problems[0]["line"] == 2 and "slug" in problems[0]["message"]


def _request(repo: GitRepo, text: str, base: str) -> SaveRequest:
    return SaveRequest("demo/statehub.toml", text, base, Person("Ada"), [])


def test_a_save_never_commits_over_an_uncommitted_change(
    hub: Hub, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = make_repo("demo")
    repo.write("statehub.toml", '[repo]\nslug = "demo"\n')
    repo.commit()
    hub.register(repo.root)
    repo.write("statehub.toml", '[repo]\nslug = "demo"\ntitle = "mine, not committed"\n')
    dirty = repo.read("statehub.toml")
    outcome = asyncio.run(ManifestSaver(hub)(_request(repo, dirty + "# room edit\n", dirty)))
    assert not outcome.ok and "uncommitted changes" in outcome.message
    assert repo.read("statehub.toml") == dirty


def test_a_save_refuses_when_the_file_moved_under_it(hub: Hub, make_repo: Callable[[str], GitRepo]) -> None:
    repo = make_repo("demo")
    repo.write("statehub.toml", '[repo]\nslug = "demo"\n')
    repo.commit()
    hub.register(repo.root)
    outcome = asyncio.run(
        ManifestSaver(hub)(_request(repo, '[repo]\nslug = "demo"\n# x\n', "something older"))
    )
    assert not outcome.ok and "changed on disk" in outcome.message
    assert repo.read("statehub.toml") == '[repo]\nslug = "demo"\n'


def test_a_save_commits_only_its_file(hub: Hub, make_repo: Callable[[str], GitRepo]) -> None:
    repo = make_repo("demo")
    repo.write("statehub.toml", '[repo]\nslug = "demo"\n')
    repo.commit()
    hub.register(repo.root)
    repo.write("notes.txt", "staged, not ours\n")
    repo.git("add", "notes.txt")
    base = repo.read("statehub.toml")
    outcome = asyncio.run(ManifestSaver(hub)(_request(repo, base + 'title = "T"\n', base)))
    assert outcome.ok and outcome.commit
    assert repo.git("show", "--name-only", "--format=", "HEAD").split() == ["statehub.toml"]
    assert "A  notes.txt" in repo.git("status", "--porcelain")
    assert repo.git("log", "-1", "--format=%an <%ae>").strip() == "Ada <ada@users.statehub.invalid>"
