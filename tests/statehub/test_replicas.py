"""Fleet replicas on one PostgreSQL under a mixed load, one SIGKILLed and restarted (issue 16).

Three replicas on one home: a round-robin client posts events (a tenth sent again, and a sample sent
again to every replica), claims race for the same tasks from different replicas, a stream subscriber
reads each replica, two people type in one room through two replicas, a lease runs out and
scheduled sweeps run (the leader's work). Mid-load the leader, or the replica caught applying, is
SIGKILLed and restarted. Then: every accepted event is applied exactly once (one ``Statehub-Event``
trailer per key), every task has one winner, the run-out lease is released once by the (new)
leader, the leader's sweeps moved with it, the room converged and its save committed once, and
every subscriber got every message of the change log once, in order. The same with two replicas
keeping their own clones of bare remotes (forge sync on): every trailer once at the forge, both
clones at its head.

Size: ``STATEHUB_REPLICA_EVENTS`` unique events (default 2000: the file in 76-99 s on 2 cores at
load average 8-11; the issue's full size is ``STATEHUB_REPLICA_EVENTS=5000``: 114 s there).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest
import websockets

from bench._events_corpus import make_corpus
from tests.gitfixtures import GitRepo, clone
from tests.statehub.eventfixtures import trailer_counts
from tests.statehub.replicas import (
    Replicas,
    RoundRobin,
    StreamReader,
    change_log,
    note_events,
    send_load,
    with_resends,
)
from tests.statehub.sweeping import sweep_over_http
from tests.sync_fixtures import MANIFEST
from tests.ysync_client import YClient

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

EVENTS = int(os.environ.get("STATEHUB_REPLICA_EVENTS", "2000"))


def _claim_race(client: RoundRobin, refs: list[str], replicas: int) -> dict[str, list[tuple[str, Any]]]:
    """Each task claimed at once by one actor per replica, each actor through its own replica;
    (actor, answer) per task: the claim (200) or the refusal's details (409)."""
    answers: dict[str, list[tuple[str, Any]]] = {ref: [] for ref in refs}

    def take(ref: str, number: int) -> None:
        actor = f"agt-claimer-{number}"
        answer = client.request("POST", f"/tasks/{ref}/claim", json={"actor": actor}, first=number)
        assert answer.status_code in (200, 409), answer.text
        body = answer.json()
        answers[ref].append((actor, body if answer.status_code == 200 else body["details"]))

    with ThreadPoolExecutor(2 * replicas) as pool:
        for _ in pool.map(lambda job: take(*job), [(ref, n) for ref in refs for n in range(replicas)]):
            pass
    return answers


