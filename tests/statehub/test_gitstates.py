"""Every git state a work tree can be in, on real repos (ADR-029, docs/format.md "Git states").

One test per state: what ``statehub.gitstate`` reads, what indexing does, what the
real applier (``EventDesk``) does with an event (it applies, or it waits with the
problem's sentence and applies once a person fixed it, its commit on the tracked
branch), what health says, and where it matters what the sweep reports against a
real bare remote.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from statehub import gitstate
from statehub.auth import LOCAL_COMMAND
from statehub.cache import queries
from statehub.cli import main
from statehub.collab import ManifestSaver
from statehub.errors import NEEDS_A_PERSON
from statehub.events import EventDesk
from statehub.gitrepo import git_dirs
from statehub.gitstate import Operation
from statehub.health import health
from statehub.sweep import sweep
from sync.saving import Person, SaveRequest
from tests.gitfixtures import GitRepo, clone, workplan_text
from tests.statehub.eventfixtures import PLAN, PLAN_PATH, PLAN_TEXT, event, plan_repo, trailer_counts

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from statehub.answers import Problem
    from statehub.hub import Hub


@pytest.fixture
def desk(hub: Hub) -> Iterator[EventDesk]:
    with EventDesk(hub) as opened:
        yield opened


def _registered(hub: Hub, make_repo: Callable[[str], GitRepo]) -> GitRepo:
    repo = plan_repo(make_repo)
    hub.register(repo.root)
    return repo


def _note(desk: EventDesk, key: str) -> None:
    [answer] = desk.submit(event(key, kind="progress.note", note=f"note {key}"), authorise=LOCAL_COMMAND)
    assert answer.result == "accepted"


def _state(desk: EventDesk, key: str) -> tuple[str, str | None]:
    found = desk.buffer.get(key)
    assert found is not None
    return found.state.value, found.reason


def _stop(root: Path, tracked: str | None = None) -> Problem:
    """The one problem of the work tree's git state that stops writes, as ``inspect`` reads it."""
    [problem] = [p for p in gitstate.inspect(root, tracked).problems if p.stops_writes]
    return problem


def _waiting(root: Path, tracked: str | None = None) -> str:
    """The reason events wait with: the problem as the write-back reads it (files only, so an
    operation's conflicting files are not named there)."""
    [problem] = gitstate.stops(git_dirs(root), tracked)
    return problem.sentence()


def _applied_on(desk: EventDesk, repo: GitRepo, key: str, branch: str = "main") -> None:
    """``key`` is applied, its commit is on ``branch`` and its note is in the work tree."""
    found = desk.buffer.get(key)
    assert found is not None and found.state.value == "applied", found
    assert found.commit is not None
    holding = repo.git("branch", "--contains", found.commit, "--format=%(refname:short)").split()
    assert branch in holding
    assert f"<!-- event:{key} -->" in repo.read(PLAN_PATH)


def _diverge(repo: GitRepo, path: str = "notes.txt") -> None:
    """A branch ``other`` whose change to ``path`` conflicts with main's."""
    repo.write(path, "base\n")
    repo.commit("base")
    repo.git("switch", "-q", "-c", "other")
    repo.write(path, "theirs\n")
    repo.commit("theirs")
    repo.git("switch", "-q", "main")
    repo.write(path, "ours\n")
    repo.commit("ours")


def _served(hub: Hub) -> str:
    """The path the cache serves the plan from (indexing reads the work tree in every state)."""
    hub.refresh()
    with hub.engine.connect() as conn:
        return queries.get_workplan(conn, PLAN).path


# detached, unborn, another branch -----------------------------------------------------------------


