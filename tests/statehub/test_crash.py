"""Kill -9 while the hub applies events: after a restart every acknowledged event is applied
exactly once (one ``Statehub-Event`` trailer) and none is lost."""

from __future__ import annotations

import shutil
import signal
import socket
import sqlite3
import threading
import time
from contextlib import closing
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from statehub.events.writeback import CRASH_ENV
from sync.buffer import WriteBuffer
from tests.gitfixtures import GitRepo
from tests.statehub.eventfixtures import PLAN_PATH, event, plan_repo, trailer_counts
from tests.statehub.hubprocess import HubProcess

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[HubProcess]:
    process = HubProcess(tmp_path / "hub-home", tmp_path / "hub.log")
    yield process
    process.stop()


def _batch(repo: str, count: int, actors: tuple[str, ...] = ("agt-codex",)) -> list[dict[str, Any]]:
    return [
        event(f"{repo}-{i:04d}", kind="progress.note", note=f"note {i}", actor=actors[i % len(actors)])
        for i in range(count)
    ]


def _check_exactly_once(repos: dict[str, GitRepo], keys: list[str], server: HubProcess) -> None:
    for name, repo in repos.items():
        counts = trailer_counts(repo)
        mine = [k for k in keys if k.startswith(f"{name}-")]
        assert {k: counts.get(k, 0) for k in mine} == dict.fromkeys(mine, 1)
        text = repo.read(PLAN_PATH)
        assert all(text.count(f"<!-- event:{k} -->") == 1 for k in mine)
        assert repo.git("status", "--porcelain") == ""
    listed = server.call("GET", "/events?state=applied&limit=1000").json()
    assert listed["total"] == len(keys)
    bodies: dict[str, str] = {}
    for repo in repos.values():
        log = repo.git("log", "--format=%H%x00%B%x00").split("\0")
        bodies.update({sha.strip(): body for sha, body in zip(log[0::2], log[1::2], strict=False)})
    for item in listed["items"]:  # each event records the very commit that carries its trailer
        assert item["commit"] is not None, item
        assert f"Statehub-Event: {item['key']}\n" in bodies[item["commit"]]


@pytest.mark.parametrize("step", ["written", "committed"])
def test_a_kill_at_each_step_of_write_back_loses_and_doubles_nothing(
    server: HubProcess, make_repo: Callable[[str], GitRepo], step: str
) -> None:
    repos = {name: plan_repo(make_repo, name) for name in ("alpha", "beta")}
    repos["beta"].write(PLAN_PATH, repos["beta"].read(PLAN_PATH).replace("CUST-WP-0054", "BETA-WP-0054"))
    repos["beta"].commit("rename the plan")
    server.start(**{CRASH_ENV: step})
    for repo in repos.values():
        assert server.call("POST", "/repos", json={"path": str(repo.root)}).status_code == 201
    batch = _batch("alpha", 20) + [e | {"workplan": "BETA-WP-0054"} for e in _batch("beta", 20)]
    answer = server.call("POST", "/events", json=batch)
    assert answer.status_code == 202
    assert server.wait_exit() == -signal.SIGKILL
    server.start()
    server.wait_settled()
    _check_exactly_once(repos, [e["key"] for e in batch], server)


