"""Claims with leases (ADR-032): one winner, the reasons a claim loses, leases that run out, the file.

Real repos, a real buffer file, the app in process (TestClient) and, for the
race across processes, real ``statehub claim`` processes on the same hub home.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
from litestar.testing import TestClient

from statehub import claims
from statehub.app import create_app
from statehub.auth import LOCAL_COMMAND
from statehub.errors import Conflict
from statehub.events import EventDesk
from statehub.hub import Hub
from tests.clijson import cli_data
from tests.gitfixtures import GitRepo, workplan_text
from tests.statehub.eventfixtures import trailer_counts

if TYPE_CHECKING:
    from collections.abc import Callable

    from statehub.settings import Settings

pytestmark = pytest.mark.usefixtures(
    "state_in_cache_database"
)  # the buffer in the state schema on [postgres]

PLAN = "CLAIM-WP-0001"
PATH = f"workplans/{PLAN}.md"
TEXT = (
    "\ufeff+++\r\n"
    f'id = "{PLAN}"  # claims\r\n'
    'title = "Claims"\r\n'
    'status = "active"\r\n'
    "\r\n"
    "[[tasks]]\r\n"
    'id = "T01"\r\n'
    'title = "First"   # keep this comment\r\n'
    'status = "todo"\r\n'
    'owner = "custodian"\r\n'
    "\r\n"
    "[[tasks]]\r\n"
    'id = "T02"\r\n'
    'title = "Second"\r\n'
    'status = "todo"\r\n'
    'depends_on = ["T01"]\r\n'
    "\r\n"
    "[[tasks]]\r\n"
    'id = "T03"\r\n'
    'title = "Third"\r\n'
    'status = "in-progress"\r\n'
    "\r\n"
    "[[tasks]]\r\n"
    'id = "T04"\r\n'
    'title = "Fourth"\r\n'
    'status = "todo"\r\n'
    "+++\r\n"
    "\r\n"
    "Body text,\ttabs and trailing spaces   \r\n"
    "\n"
    "## Progress\n"
    "\n"
    "- 2026-07-01T10:00:00Z CLAIM-WP-0001 @custodian: started\n"
)
T01, T02, T03, T04 = (f"{PLAN}-T0{n}" for n in range(1, 5))
RACE = "RACE-WP-0001"


def _plan_repo(make_repo: Callable[[str], GitRepo]) -> GitRepo:
    repo = make_repo("claims")
    (repo.root / "workplans").mkdir(parents=True)
    (repo.root / PATH).write_bytes(TEXT.encode())
    tasks = [{"id": f"T{n:02d}", "title": f"race {n}", "status": "todo"} for n in range(1, 11)]
    repo.write(f"workplans/{RACE}.md", workplan_text(RACE, tasks))
    repo.commit("plans")
    return repo


@pytest.fixture
def served(client: TestClient[Any], make_repo: Callable[[str], GitRepo]) -> tuple[TestClient[Any], GitRepo]:
    repo = _plan_repo(make_repo)
    assert client.post("/repos", json={"path": str(repo.root)}).status_code == 201
    return client, repo


def _settle(client: TestClient[Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/state/health").json()["buffer"]["pending"] == 0:
            return
        time.sleep(0.05)
    raise AssertionError("events still pending: " + str(client.get("/events?state=pending").json()))


def _raw(repo: GitRepo) -> str:
    return (repo.root / PATH).read_bytes().decode()


def test_a_claim_and_its_release_go_to_the_file_byte_identical_outside_the_change(
    served: tuple[TestClient[Any], GitRepo],
) -> None:
    client, repo = served
    answer = client.post(f"/tasks/{T01}/claim", json={"actor": "agt-a", "lease_s": 600})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"ref", "actor", "lease_expires_at", "key"}
    assert (body["ref"], body["actor"]) == (T01, "agt-a")
    _settle(client)
    claimed = TEXT.replace(
        'status = "todo"\r\nowner = "custodian"\r\n', 'status = "in-progress"\r\nowner = "agt-a"\r\n'
    )
    assert _raw(repo) == claimed
    assert trailer_counts(repo) == {body["key"]: 1}
    assert repo.git("log", "-1", "--format=%an").strip() == "agt-a"
    assert client.get(f"/tasks/{T01}").json()["owner"] == "agt-a"

    done = client.post(f"/tasks/{T01}/release", json={"actor": "agt-a", "status": "done", "note": "shipped"})
    assert done.status_code == 200, done.text
    released = done.json()
    assert (released["status"], released["owner"], released["claim"]) == ("done", "custodian", body["key"])
    _settle(client)
    expected = TEXT.replace(
        'status = "todo"\r\nowner = "custodian"\r\n', 'status = "done"\r\nowner = "custodian"\r\n'
    )
    expected += f"- {_at(repo, released['key'])} {T01} @agt-a: shipped <!-- event:{released['key']} -->\n"
    assert _raw(repo) == expected
    assert trailer_counts(repo) == {body["key"]: 1, released["key"]: 1}
    assert repo.git("status", "--porcelain") == ""


def _at(repo: GitRepo, key: str) -> str:
    line = next(line for line in _raw(repo).splitlines() if key in line)
    return line.split()[1]


def test_a_task_without_owner_gets_none_back(served: tuple[TestClient[Any], GitRepo]) -> None:
    client, repo = served
    assert client.post(f"/tasks/{T04}/claim", json={"actor": "agt-a"}).status_code == 200
    assert client.post(f"/tasks/{T04}/release", json={"actor": "agt-a", "status": "todo"}).status_code == 200
    _settle(client)
    assert _raw(repo) == TEXT
    assert client.get(f"/tasks/{T04}").json()["owner"] is None


def test_a_lost_claim_says_why(served: tuple[TestClient[Any], GitRepo]) -> None:
    client, _repo = served
    first = client.post(f"/tasks/{T01}/claim", json={"actor": "agt-a"}).json()
    held = client.post(f"/tasks/{T01}/claim", json={"actor": "agt-b"})
    assert held.status_code == 409
    said = held.json()
    assert said["details"]["reason"] == "held"
    assert said["details"]["holder"] == "agt-a"
    assert said["details"]["until"] == first["lease_expires_at"]
    assert "held by agt-a until" in said["error"]

    dependency = client.post(f"/tasks/{T02}/claim", json={"actor": "agt-b"})
    assert dependency.status_code == 409
    assert dependency.json()["details"] == {
        "reason": "dependency",
        "dependency": T01,
        "status": "in-progress",
    }
    assert f"depends on {T01}" in dependency.json()["error"]

    status = client.post(f"/tasks/{T03}/claim", json={"actor": "agt-b"})
    assert status.status_code == 409
    assert status.json()["details"] == {"reason": "status", "status": "in-progress"}

    missing = client.post(f"/tasks/{PLAN}-T99/claim", json={"actor": "agt-b"})
    assert missing.status_code == 404
    assert client.post(f"/tasks/{PLAN}-T99/heartbeat", json={"actor": "agt-b"}).status_code == 404
    assert client.post(f"/tasks/{PLAN}-T99/release", json={"actor": "a", "status": "done"}).status_code == 404

    not_held = client.post(f"/tasks/{T04}/release", json={"actor": "agt-b", "status": "done"})
    assert not_held.status_code == 409
    assert not_held.json()["details"]["reason"] == "not_held"
    other = client.post(f"/tasks/{T01}/release", json={"actor": "agt-b", "status": "done"})
    assert other.status_code == 409
    assert other.json()["details"]["holder"] == "agt-a"
    assert client.post(f"/tasks/{T01}/heartbeat", json={"actor": "agt-b"}).status_code == 409


def test_bad_bodies_are_400(served: tuple[TestClient[Any], GitRepo]) -> None:
    client, _repo = served
    for body in (
        {"actor": "agt a"},
        {"actor": "agt-a", "lease_s": 0},
        {"actor": "agt-a", "lease_s": claims.MAX_LEASE_S + 1},
        {},
    ):
        assert client.post(f"/tasks/{T01}/claim", json=body).status_code == 400, body
    for status in ("in-progress", "cancelled"):
        answer = client.post(f"/tasks/{T01}/release", json={"actor": "agt-a", "status": status})
        assert answer.status_code in (400, 409), answer.text
    blank = client.post(f"/tasks/{T01}/claim", json={"actor": "agt-a"})
    assert (
        client.post(
            f"/tasks/{T01}/release", json={"actor": "agt-a", "status": "done", "note": " "}
        ).status_code
        == 400
    )
    assert (
        client.post(
            f"/tasks/{T01}/release", json={"actor": "agt-a", "status": "done", "note": "a-->b"}
        ).status_code
        == 400
    )
    assert client.get(f"/tasks/{T01}/claim").json()["key"] == blank.json()["key"]  # nothing released


def test_the_holder_renews_and_heartbeats_extend(served: tuple[TestClient[Any], GitRepo]) -> None:
    client, repo = served
    first = client.post(f"/tasks/{T04}/claim", json={"actor": "agt-a", "lease_s": 60}).json()
    again = client.post(f"/tasks/{T04}/claim", json={"actor": "agt-a", "lease_s": 3600}).json()
    assert again["key"] == first["key"]
    assert again["lease_expires_at"] > first["lease_expires_at"]
    beat = client.post(f"/tasks/{T04}/heartbeat", json={"actor": "agt-a", "lease_s": 7200})
    assert beat.status_code == 200
    assert beat.json()["key"] == first["key"]
    assert beat.json()["lease_expires_at"] > again["lease_expires_at"]
    state = client.get(f"/tasks/{T04}/claim").json()
    assert (state["held"], state["actor"], state["lease_expires_at"]) == (
        True,
        "agt-a",
        beat.json()["lease_expires_at"],
    )
    assert state["claimable"] is False
    _settle(client)
    assert trailer_counts(repo) == {first["key"]: 1}  # a renewal and a heartbeat commit nothing


def test_claimable_lists_what_a_claim_would_win(served: tuple[TestClient[Any], GitRepo]) -> None:
    client, _repo = served
    listed = client.get(f"/tasks?claimable=true&workplan={PLAN}").json()
    assert [t["ref"] for t in listed["items"]] == [T01, T04]
    assert listed["total"] == 2
    rest = client.get(f"/tasks?claimable=false&workplan={PLAN}").json()
    assert [t["ref"] for t in rest["items"]] == [T02, T03]
    assert client.get(f"/tasks?claimable=true&workplan={PLAN}&status=in-progress").json()["total"] == 0
    assert client.get(f"/tasks?claimable=true&workplan={PLAN}&owner=custodian").json()["total"] == 1
    client.post(f"/tasks/{T01}/claim", json={"actor": "agt-a"})
    assert [t["ref"] for t in client.get(f"/tasks?claimable=true&workplan={PLAN}").json()["items"]] == [T04]
    client.post(f"/tasks/{T01}/release", json={"actor": "agt-a", "status": "done"})
    _settle(client)
    assert [t["ref"] for t in client.get(f"/tasks?claimable=true&workplan={PLAN}").json()["items"]] == [
        T02,
        T04,
    ]


def test_the_remembered_claimable_list_follows_claims_leases_and_reindexes_at_once(
    served: tuple[TestClient[Any], GitRepo], settings: Settings
) -> None:
    """The server remembers the list's cache reads per cache generation (canon/ADR-037); each
    change below is asked about right after it, with no wait, and must already show."""
    client, repo = served

    def listed() -> list[str]:
        return [t["ref"] for t in client.get(f"/tasks?claimable=true&workplan={RACE}").json()["items"]]

    race = [f"{RACE}-T{n:02d}" for n in range(1, 11)]
    assert listed() == race
    assert listed() == race  # the second answer comes from what the first read
    # a claim through this server
    assert client.post(f"/tasks/{race[0]}/claim", json={"actor": "agt-a"}).status_code == 200
    assert listed() == race[1:]
    # a lease taken elsewhere (its own hub and cache memory, as another process has)
    with Hub(settings) as other, EventDesk(other) as desk:
        claims.claim(desk, race[1], "agt-b", 600, authorise=LOCAL_COMMAND)
    assert listed() == race[2:]
    _settle(client)
    assert listed() == race[2:]  # the claims' commits re-indexed the file: in progress now
    # a re-index by another process's hub: the file gains a task and loses one to done
    tasks = [{"id": f"T{n:02d}", "title": f"race {n}", "status": "todo"} for n in range(1, 12)]
    tasks[0] |= {"status": "in-progress", "owner": "agt-a"}
    tasks[1] |= {"status": "in-progress", "owner": "agt-b"}
    tasks[2]["status"] = "done"
    repo.write(f"workplans/{RACE}.md", workplan_text(RACE, tasks))
    repo.commit("edit")
    with Hub(settings, reconcile=False) as other:
        other.refresh()
    assert listed() == [*race[3:], f"{RACE}-T11"]
    assert client.get(f"/tasks?claimable=false&workplan={RACE}").json()["total"] == 3
    # and by this server's own refresh
    tasks[3]["status"] = "done"
    repo.write(f"workplans/{RACE}.md", workplan_text(RACE, tasks))
    repo.commit("edit again")
    assert client.post("/repos/claims/refresh").status_code in (200, 201)
    assert listed() == [*race[4:], f"{RACE}-T11"]
    # pages of either answer are slices of the whole, with the whole's total
    page = client.get(f"/tasks?claimable=true&workplan={RACE}&limit=3&offset=2").json()
    assert ([t["ref"] for t in page["items"]], page["total"]) == (race[6:9], 7)
    rest = client.get(f"/tasks?claimable=false&workplan={RACE}&limit=2&offset=1").json()
    assert ([t["ref"] for t in rest["items"]], rest["total"]) == (race[1:3], 4)


def _wait(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def test_a_lease_that_runs_out_is_released_by_the_hub(served: tuple[TestClient[Any], GitRepo]) -> None:
    client, repo = served
    claim = client.post(f"/tasks/{T01}/claim", json={"actor": "agt-a", "lease_s": 1}).json()
    _wait(
        lambda: any(e["kind"] == "task.release" for e in client.get("/events?state=applied").json()["items"]),
        "the hub released the run-out lease and the release reached the file",
    )
    assert client.get(f"/tasks/{T01}/claim").json()["claimable"]
    assert client.get(f"/tasks/{T01}").json()["owner"] == "custodian"
    events = client.get("/events?limit=10").json()["items"]
    release = next(e for e in events if e["kind"] == "task.release")
    assert release["event"]["actor"] == "statehub"
    assert release["event"]["note"] == "lease expired"
    assert release["event"]["claim"] == claim["key"]
    assert release["state"] == "applied"
    assert "@statehub: lease expired" in _raw(repo)
    assert client.post(f"/tasks/{T01}/heartbeat", json={"actor": "agt-a"}).status_code == 409
    assert client.post(f"/tasks/{T01}/claim", json={"actor": "agt-b"}).status_code == 200


def test_an_expired_lease_is_released_by_whoever_meets_it(
    settings: Settings, make_repo: Callable[[str], GitRepo]
) -> None:
    """No server running: a claim in another process finds the run-out lease and releases it first."""
    repo = _plan_repo(make_repo)
    with Hub(settings) as hub, EventDesk(hub) as desk:
        hub.register(repo.root)
        claims.claim(desk, T01, "agt-a", 1, authorise=LOCAL_COMMAND)
        _wait(lambda: not claims.claim_state(desk, T01).held, "the lease ran out")
        won = claims.claim(desk, T01, "agt-b", 60, authorise=LOCAL_COMMAND)
        kinds = [(e.kind, e.event["actor"]) for e in desk.buffer.list_events()[0]]
        assert kinds == [("task.claim", "agt-a"), ("task.release", "statehub"), ("task.claim", "agt-b")]
        desk.apply_pending()
        assert claims.claim_state(desk, T01).actor == "agt-b"
        assert won.actor == "agt-b"
    text = _raw(repo)
    assert 'owner = "agt-b"' in text
    assert "@statehub: lease expired" in text


def test_a_restart_keeps_leases(settings: Settings, make_repo: Callable[[str], GitRepo]) -> None:
    repo = _plan_repo(make_repo)
    with TestClient(create_app(settings)) as client:
        client.post("/repos", json={"path": str(repo.root)})
        first = client.post(f"/tasks/{T04}/claim", json={"actor": "agt-a"}).json()
    with TestClient(create_app(settings)) as client:
        refused = client.post(f"/tasks/{T04}/claim", json={"actor": "agt-b"})
        assert refused.status_code == 409
        assert refused.json()["details"]["holder"] == "agt-a"
        assert client.post(f"/tasks/{T04}/claim", json={"actor": "agt-a"}).json()["key"] == first["key"]


def test_threads_racing_for_one_task_make_one_winner(
    settings: Settings, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = _plan_repo(make_repo)
    with Hub(settings) as hub:
        hub.register(repo.root)
    winners: list[str] = []
    losers: list[str] = []
    start = threading.Barrier(12)

    def agent(number: int) -> None:
        with Hub(settings) as hub, EventDesk(hub) as desk:  # each its own connections, as processes have
            start.wait()
            try:
                claims.claim(desk, T04, f"agt-{number}", 600, authorise=LOCAL_COMMAND)
                winners.append(f"agt-{number}")
            except Conflict as error:
                losers.append(error.message)

    threads = [threading.Thread(target=agent, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    assert len(losers) == 11
    assert all(f"held by {winners[0]}" in message for message in losers)


def _cli(*args: str) -> subprocess.Popen[str]:
    """``statehub ARGS`` in a child process on the test's hub home (STATEHUB_HOME is set by ``settings``)."""
    return subprocess.Popen(
        [sys.executable, "-m", "statehub", *args],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_processes_and_a_server_racing_for_one_task_make_one_winner(
    settings: Settings, make_repo: Callable[[str], GitRepo]
) -> None:
    """Four CLI processes and four threads of an app on the same hub home: exactly one claim wins."""
    repo = _plan_repo(make_repo)
    with TestClient(create_app(settings)) as client:
        client.post("/repos", json={"path": str(repo.root)})
        procs = [_cli("claim", T04, "--actor", f"cli-{n}", "--json") for n in range(4)]
        answers: list[int] = []
        threads = [
            threading.Thread(
                target=lambda n=n: answers.append(
                    client.post(f"/tasks/{T04}/claim", json={"actor": f"srv-{n}"}).status_code
                )
            )
            for n in range(4)
        ]
        for thread in threads:
            thread.start()
        outs = [proc.communicate(timeout=120) for proc in procs]
        for thread in threads:
            thread.join()
        codes = [proc.returncode for proc in procs]
        wins = answers.count(200) + codes.count(0)
        assert wins == 1, (answers, codes, [o[1] for o in outs])
        assert answers.count(409) + codes.count(5) == 7
        winner = (
            next(cli_data(o[0])["actor"] for o, c in zip(outs, codes, strict=True) if c == 0)
            if 0 in codes
            else None
        )
        state = client.get(f"/tasks/{T04}/claim").json()
        assert state["held"]
        if winner is not None:
            assert state["actor"] == winner
        _settle(client)
    assert len(trailer_counts(repo)) == 1


def test_twenty_agents_racing_for_ten_tasks_take_each_once(
    served: tuple[TestClient[Any], GitRepo],
) -> None:
    client, repo = served
    won: dict[str, str] = {}
    lock = threading.Lock()
    refs = [f"{RACE}-T{n:02d}" for n in range(1, 11)]
    start = threading.Barrier(20)

    def agent(number: int) -> None:
        actor = f"agt-{number:02d}"
        order = refs[:]
        random.Random(number).shuffle(order)
        start.wait()
        for ref in order:
            answer = client.post(f"/tasks/{ref}/claim", json={"actor": actor, "lease_s": 600})
            if answer.status_code == 200:
                with lock:
                    assert ref not in won, f"{ref} claimed by {won.get(ref)} and {actor}"
                    won[ref] = actor
                return
            assert answer.status_code == 409, answer.text

    threads = [threading.Thread(target=agent, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(won) == refs
    assert len(set(won.values())) == 10
    _settle(client)
    for ref, actor in won.items():
        assert client.get(f"/tasks/{ref}").json()["owner"] == actor
    assert len(trailer_counts(repo)) == 10
    assert client.get(f"/tasks?claimable=true&workplan={RACE}").json()["total"] == 0
