"""The applier lock per repo (canon/ADR-054), against real git repos, real desks and real processes.

Appliers of different repos work at once; two never apply one repo at once, and the one that finds
a repo's lock taken hands it over instead of waiting; on PostgreSQL a replica whose lock's session
ends mid-pass publishes nothing and marks nothing; two hubs started at the same instant on an empty
database both come up.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from statehub import gitcommit
from statehub.auth import LOCAL_COMMAND
from statehub.events import EventDesk
from statehub.hub import Hub
from statehub.state_stores import state_location
from sync.applier_lock import applier_lock
from tests.gitfixtures import GitRepo, workplan_text
from tests.statehub.eventfixtures import PLAN_PATH, event, plan_repo, trailer_counts
from tests.statehub.replicas import Replicas

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from statehub.events.writeback import RepoApplied

pytestmark = pytest.mark.usefixtures("state_in_cache_database")  # the state schema on [postgres]

SECOND = "SEC-WP-0001"


@pytest.fixture
def desk(hub: Hub) -> Iterator[EventDesk]:
    with EventDesk(hub) as opened:
        yield opened


def _second(make_repo: Callable[[str], GitRepo]) -> GitRepo:
    repo = make_repo("second")
    repo.write("statehub.toml", '[repo]\nslug = "second"\nprefixes = ["SEC"]\n')
    repo.write(f"workplans/{SECOND}.md", workplan_text(SECOND, [{"id": "T01", "title": "one"}]))
    repo.commit("start")
    return repo


def _two_repos(hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]) -> tuple[GitRepo, GitRepo]:
    first, second = plan_repo(make_repo), _second(make_repo)
    hub.register(first.root)
    hub.register(second.root)
    desk.submit(event("A1", kind="progress.note"), authorise=LOCAL_COMMAND)
    desk.submit(event("B1", kind="progress.note", workplan=SECOND, task="T01"), authorise=LOCAL_COMMAND)
    return first, second


def _state(desk: EventDesk, key: str) -> str:
    found = desk.buffer.get(key)
    assert found is not None
    return found.state.value


def test_appliers_of_two_repos_work_at_once(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    """Two threads apply the two repos; each, holding its repo's lock, waits at a barrier for the
    other to hold its own: with one lock for the whole buffer the barrier breaks."""
    first, second = _two_repos(hub, desk, make_repo)
    barrier = threading.Barrier(2, timeout=20)
    locked = desk.apply_locked

    def meeting(repos: Any) -> list[RepoApplied]:
        barrier.wait()  # both hold their repo's lock here
        return locked(repos)

    desk.apply_locked = meeting  # type: ignore[method-assign]
    answers: dict[str, list[RepoApplied] | None] = {}
    threads = [
        threading.Thread(target=lambda s=slug: answers.update({s: desk.apply_pending([s])}))
        for slug in ("the-custodian", "second")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not barrier.broken
    assert {slug: [r.applied for r in answer or []] for slug, answer in answers.items()} == {
        "the-custodian": [1],
        "second": [1],
    }
    assert trailer_counts(first) == {"A1": 1} and trailer_counts(second) == {"B1": 1}


def test_a_repo_another_process_applies_is_handed_over_and_applied_later(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    """Another process (a CLI command, another replica) holds one repo's lock: a pass applies the
    other repo, skips that one at once with timeout 0 (waits up to the timeout otherwise), and a
    later pass applies it once the lock is free."""
    first, second = _two_repos(hub, desk, make_repo)
    other = applier_lock(state_location(hub.settings, "applier.lock"))  # a lock object of its own
    assert other.acquire("the-custodian", timeout=1)
    try:
        started = time.monotonic()
        assert desk.apply_pending(timeout=0) is None  # one repo was handed over
        assert time.monotonic() - started < 5
        assert (_state(desk, "A1"), _state(desk, "B1")) == ("pending", "applied")
        started = time.monotonic()
        assert desk.apply_pending(["the-custodian"], timeout=0.3) is None
        assert time.monotonic() - started >= 0.3
        assert trailer_counts(first) == {}
    finally:
        other.release("the-custodian")
        other.close()
    (done,) = desk.apply_pending(timeout=0) or []
    assert (done.repo, done.applied, _state(desk, "A1")) == ("the-custodian", 1, "applied")
    assert trailer_counts(first) == {"A1": 1} and trailer_counts(second) == {"B1": 1}


def _terminate_holder(desk: EventDesk, slug: str) -> int:
    """End the PostgreSQL session holding ``slug``'s applier lock, as a dropped connection would;
    how many sessions were ended."""
    from sync._durable_pg import PgState
    from sync.applier_lock import AdvisoryRepoLocks

    assert desk.hub.settings.state_url is not None and isinstance(desk.locks, AdvisoryRepoLocks)
    with PgState(desk.hub.settings.state_url).connect() as admin:
        row = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = hashtextextended(%s, 0)"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (desk.locks.key(slug),),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_replica_whose_lock_session_ends_mid_pass_writes_nothing_and_the_events_wait(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock's session is ended after the pass read the events and built its commit, before it
    publishes: nothing is written, committed or marked; the events stay pending. Then another
    replica takes the lock and applies while the first is mid-pass: the first publishes nothing,
    and the event's trailer is in the repo once."""
    if hub.settings.state_url is None:
        pytest.skip("the applier lock is a flock on files: it is lost only with its process")
    first = plan_repo(make_repo)
    hub.register(first.root)
    before = first.read(PLAN_PATH)
    desk.submit(event("L1", kind="progress.note"), authorise=LOCAL_COMMAND)
    build_chain = gitcommit.build_chain
    during: list[Callable[[], None]] = []

    def cut_then_build(*args: Any, **kwargs: Any) -> Any:
        while during:
            during.pop(0)()
        return build_chain(*args, **kwargs)

    monkeypatch.setattr(gitcommit, "build_chain", cut_then_build)  # the cut comes mid-pass

    def cut() -> None:
        assert _terminate_holder(desk, "the-custodian") == 1

    during.append(cut)
    assert desk.apply_pending(["the-custodian"]) is None  # the pass stopped
    assert _state(desk, "L1") == "pending"
    assert first.read(PLAN_PATH) == before and trailer_counts(first) == {}
    assert desk.buffer.writebacks("the-custodian", "") == []

    # Now another replica (a hub and desk of its own) applies while this one is mid-pass.
    with Hub(hub.settings) as other_hub, EventDesk(other_hub) as other:

        def other_replica_applies() -> None:
            assert _terminate_holder(desk, "the-custodian") == 1
            applied = other.apply_pending(["the-custodian"], timeout=10)
            assert applied is not None and applied[0].applied == 1

        during.append(other_replica_applies)
        assert desk.apply_pending(["the-custodian"]) is None
    assert _state(desk, "L1") == "applied"
    assert trailer_counts(first) == {"L1": 1}
    again = desk.apply_pending(["the-custodian"])  # it connects again and finds nothing to do
    assert again is not None and again[0].applied == 0
    assert trailer_counts(first) == {"L1": 1}


