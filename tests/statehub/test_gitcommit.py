"""The one commit path (statehub/gitcommit.py, ADR-028) on real repos: commits built from the hub's
bytes, published under the index lock, never over a person's bytes, staging or commit."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from statehub import atomic, gitcommit, gitrepo
from statehub.atomic import FileChanged
from statehub.gitcommit import FileWrite, HeadMoved, IndexBusy, NewCommit, WritesStopped
from sync.saving import Person

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from statehub.gitrepo import HubRepo
    from tests.gitfixtures import GitRepo

PATH = "workplans/a.md"


@pytest.fixture
def repo(make_repo: Callable[[str], GitRepo]) -> GitRepo:
    made = make_repo("repo")
    made.write(PATH, "one\n")
    made.write("other.txt", "other\n")
    made.commit("start")
    return made


@pytest.fixture
def opened(repo: GitRepo) -> Iterator[HubRepo]:
    hub_repo = gitrepo.open_repo(repo.root)
    yield hub_repo
    hub_repo.close()


def _commit(opened: HubRepo, files: dict[str, bytes], author: str = "agt-a") -> gitcommit.Chain:
    head = gitcommit.read_head(opened)
    before = gitcommit.committed_blobs(opened, head, files)
    return gitcommit.build_chain(
        opened, head, [NewCommit(Person(author), "subject\n\nStatehub-Event: K\n", files)], dict(before)
    )


def test_a_chain_of_commits_by_several_authors_lands_in_one_go(repo: GitRepo, opened: HubRepo) -> None:
    head = gitcommit.read_head(opened)
    before = gitcommit.committed_blobs(opened, head, [PATH])
    commits = [
        NewCommit(Person("agt-a"), "first\n", {PATH: b"one\ntwo\n"}),
        NewCommit(Person("Ada", "ada@example.org"), "second\n", {PATH: b"one\ntwo\nthree\n"}),
        NewCommit(Person("agt-a"), "third: back as it was\n", {PATH: b"one\ntwo\n"}),
    ]
    chain = gitcommit.build_chain(opened, head, commits, dict(before))
    assert repo.git("rev-parse", "HEAD").strip() == head.sha  # objects only, so far
    assert repo.git("for-each-ref").count("\n") == 1  # no scratch ref left behind
    gitcommit.publish(opened, chain, [FileWrite(PATH, b"one\n", b"one\ntwo\n")])
    log = repo.git("log", "-3", "--reverse", "--format=%H|%an <%ae>|%cn <%ce>|%s").splitlines()
    assert [line.split("|", 1)[0] for line in log] == chain.commits
    assert [line.split("|", 1)[1] for line in log] == [
        "agt-a <agt-a@users.statehub.invalid>|State Hub <statehub@statehub.invalid>|first",
        "Ada <ada@example.org>|State Hub <statehub@statehub.invalid>|second",
        "agt-a <agt-a@users.statehub.invalid>|State Hub <statehub@statehub.invalid>|third: back as it was",
    ]
    assert repo.read(PATH) == "one\ntwo\n"
    assert repo.git("status", "--porcelain") == ""
    assert "statehub: 3 commits" in repo.git("reflog", "-1", "--format=%gs", "main")


def test_a_commit_landing_first_stops_the_publish_with_nothing_written(
    repo: GitRepo, opened: HubRepo
) -> None:
    chain = _commit(opened, {PATH: b"one\nhub\n"})
    repo.write("other.txt", "changed\n")
    theirs = repo.commit("a person's commit")
    with pytest.raises(HeadMoved, match="moved"):
        gitcommit.publish(opened, chain, [FileWrite(PATH, b"one\n", b"one\nhub\n")])
    assert repo.git("rev-parse", "HEAD").strip() == theirs
    assert repo.read(PATH) == "one\n" and repo.git("status", "--porcelain") == ""


def test_a_file_a_person_changed_is_not_replaced_and_nothing_is_published(
    repo: GitRepo, opened: HubRepo
) -> None:
    chain = _commit(opened, {PATH: b"one\nhub\n"})
    repo.write(PATH, "one\nmine\n")
    head = repo.git("rev-parse", "HEAD")
    with pytest.raises(FileChanged):
        gitcommit.publish(opened, chain, [FileWrite(PATH, b"one\n", b"one\nhub\n")])
    assert repo.read(PATH) == "one\nmine\n"
    assert repo.git("rev-parse", "HEAD") == head


def test_a_write_into_the_file_at_the_last_moment_is_handed_back(
    repo: GitRepo, opened: HubRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain = _commit(opened, {PATH: b"one\nhub\n"})
    real = atomic._rename2

    def person_writes_first(dir_fd: int, source: str, target: str, flags: int) -> bool:
        if target == "a.md":  # an editor that had the file open writes into it, in place
            with (repo.root / PATH).open("a", encoding="utf-8") as handle:
                handle.write("mine\n")
        return real(dir_fd, source, target, flags)

    monkeypatch.setattr(atomic, "_rename2", person_writes_first)
    head = repo.git("rev-parse", "HEAD")
    with pytest.raises(FileChanged):
        gitcommit.publish(opened, chain, [FileWrite(PATH, b"one\n", b"one\nhub\n")])
    assert repo.read(PATH) == "one\nmine\n"
    assert repo.git("rev-parse", "HEAD") == head
    assert sorted(p.name for p in (repo.root / "workplans").iterdir()) == ["a.md"]


def test_a_persons_staged_version_stays_staged_and_other_staged_work_stays_out(
    repo: GitRepo, opened: HubRepo
) -> None:
    repo.write(PATH, "one\nstaged\n")
    repo.write("new.txt", "staged too\n")
    repo.git("add", PATH, "new.txt")
    repo.write(PATH, "one\n")
    staged = repo.git("ls-files", "-s", PATH)
    chain = _commit(opened, {PATH: b"one\nhub\n"})
    gitcommit.publish(opened, chain, [FileWrite(PATH, b"one\n", b"one\nhub\n")])
    assert repo.git("show", "--name-only", "--format=", "HEAD").split() == [PATH]
    assert repo.git("ls-files", "-s", PATH) == staged
    assert "A  new.txt" in repo.git("status", "--porcelain")


def test_a_lock_held_by_someone_else_is_waited_for_then_refused(repo: GitRepo, opened: HubRepo) -> None:
    chain = _commit(opened, {PATH: b"one\nhub\n"})
    lock = repo.root / ".git" / "index.lock"
    lock.write_text("")
    with pytest.raises(
        IndexBusy, match=rf"^git is busy in {repo.root}: {lock} has been held for .*rm {lock}$"
    ):
        gitcommit.publish(opened, chain, [FileWrite(PATH, b"one\n", b"one\nhub\n")], lock_wait=0.05)
    assert lock.exists() and repo.read(PATH) == "one\n"


def test_a_lock_a_killed_hub_left_is_removed_and_no_one_elses(repo: GitRepo, opened: HubRepo) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    lock = repo.root / ".git" / "index.lock"
    lock.write_bytes(f"statehub index lock, pid {int(gone.stdout)} 0123abcd\n".encode())
    (repo.root / ".git" / f"statehub-index.{int(gone.stdout)}.0123abcd").write_bytes(b"half")
    chain = _commit(opened, {PATH: b"one\nhub\n"})
    gitcommit.publish(opened, chain, [FileWrite(PATH, b"one\n", b"one\nhub\n")], lock_wait=0.05)
    assert not lock.exists() and repo.read(PATH) == "one\nhub\n"
    assert gitcommit.clear_stale(opened) == [f"statehub-index.{int(gone.stdout)}.0123abcd"]
    lock.write_bytes(f"statehub index lock, pid {os.getpid()} 0123abcd\n".encode())  # alive: kept
    assert gitcommit.clear_stale(opened) == [] and lock.exists()


def test_a_detached_head_is_refused_with_nothing_written_and_an_unborn_branch_gets_its_first_commit(
    make_repo: Callable[[str], GitRepo], repo: GitRepo
) -> None:
    repo.git("checkout", "-q", "--detach")
    before = repo.git("rev-parse", "HEAD").strip()
    with gitrepo.open_repo(repo.root) as detached:
        chain = _commit(detached, {PATH: b"one\nhub\n"})
        with pytest.raises(WritesStopped, match=r"HEAD in .* is detached at .*, on no branch") as stopped:
            gitcommit.publish(detached, chain, [FileWrite(PATH, b"one\n", b"one\nhub\n")])
    assert stopped.value.problem.kind == "detached-head"
    assert repo.git("rev-parse", "HEAD").strip() == before and repo.read(PATH) == "one\n"
    assert repo.git("status", "--porcelain") == ""
    fresh = make_repo("fresh")  # git init only: no commit, no index
    with gitrepo.open_repo(fresh.root) as unborn:
        chain = _commit(unborn, {"statehub.toml": b"[repo]\n"})
        gitcommit.publish(unborn, chain, [FileWrite("statehub.toml", None, b"[repo]\n")])
    assert fresh.git("rev-parse", "main").strip() == chain.tip
    assert fresh.read("statehub.toml") == "[repo]\n"
    assert fresh.git("status", "--porcelain") == ""


def test_a_branch_other_than_the_tracked_one_is_refused(repo: GitRepo, opened: HubRepo) -> None:
    repo.git("switch", "-q", "-c", "feature")
    with gitrepo.open_repo(repo.root) as on_feature:
        chain = _commit(on_feature, {PATH: b"one\nhub\n"})
        with pytest.raises(WritesStopped, match="is on branch feature, and the repo tracks main"):
            gitcommit.publish(on_feature, chain, [FileWrite(PATH, b"one\n", b"one\nhub\n")], tracked="main")
        gitcommit.publish(on_feature, chain, [FileWrite(PATH, b"one\n", b"one\nhub\n")], tracked="feature")
    assert repo.git("rev-parse", "feature").strip() == chain.tip
