"""POST/GET /events against a real repo: answers, write-back commits, trailers, authors."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from statehub.auth import LOCAL_COMMAND
from statehub.events import EventDesk
from statehub.hub import Hub
from tests.statehub.eventfixtures import PLAN_PATH, PLAN_TEXT, event, plan_repo, trailer_counts

if TYPE_CHECKING:
    from collections.abc import Callable

    from litestar.testing import TestClient

    from statehub.settings import Settings
    from tests.gitfixtures import GitRepo


pytestmark = pytest.mark.usefixtures(
    "state_in_cache_database"
)  # the buffer in the state schema on [postgres]


def _wait_settled(client: TestClient[Any], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/state/health").json()["buffer"]["pending"] == 0:
            return
        time.sleep(0.05)
    raise AssertionError("events still pending: " + str(client.get("/events?state=pending").json()))


def test_the_buffer_its_leases_and_the_applier_lock_live_where_the_state_does(hub: Hub) -> None:
    """On a hub whose state is on PostgreSQL the desk's stores are the state schema's tables and
    the applier lock an advisory lock; on files, ``buffer.sqlite3`` and a lock file (canon/ADR-049)."""
    from sync.applier_lock import AdvisoryRepoLocks, RepoLocks

    with EventDesk(hub) as desk:
        on_postgres = hub.settings.state_url is not None
        assert desk.buffer.dialect == desk.leases.dialect == ("postgresql" if on_postgres else "sqlite")
        assert isinstance(desk.locks, AdvisoryRepoLocks if on_postgres else RepoLocks)
        assert (hub.settings.data_dir / "buffer.sqlite3").exists() is not on_postgres


def test_a_buffer_file_from_before_moves_into_the_state_schema_with_its_pending_events(hub: Hub) -> None:
    """A hub switched to PostgreSQL state finds its old ``buffer.sqlite3`` copied in when its desk
    opens (``sync.buffer_move``), the file renamed; on files the file is the buffer, as before."""
    from sync.buffer import Submission, WriteBuffer

    path = hub.settings.data_dir / "buffer.sqlite3"
    payload = {"key": "OLD1", "kind": "progress.note", "note": "written before the move"}
    with_repo = payload | {"repo": "elsewhere"}
    old = WriteBuffer(path)
    old.append([Submission("OLD1", "progress.note", "elsewhere", payload, with_repo, "CUST-WP-0054", None)])
    old.close()
    with EventDesk(hub) as desk:
        kept = desk.buffer.get("OLD1")
        assert (
            kept is not None and kept.state == "pending" and kept.event["note"] == "written before the move"
        )
    on_postgres = hub.settings.state_url is not None
    assert path.exists() is not on_postgres
    assert (hub.settings.data_dir / "buffer.sqlite3.moved-to-postgresql").exists() is on_postgres


def test_an_event_lands_in_the_file_as_a_commit_by_its_actor(
    client: TestClient[Any], make_repo: Callable[[str], GitRepo]
) -> None:
    repo = plan_repo(make_repo)
    assert client.post("/repos", json={"path": str(repo.root)}).status_code == 201
    answer = client.post("/events", json=event("01JZ3K7T2Q9", note="railiance01 tunnels moved"))
    assert answer.status_code == 202
    assert answer.json() == {"results": [{"key": "01JZ3K7T2Q9", "result": "accepted"}]}
    _wait_settled(client)
    expected = PLAN_TEXT.replace('status = "in-progress"\n', 'status = "done"\n') + (
        "\n## Progress\n\n- 2026-07-03T22:29:55Z CUST-WP-0054-T02 @agt-codex: railiance01 tunnels moved"
        " <!-- event:01JZ3K7T2Q9 -->\n"
    )
    assert repo.read(PLAN_PATH) == expected  # comments, spacing and body untouched
    assert trailer_counts(repo) == {"01JZ3K7T2Q9": 1}
    assert repo.git("log", "-1", "--format=%an|%cn").strip() == "agt-codex|State Hub"
    assert repo.git("status", "--porcelain") == ""
    stored = client.get("/events/01JZ3K7T2Q9").json()
    assert stored["state"] == "applied"
    assert stored["commit"] == repo.git("rev-parse", "HEAD").strip()
    assert client.get("/tasks/CUST-WP-0054-T02").json()["status"] == "done"


def test_a_duplicate_is_no_effect_and_a_reused_key_is_a_conflict(
    client: TestClient[Any], make_repo: Callable[[str], GitRepo]
) -> None:
    repo = plan_repo(make_repo)
    client.post("/repos", json={"path": str(repo.root)})
    first = event("K1", kind="progress.note")
    assert client.post("/events", json=[first, first]).json()["results"] == [
        {"key": "K1", "result": "accepted"},
        {"key": "K1", "result": "duplicate"},
    ]
    _wait_settled(client)
    assert client.post("/events", json=first).json()["results"][0]["result"] == "duplicate"
    clash = client.post("/events", json=[event("K2", kind="progress.note"), first | {"note": "other"}])
    assert clash.status_code == 409
    assert "K1" in clash.json()["error"] and "different event" in clash.json()["error"]
    assert client.get("/events/K2").status_code == 404  # nothing of the batch was stored
    _wait_settled(client)
    assert repo.read(PLAN_PATH).count("event:K1") == 1
    assert trailer_counts(repo) == {"K1": 1}


def test_bad_events_get_a_message_per_field_and_nothing_is_stored(
    client: TestClient[Any], make_repo: Callable[[str], GitRepo]
) -> None:
    repo = plan_repo(make_repo)
    client.post("/repos", json={"path": str(repo.root)})
    bad = [
        event("OK1"),
        {"kind": "task.status", "workplan": "CUST-WP-0054", "task": "T02", "status": "finished"},
        event("U1", workplan="NOPE-WP-0001"),
        event("U2", task="T09"),
        event("U3", kind="teleport"),
        "not an object",
    ]
    answer = client.post("/events", json=bad)
    assert answer.status_code == 422
    problems = {(p["index"], p["field"]): p["message"] for p in answer.json()["details"]["problems"]}
    assert problems[(1, "key")] == "required"
    assert problems[(1, "actor")] == "required"
    assert "not one of todo" in problems[(1, "status")]
    assert "no workplan NOPE-WP-0001" in problems[(2, "workplan")]
    assert "no task T09" in problems[(3, "task")]
    assert "unknown kind 'teleport'" in problems[(4, "kind")]
    assert "JSON object" in problems[(5, "event")]
    assert (0, "key") not in problems
    assert client.get("/events").json()["total"] == 0
    malformed = client.post("/events", content=b"{not json", headers={"content-type": "application/json"})
    assert malformed.status_code == 400
    empty = client.post("/events", json=[])
    assert empty.status_code == 422
    assert empty.json()["details"]["problems"][0]["message"] == "the list is empty"
    assert client.get("/events/NOPE").status_code == 404
    assert client.get("/events?state=bogus").status_code == 400


def test_list_events_filters_and_pages(client: TestClient[Any], make_repo: Callable[[str], GitRepo]) -> None:
    repo = plan_repo(make_repo)
    client.post("/repos", json={"path": str(repo.root)})
    client.post("/events", json=[event(f"N{i}", kind="progress.note", note=f"n{i}") for i in range(5)])
    _wait_settled(client)
    page = client.get("/events?state=applied&repo=the-custodian&limit=2&offset=1").json()
    assert page["total"] == 5
    assert [e["key"] for e in page["items"]] == ["N1", "N2"]
    assert client.get("/events?state=rejected").json()["total"] == 0
    assert client.get("/events?repo=elsewhere").status_code == 404  # neither registered nor in the buffer


def test_a_task_added_by_an_event_can_be_changed_by_the_next_one(
    client: TestClient[Any], make_repo: Callable[[str], GitRepo]
) -> None:
    repo = plan_repo(make_repo)
    client.post("/repos", json={"path": str(repo.root)})
    batch = [event("A1", kind="task.add", owner="codex"), event("A2", task="T03", status="blocked")]
    assert client.post("/events", json=batch).status_code == 202
    _wait_settled(client)
    task = client.get("/tasks/CUST-WP-0054-T03").json()
    assert (task["title"], task["status"], task["owner"]) == ("Drain coulombcore", "blocked", "codex")
    assert trailer_counts(repo) == {"A1": 1, "A2": 1}


def test_an_event_the_file_already_reflects_is_applied_without_a_commit(
    client: TestClient[Any], make_repo: Callable[[str], GitRepo]
) -> None:
    repo = plan_repo(make_repo)
    client.post("/repos", json={"path": str(repo.root)})
    head = repo.git("rev-parse", "HEAD")
    client.post("/events", json=event("S1", task="T01", status="done"))
    _wait_settled(client)
    stored = client.get("/events/S1").json()
    assert (stored["state"], stored["commit"]) == ("applied", None)
    assert repo.git("rev-parse", "HEAD") == head


def test_the_server_applies_events_another_process_left_in_the_buffer(
    client: TestClient[Any], make_repo: Callable[[str], GitRepo], settings: Settings
) -> None:
    repo = plan_repo(make_repo)
    client.post("/repos", json={"path": str(repo.root)})
    with Hub(settings) as other, EventDesk(other) as desk:  # what a CLI command opens: its own
        desk.submit(event("CLI1", kind="progress.note"), authorise=LOCAL_COMMAND)  # stored, not applied
    _wait_settled(client)
    assert client.get("/events/CLI1").json()["state"] == "applied"
    assert trailer_counts(repo) == {"CLI1": 1}