@pytest.mark.postgres
def test_two_hubs_started_at_the_same_instant_on_an_empty_database_both_come_up(
    tmp_path: Path, postgres_database: str
) -> None:
    """Both create the cache at once (the first under the cache's setup lock, the second finds it
    made) and serve the registered repo's tasks."""
    repo = _second(lambda name: GitRepo(tmp_path / name))
    replicas = Replicas([tmp_path / "home"], postgres_database, 2, logs=tmp_path)
    replicas.register([repo.root])
    for server in replicas.servers:
        server.launch()
    try:
        for server in replicas.servers:
            server.wait_ready()
        for url in replicas.urls:
            answer = httpx.get(f"{url}/tasks/{SECOND}-T01", headers=replicas.headers, timeout=30)
            assert answer.status_code == 200, answer.text
    finally:
        replicas.stop()


@pytest.mark.postgres
def test_caches_opened_at_once_on_an_empty_database_are_created_once(postgres_database: str) -> None:
    """Four threads open the cache of an empty database at the same instant, five times over:
    every open succeeds and exactly one of each round created the tables (the others found them
    made under the cache's setup lock)."""
    from sqlalchemy import text

    from statehub.cache.database import open_cache

    def open_at_once(barrier: threading.Barrier, outcomes: list[bool | BaseException]) -> None:
        barrier.wait()
        try:
            engine, created = open_cache(postgres_database)
        except BaseException as error:  # noqa: BLE001 - the test reports it
            outcomes.append(error)
            return
        engine.dispose()
        outcomes.append(created)

    for _ in range(5):
        barrier = threading.Barrier(4, timeout=30)
        outcomes: list[bool | BaseException] = []
        threads = [threading.Thread(target=open_at_once, args=(barrier, outcomes)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(outcomes, key=repr) == [False, False, False, True], outcomes
        engine, _created = open_cache(postgres_database)
        with engine.begin() as conn:  # empty the database again for the next round
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
