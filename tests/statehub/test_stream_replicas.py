"""Two hub processes on one data dir and one PostgreSQL state schema: subscribers of
``GET /events/stream`` on either see every change once, in the same id order (canon/ADR-050).

Both servers run with ``STATEHUB_STREAM_POLL=60``: a change made through one reaches the
other's subscriber long before that poll, so it came by ``NOTIFY``, not by polling.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import httpx
import psycopg
import pytest

from statehub.hub import Hub
from statehub.settings import Settings
from sync._durable_pg import PgState
from tests.hubserver import HubServer
from tests.statehub.test_stream import Message, Subscriber, _event, _plan, _repo

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.gitfixtures import GitRepo

POLL_S = 60.0
"""The servers' stream poll (the most the setting takes)."""


def _log_ids(url: str, after: int) -> list[int]:
    with psycopg.connect(PgState(url).url) as conn:
        rows = conn.execute("SELECT id FROM statehub_state.change WHERE id > %s ORDER BY id", (after,))
        return [int(r[0]) for r in rows]


def _edit(repo: GitRepo, prefix: str, title: str) -> None:
    text = _plan(f"{prefix}-WP-0001").replace('title = "task 1"', f'title = "{title}"')
    repo.write(f"workplans/{prefix}-WP-0001.md", text)
    repo.commit(f"hand edit: {title}")


def _titled(title: str) -> Callable[[list[Message]], bool]:
    def found(messages: list[Message]) -> bool:
        return any(
            m.event == "task.changed" and m.data["fields"].get("title", {}).get("new") == title
            for m in messages
        )

    return found


@pytest.mark.postgres
def test_subscribers_on_two_replicas_see_every_change_once_in_one_order(
    make_repo: Callable[[str], GitRepo],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    postgres_database: str,
) -> None:
    home = tmp_path / "hub-home"
    monkeypatch.setenv("STATEHUB_HOME", str(home))
    monkeypatch.delenv("STATEHUB_DATABASE_URL", raising=False)
    monkeypatch.setenv("STATEHUB_STATE_URL", postgres_database)
    settings = Settings.from_env().with_overrides(watch=False)
    assert settings.state_url is not None
    demo = _repo(make_repo, "demo", "DEMO")
    other = _repo(make_repo, "other", "OTH")
    with Hub(settings) as hub:
        hub.register(demo.root)
        hub.register(other.root)
    env = {"STATEHUB_STATE_URL": postgres_database, "STATEHUB_STREAM_POLL": str(POLL_S)}
    with HubServer(home, env=env) as one, HubServer(home, env=env) as two:
        ready = time.monotonic()  # neither stream has polled the log since it started
        start = max(_log_ids(postgres_database, 0), default=0)
        on_one = Subscriber(f"{one.url}/events/stream").start()
        on_two = Subscriber(f"{two.url}/events/stream").start()

        # A hand edit refreshed through one reaches two's subscriber, two having appended nothing
        # itself (so no read of its own pulled it in) and its poll being far off.
        _edit(demo, "DEMO", "seen on two")
        assert httpx.post(f"{one.url}/repos/demo/refresh", timeout=60).status_code == 200
        limit = ready + POLL_S - 5 - time.monotonic()
        assert limit > 5, "the servers took too long to be asked anything before their poll"
        deadline = time.monotonic() + limit
        while not _titled("seen on two")(on_two.messages):
            assert time.monotonic() < deadline, f"two never heard of one's change: {on_two.messages}"
            time.sleep(0.01)
        _edit(other, "OTH", "seen on one")  # and the other way round
        assert httpx.post(f"{two.url}/repos/other/refresh", timeout=60).status_code == 200
        while not _titled("seen on one")(on_one.messages):
            assert time.monotonic() < deadline, f"one never heard of two's change: {on_one.messages}"
            time.sleep(0.01)

        # Changes through both at once: events to either, refreshes through either.
        keys = []
        for n in range(6):
            server = (one, two)[n % 2]
            key = f"replica-{n}"
            plan = ("DEMO-WP-0001", "OTH-WP-0001")[n % 2]
            event = _event(key, ("blocked", "in-progress", "todo")[n % 3], plan)
            answer = httpx.post(f"{server.url}/events", json=event, timeout=60)
            assert answer.status_code == 202, answer.text
            keys.append(key)
            _edit(demo, "DEMO", f"edit {n}")
            assert httpx.post(f"{(two, one)[n % 2].url}/repos/demo/refresh", timeout=60).status_code == 200
        for key in keys:
            for subscriber in (on_one, on_two):
                subscriber.wait_for("event.applied", key=key)
        logged: list[int] = []
        while logged != (logged := _log_ids(postgres_database, start)):  # until nothing more comes
            for subscriber in (on_one, on_two):
                subscriber.wait(lambda got: any(m.id == logged[-1] for m in got), f"id {logged[-1]}")
            time.sleep(0.5)
        seen_one = [m.id for m in on_one.messages]
        seen_two = [m.id for m in on_two.messages]
        assert seen_one == seen_two == logged  # each once, in the log's order, on both
        assert len(logged) > 20
        on_one.close()
        on_two.close()
