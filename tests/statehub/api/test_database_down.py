"""A cache database that stops answering is 503 with Retry-After, never 500; the hub recovers by itself.

Found by a review of the fleet hub (issue 16): with PostgreSQL stopped for a few seconds, every
replica answered ``GET /tasks`` and ``POST /events`` with the generic 500 ("the hub failed"),
although nothing in the hub was broken and the same requests succeeded once PostgreSQL was back.
Here the test's own database refuses connections (``ALLOW_CONNECTIONS false`` and its sessions
ended), which is what a stopped server looks like to the hub's pool, without touching the server.
"""

from __future__ import annotations

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
