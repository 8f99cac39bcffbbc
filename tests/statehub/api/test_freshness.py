"""Read answers over HTTP say how fresh they are: last index per repo, changes not yet indexed."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from statehub.cache.freshness import FreshnessMemo
from tests.gitfixtures import workplan_text

if TYPE_CHECKING:
    from collections.abc import Sequence

    from litestar.testing import TestClient

    from statehub.cache.freshness import Execute
    from statehub.hub import Hub
    from tests.gitfixtures import GitRepo


def test_lists_and_single_answers_carry_freshness(loaded: TestClient, workspace: dict[str, GitRepo]) -> None:  # type: ignore[type-arg]
    tasks = loaded.get("/tasks").json()
    fresh = tasks["freshness"]
    assert (fresh["stale"], fresh["watching"]) == (False, False)  # the test app runs no watcher
    assert [r["repo"] for r in fresh["repos"]] == ["ops", "app"]  # hub.toml's order
    ops_head = workspace["ops"].git("rev-parse", "HEAD").strip()
    assert fresh["repos"][0]["commit"] == ops_head and fresh["repos"][0]["changed_since"] is False
    assert [r["repo"] for r in loaded.get("/workplans?repo=app").json()["freshness"]["repos"]] == ["app"]
    assert loaded.get("/canon").json()["freshness"]["stale"] is False
    assert len(loaded.get("/repos").json()["freshness"]["repos"]) == 2
    for path in ("/tasks/OPS-WP-0001-T02", "/workplans/OPS-WP-0001", "/canon/ADR-001", "/repos/ops"):
        assert [r["repo"] for r in loaded.get(path).json()["freshness"]["repos"]] == ["ops"], path


def test_a_change_not_yet_indexed_makes_answers_stale(
    loaded: TestClient, workspace: dict[str, GitRepo]
) -> None:  # type: ignore[type-arg]
    hub = loaded.app.state.hub
    workspace["ops"].write(
        "workplans/OPS-WP-0002.md", workplan_text("OPS-WP-0002", [{"id": "T01", "title": "New"}])
    )
    hub.freshness_memo.forget()  # as a second later: the memo works a repo's freshness out once a second
    answer = loaded.get("/tasks").json()
    assert answer["freshness"]["stale"] is True
    assert [r["changed_since"] for r in answer["freshness"]["repos"]] == [True, False]
    assert all(t["workplan"] != "OPS-WP-0002" for t in answer["items"])  # not indexed yet: stale indeed

    assert loaded.post("/repos/ops/refresh").status_code == 200
    after = loaded.get("/tasks?workplan=OPS-WP-0002").json()
    assert [t["ref"] for t in after["items"]] == ["OPS-WP-0002-T01"]
    assert after["freshness"]["stale"] is False  # the refresh made the memo ask again


def test_refreshing_one_repo_walks_that_repo_again_and_no_other(
    loaded: TestClient, workspace: dict[str, GitRepo]
) -> None:  # type: ignore[type-arg]
    """A watcher's refresh of one repo forgets that repo's freshness alone (canon/ADR-039): the
    others keep their memo until it runs out, as they would have without the refresh."""
    hub = loaded.app.state.hub
    hub.freshness_memo = FreshnessMemo(ttl=3600)  # runs out only when told
    assert loaded.get("/tasks").json()["freshness"]["stale"] is False
    for slug, plan_id in (("ops", "OPS-WP-0002"), ("app", "APP-WP-0009")):
        workspace[slug].write(
            f"workplans/{plan_id}.md", workplan_text(plan_id, [{"id": "T01", "title": "N"}])
        )
    hub.refresh("ops")
    answer = loaded.get("/tasks").json()["freshness"]
    assert [r["changed_since"] for r in answer["repos"]] == [False, False]  # app: not walked again yet
    assert answer["repos"][0]["indexed_at"] is not None
    hub.freshness_memo.forget()
    answer = loaded.get("/tasks").json()["freshness"]
    assert [r["changed_since"] for r in answer["repos"]] == [False, True]  # app's change, seen once asked


def _reader_threads(hub: Hub) -> tuple[Execute, list[str]]:
    """The hub's own two queries, noting which thread ran each (the memo's walk runs them)."""
    ran: list[str] = []

    def execute(sql: str) -> Sequence[Sequence[Any]]:
        ran.append(threading.current_thread().name)
        with hub.reads.connect() as conn:
            return conn.exec_driver_sql(sql).all()

    return execute, ran


def test_with_a_refresher_reads_do_not_wait_for_the_walk(
    loaded: TestClient, workspace: dict[str, GitRepo]
) -> None:  # type: ignore[type-arg]
    """A server's memo is worked out by its refresher (ADR-047): a read finding it ``ttl`` old answers
    from it as it stands, its ``checked_at`` saying when, and the refresher sees the change soon after."""
    hub = loaded.app.state.hub
    memo = FreshnessMemo(ttl=0.2, max_age=60)
    execute, ran = _reader_threads(hub)
    registered = [(r.slug, r.path) for r in hub.repos()]
    memo.start()
    try:
        first, first_checked = memo.repos(execute, registered)  # never worked out: this read does it
        assert ran == ["MainThread", "MainThread"] and first["ops"].changed_since is False
        workspace["ops"].write(
            "workplans/OPS-WP-0002.md", workplan_text("OPS-WP-0002", [{"id": "T01", "title": "N"}])
        )
        time.sleep(0.25)
        again, again_checked = memo.repos(execute, registered)  # ttl old: answered as it stands
        assert (again["ops"].changed_since, again_checked) == (False, first_checked)
        deadline = time.monotonic() + 10
        while memo.repos(execute, registered)[0]["ops"].changed_since is not True:
            assert time.monotonic() < deadline, "the refresher never worked the memo out"
            time.sleep(0.05)
        assert set(ran[2:]) == {"statehub-freshness"}  # no read ran a query after the first
    finally:
        memo.stop()


def test_a_memo_older_than_max_age_is_worked_out_by_the_read(
    loaded: TestClient, workspace: dict[str, GitRepo]
) -> None:  # type: ignore[type-arg]
    """Once reads stop, the refresher rests; the next read, finding the memo ``max_age`` old, works it
    out before it answers: no answer is older than ``max_age``, with or without a refresher."""
    hub = loaded.app.state.hub
    memo = FreshnessMemo(ttl=0.05, max_age=0.3, idle_s=0.1)
    execute, ran = _reader_threads(hub)
    registered = [(r.slug, r.path) for r in hub.repos()]
    memo.start()
    try:
        memo.repos(execute, registered)
        time.sleep(0.6)  # the refresher worked it out once or twice, then rested: nobody asked
        workspace["app"].write(
            "workplans/APP-WP-0009.md", workplan_text("APP-WP-0009", [{"id": "T01", "title": "N"}])
        )
        time.sleep(0.4)
        ran.clear()
        found, _ = memo.repos(execute, registered)
        assert found["app"].changed_since is True and ran == ["MainThread", "MainThread"]
    finally:
        memo.stop()
    ran.clear()
    memo.forget()
    assert memo.repos(execute, registered)[0]["app"].changed_since is True  # stopped: as with none
    assert ran == ["MainThread", "MainThread"]
