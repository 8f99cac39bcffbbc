"""Forge sync (canon/ADR-053): two hubs with clones of their own meet at one bare remote.

Each hub has its own config, data and cache dirs (its own write buffer) and its
own clone of the forge; only the forge is shared. Events with different keys
target the same workplan file; every event must land once on the forge.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from statehub.auth import LOCAL_COMMAND
from statehub.diagnostics import diagnose, watcher_of_server
from statehub.events import EventDesk
from statehub.events import forge as forge_module
from statehub.events.worker import ApplierWorker
from statehub.events.writeback import CRASH_ENV
from statehub.health import health
from statehub.hub import Hub
from statehub.metrics import StateCollector
from statehub.settings import Settings, sqlite_url
from tests.gitfixtures import GitRepo, clone
from tests.statehub.eventfixtures import PLAN_PATH, event, plan_repo
from tests.statehub.hubprocess import HubProcess

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

SLUG = "the-custodian"


@dataclass
class Replica:
    """One hub with its own clone of the forge."""

    hub: Hub
    desk: EventDesk
    clone: GitRepo

    def send(self, key: str, **fields: Any) -> None:
        [answer] = self.desk.submit(event(key, **fields), authorise=LOCAL_COMMAND)
        assert answer.result == "accepted", answer

    def apply(self) -> None:
        assert self.desk.apply_pending([SLUG]) is not None

    def state(self, key: str) -> tuple[str, str | None]:
        return self.desk.buffer.states([key])[key]


def forge_log(remote: Path) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(remote), "log", "--format=%B", "main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def forge_trailers(remote: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for key in re.findall(r"^Statehub-Event: (\S+)$", forge_log(remote), re.MULTILINE):
        counts[key] = counts.get(key, 0) + 1
    return counts


def forge_file(remote: Path) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(remote), "show", f"main:{PLAN_PATH}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


class Forge:
    """A bare remote seeded with the plan repo, and hubs built over clones of it."""

    def __init__(self, tmp_path: Path, make_repo: Callable[[str], GitRepo], stack: ExitStack) -> None:
        self.tmp = tmp_path
        self.stack = stack
        self.remote = tmp_path / "forge" / "plans.git"
        self.remote.parent.mkdir()
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.remote)], check=True)
        seed = plan_repo(make_repo, "seed")
        seed.git("push", "-q", str(self.remote), "main")

    def replica(self, name: str, url: str | None = None, timeout: float = 30.0) -> Replica:
        home = self.tmp / name
        work = clone(self.remote, home / SLUG)
        if url is not None:
            work.git("remote", "set-url", "origin", url)
        settings = Settings(
            config_dir=home / "config",
            data_dir=home / "data",
            cache_dir=home / "cache",
            database_url=sqlite_url(home / "cache" / "cache.sqlite3"),
            watch=False,
            forge_sync=True,
            forge_timeout_s=timeout,
        )
        settings.ensure_dirs()
        hub = self.stack.enter_context(Hub(settings))
        hub.register(work.root)
        desk = self.stack.enter_context(EventDesk(hub))
        return Replica(hub, desk, work)


@pytest.fixture
def forge(tmp_path: Path, make_repo: Callable[[str], GitRepo]) -> Iterator[Forge]:
    with ExitStack() as stack:
        yield Forge(tmp_path, make_repo, stack)


def test_two_replicas_interleaving_events_on_one_file_land_each_event_once_on_the_forge(
    forge: Forge, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = forge.replica("host-a"), forge.replica("host-b")
    a.send("A1", kind="progress.note", note="from host a")
    b.send("B1", kind="progress.note", note="from host b")
    a.apply()
    b.apply()  # b brings in A1's commit first, then applies B1 on top
    b.send("B2", kind="task.add", task="T03", title="Drain coulombcore")
    a.send("A2", kind="task.status", status="blocked")
    b.apply()
    a.apply()

    # A true race on the same line: b builds its commit on the tip it fetched, then a pushes
    # first. The forge refuses b's push (not a fast-forward); b applies its event again to
    # the new text, never merging text.
    a.send("A3", kind="task.status", status="done")
    b.send("B3", kind="task.status", status="in-progress")
    real = forge_module.push_commit
    raced: list[bool] = []

    def a_pushes_first(
        repo: Any, remote: str, branch: str, commit: str = "HEAD", timeout: float = 30.0
    ) -> Any:
        if not raced and str(b.clone.root) in str(repo.working_tree_dir):
            raced.append(True)
            a.apply()
        return real(repo, remote, branch, commit, timeout)

    monkeypatch.setattr(forge_module, "push_commit", a_pushes_first)
    b.apply()
    assert raced == [True]

    def forge_git(*args: str) -> str:
        return subprocess.run(
            ["git", "--git-dir", str(forge.remote), *args], capture_output=True, text=True, check=True
        ).stdout

    assert len(forge_git("rev-list", "--parents", "-n", "1", "main").split()) == 2  # no merge commit
    assert "Statehub-Event: B3" in forge_git("log", "-1", "--format=%B", "main")  # B3 applied again...
    assert "Statehub-Event: A3" in forge_git("log", "-1", "--format=%B", "main^")  # ...on top of A3

    keys = ["A1", "B1", "B2", "A2", "A3", "B3"]
    assert forge_trailers(forge.remote) == dict.fromkeys(keys, 1)
    for replica, own in ((a, ["A1", "A2", "A3"]), (b, ["B1", "B2", "B3"])):
        for key in own:
            assert replica.state(key)[0] == "applied", (key, replica.state(key))
    text = forge_file(forge.remote)
    assert "from host a" in text and "from host b" in text
    assert 'id = "T03"' in text
    t02 = text[text.index('id = "T02"') :]
    assert 'status = "in-progress"' in t02.split("[[tasks]]")[0]  # B3 came last, applied to A3's text
    b.clone.git("fetch", "-q")
    assert b.clone.git("rev-parse", "HEAD") == b.clone.git("rev-parse", "origin/main")
    assert b.clone.read(PLAN_PATH) == text
    assert b.desk.applier.forge is not None and b.desk.applier.forge.unpushed == {}
    assert health(b.desk).unpushed == {}


def test_a_persons_uncommitted_edit_in_the_way_keeps_the_events_waiting_and_loses_nothing(
    forge: Forge,
) -> None:
    a, b = forge.replica("host-a"), forge.replica("host-b")
    a.send("A1", kind="task.status", status="blocked")
    a.apply()
    mine = b.clone.read(PLAN_PATH).replace("Free   text", "A person's half-written text")
    b.clone.write(PLAN_PATH, mine)
    b.send("B1", kind="progress.note", note="from host b")
    b.apply()
    state, reason = b.state("B1")
    assert state == "pending"
    assert reason is not None and "could not bring in origin/main" in reason
    assert "would overwrite uncommitted changes in workplans/CUST-WP-0054.md" in reason
    assert b.clone.read(PLAN_PATH) == mine
    assert SLUG in b.desk.applier.failing
    assert forge_trailers(forge.remote) == {"A1": 1}

    b.clone.commit("a person's own change")  # the person is done: the hub rebases it and applies
    b.desk.applier.failing.clear()  # (the worker would wait out the backoff)
    b.apply()
    assert b.state("B1")[0] == "applied"
    text = forge_file(forge.remote)
    assert "A person's half-written text" in text and "from host b" in text
    assert forge_trailers(forge.remote) == {"A1": 1, "B1": 1}
    assert "a person's own change" in forge_log(forge.remote)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def daemon(forge: Forge) -> Iterator[str]:
    """``git daemon`` serving the forge over git:// (pushes too), so its hooks run: a push to a
    local path runs none (ADR-022)."""
    port = _free_port()
    base = forge.remote.parent
    process = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--enable=receive-pack",
            f"--base-path={base}",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "git daemon did not start"
                time.sleep(0.05)
        yield f"git://127.0.0.1:{port}/{forge.remote.name}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_forge_that_refuses_pushes_leaves_the_events_applied_and_unpushed_until_it_takes_them(
    forge: Forge, daemon: str
) -> None:
    a = forge.replica("host-a", url=daemon)
    hook = forge.remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'the forge is frozen for the release' >&2\nexit 1\n")
    hook.chmod(0o755)
    a.send("A1", kind="progress.note", note="while frozen")
    a.apply()
    assert a.state("A1")[0] == "applied"  # committed here
    assert "while frozen" in a.clone.read(PLAN_PATH)
    assert forge_trailers(forge.remote) == {}
    answer = health(a.desk)
    assert answer.status == "ok"  # writes go on: health lists the commits, diagnostics explains
    left = answer.unpushed[SLUG]
    assert left.commits == 1 and "pre-receive hook declined" in left.reason
    assert "the forge is frozen for the release" in left.reason
    [problem] = [
        p
        for p in diagnose(a.desk, watcher=watcher_of_server(None), probe=False).repos[0].problems
        if p.kind == "unpushed"
    ]
    assert "1 commits are applied here but not on the forge yet" in problem.message
    assert not problem.stops_writes
    scraped = {
        sample.labels.get("repo"): sample.value
        for metric in StateCollector(a.desk, None, None).collect()
        if metric.name == "statehub_forge_unpushed_commits"
        for sample in metric.samples
    }
    assert scraped == {SLUG: 1}

    hook.unlink()  # the freeze is over: the worker pushes with no event waiting
    worker = ApplierWorker(a.desk, poll=0.05)
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while forge_trailers(forge.remote) != {"A1": 1}:
            assert time.monotonic() < deadline, health(a.desk).unpushed
            time.sleep(0.1)
    finally:
        worker.stop()
    assert health(a.desk).unpushed == {}


@pytest.fixture
def silent_forge() -> Iterator[str]:
    """A server that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def hold() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        yield f"git://127.0.0.1:{server.getsockname()[1]}/plans.git"
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in held:
            connection.close()
        server.close()


