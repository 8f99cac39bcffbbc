"""Which write-back records a checkout resolves (canon/ADR-053, second addendum): a record names the
id the hub keeps in the clone (``<git dir>/statehub-checkout``) and the place the clone was.

Each test leaves a real half-written file with its record, as a hub killed between writing and
committing does, then lets a checkout recover: its own record puts the file back and is closed;
another checkout's is left alone, file and record. On both backends (the records in the state
schema on [postgres], where replicas with their own clones share them)."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import TYPE_CHECKING

import pytest

from statehub.auth import LOCAL_COMMAND
from statehub.cache import blob_sha
from statehub.events import EventDesk, gitwork
from statehub.hub import Hub
from statehub.hubfile import RegisteredRepo
from sync.buffer import Writeback
from tests.gitfixtures import GitRepo, clone
from tests.statehub.eventfixtures import PLAN_PATH, event, plan_repo, trailer_counts

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = pytest.mark.usefixtures("state_in_cache_database")

SLUG = "the-custodian"


@pytest.fixture
def desk(hub: Hub) -> Iterator[EventDesk]:
    with EventDesk(hub) as opened:
        yield opened


def _id_file(repo: GitRepo) -> Path:
    return repo.root / ".git" / gitwork.CHECKOUT_FILE


def _half_write(desk: EventDesk, repo: GitRepo, key: str) -> tuple[int, str]:
    """What a hub killed after writing and before committing leaves in ``repo``: the file holds the
    hub's bytes, uncommitted, and a record names this clone's checkout. (record id, text before)"""
    opened = gitwork.open_repo(repo.root)
    try:
        here = gitwork.checkout_of(opened, mint=True)
    finally:
        opened.close()
    before = repo.read(PLAN_PATH)
    after = before + f"\nhalf-written by a killed pass ({key})\n"
    record = desk.buffer.begin_writeback(
        Writeback(
            SLUG,
            repo.git("rev-parse", "HEAD").strip(),
            [key],
            [{"path": PLAN_PATH, "before": blob_sha(before.encode()), "after": blob_sha(after.encode())}],
            checkout=here.id or "",
            place=here.place,
        )
    )
    repo.write(PLAN_PATH, after)
    return record, before


def _recover(desk: EventDesk, repo: GitRepo) -> None:
    opened = gitwork.open_repo(repo.root)
    try:
        desk.applier.recover(SLUG, opened)
    finally:
        opened.close()


def _left(desk: EventDesk, *repos: GitRepo) -> list[int]:
    """The records still open that name the checkout of one of ``repos``."""
    names: list[str] = []
    for repo in repos:
        opened = gitwork.open_repo(repo.root)
        try:
            names += gitwork.checkout_of(opened).names
        finally:
            opened.close()
    return [w.id for w in desk.buffer.writebacks(SLUG, *names) if w.id is not None]


def test_replicas_sharing_one_clone_share_its_id_and_resolve_each_others_records(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = plan_repo(make_repo)
    hub.register(repo.root)
    record, before = _half_write(desk, repo, "K1")
    first = _id_file(repo).read_text()
    with Hub(hub.settings) as other_hub, EventDesk(other_hub) as other:
        _recover(other, repo)  # the other replica, killed one's record
        assert repo.read(PLAN_PATH) == before
        assert record not in _left(other, repo)
    assert _id_file(repo).read_text() == first  # one id, made once


def test_separate_clones_never_resolve_each_others_records(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    """Two replicas with clones of their own (one state schema): a clone's record is left alone by
    the other clone's recovery, with its half-written file, for its own replica to resolve."""
    mine = plan_repo(make_repo)
    hub.register(mine.root)
    theirs = clone(mine.root, tmp_path / "other-host" / SLUG)
    record, before = _half_write(desk, theirs, "K1")
    _recover(desk, mine)
    assert record in _left(desk, theirs) and theirs.read(PLAN_PATH) != before
    assert _id_file(mine).exists() is False  # recovery reads an id, it never makes one
    _half_write(desk, mine, "K2")
    assert _id_file(mine).read_text() != _id_file(theirs).read_text()
    _recover(desk, theirs)
    assert theirs.read(PLAN_PATH) == before and record not in _left(desk, theirs, mine)
    assert len(_left(desk, mine)) == 1  # mine's, for mine


