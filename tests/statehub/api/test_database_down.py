"""A cache database that stops answering is 503 with Retry-After, never 500; the hub recovers by itself.

Found by a review of the fleet hub (issue 16): with PostgreSQL stopped for a few seconds, every
replica answered ``GET /tasks`` and ``POST /events`` with the generic 500 ("the hub failed"),
although nothing in the hub was broken and the same requests succeeded once PostgreSQL was back.
Here the test's own database refuses connections (``ALLOW_CONNECTIONS false`` and its sessions
ended), which is what a stopped server looks like to the hub's pool, without touching the server.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from litestar.testing import TestClient
    from sqlalchemy import Engine


def _refuse_connections(admin: Engine, database: str, refuse: bool) -> None:
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {"false" if refuse else "true"}'))
        if refuse:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                {"name": database},
            )


def test_cache_database_down_is_503_and_recovers(
    loaded: TestClient,  # type: ignore[type-arg]
    cache_backend: str | None,
    request: pytest.FixtureRequest,
) -> None:
    if cache_backend is None:
        pytest.skip("a server that stops answering is PostgreSQL's case; the SQLite cache is a file")
    postgres_admin: Engine = request.getfixturevalue("postgres_admin")
    database = make_url(cache_backend).database
    assert database
    assert loaded.get("/tasks").status_code == 200
    event = {
        "key": "down-1",
        "kind": "task.status",
        "workplan": "OPS-WP-0001",
        "task": "T03",
        "status": "blocked",
        "actor": "dana",
    }
    _refuse_connections(postgres_admin, database, refuse=True)
    try:
        for method, path, body in (("GET", "/tasks", None), ("POST", "/events", event)):
            answer = loaded.request(method, path, json=body)
            assert answer.status_code == 503, (method, path, answer.text)
            assert answer.headers["Retry-After"] == "10"
            sentence = answer.json()["error"]
            assert "cache database does not answer" in sentence, sentence
            assert "try again" in sentence, sentence
            assert "postgres@" not in sentence and "postgresql+psycopg" not in sentence, sentence
    finally:
        _refuse_connections(postgres_admin, database, refuse=False)
    assert loaded.get("/tasks").status_code == 200
    sent = loaded.post("/events", json=event)
    assert sent.status_code == 202, sent.text


def _end_sessions(admin: Engine, database: str) -> None:
    """End every session of the test's own database (the hub's pool, stores, listeners and leader),
    as a server restart does, and wait until they are gone: the server is back, their connections
    dead (the listeners and the leader connect again at once: their new sessions stay)."""
    query = text("SELECT pid FROM pg_stat_activity WHERE datname = :name AND pid <> pg_backend_pid()")
    gone = text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)")
    with admin.connect() as conn:
        pids = [pid for (pid,) in conn.execute(query, {"name": database}).fetchall()]
        for pid in pids:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        deadline = time.monotonic() + 10
        while conn.execute(gone, {"pids": pids}).scalar() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not conn.execute(gone, {"pids": pids}).scalar(), "the sessions did not end"


@pytest.mark.usefixtures("state_in_cache_database")
def test_the_first_requests_after_a_database_restart_are_answered(
    loaded: TestClient,  # type: ignore[type-arg]
    cache_backend: str | None,
    request: pytest.FixtureRequest,
) -> None:
    """Found by the fleet review (issue 16): after PostgreSQL restarted, the first use of the cache
    and of each durable store in the state schema answered 503 although the server was back. Each
    connection whose session the server ended is now replaced before it is used (canon/ADR-049,
    addendum of 2026-12-01): every request right after the restart succeeds."""
    if cache_backend is None:
        pytest.skip("a server that restarts is PostgreSQL's case; the SQLite cache is a file")
    postgres_admin: Engine = request.getfixturevalue("postgres_admin")
    database = make_url(cache_backend).database
    assert database

    def event(key: str) -> dict[str, str]:
        return {
            "key": key,
            "kind": "progress.note",
            "workplan": "OPS-WP-0001",
            "task": "T03",
            "note": key,
            "actor": "dana",
        }

    assert loaded.post("/events", json=event("before")).status_code == 202
    ref = next(t["ref"] for t in loaded.get("/tasks").json()["items"] if t["ready"])
    for round_ in range(2):  # the connections made again recover as well as the first ones
        _end_sessions(postgres_admin, database)
        sent = loaded.post("/events", json=event(f"after-{round_}"))  # the write buffer first
        assert sent.status_code == 202, sent.text
        _end_sessions(postgres_admin, database)
        for path in ("/tasks", "/events/before", f"/events/after-{round_}", "/events"):
            answer = loaded.get(path)
            assert answer.status_code == 200, (path, answer.text)
        _end_sessions(postgres_admin, database)
        claim = loaded.post(f"/tasks/{ref}/claim", json={"actor": f"agt-{round_}"})  # the leases
        assert claim.status_code == 200, claim.text
        released = loaded.post(f"/tasks/{ref}/release", json={"actor": f"agt-{round_}", "status": "todo"})
        assert released.status_code == 200, released.text


@pytest.mark.usefixtures("state_in_cache_database")
def test_while_the_state_database_is_down_the_stores_answer_503_and_recover(
    loaded: TestClient,  # type: ignore[type-arg]
    cache_backend: str | None,
    request: pytest.FixtureRequest,
) -> None:
    """With the durable state in the same database, a server that refuses connections is still 503
    with Retry-After for what needs a store (finding a connection dead and failing to replace it is
    never a 500), and the same requests succeed once it is back."""
    if cache_backend is None:
        pytest.skip("a server that stops answering is PostgreSQL's case; the SQLite stores are files")
    postgres_admin: Engine = request.getfixturevalue("postgres_admin")
    database = make_url(cache_backend).database
    assert database
    event = {"key": "down-2", "kind": "progress.note", "workplan": "OPS-WP-0001", "task": "T03", "note": "n"}
    event["actor"] = "dana"
    _refuse_connections(postgres_admin, database, refuse=True)
    try:
        for method, path, body in (
            ("POST", "/events", event),
            ("GET", "/events/down-2", None),
            ("GET", "/tasks", None),
        ):
            answer = loaded.request(method, path, json=body)
            assert answer.status_code == 503, (method, path, answer.text)
            assert answer.headers["Retry-After"] == "10", (path, answer.headers)
            assert "postgres@" not in answer.text, answer.text
    finally:
        _refuse_connections(postgres_admin, database, refuse=False)
    sent = loaded.post("/events", json=event)
    assert sent.status_code == 202, sent.text
    assert loaded.get("/events/down-2").status_code == 200
