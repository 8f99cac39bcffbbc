"""Review of issue 16's background sweeps (review16a): a remote that hangs, what a scoped token reads.

A real git repo whose remote is a real TCP server on 127.0.0.1 that accepts and never answers:
the sweep's fetch and push must end (killed after ``REMOTE_TIMEOUT``) with a problem a person
can act on, instead of holding the applier lock, and every write of the hub, for ever.
"""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING

import msgspec
import pytest

from statehub.api.sweeps import _shown
from statehub.errors import as_hub_error
from statehub.gitrepo import open_work_tree
from statehub.sweep import remote
from statehub.sweep.run import totals_of
from statehub.sweep.scheduler import SweepRun
from sync.errors import StoreUnreachable

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.gitfixtures import GitRepo

WAIT = 120.0
"""Seconds the test waits for the fetch to end: a guard against a hang, never a timing check."""


@pytest.fixture
def silent_remote() -> Iterator[int]:
    """A port on 127.0.0.1 whose server accepts every connection and never says a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_remote_that_never_answers_ends_the_fetch_and_the_push_with_a_problem(
    make_repo: Callable[[str], GitRepo], silent_remote: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo("hung")
    repo.write("README.md", "hello\n")
    repo.commit("start")
    repo.git("remote", "add", "origin", f"git://127.0.0.1:{silent_remote}/hung.git")
    monkeypatch.setattr(remote, "REMOTE_TIMEOUT", 2.0)
    said: dict[str, object] = {}

    def sweep_git() -> None:
        work = open_work_tree(repo.root)
        try:
            said["fetch"] = remote.fetch(work, "origin")
            said["push"] = remote.push(work, "origin", "main", attempts=1)
        finally:
            work.close()

    worker = threading.Thread(target=sweep_git, daemon=True)
    worker.start()
    worker.join(WAIT)
    assert not worker.is_alive(), "the sweep's git hung on a remote that never answers"
    fetched = said["fetch"]
    assert isinstance(fetched, str) and "fetch from origin failed" in fetched, fetched
    assert "did not answer within 2 s" in fetched and "git fetch" not in fetched, fetched
    pushed = said["push"]
    assert isinstance(pushed, remote.PushResult) and not pushed.pushed and pushed.reason, pushed
    assert "did not answer within 2 s" in pushed.reason and "git push" not in pushed.reason, pushed
    assert repo.git("rev-list", "--count", "HEAD").strip() == "1"  # nothing local was lost


def _run(**given: object) -> SweepRun:
    fields: dict[str, object] = {
        "id": "20261201T161500Z-0a1b2c3d",
        "state": "running",
        "trigger": "schedule",
        "requested_by": None,
        "requests": 1,
        "targets": ["alpha", "secret-repo"],
        "sweeping": "secret-repo",
        "queued_at": "2026-12-01T16:15:00Z",
        "started_at": "2026-12-01T16:15:00Z",
        "finished_at": None,
        "repos": [],
        "totals": totals_of([]),
        "error": None,
        "replica": "hub-a:7",
    }
    fields.update(given)
    return SweepRun(**fields)  # type: ignore[arg-type]


def test_a_scoped_token_never_reads_the_names_of_repos_outside_its_scope() -> None:
    running = _shown(_run(), {"alpha"})
    assert running.targets == ["alpha"] and running.sweeping is None
    failed = _shown(
        _run(state="failed", sweeping=None, error="the hub stopped before sweeping alpha, secret-repo"),
        {"alpha"},
    )
    assert "secret-repo" not in msgspec.json.encode(failed).decode()
    assert failed.error  # it still says the sweep failed
    whole = _run(state="failed", error="the hub stopped before sweeping alpha, secret-repo")
    assert _shown(whole, None) == whole and _shown(whole, {"alpha", "secret-repo"}) == whole


def test_an_unreachable_state_database_asks_to_retry_after_the_stores_own_delay() -> None:
    """review16a: StoreUnreachable says retry after 10 s; the 503 answered Retry-After: 60."""
    answer = as_hub_error(StoreUnreachable("PostgreSQL schema statehub_state in database x", "refused"))
    assert answer.status_code == 503
    assert answer.headers == {"Retry-After": str(StoreUnreachable.retry_after)}