def test_a_copy_of_a_clone_resolves_its_own_records_and_leaves_the_originals(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    """``cp -r`` makes two clones with one id: each record says where it was made, and a record
    made at a place on this host whose git dir still holds the id is that clone's while the hub
    uses both (both registered). Once the original is gone, the copy is the clone moved: it
    resolves what the original left."""
    original = plan_repo(make_repo)
    hub.register(original.root)
    _half_write(desk, original, "K0")
    _recover(desk, original)  # the id is made; nothing is left
    copy_root = tmp_path / "copy" / SLUG
    shutil.copytree(original.root, copy_root, symlinks=True)
    copy = GitRepo(copy_root, init=False)
    assert _id_file(copy).read_text() == _id_file(original).read_text()
    hub.hub_file.add(RegisteredRepo("the-copy", copy_root.resolve()))

    theirs, before = _half_write(desk, original, "K1")
    _recover(desk, copy)
    assert theirs in _left(desk, copy) and original.read(PLAN_PATH) != before
    ours, copied_before = _half_write(desk, copy, "K2")
    _recover(desk, original)
    assert original.read(PLAN_PATH) == before and theirs not in _left(desk, copy)
    assert ours in _left(desk, copy) and copy.read(PLAN_PATH) != copied_before

    shutil.rmtree(copy.root)  # the copy goes; a record it left is the original's, as if moved
    _recover(desk, original)
    assert _left(desk, original) == []


def test_an_id_planted_from_another_clone_does_not_take_that_clones_records(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    """The repo's owner writes another clone's id (on this host, registered) into this clone: the
    other clone's record, and its half-written file, are left for it."""
    mine = plan_repo(make_repo)
    hub.register(mine.root)
    other = clone(mine.root, tmp_path / "elsewhere" / SLUG)
    record, before = _half_write(desk, other, "K1")
    hub.hub_file.add(RegisteredRepo("the-other", other.root.resolve()))  # the hub uses it
    _id_file(mine).write_text(_id_file(other).read_text())
    _recover(desk, mine)
    assert record in _left(desk, other) and other.read(PLAN_PATH) != before
    _recover(desk, other)
    assert record not in _left(desk, other) and other.read(PLAN_PATH) == before


def _copy(repo: GitRepo, to: Path) -> GitRepo:
    shutil.copytree(repo.root, to, symlinks=True)
    return GitRepo(to, init=False)


def _repoint(hub: Hub, **paths: Path) -> None:
    """Make hub.toml list exactly ``paths`` (slug: work tree), as a person editing it would."""
    for known in hub.repos():
        hub.hub_file.remove(known.slug)
    for slug, path in paths.items():
        hub.hub_file.add(RegisteredRepo(slug.replace("_", "-"), path.resolve()))


def _killed_pass(desk: EventDesk, repo: GitRepo, step: str) -> tuple[int, str]:
    """An accepted event K1 and what a hub killed at ``step`` of applying it in ``repo`` leaves:
    'written', its file half-written; 'committed', that file committed with K1's trailer as well."""
    desk.submit(event("K1", kind="progress.note", note="a note"), authorise=LOCAL_COMMAND)
    record, before = _half_write(desk, repo, "K1")
    if step == "committed":
        repo.commit("the killed pass\n\nStatehub-Event: K1")
    return record, before


@pytest.mark.parametrize("step", ["written", "committed"])
def test_a_copy_pointed_at_while_the_original_stays_unregistered_takes_the_killed_pass_over(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo], tmp_path: Path, step: str
) -> None:
    """A pass killed after writing (or committing); the clone copied (``cp -r``), hub.toml pointed at
    the copy and the original left in place: the original is no longer the hub's, so the copy (same
    id, same state) resolves the record as after a ``mv``, and each event applies once."""
    original = plan_repo(make_repo)
    hub.register(original.root)
    record, _ = _killed_pass(desk, original, step)
    kept = original.read(PLAN_PATH)
    copy = _copy(original, tmp_path / "copy" / SLUG)
    _repoint(hub, the_custodian=copy.root)
    desk.submit(event("E1", kind="progress.note", note="a note"), authorise=LOCAL_COMMAND)
    desk.apply_pending([SLUG])
    for key in ("K1", "E1"):
        found = desk.buffer.get(key)
        assert found is not None and found.state.value == "applied", found and found.reason
        assert found.commit is not None
    assert record not in _left(desk, copy, original)
    assert trailer_counts(copy) == {"K1": 1, "E1": 1} and copy.git("status", "--porcelain") == ""
    assert original.read(PLAN_PATH) == kept  # the original is not the hub's: left as it is


@pytest.mark.parametrize("step", ["written", "committed"])
def test_two_registered_copies_never_resolve_each_others_records_and_the_reason_names_the_other(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo], tmp_path: Path, step: str
) -> None:
    """Both clones (one id) stay in hub.toml: neither resolves the other's record, the killed pass's
    event waits (applied again in the copy it would carry two trailers) and an event waiting on the
    copied half-written file says which clone the pass is left to and what to do."""
    original = plan_repo(make_repo)
    hub.register(original.root)
    theirs, _ = _killed_pass(desk, original, step)
    kept = original.read(PLAN_PATH)
    copy = _copy(original, tmp_path / "copy" / SLUG)
    _repoint(hub, the_custodian=copy.root, the_original=original.root)
    desk.submit(event("E1", kind="progress.note", note="a note"), authorise=LOCAL_COMMAND)
    desk.apply_pending([SLUG])
    other = str(original.root.resolve())
    found = desk.buffer.get("K1")
    assert found is not None and found.state.value == "pending" and found.reason is not None
    assert f"killed in {other} " in found.reason and "statehub repos remove" in found.reason
    found = desk.buffer.get("E1")
    assert found is not None
    if step == "written":
        assert found.reason is not None
        assert found.state.value == "pending" and f"uncommitted changes in {PLAN_PATH}" in found.reason
        assert other in found.reason and "statehub repos remove" in found.reason
        assert found.reason.isprintable()
    else:
        assert found.state.value == "applied"
    expected = {"K1": 1, "E1": 1} if step == "committed" else {}
    assert theirs in _left(desk, original) and original.read(PLAN_PATH) == kept
    assert trailer_counts(copy) == expected
    assert trailer_counts(original) == ({"K1": 1} if step == "committed" else {})
    ours, _ = _half_write(desk, copy, "K2")
    _recover(desk, original)  # its own record only
    assert theirs not in _left(desk, original) and ours in _left(desk, copy)