def test_a_kill_from_outside_in_the_middle_of_applying(
    server: HubProcess, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = plan_repo(make_repo, "alpha")
    server.start()
    assert server.call("POST", "/repos", json={"path": str(repo.root)}).status_code == 201
    batch = _batch("alpha", 300, actors=("agt-codex", "atm-railiance01"))  # one commit per event
    accepted: list[str] = []
    stop = threading.Event()

    def send() -> None:  # an agent keeps sending small batches while the hub applies them
        for start in range(0, len(batch), 5):
            if stop.is_set():
                return
            try:
                answer = server.call("POST", "/events", json=batch[start : start + 5])
            except httpx.TransportError:
                return
            if answer.status_code != 202:
                return
            accepted.extend(e["key"] for e in batch[start : start + 5])
            time.sleep(0.01)

    sender = threading.Thread(target=send)
    start = int(repo.git("rev-list", "--count", "HEAD"))
    sender.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and int(repo.git("rev-list", "--count", "HEAD")) < start + 20:
        time.sleep(0.005)
    server.kill()  # some commits are made, the events are not all marked applied yet
    stop.set()
    sender.join()
    buffer = WriteBuffer(server.home / "data" / "buffer.sqlite3")
    try:
        left = buffer.counts().pending
    finally:
        buffer.close()
    assert left > 0, "everything was marked applied before the kill; the test proved nothing"
    server.start()
    server.wait_settled()
    stored = [item["key"] for item in server.call("GET", "/events?limit=1000").json()["items"]]
    assert set(accepted) <= set(stored)  # a batch cut off by the kill may be stored unanswered
    _check_exactly_once({"alpha": repo}, stored, server)


def _rename_host(tmp_path: Path) -> dict[str, str]:
    """The environment of a hub whose host is now called ``renamed-host``."""
    renamed = tmp_path / "renamed"
    renamed.mkdir(exist_ok=True)
    (renamed / "sitecustomize.py").write_text("import socket\nsocket.gethostname = lambda: 'renamed-host'\n")
    return {"PYTHONPATH": str(renamed)}


def _move_clone(server: HubProcess, repo: GitRepo, to: Path) -> GitRepo:
    """``mv`` the whole clone while the hub is down, and point the hub's registration at it."""
    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(repo.root, to)
    (hub_toml,) = server.home.rglob("hub.toml")
    text = hub_toml.read_text(encoding="utf-8")
    assert str(repo.root) in text
    hub_toml.write_text(text.replace(str(repo.root), str(to)), encoding="utf-8")
    return GitRepo(to, init=False)


@pytest.mark.parametrize(  # each change and each step, in four hub lives (20 s each), not six
    ("change", "step"),
    [("host", "written"), ("tree", "committed"), ("both", "written"), ("both", "committed")],
)
def test_a_kill_then_a_new_host_name_or_a_moved_tree_loses_doubles_and_leaves_nothing(
    server: HubProcess, make_repo: Callable[[str], GitRepo], step: str, change: str, tmp_path: Path
) -> None:
    """Between the kill and the restart the host is renamed, or the whole clone moved (``mv``), or
    both (same data dir): the write-back record the killed hub left names the clone's own id
    (``.git/statehub-checkout``), so the restarted hub still resolves it, applies every event exactly
    once, and no record is left behind. (With ``<host>:<work tree>`` no one resolved it:
    'written' left the events waiting for ever on the hub's own half-written file, 'committed'
    marked them applied without their commit and left the record for ever.)"""
    repo = plan_repo(make_repo, "alpha")
    server.start(**{CRASH_ENV: step})
    assert server.call("POST", "/repos", json={"path": str(repo.root)}).status_code == 201
    batch = _batch("alpha", 20)
    assert server.call("POST", "/events", json=batch).status_code == 202
    assert server.wait_exit() == -signal.SIGKILL
    with closing(sqlite3.connect(server.home / "data" / "buffer.sqlite3")) as db:
        assert len(db.execute("SELECT id FROM writeback").fetchall()) == 1  # the kill left one
    if change in ("tree", "both"):
        repo = _move_clone(server, repo, tmp_path / "moved" / "elsewhere" / "alpha")
    server.start(**(_rename_host(tmp_path) if change in ("host", "both") else {}))
    server.wait_settled()
    _check_exactly_once({"alpha": repo}, [e["key"] for e in batch], server)
    server.stop()
    with closing(sqlite3.connect(server.home / "data" / "buffer.sqlite3")) as db:
        assert db.execute("SELECT repo, checkout FROM writeback").fetchall() == []


@pytest.mark.parametrize(  # each old form and each step, in two hub lives, not four
    ("named", "step"), [("host-and-work-tree", "written"), ("nothing", "committed")]
)
def test_a_record_left_by_a_hub_from_before_checkout_ids_is_resolved_after_the_upgrade(
    server: HubProcess, make_repo: Callable[[str], GitRepo], step: str, named: str
) -> None:
    """A hub of the previous layout killed mid-pass left a record naming its checkout
    ``<host>:<work tree>`` (buffer layout 3), or nothing (before that), and its clone has no id yet:
    the upgraded hub resolves it, once."""
    repo = plan_repo(make_repo, "alpha")
    server.start(**{CRASH_ENV: step})
    assert server.call("POST", "/repos", json={"path": str(repo.root)}).status_code == 201
    batch = _batch("alpha", 20)
    assert server.call("POST", "/events", json=batch).status_code == 202
    assert server.wait_exit() == -signal.SIGKILL
    before = f"{socket.gethostname()}:{repo.root.resolve()}" if named == "host-and-work-tree" else ""
    (repo.root / ".git" / "statehub-checkout").unlink()  # the old hub kept no id in the clone
    with closing(sqlite3.connect(server.home / "data" / "buffer.sqlite3")) as db, db:
        assert db.execute("UPDATE writeback SET checkout = ?, place = ''", (before,)).rowcount == 1
    server.start()
    server.wait_settled()
    _check_exactly_once({"alpha": repo}, [e["key"] for e in batch], server)
    server.stop()
    with closing(sqlite3.connect(server.home / "data" / "buffer.sqlite3")) as db:
        assert db.execute("SELECT repo, checkout FROM writeback").fetchall() == []


@pytest.mark.parametrize("step", ["written", "committed"])
def test_a_kill_then_a_copy_pointed_at_with_the_original_in_place_resolves_the_pass_once(
    server: HubProcess, make_repo: Callable[[str], GitRepo], step: str, tmp_path: Path
) -> None:
    """Between the kill and the restart the clone is copied (``cp -r``: same id, same half-written
    or committed state), hub.toml is pointed at the copy and the original stays where it was: the
    original is no longer the hub's, so the copy resolves the killed pass's record as after a
    ``mv``. (It was left to the original: 'written' waited for ever on "uncommitted changes",
    'committed' marked the events applied without their commit and kept the record for ever.)"""
    repo = plan_repo(make_repo, "alpha")
    server.start(**{CRASH_ENV: step})
    assert server.call("POST", "/repos", json={"path": str(repo.root)}).status_code == 201
    batch = _batch("alpha", 20)
    assert server.call("POST", "/events", json=batch).status_code == 202
    assert server.wait_exit() == -signal.SIGKILL
    to = tmp_path / "copied" / "alpha"
    to.parent.mkdir(parents=True)
    shutil.copytree(repo.root, to, symlinks=True)
    (hub_toml,) = server.home.rglob("hub.toml")
    text = hub_toml.read_text(encoding="utf-8")
    assert str(repo.root) in text
    hub_toml.write_text(text.replace(str(repo.root), str(to)), encoding="utf-8")
    server.start()
    server.wait_settled()
    _check_exactly_once({"alpha": GitRepo(to, init=False)}, [e["key"] for e in batch], server)
    server.stop()
    with closing(sqlite3.connect(server.home / "data" / "buffer.sqlite3")) as db:
        assert db.execute("SELECT repo, checkout FROM writeback").fetchall() == []