def test_a_forge_that_does_not_answer_makes_the_events_wait_a_bounded_time_with_the_reason(
    forge: Forge, silent_forge: str
) -> None:
    a = forge.replica("host-a", url=silent_forge, timeout=1.0)
    a.send("A1", kind="progress.note", note="nobody listens")
    started = time.monotonic()
    a.apply()
    assert time.monotonic() - started < 15
    state, reason = a.state("A1")
    assert state == "pending"
    assert reason is not None and "the forge could not be reached" in reason
    assert "did not answer within 1 s" in reason
    assert SLUG in a.desk.applier.failing
    assert "nobody listens" not in a.clone.read(PLAN_PATH)
    assert health(a.desk).status == "degraded"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[HubProcess]:
    process = HubProcess(tmp_path / "hub-home", tmp_path / "hub.log")
    yield process
    process.stop()


@pytest.mark.parametrize("step", ["written", "committed"])
def test_a_kill_after_the_forge_took_the_commits_applies_each_event_once(
    forge: Forge, server: HubProcess, step: str
) -> None:
    """The push goes first: a hub killed after it (files written, or branch moved) finds the
    commits on the forge when it comes back and marks the events applied with them."""
    work = clone(forge.remote, forge.tmp / "host-a" / SLUG)
    sync = {"STATEHUB_FORGE_SYNC": "on"}
    server.start(**sync, **{CRASH_ENV: step})
    assert server.call("POST", "/repos", json={"path": str(work.root)}).status_code == 201
    batch = [event(f"K{i}", kind="progress.note", note=f"note {i}") for i in range(5)]
    assert server.call("POST", "/events", json=batch).status_code == 202
    assert server.wait_exit() == -signal.SIGKILL
    server.start(**sync)
    server.wait_settled()
    keys = [e["key"] for e in batch]
    assert forge_trailers(forge.remote) == dict.fromkeys(keys, 1)
    assert work.git("status", "--porcelain") == ""
    assert (
        work.git("rev-parse", "HEAD")
        == subprocess.run(
            ["git", "--git-dir", str(forge.remote), "rev-parse", "main"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    listed = server.call("GET", "/events?state=applied&limit=100").json()
    assert sorted(item["key"] for item in listed["items"]) == sorted(keys)
    for item in listed["items"]:
        body = work.git("log", "-1", "--format=%B", item["commit"])
        assert f"Statehub-Event: {item['key']}\n" in body


def test_a_forge_that_keeps_moving_gets_the_commits_by_rebase_after_the_last_attempt(
    forge: Forge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each of the pass's pushes finds a teammate's push before it: the last attempt publishes
    locally, and the leftover push (the sweep's: fetch, rebase, push) brings the commit in."""
    b = forge.replica("host-b")
    mate = clone(forge.remote, forge.tmp / "teammate")
    real = forge_module.push_commit
    raced: list[int] = []

    def teammate_first(
        repo: Any, remote: str, branch: str, commit: str = "HEAD", timeout: float = 30.0
    ) -> Any:
        raced.append(len(raced))
        mate.git("pull", "-q", "--rebase")
        mate.write(f"race-{len(raced)}.txt", "racing\n")
        mate.commit(f"teammate races the hub ({len(raced)})")
        mate.git("push", "-q", "origin", "main")
        return real(repo, remote, branch, commit, timeout)

    monkeypatch.setattr(forge_module, "push_commit", teammate_first)
    b.send("B1", kind="progress.note", note="against the current")
    b.apply()
    assert len(raced) == 2  # the third attempt does not push first
    assert b.state("B1")[0] == "applied"
    assert forge_trailers(forge.remote) == {"B1": 1}
    log = forge_log(forge.remote)
    assert "teammate races the hub (1)" in log and "teammate races the hub (2)" in log
    assert "against the current" in forge_file(forge.remote)
    assert b.desk.applier.forge is not None and b.desk.applier.forge.unpushed == {}
    assert (b.clone.root / "race-2.txt").exists()  # the cache saw the rebase too
    assert b.clone.git("status", "--porcelain") == ""


def test_two_hub_processes_on_two_clones_converge_at_the_forge(forge: Forge) -> None:
    """Two real servers, each with its clone and its buffer, take events for one file at once."""
    servers = [HubProcess(forge.tmp / f"server-{n}", forge.tmp / f"server-{n}.log") for n in "ab"]
    works = [clone(forge.remote, forge.tmp / f"server-{n}" / SLUG) for n in "ab"]
    try:
        for server, work in zip(servers, works, strict=True):
            server.start(STATEHUB_FORGE_SYNC="on")
            assert server.call("POST", "/repos", json={"path": str(work.root)}).status_code == 201
        batches = [
            [event(f"{name}{i:02d}", kind="progress.note", note=f"{name} note {i}") for i in range(12)]
            for name in ("A", "B")
        ]

        def send(server: HubProcess, batch: list[dict[str, Any]]) -> None:
            for item in batch:  # one request each: the two appliers interleave
                assert server.call("POST", "/events", json=[item]).status_code == 202

        senders = [threading.Thread(target=send, args=pair) for pair in zip(servers, batches, strict=True)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(120)
        for server in servers:
            server.wait_settled()
        # A replica that lost the race on all of a pass's attempts publishes locally and leaves its
        # commits unpushed; when their rebase conflicts, the retry (FORGE_BACKOFF, 5 s first) applies
        # their events again on the forge's tip (ADR-053). Wait for that as a user would, by health.
        deadline = time.monotonic() + 60
        while any(server.call("GET", "/state/health").json()["unpushed"] for server in servers):
            assert time.monotonic() < deadline, [
                s.call("GET", "/state/health").json()["unpushed"] for s in servers
            ]
            time.sleep(0.2)
        keys = [item["key"] for batch in batches for item in batch]
        assert forge_trailers(forge.remote) == dict.fromkeys(keys, 1)
        text = forge_file(forge.remote)
        assert all(f"<!-- event:{key} -->" in text for key in keys)
        for server in servers:
            answer = server.call("GET", "/state/health").json()
            assert answer["unpushed"] == {}, answer
            assert server.call("GET", "/events?state=applied&limit=100").json()["total"] == 12
    finally:
        for server in servers:
            server.stop()


def test_the_hubs_own_leftover_commits_that_conflict_with_the_forge_are_applied_again_on_its_tip(
    forge: Forge, daemon: str
) -> None:
    """Host a's forge refuses its pushes (a hook; a push to a path runs none, so host b's goes
    through) while host b changes the same line. A rebase of a's leftover commit conflicts; as it
    holds only a's own events, a applies them again to the forge's text instead, and moves there."""
    a, b = forge.replica("host-a", url=daemon), forge.replica("host-b")
    hook = forge.remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    a.send("A1", kind="task.status", status="blocked")
    a.apply()
    assert a.state("A1")[0] == "applied"
    b.send("B1", kind="task.status", status="done")
    b.send("B2", kind="task.add", task="T03", title="Drain coulombcore")
    b.apply()
    assert forge_trailers(forge.remote) == {"B1": 1, "B2": 1}
    hook.unlink()
    a.send("A2", kind="progress.note", note="after the freeze")
    a.apply()
    assert a.state("A2")[0] == "applied", a.state("A2")
    assert forge_trailers(forge.remote) == {"B1": 1, "B2": 1, "A1": 1, "A2": 1}
    text = forge_file(forge.remote)
    t02 = text[text.index('id = "T02"') :].split("[[tasks]]")[0]
    assert 'status = "blocked"' in t02  # A1, applied again after B1
    assert 'id = "T03"' in text and "after the freeze" in text
    assert a.clone.read(PLAN_PATH) == text
    assert a.clone.git("status", "--porcelain") == ""
    assert a.clone.git("rev-parse", "HEAD") == a.clone.git("rev-parse", "origin/main")
    assert a.desk.applier.forge is not None and a.desk.applier.forge.unpushed == {}


def test_a_persons_commit_that_conflicts_with_the_forge_keeps_the_events_waiting_and_loses_nothing(
    forge: Forge,
) -> None:
    """Only the hub's own event commits are applied again: a person's commit in the way is
    never rewritten, and the events wait with the sweep's sentence."""
    a, b = forge.replica("host-a"), forge.replica("host-b")
    b.send("B1", kind="task.status", status="done")
    b.apply()
    a.clone.write(PLAN_PATH, a.clone.read(PLAN_PATH).replace('status = "in-progress"', 'status = "blocked"'))
    mine = a.clone.commit("a person blocks T02 by hand")
    a.send("A1", kind="progress.note", note="while a person disagrees")
    a.apply()
    state, reason = a.state("A1")
    assert state == "pending"
    assert reason is not None and "conflicts in workplans/CUST-WP-0054.md" in reason, reason
    assert "the rebase was aborted and nothing was changed" in reason
    assert a.clone.git("rev-parse", "HEAD").strip() == mine
    assert a.clone.git("status", "--porcelain") == ""
    assert not (a.clone.root / ".git" / "rebase-merge").exists()
    assert forge_trailers(forge.remote) == {"B1": 1}


def test_a_replayed_event_the_forge_already_reflects_keeps_its_trailer(forge: Forge, daemon: str) -> None:
    """a's leftover commit holds two events; the forge has the same change as one of them and
    another change on the other's line. Applied again, the first changes nothing; its trailer
    stays in the history on a commit of its own that changes no file."""
    a, b = forge.replica("host-a", url=daemon), forge.replica("host-b")
    hook = forge.remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    a.send("A1", kind="task.status", status="blocked")
    a.send("A2", kind="workplan.status", status="blocked")
    a.apply()
    b.send("B1", kind="task.status", status="blocked")
    b.send("B2", kind="workplan.status", status="done")
    b.apply()
    hook.unlink()
    a.send("A3", kind="progress.note", note="after the freeze")
    a.apply()
    assert a.state("A3")[0] == "applied", a.state("A3")
    assert forge_trailers(forge.remote) == dict.fromkeys(["A1", "A2", "A3", "B1", "B2"], 1)
    text = forge_file(forge.remote)
    assert text.split("+++")[1].count('status = "blocked"') == 2  # the plan's (A2 after B2) and T02's
    assert a.clone.git("rev-parse", "HEAD") == a.clone.git("rev-parse", "origin/main")


def test_a_rebase_keeps_a_hub_commit_whose_change_the_forge_already_has(forge: Forge, daemon: str) -> None:
    """Both hosts make the same change; git's rebase would drop a's commit as already upstream,
    and with it the only trailer of a's event. It is kept, empty."""
    a, b = forge.replica("host-a", url=daemon), forge.replica("host-b")
    hook = forge.remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    a.send("A1", kind="task.status", status="blocked")
    a.apply()
    b.send("B1", kind="task.status", status="blocked")
    b.apply()
    hook.unlink()
    a.send("A2", kind="progress.note", note="after the freeze")
    a.apply()
    assert a.state("A2")[0] == "applied", a.state("A2")
    assert forge_trailers(forge.remote) == dict.fromkeys(["A1", "A2", "B1"], 1)


def test_a_sweep_applies_the_hubs_own_leftover_commits_again_when_they_conflict_with_the_forge(
    forge: Forge, daemon: str
) -> None:
    """As above, but no event of host a's arrives after the freeze (its replica was killed and
    restarted, say): the sweep meets the conflicting leftover commit, and brings it to the forge
    as the write-back would, not leaving the repo out of step."""
    from statehub.sweep.run import sweep

    a, b = forge.replica("host-a", url=daemon), forge.replica("host-b")
    hook = forge.remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    a.send("A1", kind="task.status", status="blocked")
    a.apply()
    assert a.state("A1")[0] == "applied"
    b.send("B1", kind="task.status", status="done")
    b.apply()
    hook.unlink()
    [swept] = sweep(a.desk).repos
    assert swept.in_step, swept
    assert forge_trailers(forge.remote) == {"B1": 1, "A1": 1}
    assert a.clone.git("rev-parse", "HEAD") == a.clone.git("rev-parse", "origin/main")