def test_a_detached_head_holds_events_until_the_branch_is_back_and_nothing_is_lost(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    repo = _registered(hub, make_repo)
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    repo.git("remote", "add", "origin", str(remote))
    repo.git("push", "-q", "-u", "origin", "main")
    repo.git("checkout", "-q", "--detach")
    state = gitstate.inspect(repo.root)
    assert (state.detached, state.branch, state.head) == (True, None, repo.git("rev-parse", "HEAD").strip())
    problem = _stop(repo.root)
    assert (
        problem.kind == "detached-head" and f"git -C {repo.root} switch main " in problem.remedy
    )  # from the reflog
    _note(desk, "D1")
    desk.apply_pending()
    assert _state(desk, "D1") == ("pending", problem.sentence())
    assert trailer_counts(repo) == {} and repo.git("status", "--porcelain") == ""
    assert health(desk).status == "degraded" and health(desk).writes_stopped == {"the-custodian": [problem]}
    assert _served(hub) == PLAN_PATH
    [swept] = sweep(desk).repos
    assert (swept.in_step, swept.problems) == (False, [problem.sentence()])
    assert swept.push == "not pushed: the repo's git state stops the sweep (see problems)"  # not "no remote"
    repo.git("checkout", "-q", "main")
    desk.apply_pending()
    _applied_on(desk, repo, "D1")
    assert health(desk).status == "ok"
    [swept] = sweep(desk).repos
    assert (swept.in_step, swept.push) == (True, "pushed")


def test_an_unborn_branch_waits_for_its_first_commit_then_takes_the_events(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = make_repo("the-custodian")
    repo.write(PLAN_PATH, PLAN_TEXT)
    hub.register(repo.root)
    state = gitstate.inspect(repo.root)
    assert (state.unborn, state.branch, state.head, state.problems) == (True, "main", None, [])
    assert _served(hub) == PLAN_PATH
    _note(desk, "U1")
    desk.apply_pending()
    state_, reason = _state(desk, "U1")
    assert state_ == "pending"
    assert reason == (
        f"{PLAN_PATH} is not committed yet: the branch has no commit, and the hub commits only over "
        "committed files; commit it and the events apply"
    )
    repo.commit("first")
    desk.apply_pending()
    _applied_on(desk, repo, "U1")


def test_a_branch_other_than_the_tracked_one_holds_events_and_is_not_swept(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    repo = plan_repo(make_repo)
    repo.write("statehub.toml", '[repo]\nslug = "the-custodian"\ndefault_branch = "main"\n')
    repo.commit("track main")
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    repo.git("remote", "add", "origin", str(remote))
    repo.git("push", "-q", "-u", "origin", "main")
    hub.register(repo.root)
    repo.git("switch", "-q", "-c", "feature")
    problem = _stop(repo.root, "main")
    assert problem.kind == "other-branch"
    assert problem.message.startswith(f"HEAD in {repo.root} is on branch feature, and the repo tracks main")
    _note(desk, "B1")
    [swept] = sweep(desk).repos
    assert swept.in_step is False and swept.problems == [problem.sentence()]
    assert _state(desk, "B1") == ("pending", problem.sentence())
    assert (
        "feature"
        not in subprocess.run(
            ["git", "--git-dir", str(remote), "branch"], capture_output=True, text=True, check=True
        ).stdout
    )
    repo.git("switch", "-q", "main")
    [swept] = sweep(desk).repos
    assert (swept.in_step, swept.pushed) == (True, True)
    _applied_on(desk, repo, "B1")


# operations in progress ---------------------------------------------------------------------------

OPERATIONS: dict[str, tuple[list[str], list[str]]] = {
    "merge": (["merge", "other"], ["merge", "--abort"]),
    "rebase": (["rebase", "other"], ["rebase", "--abort"]),
    "cherry-pick": (["cherry-pick", "other"], ["cherry-pick", "--abort"]),
    "revert": (["revert", "--no-edit", "other"], ["revert", "--abort"]),
    "am": (["am", "-3", "PATCH"], ["am", "--abort"]),
    "bisect": (["bisect", "start", "HEAD", "HEAD~2"], ["bisect", "reset"]),
}


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_an_operation_in_progress_holds_events_until_it_is_finished_or_undone(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo], tmp_path: Path, name: str
) -> None:
    repo = _registered(hub, make_repo)
    _diverge(repo)
    start, undo = OPERATIONS[name]
    if name == "am":
        patch = repo.git("format-patch", "-1", "other", "-o", str(tmp_path)).strip()
        start = [patch if arg == "PATCH" else arg for arg in start]
    started = repo.try_git(*start)
    assert (started.returncode != 0) == (name != "bisect"), started  # each stops on the conflict
    state = gitstate.inspect(repo.root)
    assert state.operation == Operation(name)
    assert state.conflicted == ([] if name == "bisect" else ["notes.txt"])
    problem = _stop(repo.root)
    assert problem.kind == "operation"
    if name != "bisect":
        assert "with conflicts in notes.txt" in problem.message
        assert f"git -C {repo.root} {name} --abort" in problem.remedy
    _note(desk, f"OP-{name}")
    desk.apply_pending()
    assert _state(desk, f"OP-{name}") == ("pending", _waiting(repo.root))
    assert health(desk).status == "degraded"
    assert trailer_counts(repo) == {}
    assert _served(hub) == PLAN_PATH
    repo.git(*undo)
    desk.apply_pending()
    _applied_on(desk, repo, f"OP-{name}")
    assert health(desk).status == "ok"


def test_a_workplan_in_conflict_is_a_file_error_while_the_rebase_lasts(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = _registered(hub, make_repo)
    _note(desk, "RC1")  # accepted before the conflict: intake no longer sees the plan during it
    repo.git("switch", "-q", "-c", "other")
    repo.write(PLAN_PATH, PLAN_TEXT.replace('title = "De-hub the network"', 'title = "Theirs"'))
    repo.commit("theirs")
    repo.git("switch", "-q", "main")
    repo.write(PLAN_PATH, PLAN_TEXT.replace('title = "De-hub the network"', 'title = "Ours"'))
    repo.commit("ours")
    assert repo.try_git("rebase", "other").returncode != 0
    hub.refresh()
    with hub.engine.connect() as conn:
        errors = queries.get_repo(conn, "the-custodian").errors
    assert [e.path for e in errors] == [PLAN_PATH]  # the conflict markers break the front matter
    desk.apply_pending()
    assert _state(desk, "RC1") == ("pending", _waiting(repo.root))
    assert _stop(repo.root).message.startswith(
        f"a rebase of main is in progress in {repo.root}, with conflicts in {PLAN_PATH}"
    )
    repo.git("rebase", "--abort")
    desk.apply_pending()
    _applied_on(desk, repo, "RC1")
    with hub.engine.connect() as conn:
        assert queries.get_repo(conn, "the-custodian").errors == []


# locks --------------------------------------------------------------------------------------------


def test_someone_elses_index_lock_holds_events_with_a_plain_reason_never_a_traceback(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = _registered(hub, make_repo)
    lock = repo.root / ".git" / "index.lock"
    lock.write_text("")
    hour_ago = time.time() - 3600
    os.utime(lock, (hour_ago, hour_ago))  # a git command killed an hour ago left it
    problem = _stop(repo.root)
    assert problem.kind == "index-lock"
    assert problem.message == (
        f"git is busy in {repo.root}: {lock} has been held for 60 min by a git command (not the hub), "
        "so writes wait"
    )
    assert problem.remedy == f"if no git command is running there, remove it: rm {lock}"
    noted = CliRunner().invoke(
        main, ["event", "note", f"{PLAN}-T02", "from the CLI", "--key", "L1", "--json"]
    )
    assert noted.exit_code == 0 and "Traceback" not in noted.output, noted.output
    assert _state(desk, "L1") == ("pending", problem.sentence())
    swept = CliRunner().invoke(main, ["sweep"])
    assert swept.exit_code == NEEDS_A_PERSON and "Traceback" not in swept.output
    assert f"rm {lock}" in swept.output
    assert health(desk).status == "degraded"
    lock.unlink()
    desk.apply_pending()
    _applied_on(desk, repo, "L1")


# clones, worktrees, submodules --------------------------------------------------------------------


class Remote:
    """A bare remote holding the plan repo's history, and a teammate's full clone of it."""

    def __init__(self, tmp_path: Path, make_repo: Callable[[str], GitRepo]) -> None:
        self.path = tmp_path / "remote.git"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.path)], check=True)
        origin = plan_repo(make_repo, "origin-work")
        for number in (1, 2):
            origin.write(f"history-{number}.txt", f"{number}\n")
            origin.commit(f"history {number}")
        origin.git("push", "-q", str(self.path), "main")
        self.mate = clone(self.path, tmp_path / "teammate")

    def mate_commit(self, rel: str, text: str) -> None:
        self.mate.write(rel, text)
        self.mate.commit(f"teammate writes {rel}")
        self.mate.git("push", "-q", "origin", "main")


def test_a_shallow_clone_takes_events_and_the_sweep_explains_history_it_cannot_reach(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    remote = Remote(tmp_path, make_repo)
    repo = clone(f"file://{remote.path}", tmp_path / "repos" / "the-custodian", "--depth", "1")
    hub.register(repo.root)
    state = gitstate.inspect(repo.root)
    assert state.shallow and state.upstream == "origin/main" and state.problems == []
    _note(desk, "S1")
    remote.mate_commit("mate.txt", "from the teammate\n")
    [swept] = sweep(desk).repos
    assert (swept.in_step, swept.pulled, swept.pushed) == (True, 1, True)
    _applied_on(desk, repo, "S1")
    remote.mate.git("pull", "-q", "--rebase")
    remote.mate.git("reset", "-q", "--hard", "HEAD~3")  # below the shallow clone's history
    remote.mate.write("rewritten.txt", "history rewritten\n")
    remote.mate.commit("teammate rewrites history")
    remote.mate.git("push", "-q", "--force", "origin", "main")
    _note(desk, "S2")
    before = repo.git("rev-parse", "HEAD").strip()
    [swept] = sweep(desk).repos
    assert swept.in_step is False and swept.pushed is False
    [problem] = swept.problems
    assert problem.startswith("the clone is shallow and its history does not reach the commit it shares")
    assert problem.endswith(f"deepen it (git -C {repo.root} fetch --unshallow origin), then sweep again")
    assert repo.git("status", "--porcelain") == ""
    assert repo.git("rev-parse", "HEAD~1").strip() == before  # S2 applied locally, nothing lost
    _applied_on(desk, repo, "S2")


def test_a_linked_worktree_commits_to_its_own_branch_and_a_branch_checked_out_twice_holds_events(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    first = plan_repo(make_repo, "first")
    first.git("worktree", "add", "-q", "-b", "side", str(tmp_path / "side"))
    linked = GitRepo(tmp_path / "side", init=False)
    hub.register(linked.root)
    state = gitstate.inspect(linked.root)
    assert (state.linked_worktree, state.branch, state.problems) == (True, "side", [])
    old = time.time() - 60
    (first.root / ".git" / "index.lock").write_text("")  # the main work tree's lock is not ours
    os.utime(first.root / ".git" / "index.lock", (old, old))
    _note(desk, "W1")
    desk.apply_pending()
    _applied_on(desk, linked, "W1", branch="side")
    assert first.git("rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert "<!-- event:W1 -->" not in first.read(PLAN_PATH)
    (first.root / ".git" / "index.lock").unlink()
    first.git("worktree", "add", "-q", "--force", str(tmp_path / "twin"), "side")
    problem = _stop(linked.root)
    assert problem.kind == "branch-checked-out-elsewhere"
    assert problem.message.startswith(f"branch side is also checked out in {tmp_path / 'twin'}")
    _note(desk, "W2")
    desk.apply_pending()
    assert _state(desk, "W2") == ("pending", problem.sentence())
    first.git("worktree", "remove", str(tmp_path / "twin"))
    desk.apply_pending()
    _applied_on(desk, linked, "W2", branch="side")


def test_a_submodule_checked_out_detached_holds_events_and_files_inside_a_submodule_are_not_written(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    plans = plan_repo(make_repo, "plans")
    outer = make_repo("outer")
    outer.write("README", "the superproject\n")
    outer.commit("readme")
    outer.git("-c", "protocol.file.allow=always", "submodule", "add", "-q", str(plans.root), "vendor/plans")
    outer.commit("add the plans as a submodule")
    outer_head = outer.git("rev-parse", "HEAD").strip()
    sub = GitRepo(outer.root / "vendor" / "plans", init=False)
    sub.git("checkout", "-q", "--detach")  # as git submodule update leaves it
    hub.register(sub.root)
    state = gitstate.inspect(sub.root)
    assert (state.submodule_of, state.detached) == (str(outer.root), True)
    assert gitstate.inspect(outer.root).submodules == ["vendor/plans"]
    problem = _stop(sub.root)
    assert "(a submodule: git submodule update checks it out detached)" in problem.message
    _note(desk, "M1")
    desk.apply_pending()
    assert _state(desk, "M1") == ("pending", problem.sentence())
    sub.git("switch", "-q", "main")
    desk.apply_pending()
    _applied_on(desk, sub, "M1")
    assert outer.git("rev-parse", "HEAD").strip() == outer_head  # the superproject is the person's


def test_a_workplan_inside_a_nested_repo_is_that_repos_not_the_outer_ones(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    """Review of issue 12: the outer repo indexed the submodule's workplan as its own, so events
    to it waited forever, and registering the submodule (the remedy) made it a duplicate id
    that neither repo served."""
    plans = plan_repo(make_repo, "plans")
    outer = make_repo("outer")
    outer.write("workplans/OUT-WP-0001.md", workplan_text("OUT-WP-0001"))
    outer.commit("own plan")
    outer.git(
        "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(plans.root), "workplans/vendor"
    )
    outer.commit("vendor the plans")
    hub.register(outer.root)
    with hub.engine.connect() as conn:
        assert [w.id for w in queries.list_workplans(conn).items] == ["OUT-WP-0001"]
    sub = GitRepo(outer.root / "workplans" / "vendor", init=False)
    sub.git("switch", "-q", "main")  # off the detached HEAD git submodule add leaves
    hub.register(sub.root)
    assert _served(hub) == PLAN_PATH
    with hub.engine.connect() as conn:
        assert [queries.get_repo(conn, slug).errors for slug in ("outer", "vendor")] == [[], []]
    _note(desk, "N1")
    desk.apply_pending()
    _applied_on(desk, sub, "N1")
    assert outer.git("status", "--porcelain") == " M workplans/vendor\n"  # a new submodule commit, not staged


# remotes ------------------------------------------------------------------------------------------


def test_no_remote_is_in_step_and_events_apply_locally(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = _registered(hub, make_repo)
    state = gitstate.inspect(repo.root, probe=True)
    assert (state.remote, state.upstream, state.remote_reachable, state.problems) == (None, None, None, [])
    _note(desk, "R1")
    result = CliRunner().invoke(main, ["sweep", "--json"])
    assert result.exit_code == 0, result.output
    [swept] = sweep(desk).repos
    assert (swept.in_step, swept.push, swept.problems) == (True, "no remote", [])
    _applied_on(desk, repo, "R1")


def test_a_remote_that_diverged_is_reported_before_the_sweep_and_rebased_by_it(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    remote = Remote(tmp_path, make_repo)
    repo = clone(remote.path, tmp_path / "repos" / "the-custodian")
    hub.register(repo.root)
    _note(desk, "V1")
    desk.apply_pending()
    remote.mate_commit("mate.txt", "from the teammate\n")
    repo.git("fetch", "-q")
    state = gitstate.inspect(repo.root, probe=True)
    assert (state.ahead, state.behind, state.remote_reachable) == (1, 1, True)
    [diverged] = state.problems
    assert (diverged.kind, diverged.stops_writes) == ("diverged", False)
    assert diverged.message == "main and origin/main have diverged (1 commits here, 1 there, as last fetched)"
    [swept] = sweep(desk).repos
    assert (swept.in_step, swept.rebased, swept.pushed) == (True, True, True)
    assert gitstate.inspect(repo.root).problems == []


def test_a_save_from_the_editor_is_refused_where_a_commit_could_be_lost(
    hub: Hub, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = plan_repo(make_repo)
    manifest = '[repo]\nslug = "the-custodian"\n'
    repo.write("statehub.toml", manifest)
    repo.commit("manifest")
    hub.register(repo.root)
    repo.try_git("bisect", "start")  # HEAD stays on main, and a bisect may move it any moment
    saver = ManifestSaver(hub)
    request = SaveRequest(
        "the-custodian/statehub.toml", manifest + 'title = "Custodian"\n', manifest, Person("Ada"), []
    )
    refused = saver.save(request)
    assert (refused.ok, refused.status) == (False, 409)
    assert refused.message == f"not saved: {_waiting(repo.root)}"
    assert repo.read("statehub.toml") == manifest and repo.git("status", "--porcelain") == ""
    repo.git("bisect", "reset")
    saved = saver.save(request)
    assert saved.ok and saved.commit is not None
    assert "main" in repo.git("branch", "--contains", saved.commit, "--format=%(refname:short)").split()
