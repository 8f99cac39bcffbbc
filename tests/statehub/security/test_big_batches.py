"""Big batches do not wedge a repo, and a failing write-back says why (ADR-022, issue 10 item 8).

Through a real hub server: 600 events in one batch by one actor (the batch that
wedged a repo: ``git commit -m`` over the argument limit) and 1,001 (six commits,
the last holding one event) are all applied, in bounded commits (messages through
stdin, never ``-m``), one trailer per event. Git config the hub refuses makes write-back fail: every
waiting event and ``/state/health`` (degraded) carry the reason, retries back
off, and the events apply once it is fixed. A stale ``index.lock`` stops writes
(ADR-029): the events wait with the remedy, and apply once the lock is gone.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import pytest

from statehub.events.writeback import MAX_EVENTS_PER_COMMIT
from tests.statehub.eventfixtures import PLAN_PATH, event, plan_repo, trailer_counts
from tests.statehub.hubprocess import HubProcess

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.gitfixtures import GitRepo


@pytest.fixture
def server(tmp_path: Path) -> Iterator[HubProcess]:
    process = HubProcess(tmp_path / "hub-home", tmp_path / "hub.log")
    yield process
    process.stop()


def _batch(count: int) -> list[dict[str, Any]]:
    return [event(f"BIG-{i:05d}", kind="progress.note", note=f"note {i}") for i in range(count)]


def _hub_commits(repo: GitRepo) -> list[int]:
    """Trailers per commit the hub made, newest first."""
    log = repo.git("log", "--format=%cn%x00%(trailers:key=Statehub-Event,valueonly,separator=%x1f)%x00")
    parts = log.split("\0")
    return [
        len([v for v in values.split("\x1f") if v.strip()])
        for name, values in zip(parts[0::2], parts[1::2], strict=False)
        if name.strip() == "State Hub"
    ]


@pytest.mark.parametrize("count", [600, 5 * MAX_EVENTS_PER_COMMIT + 1])
def test_a_big_batch_by_one_actor_applies_in_bounded_commits(
    server: HubProcess, make_repo: Callable[[str], GitRepo], count: int
) -> None:
    repo = plan_repo(make_repo)
    server.start()
    assert server.call("POST", "/repos", json={"path": str(repo.root)}).status_code == 201
    batch = _batch(count)
    answer = server.call("POST", "/events", json=batch)
    assert answer.status_code == 202, answer.text[:500]
    server.wait_settled(timeout=900)
    assert server.call("GET", "/events?state=applied&limit=1").json()["total"] == count
    assert trailer_counts(repo) == {e["key"]: 1 for e in batch}
    commits = _hub_commits(repo)
    assert len(commits) == math.ceil(count / MAX_EVENTS_PER_COMMIT)
    assert max(commits) <= MAX_EVENTS_PER_COMMIT and sum(commits) == count
    assert repo.git("status", "--porcelain") == ""
    health = server.call("GET", "/state/health").json()
    assert health["status"] == "ok" and health["problems"] == []


def test_a_failing_write_back_shows_its_reason_backs_off_and_recovers(
    server: HubProcess, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = plan_repo(make_repo)
    head = repo.git("rev-parse", "HEAD")
    server.start()
    assert server.call("POST", "/repos", json={"path": str(repo.root)}).status_code == 201
    repo.git("config", "include.path", "/etc/hostname")  # config the hub refuses: write-back fails
    batch = _batch(600)
    assert server.call("POST", "/events", json=batch).status_code == 202

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        health = server.call("GET", "/state/health").json()
        if health["status"] == "degraded":
            break
        time.sleep(0.1)
    assert health["status"] == "degraded", health
    [problem] = health["problems"]
    assert problem.startswith("the-custodian: write-back failed, will retry in ")
    assert "its git config includes another file (include.path = /etc/hostname)" in problem
    for key in (batch[0]["key"], batch[299]["key"], batch[-1]["key"]):
        answer = server.call("GET", f"/events/{key}").json()
        assert answer["state"] == "pending"
        assert answer["reason"].startswith("write-back failed") and "include.path" in answer["reason"]
    assert repo.git("rev-parse", "HEAD") == head  # nothing committed
    assert repo.git("status", "--porcelain") == ""

    time.sleep(4)  # backoff 1, 2, 4 s: at most three more tries, not one per poll
    attempts = server.call("GET", "/state/health").json()["writeback"]["the-custodian"]["attempts"]
    assert 1 <= attempts <= 4

    late = event("BIG-LATE", kind="progress.note", note="late")
    assert server.call("POST", "/events", json=[late]).status_code == 202
    time.sleep(1.5)
    answer = server.call("GET", "/events/BIG-LATE").json()
    assert answer["state"] == "pending" and "include.path" in (answer["reason"] or "")

    repo.git("config", "--unset", "include.path")
    server.wait_settled(timeout=120)
    assert trailer_counts(repo) == {e["key"]: 1 for e in [*batch, late]}
    health = server.call("GET", "/state/health").json()
    assert health["status"] == "ok" and health["problems"] == [] and health["writeback"] == {}
    assert repo.read(PLAN_PATH).count("<!-- event:") == 601


def test_a_stale_index_lock_holds_a_big_batch_with_its_remedy_and_it_applies_once_removed(
    server: HubProcess, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = plan_repo(make_repo)
    head = repo.git("rev-parse", "HEAD")
    server.start()
    assert server.call("POST", "/repos", json={"path": str(repo.root)}).status_code == 201
    lock = repo.root / ".git" / "index.lock"
    lock.write_text("")  # a crashed git left its lock behind: a git state that stops writes (ADR-029)
    batch = _batch(600)
    assert server.call("POST", "/events", json=batch).status_code == 202

    def reason_of(key: str) -> str:
        return str(server.call("GET", f"/events/{key}").json()["reason"] or "")

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "git is busy" not in reason_of(batch[-1]["key"]):
        time.sleep(0.1)
    for key in (batch[0]["key"], batch[299]["key"], batch[-1]["key"]):
        reason = reason_of(key)
        assert reason.startswith(f"git is busy in {repo.root}: {lock} has been held for ")
        assert reason.endswith(f"remove it: rm {lock}") and "Traceback" not in reason
    health = server.call("GET", "/state/health").json()
    assert health["status"] == "degraded" and health["writeback"] == {}  # stopped, not failing
    assert [p["kind"] for p in health["writes_stopped"]["the-custodian"]] == ["index-lock"]
    assert repo.git("rev-parse", "HEAD") == head  # nothing committed, nothing written
    lock.unlink()
    assert repo.git("status", "--porcelain") == ""
    server.wait_settled(timeout=120)
    assert trailer_counts(repo) == {e["key"]: 1 for e in batch}
    health = server.call("GET", "/state/health").json()
    assert health["status"] == "ok" and health["problems"] == [] and health["writes_stopped"] == {}
