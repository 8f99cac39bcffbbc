"""Findings of the issue 12 review, one regression test each, on real repos and a real hub home.

Each test names what was tried and how it failed before the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import git
import httpx
import pytest
from click.testing import CliRunner

from statehub.auth import LOCAL_COMMAND
from statehub.cli import main
from statehub.errors import NEEDS_A_PERSON
from statehub.events import EventDesk
from statehub.gitrepo import git_said, open_repo
from statehub.hub import Hub
from statehub.sweep import sweep
from tests.clijson import cli_data
from tests.gitfixtures import GitRepo, workplan_text
from tests.hubserver import HubServer
from tests.statehub.eventfixtures import event, plan_repo, trailer_counts

if TYPE_CHECKING:
    from collections.abc import Iterator

    from statehub.settings import Settings

MakeRepo = Callable[[str], GitRepo]
BOM = "\ufeff"


@pytest.fixture
def desk(hub: Hub) -> Iterator[EventDesk]:
    with EventDesk(hub) as opened:
        yield opened


def _knotted_repo(make_repo: MakeRepo) -> GitRepo:
    """A repo whose files all read, with a cycle, a self-dependency and a workplan id claimed twice."""
    repo = make_repo("knots")
    knot = workplan_text(
        "K-WP-0001",
        [
            {"id": "T01", "title": "one", "depends_on": ["T02"]},
            {"id": "T02", "title": "two", "depends_on": ["T01"]},
            {"id": "T03", "title": "three", "depends_on": ["T03"]},
        ],
    )
    repo.write("workplans/K-WP-0001.md", knot)
    twice = workplan_text("K-WP-0002", [{"id": "T01", "title": "x"}])
    repo.write("workplans/K-WP-0002.md", twice)
    repo.write("workplans/copy.md", twice)
    repo.commit("knots")
    return repo


def test_a_hub_toml_opening_with_a_byte_order_mark_loads_and_keeps_it(
    settings: Settings, make_repo: MakeRepo
) -> None:
    """Before: a person's editor saved hub.toml with a BOM and every command failed
    ("cannot read the list of registered repos: ... invalid TOML"); adding a repo raised tomlkit's
    "Empty key at line 1 col 0"."""
    first, second = make_repo("first"), make_repo("second")
    for repo in (first, second):
        repo.write("workplans/A-WP-0001.md", workplan_text("A-WP-0001", [{"id": "T01", "title": "x"}]))
        repo.commit()
    settings.ensure_dirs()
    settings.hub_file.write_text(
        f'{BOM}# my repos\n[[repos]]\nslug = "first"\npath = "{first.root}"\n', encoding="utf-8"
    )
    with Hub(settings) as hub:
        assert [r.slug for r in hub.repos()] == ["first"]
    result = CliRunner().invoke(main, ["repos", "add", str(second.root)])
    assert result.exit_code == 0, result.output
    text = settings.hub_file.read_text(encoding="utf-8")
    assert text.startswith(f"{BOM}# my repos\n") and text.count(BOM) == 1
    with Hub(settings) as hub:
        assert sorted(r.slug for r in hub.repos()) == ["first", "second"]


def test_repos_add_prints_the_duplicate_ids_and_cycles_it_found(
    settings: Settings, make_repo: MakeRepo
) -> None:
    """Before: ``statehub repos add`` printed "registered knots: 3 files, 3 parsed, 0 removed" and no
    error, while ``--json`` and ``repos refresh`` listed the duplicate id, the cycle and the
    self-dependency (found across files after each parsed)."""
    del settings
    repo = _knotted_repo(make_repo)
    result = CliRunner().invoke(main, ["repos", "add", str(repo.root)])
    assert result.exit_code == 0, result.output
    as_json = CliRunner().invoke(main, ["repos", "add", "--json", str(repo.root)])
    [detail] = cli_data(as_json.output)
    assert len(detail["errors"]) == 4
    assert "4 file errors" in result.output
    for error in detail["errors"]:
        assert f"{error['path']}: {error['message']}" in result.output
    assert "dependency cycle T01 -> T02 -> T01" in result.output
    assert "depends on itself (T03 -> T03)" in result.output
    assert "workplan id K-WP-0002 is also claimed" in result.output


def test_sweeps_call_a_cycle_a_dependency_cycle_and_the_doctor_gives_its_own_remedy(
    hub: Hub, desk: EventDesk, make_repo: MakeRepo
) -> None:
    """Before: a sweep listed the cycle and the self-dependency as kind ``file-error``, and the doctor
    told the person to "fix the file (events to it wait until it reads)" although the file reads and
    events to it apply."""
    repo = _knotted_repo(make_repo)
    repo.write("workplans/broken.md", "+++\nid = \n+++\n")
    repo.commit("a file that does not read")
    hub.register(repo.root)
    [swept] = sweep(desk).repos
    kinds = sorted((f.kind, f.path) for f in swept.findings)
    assert kinds == [
        ("dependency-cycle", "workplans/K-WP-0001.md"),
        ("dependency-cycle", "workplans/K-WP-0001.md"),
        ("duplicate-id", "workplans/K-WP-0002.md"),
        ("duplicate-id", "workplans/copy.md"),
        ("file-error", "workplans/broken.md"),
    ]
    result = CliRunner().invoke(main, ["doctor", "--json"])
    [diagnosis] = cli_data(result.output)["repos"]
    remedies = {
        p["message"].split(":", 1)[0]: p["remedy"] for p in diagnosis["problems"] if p["kind"] == "file-error"
    }
    assert remedies["workplans/broken.md"] == "fix the file (events to it wait until it reads)"
    assert remedies["workplans/K-WP-0001.md"].startswith("remove one depends_on entry along the cycle")
    assert remedies["workplans/copy.md"].startswith("give one of the files another id")


def test_an_event_to_a_workplan_not_committed_yet_says_so_and_how_to_fix_it(
    hub: Hub, desk: EventDesk, make_repo: MakeRepo
) -> None:
    """Before: an event to a new workplan the person had not committed yet waited with
    "uncommitted changes in workplans/NEW-WP-0001.md", as if the person had edited a committed
    file, and the doctor's remedy said to commit or revert "that change"."""
    repo = plan_repo(make_repo)
    hub.register(repo.root)
    new = "workplans/NEW-WP-0001.md"
    repo.write(new, workplan_text("NEW-WP-0001", [{"id": "T01", "title": "x"}]))
    hub.refresh()  # the watcher's part: the cache serves the new file
    [answer] = desk.submit(
        event("NEW1", kind="progress.note", workplan="NEW-WP-0001", task="T01"), authorise=LOCAL_COMMAND
    )
    assert answer.result == "accepted"
    desk.apply_pending()
    found = desk.buffer.get("NEW1")
    assert found is not None
    said = (
        f"{new} is not committed yet: the hub commits only over committed files; commit it "
        f"(git -C {repo.root} add {new}, then git commit) and the events apply"
    )
    assert (found.state.value, found.reason) == ("pending", said)
    result = CliRunner().invoke(main, ["doctor", "--json"])
    [waiting] = [p for p in cli_data(result.output)["repos"][0]["problems"] if p["kind"] == "events-waiting"]
    assert (
        waiting["remedy"] == f"commit it (git -C {repo.root} add {new}, then git commit) and the events apply"
    )
    repo.commit("the new plan")
    desk.apply_pending()
    assert trailer_counts(repo) == {"NEW1": 1}


