"""Two ``statehub serve --profile fleet`` replicas on one PostgreSQL (canon/ADR-052): exactly one
leads, only the leader does the run-once work, and when the leader dies the other takes over
and does it.

Real processes sharing one hub home (one host: the compose file's shape) whose cache and state
are a fresh PostgreSQL database. The leader is frozen (SIGSTOP: its session, and so the lock,
stays) to show the follower does nothing of the run-once work, then killed (SIGKILL) to show the
follower takes over. Nothing waits for a fixed time except where the test shows that something
does *not* happen.
"""

from __future__ import annotations

import json
import signal
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from statehub.auth.keys import init_root_key, load_root_key
from statehub.auth.tokens import mint
from tests.gitfixtures import GitRepo, workplan_text
from tests.hubserver import HubServer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from sqlalchemy import Engine

    from statehub.settings import Settings

pytestmark = pytest.mark.postgres

RETRY_S = 0.5
WAIT = 60.0
"""Seconds a test waits for what it expects: a guard against a hung hub, never a timing check."""
PLAN = "LEAD-WP-0001"
T01 = f"{PLAN}-T01"


class Replicas:
    def __init__(self, home: Path, database: str, **env: str) -> None:
        key = home / "data" / "token-root.key"
        init_root_key(key)
        self.headers = {"Authorization": f"Bearer {mint(load_root_key(key), 'ops', 'admin').to_base64()}"}
        settings = {
            "STATEHUB_PROFILE": "fleet",
            "STATEHUB_DATABASE_URL": database,
            "STATEHUB_LEADER_RETRY": str(RETRY_S),
            **env,
        }
        self.servers = [HubServer(home, env=settings), HubServer(home, env=settings)]
        for number, server in enumerate(self.servers):
            server.log = home / f"server-{number}.log"

    def start(self) -> None:
        # At once, on an empty database: the cache's setup lock lets one create it (ADR-054).
        for server in self.servers:
            server.launch()
        for server in self.servers:
            server.wait_ready()

    def stop(self) -> None:
        for server in self.servers:
            if server.process is not None and server.process.poll() is None:
                server.process.send_signal(signal.SIGCONT)
            server.stop()

    def call(self, server: HubServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{server.url}{path}", headers=self.headers, timeout=30, **kwargs)

    def leading(self, server: HubServer) -> bool:
        answer = self.call(server, "GET", "/state/diagnostics?probe=false")
        assert answer.status_code == 200, answer.text
        leader: dict[str, Any] = answer.json()["hub"]["leader"]
        assert leader["backend"] == "postgresql"
        return bool(leader["leader"])

    def one_leader(self, among: list[HubServer] | None = None) -> tuple[HubServer, list[HubServer]]:
        """Wait until exactly one of ``among`` (default: both) leads; (it, the others)."""
        among = among or self.servers
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            leaders = [server for server in among if self.leading(server)]
            if len(leaders) == 1:
                return leaders[0], [server for server in among if server is not leaders[0]]
            time.sleep(0.05)
        raise AssertionError("never exactly one leader")

    def name(self, server: HubServer) -> str:
        """The replica's name (``<host>:<pid>``), as its diagnostics say it."""
        answer = self.call(server, "GET", "/state/diagnostics?probe=false")
        return str(answer.json()["hub"]["leader"]["replica"])

    def scheduled(self, server: HubServer) -> list[dict[str, Any]]:
        runs = self.call(server, "GET", "/sweeps?limit=100").json()["sweeps"]
        return [run for run in runs if run["trigger"] == "schedule"]

    def metric(self, server: HubServer, name: str) -> float:
        for line in self.call(server, "GET", "/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"no {name} in /metrics")


def _until(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"never saw {what}")


def _repo(root: Path) -> GitRepo:
    repo = GitRepo(root)
    repo.write("statehub.toml", '[repo]\nslug = "lead"\nprefixes = ["LEAD"]\n')
    repo.write(f"workplans/{PLAN}.md", workplan_text(PLAN, [{"id": "T01", "title": "one"}]))
    repo.commit("start")
    return repo


@pytest.fixture
def replicas(tmp_path: Path, postgres_database: str, request: pytest.FixtureRequest) -> Iterator[Replicas]:
    pair = Replicas(tmp_path / "home", postgres_database, **request.param)
    try:
        pair.start()
        added = pair.call(
            pair.servers[0], "POST", "/repos", json={"path": str(_repo(tmp_path / "lead").root)}
        )
        assert added.status_code == 201, added.text
        yield pair
    finally:
        pair.stop()


@pytest.mark.parametrize("replicas", [{"STATEHUB_SWEEP_INTERVAL": "1"}], indirect=True)
def test_only_the_leader_runs_the_schedule_and_the_other_takes_over_when_it_dies(replicas: Replicas) -> None:
    leader, (other,) = replicas.one_leader()
    names = {server: replicas.name(server) for server in (leader, other)}
    first = _until(lambda: replicas.scheduled(leader), "the leader's scheduled sweep")[-1]
    time.sleep(3)  # three of the follower's jittered ticks: none queues anything
    assert not replicas.leading(other)
    # the follower answers for the leader's sweeps (their records are in the state schema), and
    # every scheduled sweep is the leader's (canon/ADR-052, addendum of 2026-12-01)
    assert {run["replica"] for run in replicas.scheduled(other)} == {names[leader]}
    followed = replicas.call(other, "GET", f"/sweeps/{first['id']}")
    assert followed.status_code == 200, followed.text
    assert followed.json()["replica"] == names[leader] and followed.json()["trigger"] == "schedule"
    assert replicas.metric(leader, "statehub_leader") == 1
    assert replicas.metric(other, "statehub_leader") == 0

    assert leader.process is not None
    leader.process.send_signal(signal.SIGKILL)
    leader.process.wait(10)
    killed = time.monotonic()
    new, _ = replicas.one_leader([other])
    assert time.monotonic() - killed < WAIT
    run = _until(
        lambda: [
            r for r in replicas.scheduled(new) if r["state"] == "finished" and r["replica"] == names[new]
        ],
        "the new leader's sweep",
    )
    assert run[0]["targets"] == ["lead"]
    status = replicas.call(new, "GET", "/state/diagnostics?probe=false").json()["hub"]["leader"]
    assert status["terms"] == 1 and status["since"] is not None


@pytest.mark.parametrize("replicas", [{"STATEHUB_SWEEP_INTERVAL": "0"}], indirect=True)
def test_a_run_out_lease_waits_for_the_leader_and_is_released_once_by_the_next(replicas: Replicas) -> None:
    leader, (other,) = replicas.one_leader()
    assert leader.process is not None
    _until(
        lambda: replicas.call(other, "GET", "/state/health").json()["buffer"]["pending"] == 0, "a quiet hub"
    )
    leader.process.send_signal(signal.SIGSTOP)  # frozen: its session, and the lock, stay
    try:
        claim = replicas.call(other, "POST", f"/tasks/{T01}/claim", json={"actor": "agt-a", "lease_s": 1})
        assert claim.status_code == 200, claim.text

        def releases() -> list[dict[str, Any]]:
            events = replicas.call(other, "GET", "/events?limit=100").json()["items"]
            return [e for e in events if e["kind"] == "task.release"]

        time.sleep(4)  # the lease ran out three seconds ago; the follower's lease rounds skip it
        assert releases() == []
        assert not replicas.leading(other)
    finally:
        leader.process.send_signal(signal.SIGKILL)
        leader.process.wait(10)

    replicas.one_leader([other])
    (release,) = _until(releases, "the new leader releasing the run-out lease")
    assert release["event"]["actor"] == "statehub"
    assert release["event"]["note"] == "lease expired"
    assert release["event"]["claim"] == claim.json()["key"]
    time.sleep(2)  # more rounds of the new leader: it is not released again
    assert len(releases()) == 1


@pytest.mark.usefixtures("state_in_cache_database")
def test_each_change_of_leadership_is_on_the_stream(
    settings: Settings, cache_backend: str | None, request: pytest.FixtureRequest
) -> None:
    """A replica that becomes the leader, loses it (its session ended, as in a fail-over) and takes
    it again, then stops, says each change in the change log as ``hub.leader`` with its name, so a
    subscriber of ``GET /events/stream`` sees who leads (canon/ADR-052, addendum of 2026-12-01)."""
    from litestar.testing import TestClient
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from statehub.app import create_app
    from statehub.hub import Hub
    from sync.leader import replica_name

    def said() -> list[dict[str, Any]]:
        with Hub(settings) as hub:
            return [json.loads(m.data) for m in hub.changes.after(0, 1000) if m.type == "hub.leader"]

    if cache_backend is None:
        with TestClient(create_app(settings)) as client:
            assert client.get("/state/health").status_code == 200
        assert said() == []  # one process on files always leads: nothing ever changes
        return
    settings = settings.with_overrides(leader_retry_s=0.2)
    database = make_url(cache_backend).database
    admin: Engine = request.getfixturevalue("postgres_admin")
    with TestClient(create_app(settings)) as client:
        leader = client.app.state.leader
        assert leader.wait(True, WAIT)
        _until(lambda: len(said()) == 1, "the first hub.leader")
        with admin.connect() as conn:  # this test's database only: its leader's session ends
            ended = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND application_name = 'statehub-leader'"
                ),
                {"name": database},
            ).fetchall()
        assert ended == [(True,)]
        _until(lambda: len(said()) == 3, "the leader losing and taking it again")
    messages = said()
    name = replica_name()
    assert [(m["replica"], m["leader"], m["terms"]) for m in messages] == [
        (name, True, 1),
        (name, False, 1),
        (name, True, 2),
        (name, False, 2),  # stopping gives it up
    ]
    assert messages[0]["repo"] is None and messages[0]["since"] is not None and messages[1]["since"] is None
