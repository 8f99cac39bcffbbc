"""Sweeps with a real bare remote and a second clone playing a teammate."""

from __future__ import annotations

import shutil
import subprocess
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner

from statehub.auth import LOCAL_COMMAND
from statehub.cli import main
from statehub.errors import NEEDS_A_PERSON
from statehub.events import EventDesk
from statehub.sweep import latest_sweep, sweep
from statehub.sweep import remote as remote_module
from tests.gitfixtures import GitRepo, workplan_text
from tests.statehub.eventfixtures import PLAN_PATH, event, plan_repo, trailer_counts
from tests.statehub.sweeping import sweep_over_http

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from litestar.testing import TestClient

    from statehub.hub import Hub


@pytest.fixture
def desk(hub: Hub) -> Iterator[EventDesk]:
    with EventDesk(hub) as opened:
        yield opened


class Team:
    """A bare remote, the hub's clone (registered) and a teammate's clone."""

    def __init__(self, tmp_path: Path, make_repo: Callable[[str], GitRepo]) -> None:
        self.remote = tmp_path / "remote.git"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.remote)], check=True)
        self.hub = plan_repo(make_repo, "the-custodian")
        self.hub.git("remote", "add", "origin", str(self.remote))
        self.hub.git("push", "-q", "-u", "origin", "main")
        self.mate_root = tmp_path / "teammate"
        subprocess.run(["git", "clone", "-q", str(self.remote), str(self.mate_root)], check=True)
        self.mate = GitRepo.__new__(GitRepo)
        self.mate.root = self.mate_root
        self.mate.git("config", "user.email", "mate@statehub.invalid")
        self.mate.git("config", "user.name", "Teammate")

    def mate_commit(self, rel: str, text: str, message: str) -> None:
        self.mate.git("pull", "-q", "--rebase")
        self.mate.write(rel, text)
        self.mate.commit(message)
        self.mate.git("push", "-q", "origin", "main")

    def move_remote_on_first_push(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The teammate pushes first, once, just before the hub's first push.

        (A pre-push hook did this once; the hub runs no hooks any more, ADR-022.)
        """
        real = remote_module._receive_pack
        moved: list[bool] = []

        def race_then_push(repo: Any, remote: str) -> list[str]:
            if not moved:
                moved.append(True)
                self.mate.git("pull", "-q", "--rebase")
                self.mate.write("race.txt", "racing\n")
                self.mate.commit("teammate races the hub")
                self.mate.git("push", "-q", "origin", "main")
            return real(repo, remote)

        monkeypatch.setattr(remote_module, "_receive_pack", race_then_push)


def test_the_sweep_pulls_the_teammate_pushes_the_hub_and_survives_a_moving_remote(
    hub: Hub,
    desk: EventDesk,
    make_repo: Callable[[str], GitRepo],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    team = Team(tmp_path, make_repo)
    hub.register(team.hub.root)
    desk.submit(event("SW1", kind="progress.note", note="from the hub"), authorise=LOCAL_COMMAND)
    team.mate_commit("workplans/MATE-WP-0001.md", workplan_text("MATE-WP-0001"), "teammate adds a plan")
    team.move_remote_on_first_push(monkeypatch)
    report = sweep(desk)
    [repo] = report.repos
    assert repo.pulled == 1
    assert repo.events.applied == 1 and len(repo.commits) == 1
    assert repo.pushed is True
    assert repo.push == "pushed after 2 attempts"
    assert repo.problems == []
    remote_log = subprocess.run(
        ["git", "--git-dir", str(team.remote), "log", "--format=%s%n%b", "main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "teammate adds a plan" in remote_log and "teammate races the hub" in remote_log
    assert remote_log.count("Statehub-Event: SW1") == 1
    assert trailer_counts(team.hub) == {"SW1": 1}
    assert (team.hub.root / "race.txt").exists()
    team.mate.git("pull", "-q", "--rebase")
    assert "<!-- event:SW1 -->" in team.mate.read(PLAN_PATH)
    with hub.engine.connect() as conn:
        from statehub.cache import queries

        assert queries.get_workplan(conn, "MATE-WP-0001").repo == "the-custodian"
    assert latest_sweep(hub.settings) == report


def test_a_conflicting_rebase_is_aborted_names_the_files_and_the_sweep_exits_non_zero(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    team = Team(tmp_path, make_repo)
    team.hub.write("workplans/broken.md", "+++\nid = \n+++\n")  # a finding the problem must not hide
    team.hub.commit("a broken plan")
    team.hub.git("push", "-q")
    hub.register(team.hub.root)
    team.hub.write("shared.txt", "hub version\n")
    local = team.hub.commit("local change")
    team.mate_commit("shared.txt", "teammate version\n", "teammate change")
    report = sweep(desk)
    [repo] = report.repos
    assert (repo.pushed, repo.in_step, repo.conflicts) == (False, False, ["shared.txt"])
    assert repo.problems == [
        "rebasing the 1 local commits onto origin/main conflicts in shared.txt; the rebase was aborted and "
        f"nothing was changed: rebase by hand (git -C {team.hub.root} pull --rebase origin main), resolve "
        "those files, push, then sweep again"
    ]
    assert [f.kind for f in repo.findings] == ["file-error"]
    assert report.totals.not_in_step == 1
    assert team.hub.git("rev-parse", "HEAD").strip() == local
    assert team.hub.git("status", "--porcelain") == ""
    result = CliRunner().invoke(main, ["sweep"])
    assert result.exit_code == NEEDS_A_PERSON
    assert "conflicts in shared.txt" in result.output and "hint" not in result.output
    assert "file-error workplans/broken.md" in result.output


def test_uncommitted_changes_in_the_way_of_a_fast_forward_are_named(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    team = Team(tmp_path, make_repo)
    hub.register(team.hub.root)
    team.mate_commit("shared.txt", "teammate version\n", "teammate change")
    team.hub.write("shared.txt", "my unsaved thought\n")
    team.hub.git("add", "shared.txt")
    [repo] = sweep(desk).repos
    assert (repo.in_step, repo.conflicts) == (False, ["shared.txt"])
    assert repo.problems == [
        "fast-forwarding to origin/main would overwrite uncommitted changes in shared.txt; nothing was "
        "changed: commit or stash them, then sweep again"
    ]
    assert team.hub.read("shared.txt") == "my unsaved thought\n"


def test_a_repo_whose_sweep_fails_keeps_its_findings_and_the_others_are_swept(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    gone = make_repo("gone")
    gone.write("workplans/broken.md", "+++\nid = \n+++\n")
    gone.commit()
    hub.register(gone.root)
    fine = plan_repo(make_repo)
    hub.register(fine.root)
    shutil.rmtree(gone.root / ".git")
    report = sweep(desk)
    failed, swept = report.repos
    assert failed.repo == "gone" and failed.in_step is False
    assert isinstance(failed.error, str) and failed.error.startswith(
        f"{gone.root} is not inside a git work tree"
    )
    assert "Traceback" not in failed.error and [f.kind for f in failed.findings] == ["file-error"]
    assert (swept.repo, swept.in_step) == ("the-custodian", True)
    result = CliRunner().invoke(main, ["sweep"])
    assert result.exit_code == NEEDS_A_PERSON and "file-error workplans/broken.md" in result.output


def test_findings_name_every_inconsistency(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = make_repo("messy")
    repo.write(
        "workplans/A-WP-0001.md",
        workplan_text(
            "A-WP-0001",
            [
                {"id": "T01", "title": "a", "status": "cancelled"},
                {"id": "T02", "title": "b", "depends_on": ["T01", "ZZ-WP-0009-T01"]},
            ],
            status="done",
        ),
    )
    repo.write("workplans/B-WP-0001.md", workplan_text("A-WP-0001"))
    repo.write("workplans/broken.md", "+++\nid = \n+++\n")
    repo.write(
        "canon/ADR-001.md",
        '+++\nid = "ADR-001"\ntitle = "t"\nkind = "adr"\nstatus = "accepted"\n'
        'supersedes = ["ADR-000"]\n+++\n',
    )
    repo.commit()
    hub.register(repo.root)
    [report] = sweep(desk).repos
    kinds = {f.kind for f in report.findings}
    assert {"duplicate-id", "file-error", "unknown-supersedes"} <= kinds
    assert report.push == "no remote"
    repo.git("rm", "-q", "workplans/B-WP-0001.md")
    repo.commit("drop the duplicate")
    [report] = sweep(desk).repos
    messages = {f.kind: f.message for f in report.findings}
    assert messages["unknown-dependency"] == "A-WP-0001-T02 depends on unknown task ZZ-WP-0009-T01"
    assert "A-WP-0001-T01, which is cancelled" in messages["cancelled-dependency"]
    assert messages["done-with-open-tasks"] == "workplan A-WP-0001 is done but tasks T02 are still open"
    assert messages["unknown-supersedes"] == "ADR-001 supersedes unknown canon id ADR-000"
    assert "invalid TOML" in messages["file-error"]


def test_sweeps_over_http_and_the_cli(
    client: TestClient[Any], make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    assert client.get("/sweeps/latest").status_code == 404
    repo = plan_repo(make_repo)
    client.post("/repos", json={"path": str(repo.root)})
    run = sweep_over_http(client.post, client.get, ["the-custodian"])
    assert run["state"] == "finished" and run["totals"]["repos"] == 1
    latest = client.get("/sweeps/latest").json()
    assert latest["id"] == run["id"] and latest["repos"] == run["repos"]
    assert client.post("/sweeps", json={"repos": ["nope"]}).status_code == 404
    result = CliRunner().invoke(main, ["sweep", "--json"])
    assert result.exit_code == 0, result.output
    assert '"repo": "the-custodian"' in result.output
    result = CliRunner().invoke(main, ["sweep", "nope"])
    assert result.exit_code == 4 and "no repo registered as 'nope'" in result.output


def test_an_unreachable_remote_is_reported_and_events_still_land_locally(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    team = Team(tmp_path, make_repo)
    hub.register(team.hub.root)
    desk.submit(event("OFF1", kind="progress.note"), authorise=LOCAL_COMMAND)
    team.remote.rename(tmp_path / "gone.git")
    [repo] = sweep(desk).repos
    assert repo.pushed is False
    [problem] = repo.problems
    assert problem.startswith("fetch from origin failed: fatal:")
    assert problem.endswith(
        f"nothing was integrated or pushed: check the remote's URL (git -C {team.hub.root} remote get-url "
        "origin), the network and the credentials"
    )
    assert repo.push == "not pushed: the repo could not be brought in step with its remote"
    assert repo.in_step is False
    assert trailer_counts(team.hub) == {"OFF1": 1}
    assert CliRunner().invoke(main, ["sweep", "--json"]).exit_code == NEEDS_A_PERSON
    (tmp_path / "gone.git").rename(team.remote)
    [repo] = sweep(desk).repos
    assert (repo.pushed, repo.problems, repo.in_step) == (True, [], True)