def _plant(path: Path, kind: str, elsewhere: Path) -> None:
    if kind == "huge":
        path.write_bytes(b"a" * (1 << 20))
    elif kind == "newline":
        path.write_bytes(b"0123456789abcdef\n0123456789abcdef\n")
    elif kind == "non-ascii":
        path.write_bytes("é".encode() * 16)
    elif kind == "upper-case":
        path.write_bytes(b"0123456789ABCDEF0123456789ABCDEF\n")
    elif kind == "short":
        path.write_bytes(b"abc\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "link":  # to a valid id elsewhere: not followed
        (elsewhere / "id").write_text("0" * 32 + "\n")
        path.symlink_to(elsewhere / "id")
    elif kind == "fifo":  # would block a plain read for ever
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()


@pytest.mark.parametrize(
    "kind", ["huge", "newline", "non-ascii", "upper-case", "short", "empty", "link", "fifo", "directory"]
)
def test_a_malformed_id_in_the_clone_makes_events_wait_with_a_sentence_and_resolves_nothing(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo], tmp_path: Path, kind: str
) -> None:
    """The file holds something the hub never wrote: every pending event waits with a sentence
    naming the file, nothing is resolved or written, and the hub leaves the thing as it found it.
    A person puts the id back: the killed pass's record is resolved, then the event applies once."""
    repo = plan_repo(make_repo)
    hub.register(repo.root)
    record, before = _half_write(desk, repo, "K0")
    path = _id_file(repo)
    kept = path.read_bytes()
    path.unlink()
    _plant(path, kind, tmp_path)
    desk.submit(event("E1", kind="progress.note", note="a note"), authorise=LOCAL_COMMAND)
    desk.apply_pending([SLUG])
    found = desk.buffer.get("E1")
    assert found is not None and found.state.value == "pending"
    assert found.reason is not None and f"{path} " in found.reason and "remove it" in found.reason
    assert len(found.reason) < 600 and found.reason.isprintable()
    assert SLUG in desk.applier.failing
    assert repo.read(PLAN_PATH) != before and trailer_counts(repo) == {}  # nothing resolved or written
    assert path.is_symlink() if kind == "link" else path.exists()  # left as it was found

    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    else:
        path.unlink()
    path.write_bytes(kept)
    desk.apply_pending([SLUG])
    found = desk.buffer.get("E1")
    assert found is not None and found.state.value == "applied"
    assert trailer_counts(repo) == {"E1": 1} and record not in _left(desk, repo)
    assert "half-written" not in repo.read(PLAN_PATH)