@pytest.mark.postgres
@pytest.mark.parametrize("victim", ["leader", "applier"])
def test_three_replicas_under_mixed_load_lose_nothing_through_a_kill(
    tmp_path: Path, postgres_database: str, request: pytest.FixtureRequest, victim: str
) -> None:
    """The issue's scenario at once: round-robin load with resends, racing claims, a subscriber per
    replica, a room with clients on two replicas typing throughout, a lease running out and
    scheduled sweeps (the leader's work); mid-load the leader (``victim="leader"``, caught holding
    the applier lock if it can be) or the replica caught applying (``"applier"``, another than the
    leader if one is caught) is SIGKILLed, then restarted."""
    corpus = make_corpus(tmp_path / "repos", repos=5, plans=2, tasks=12)
    load_repos, claims_repo = corpus.repos[:4], corpus.repos[4]
    tasks = [f"T{n:02d}" for n in range(1, 13)]
    plans = [(plan, tasks) for path in load_repos for plan in corpus.plans[path.name]]
    claim_plans = corpus.plans[claims_repo.name]
    lease_ref = f"{claim_plans[0]}-T12"  # claimed with a short lease just before the kill
    refs = [f"{plan}-{task}" for plan in claim_plans for task in tasks if f"{plan}-{task}" != lease_ref]
    demo = GitRepo(tmp_path / "repos" / "demo")
    demo.write("statehub.toml", MANIFEST)
    demo.commit("start")
    replicas = Replicas(
        [tmp_path / "home"],
        postgres_database,
        3,
        env={"STATEHUB_SWEEP_INTERVAL": "3", "STATEHUB_LEADER_RETRY": "1"},
        logs=tmp_path,
    )
    request.addfinalizer(replicas.stop)
    replicas.register([*corpus.repos, demo.root])
    replicas.start()
    readers = [StreamReader(url, replicas.headers).start() for url in replicas.urls]
    client = RoundRobin(replicas.urls, replicas.headers)
    request.addfinalizer(client.close)
    for reader in readers:
        request.addfinalizer(reader.stop)
    leader = replicas.leader()
    others = [n for n in range(3) if n != leader]
    # The room's two people: one on the replica to be killed (the leader, or a replica that is not).
    placed = (leader, others[0]) if victim == "leader" else (others[0], others[1])
    room = _Room(replicas, placed)
    commits_before = int(demo.git("rev-list", "--count", "HEAD"))

    events = note_events(plans, EVENTS)
    sent = with_resends(events, 0.1)
    third = threading.Event()
    batches = -(-len(sent) // 20)
    results: dict[str, list[str]] = {}
    load = threading.Thread(
        target=lambda: results.update(send_load(client, sent, on_batch=_at(batches // 3, third)))
    )
    room.start()
    load.start()
    assert third.wait(120), "the load did not get a third of the way"
    if victim == "leader":
        caught = replicas.applying(5, among=[leader])  # the leader mid-write-back, if it applies
        killed = leader
    else:
        caught = replicas.applying(among=others)
        caught = caught if caught is not None else replicas.applying()
        killed = others[0] if caught is None else caught
    sweeps_before = {n: _scheduled(client, n) for n in range(3) if n != killed}
    lease = client.request(
        "POST", f"/tasks/{lease_ref}/claim", json={"actor": "agt-lease", "lease_s": 2}, first=others[-1]
    )
    assert lease.status_code == 200, lease.text
    replicas.kill(killed)  # its in-flight requests go on to the next replica; the lease runs out after
    print(f"killed replica {killed}, the {victim}; leader {leader}, caught applying: {caught}")
    claims = _claim_race(client, refs, 3)  # while the victim is down
    replicas.restart(killed)
    print(f"restarted (starts refused for want of a PostgreSQL connection: {replicas.refused_starts})")
    load.join(300)
    assert not load.is_alive()
    resent = {  # a sample of keys sent again to every replica: each answers duplicate
        n: client.post_events(events[::20][:25], first=n) for n in range(3)
    }
    text, saved = room.finish()
    replicas.settle()

    # Every event answered, none accepted twice, none refused; every resend a duplicate.
    assert set(results) == {e["key"] for e in events}
    assert {key: r for key, r in results.items() if r.count("accepted") > 1 or "rejected" in r} == {}
    assert all(result == "duplicate" for answered in resent.values() for _, result in answered)
    # Applied exactly once: one trailer per key, every file committed.
    trailers: dict[str, int] = {}
    for path in load_repos:
        repo = GitRepo(path, init=False)
        trailers |= trailer_counts(repo)
        assert repo.git("status", "--porcelain") == "", path
    assert trailers == dict.fromkeys(results, 1)

    # No task claimed twice: one winner each, the lease store and the file agree, one claim commit each.
    winners: dict[str, tuple[str, str]] = {}
    for ref, answers in claims.items():
        won = {(actor, body["key"]) for actor, body in answers if "key" in body}
        assert len(won) == 1, (ref, answers)
        winners[ref] = won.pop()
        lost = [details["reason"] for actor, details in answers if "key" not in details]
        assert set(lost) <= {"held", "status"}, (ref, answers)
    for number in range(3):
        for ref, (actor, _) in winners.items():
            state = client.request("GET", f"/tasks/{ref}/claim", first=number).json()
            assert (state["held"], state["actor"]) == (True, actor), (number, ref, state)
    for ref, (actor, _) in winners.items():
        task = client.request("GET", f"/tasks/{ref}").json()
        assert (task["owner"], task["status"]) == (actor, "in-progress"), task

    # The leader's work: the lease that ran out after the kill is released once, by the leader
    # (a new one when the leader was killed); the scheduled sweeps run on the leader alone.
    new_leader = replicas.leader()
    assert (new_leader != killed) if killed == leader else (new_leader == leader)
    released = _until(lambda: _releases(client, lease_ref), "the run-out lease released")
    time.sleep(2)  # more lease rounds of every replica: it is not released again
    released = _releases(client, lease_ref)
    assert [(r["event"]["note"], r["event"]["claim"]) for r in released] == [
        ("lease expired", lease.json()["key"])
    ]
    _until(lambda: _scheduled(client, new_leader) > sweeps_before.get(new_leader, 0), "a leader's sweep")
    # Only a replica that led ran scheduled sweeps since the kill (on a loaded machine leadership
    # may pass on more than once: a leader whose probe does not answer in time steps down first).
    swept = {n for n, count in sweeps_before.items() if _scheduled(client, n) > count}
    swept |= {killed} if _scheduled(client, killed) else set()
    terms = {n: replicas.leader_status(n)["terms"] for n in range(3)}
    print(f"leader {leader} -> {new_leader}; terms {terms}; swept after the kill: {sorted(swept)}")
    assert all(terms[n] >= 1 for n in swept), (swept, terms)
    claim_repo = GitRepo(claims_repo, init=False)
    claim_keys = [key for _, key in winners.values()] + [lease.json()["key"], released[0]["key"]]
    assert trailer_counts(claim_repo) == dict.fromkeys(claim_keys, 1)

    # The room converged (each line once, on both clients) and its one save committed it once.
    assert saved["ok"], saved
    assert demo.read("statehub.toml") == text
    assert int(demo.git("rev-list", "--count", "HEAD")) == commits_before + 1
    assert demo.git("status", "--porcelain") == ""
    print(f"room: {room.typed} lines typed, {room.reconnects} reconnects")
    if killed in placed:  # that person moved to another replica
        assert sum(room.reconnects.values()) >= 1

    # Every subscriber got every message of the change log once, in order (the killed replica's
    # reader reconnected with Last-Event-ID).
    # The scheduled sweeps go on adding messages: each reader has every one up to the last it read.
    last = change_log(replicas.settings())[-1].id
    late = [reader.url for reader in readers if not reader.wait_for(last)]
    for reader in readers:
        reader.stop()
    assert late == []
    log = [stored.id for stored in change_log(replicas.settings())]
    for reader in readers:
        assert not reader.client.dropped, reader.url
        want = [id_ for id_ in log if id_ <= reader.last()]
        assert reader.client.ids == want, (reader.url, _first_difference(reader.client.ids, want))
    assert readers[killed].reconnects >= 1
    assert client.retries > 0  # the kill was felt by the client, not only by the server


ROOM_LINES = 400
"""Lines each person types at most (one every 50 ms while the load runs)."""


class _Room:
    """Ada and Bo in one room (``demo/statehub.toml``), on the two replicas ``where``, each typing a
    line of their own every 50 ms in a thread of their own until :meth:`finish`; one whose replica
    goes away reconnects to the next replica with its copy, as y-websocket does. ``finish`` waits
    until both hold the same text with every line once, has Bo save, and answers (text, the
    save's result)."""

    def __init__(self, replicas: Replicas, where: tuple[int, int]) -> None:
        self.rooms = [
            f"{url.replace('http://', 'ws://')}/sync/demo/statehub.toml?token={replicas.token}"
            for url in replicas.urls
        ]
        self.where = {"Ada": where[0], "Bo": where[1]}
        self.typed = {"Ada": 0, "Bo": 0}
        self.reconnects = {"Ada": 0, "Bo": 0}
        self._done = threading.Event()
        self._opened = threading.Event()
        self._answer: tuple[str, dict[str, Any]] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="room", daemon=True)

    def start(self) -> None:
        self._thread.start()
        assert self._opened.wait(60), "the room's clients did not connect in 60 s"

    def finish(self) -> tuple[str, dict[str, Any]]:
        self._done.set()
        self._thread.join(120)
        if self._error is not None:
            raise self._error
        assert self._answer is not None, "the room did not converge in 120 s"
        return self._answer

    def _run(self) -> None:
        try:
            self._answer = asyncio.run(self._scenario())
        except BaseException as error:  # noqa: BLE001 - handed to the test's thread by finish()
            self._error = error
            self._opened.set()

    async def _connect(self, name: str, copy: YClient | None = None) -> YClient:
        while True:
            person = YClient(self.rooms[self.where[name]], name=name)
            if copy is not None:  # the edits it made, sent or not, go with it
                person.doc.apply_update(copy.doc.get_update())
            try:
                await person.connect()
                await asyncio.wait_for(person.synced.wait(), 30)
                return person
            except (OSError, TimeoutError, websockets.WebSocketException):
                await person.close()
                self.where[name] = (self.where[name] + 1) % len(self.rooms)
                await asyncio.sleep(0.2)

    async def _scenario(self) -> tuple[str, dict[str, Any]]:
        people = {name: await self._connect(name) for name in self.where}
        self._opened.set()
        gone: list[YClient] = []

        async def type_lines(name: str) -> None:
            while not self._done.is_set() and self.typed[name] < ROOM_LINES:
                person = people[name]
                if person.closed is not None:  # its replica went away
                    gone.append(person)
                    self.where[name] = (self.where[name] + 1) % len(self.rooms)
                    people[name] = await self._connect(name, copy=person)
                    self.reconnects[name] += 1
                    continue
                line = f"# {name} {self.typed[name]}\n"
                person.text.insert(0 if name == "Ada" else len(str(person.text)), line)
                self.typed[name] += 1
                await asyncio.sleep(0.05)

        await asyncio.gather(*(type_lines(name) for name in people))
        ada, bo = people["Ada"], people["Bo"]

        def converged() -> bool:
            text = str(ada.text)
            return (
                text == str(bo.text)
                and text.count(MANIFEST) == 1
                and all(
                    text.count(f"# {name} {n}\n") == 1 for name in people for n in range(self.typed[name])
                )
            )

        try:
            await ada.wait_for(converged, 60)
            await bo.save()
            await bo.wait_for(lambda: any(m.get("type") == "save-result" for m in bo.hub_messages), 60)
            saved = next(m for m in bo.hub_messages if m.get("type") == "save-result")
            return str(bo.text), saved
        finally:
            for person in [ada, bo, *gone]:
                await person.close()


def _scheduled(client: RoundRobin, number: int) -> int:
    """Scheduled sweeps replica ``number`` (its process now) finished: every replica lists every
    replica's sweeps (their records are in the state schema), each naming the one that ran it."""
    status = client.request("GET", "/state/diagnostics?probe=false", first=number).json()
    name = status["hub"]["leader"]["replica"]
    sweeps = client.request("GET", "/sweeps?limit=100", first=number).json()["sweeps"]
    ran = [run for run in sweeps if run["replica"] == name]
    return sum(run["trigger"] == "schedule" and run["state"] == "finished" for run in ran)


def _releases(client: RoundRobin, ref: str) -> list[dict[str, Any]]:
    answer = client.request("GET", f"/events?task={ref}&kind=task.release&limit=100")
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def _until(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {what} in {timeout:g} s")
        time.sleep(0.1)
    return found


def _at(batches: int, reached: threading.Event) -> Callable[[int], None]:
    """An ``on_batch`` for :func:`send_load` that sets ``reached`` from the ``batches``-th batch on."""

    def note(number: int) -> None:
        if number >= batches:
            reached.set()

    return note


def _first_difference(got: list[int], want: list[int]) -> str:
    for index, (one, other) in enumerate(zip(got, want, strict=False)):
        if one != other:
            return f"at {index}: got {got[index : index + 5]}, the log has {want[index : index + 5]}"
    return f"got {len(got)} ids, the log has {len(want)}"


@pytest.mark.postgres
def test_two_replicas_with_their_own_clones_of_a_bare_remote_through_a_kill(
    tmp_path: Path, postgres_database: str, request: pytest.FixtureRequest
) -> None:
    """Two replicas on two homes, each with its own clones of the same bare remotes (forge sync on,
    the fleet profile's default), one PostgreSQL. Mid-load, claims race from both replicas and the
    replica caught applying (else the second) is SIGKILLed, then restarted. After the load and a
    sweep of each: every remote holds each accepted event and each winning claim exactly once,
    both clones are at the remote's head, resends are duplicates on either replica, and no task
    has two winners."""
    source = make_corpus(tmp_path / "source", repos=2, plans=2, tasks=5)
    remotes: list[Path] = []
    for path in source.repos:
        remote = tmp_path / "remotes" / f"{path.name}.git"
        subprocess.run(["git", "clone", "-q", "--bare", str(path), str(remote)], check=True)
        remotes.append(remote)
    clones = [
        [clone(remote, tmp_path / f"clones-{n}" / remote.stem).root for remote in remotes] for n in range(2)
    ]
    for paths in clones:
        for path in paths:
            GitRepo(path, init=False)
    homes = [tmp_path / "home-0", tmp_path / "home-1"]
    group = Replicas(homes, postgres_database, 2, logs=tmp_path)
    request.addfinalizer(group.stop)
    for number, paths in enumerate(clones):
        group.register(paths, number)
    group.start()
    client = RoundRobin(group.urls, group.headers)
    request.addfinalizer(client.close)
    all_plans = [plan for ids in source.plans.values() for plan in ids]
    plans = [(plan, ["T01", "T02", "T03"]) for plan in all_plans]
    refs = [f"{plan}-{task}" for plan in all_plans for task in ("T04", "T05")]
    events = note_events(plans, max(EVENTS // 6, 60), prefix="bench-clones")
    sent = with_resends(events, 0.1)
    third = threading.Event()
    batches = -(-len(sent) // 10)
    results: dict[str, list[str]] = {}
    load = threading.Thread(
        target=lambda: results.update(
            send_load(client, sent, batch=10, threads=2, on_batch=_at(batches // 3, third))
        )
    )
    load.start()
    assert third.wait(120), "the load did not get a third of the way"
    claims = _claim_race(client, refs, 2)  # both replicas up: a real race
    caught = group.applying()
    killed = 1 if caught is None else caught
    group.kill(killed)  # mid-write-back (and mid-push) when it was caught applying
    print(f"killed replica {killed} (caught applying: {caught is not None})")
    time.sleep(0.5)  # the load goes on through the other replica meanwhile
    group.restart(killed)
    print(f"restarted (starts refused for want of a PostgreSQL connection: {group.refused_starts})")
    load.join(300)
    assert not load.is_alive()
    resent = [client.post_events(events[::10], first=n) for n in range(2)]
    group.settle()
    for number in (0, 1, 0):  # each pushes what it applied; the first pulls the second's
        ran = sweep_over_http(
            lambda path, **kw: client.request("POST", path, first=number, **kw),  # noqa: B023
            lambda path: client.request("GET", path, first=number),  # noqa: B023
        )
        assert (ran["state"], ran["totals"]["not_in_step"]) == ("finished", 0), (number, json.dumps(ran))
    group.settle()

    assert all(result == "duplicate" for answered in resent for _, result in answered)
    # Accepted at most once (an answer lost with the killed replica leaves only the resend's
    # "duplicate"), never refused; the trailers below show each applied exactly once.
    assert set(results) == {e["key"] for e in events}
    assert {key: r for key, r in results.items() if r.count("accepted") > 1 or "rejected" in r} == {}
    winners: dict[str, tuple[str, str]] = {}
    for ref, answers in claims.items():
        won = {(actor, body["key"]) for actor, body in answers if "key" in body}
        assert len(won) == 1, (ref, answers)
        winners[ref] = won.pop()
    for number in range(2):
        for ref, (actor, _) in winners.items():
            state = client.request("GET", f"/tasks/{ref}/claim", first=number).json()
            assert (state["held"], state["actor"]) == (True, actor), (number, ref, state)
    trailers: dict[str, int] = {}
    for remote in remotes:
        trailers |= trailer_counts(GitRepo(remote, init=False))
    assert trailers == dict.fromkeys([*results, *(key for _, key in winners.values())], 1)
    for pair, remote in zip(zip(*clones, strict=True), remotes, strict=True):
        heads = {GitRepo(path, init=False).git("rev-parse", "HEAD").strip() for path in pair}
        assert heads == {GitRepo(remote, init=False).git("rev-parse", "HEAD").strip()}
        for path in pair:
            assert GitRepo(path, init=False).git("status", "--porcelain") == "", path
    assert client.retries > 0  # the kill was felt by the client