def _as_reftable(repo: GitRepo) -> None:
    """What ``git init --ref-format=reftable`` (git 2.45+) leaves, as far as an older git and the
    hub see it: the extension in the config, a ``reftable/`` dir holding the refs, and HEAD
    pointing at ``refs/heads/.invalid``. (The git here is too old to make a real one.)"""
    repo.git("config", "core.repositoryformatversion", "1")
    repo.git("config", "extensions.refStorage", "reftable")
    git_dir = repo.root / ".git"
    (git_dir / "reftable").mkdir()
    (git_dir / "refs" / "heads" / "main").rename(git_dir / "reftable" / "main-as-it-was")
    (git_dir / "HEAD").write_text("ref: refs/heads/.invalid\n", encoding="utf-8")


def test_a_reftable_repo_stops_writes_with_its_reason_and_remedy(
    hub: Hub, desk: EventDesk, make_repo: MakeRepo
) -> None:
    """Before: the hub read HEAD's ref file, found no commit and said the events wait because
    "the branch has no commit ...; commit it", the sweep exited 0 and the doctor quoted git cut
    short ("fatal: unknown repository extension found:", without the extension's name)."""
    repo = plan_repo(make_repo)
    hub.register(repo.root)
    _as_reftable(repo)
    [answer] = desk.submit(event("RT1", kind="progress.note"), authorise=LOCAL_COMMAND)
    assert answer.result == "accepted"
    desk.apply_pending()
    found = desk.buffer.get("RT1")
    assert found is not None and found.state.value == "pending" and found.reason is not None
    assert "keeps its refs in the reftable format" in found.reason
    assert f"git -C {repo.root} refs migrate --ref-format=files" in found.reason
    swept = CliRunner().invoke(main, ["sweep"])
    assert swept.exit_code == NEEDS_A_PERSON, swept.output
    doctor = CliRunner().invoke(main, ["doctor", "--json"])
    assert doctor.exit_code == NEEDS_A_PERSON
    [diagnosis] = cli_data(doctor.output)["repos"]
    [problem] = [p for p in diagnosis["problems"] if p["stops_writes"]]
    assert problem["remedy"].startswith(f"convert it to the files format (git -C {repo.root} refs migrate")
    with pytest.raises(git.GitCommandError) as raised:
        open_repo(repo.root).git.status()
    assert git_said(raised.value) == "fatal: unknown repository extension found: refstorage"


def test_a_half_saved_hub_toml_makes_a_running_servers_health_degraded_not_a_500(
    served_settings: Settings, make_repo: MakeRepo
) -> None:
    """Before: with hub.toml mistyped under a running server (an editor mid-save), GET /state/health
    answered 500 ("the hub failed to answer this request") while every write had stopped."""
    repo = plan_repo(make_repo)
    assert CliRunner().invoke(main, ["repos", "add", str(repo.root)]).exit_code == 0
    good = served_settings.hub_file.read_text(encoding="utf-8")
    with HubServer(served_settings.config_dir.parent) as server:
        served_settings.hub_file.write_text("[[repos]\n" + good, encoding="utf-8")
        answer = httpx.get(f"{server.url}/state/health", timeout=30)
        assert answer.status_code == 200, answer.text
        health = answer.json()
        assert health["status"] == "degraded"
        [problem] = health["problems"]
        assert problem.startswith(f"cannot read the list of registered repos: {served_settings.hub_file}")
        assert problem.endswith(f"fix {served_settings.hub_file}")
        served_settings.hub_file.write_text(good, encoding="utf-8")
        assert httpx.get(f"{server.url}/state/health", timeout=30).json()["status"] == "ok"