@pytest.fixture
def read_only_git(make_repo: Callable[[str], GitRepo]) -> Iterator[GitRepo]:
    """A plan repo whose ``.git`` is a read-only mount, or a skip saying why there cannot be one."""
    repo = plan_repo(make_repo)
    git_dir = repo.root / ".git"
    if os.geteuid() != 0:
        pytest.skip("a read-only mount needs root, and these tests do not run as root")
    bound = subprocess.run(["mount", "--bind", str(git_dir), str(git_dir)], capture_output=True, text=True)
    if bound.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {bound.stderr.strip() or bound.returncode}")
    try:
        done = subprocess.run(
            ["mount", "-o", "remount,ro,bind", str(git_dir)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {done.stderr.strip() or done.returncode}")
        yield repo
    finally:
        subprocess.run(["umount", "-l", str(git_dir)], capture_output=True, check=False)


def test_a_read_only_git_dir_makes_events_wait_with_a_sentence(
    hub: Hub, desk: EventDesk, read_only_git: GitRepo
) -> None:
    repo = read_only_git
    hub.register(repo.root)
    before = repo.read(PLAN_PATH)
    desk.submit(event("E1", kind="progress.note", note="a note"), authorise=LOCAL_COMMAND)
    desk.apply_pending([SLUG])
    found = desk.buffer.get("E1")
    assert found is not None and found.state.value == "pending"
    assert found.reason is not None
    assert "cannot keep this clone's checkout id" in found.reason and "Read-only file system" in found.reason
    assert repo.read(PLAN_PATH) == before and trailer_counts(repo) == {}
    assert not _id_file(repo).exists()


def test_a_registered_repo_whose_dot_git_is_a_fifo_does_not_block_deciding_whose_record_it_is(
    tmp_path: Path,
) -> None:
    """review16f: deciding whether a record is left to another registered clone reads each registered
    repo's ``.git``; one that is a fifo (the repo owner writes it) blocked the applier for ever on a
    plain open. It is read without blocking, and a ``.git`` that is no directory or regular file
    names no git dir."""
    import socket
    import threading

    made_at = tmp_path / "original" / ".git"
    made_at.mkdir(parents=True)
    ident = "0123456789abcdef" * 2
    (made_at / gitwork.CHECKOUT_FILE).write_text(ident + "\n")
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    os.mkfifo(hostile / ".git")
    here = gitwork.Checkout(ident, f"{socket.gethostname()}:{tmp_path / 'copy' / '.git'}", "")
    answers: list[object] = []
    asking = threading.Thread(
        target=lambda: answers.append(here.left_to(ident, f"{socket.gethostname()}:{made_at}", [hostile])),
        daemon=True,
    )
    asking.start()
    asking.join(5)
    blocked = asking.is_alive()
    if blocked:  # unblock the open so the thread ends
        fd = os.open(hostile / ".git", os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        asking.join(5)
    assert answers == [None] and not blocked
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / ".git").write_text(f"gitdir: {made_at}\n")
    assert here.left_to(ident, f"{socket.gethostname()}:{made_at}", [linked]) == linked
