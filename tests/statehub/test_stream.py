"""``GET /events/stream`` against a real hub server process, read by a real SSE client (httpx streaming).

Each subscriber is a thread reading the stream and parsing its messages; a
test waits (with a generous limit) until the messages it expects arrived,
then checks exactly what arrived: each change once, in order, nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from statehub.auth.keys import init_root_key, load_root_key
from statehub.auth.tokens import mint
from statehub.changes import Change, ChangeLog
from statehub.hub import Hub
from statehub.stream import Broadcaster, StreamFilter
from tests.gitfixtures import workplan_text
from tests.hubserver import HubServer
from tests.ysync_client import YClient

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from statehub.settings import Settings
    from tests.gitfixtures import GitRepo

WAIT = 60.0
"""Seconds a test waits for what it expects (a loaded machine is slow; nothing here is timed)."""
MANIFEST = '[repo]\nslug = "{slug}"\ntitle = "{title}"\nprefixes = ["{prefix}"]\n'


@dataclass
class Message:
    id: int | None
    event: str
    data: dict[str, Any]


@dataclass
class Subscriber:
    """A thread reading one stream; ``messages`` fills as they arrive, ``ended`` once it closed."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    status: int | None = None
    ended: threading.Event = field(default_factory=threading.Event)
    opened: threading.Event = field(default_factory=threading.Event)
    comments: int = 0
    _stop: bool = False

    def start(self) -> Subscriber:
        threading.Thread(target=self._run, daemon=True).start()
        assert self.opened.wait(WAIT), "the stream did not open"
        return self

    def _run(self) -> None:
        try:
            with httpx.stream("GET", self.url, headers=self.headers, timeout=WAIT) as answer:
                self.status = answer.status_code
                self.opened.set()
                fields: dict[str, str] = {}
                for line in answer.iter_lines():
                    if self._stop:
                        return
                    if line.startswith(":"):
                        self.comments += 1
                    elif not line:
                        if "event" in fields:
                            ident = int(fields["id"]) if "id" in fields else None
                            self.messages.append(Message(ident, fields["event"], json.loads(fields["data"])))
                        fields = {}
                    else:
                        name, _, value = line.partition(": ")
                        fields[name] = value
        except httpx.HTTPError:
            pass
        finally:
            self.opened.set()
            self.ended.set()

    def close(self) -> None:
        self._stop = True

    def wait(self, done: Callable[[list[Message]], bool], what: str) -> list[Message]:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if done(self.messages):
                return list(self.messages)
            time.sleep(0.02)
        raise AssertionError(f"never got {what}; got {[(m.event, m.data) for m in self.messages]}")

    def wait_for(self, event: str, **data: Any) -> Message:
        def found(messages: list[Message]) -> bool:
            return any(_matches(m, event, data) for m in messages)

        self.wait(found, f"{event} {data}")
        return next(m for m in self.messages if _matches(m, event, data))


def _matches(message: Message, event: str, data: dict[str, Any]) -> bool:
    return message.event == event and all(message.data.get(k) == v for k, v in data.items())


def _summary(messages: list[Message]) -> list[tuple[Any, ...]]:
    """What each message says in brief: its type, repo, what it is about, its cause or state."""
    out: list[tuple[Any, ...]] = []
    for m in messages:
        d = m.data
        about = d.get("ref") or d.get("key") or d.get("workplan") or d.get("id") or d.get("doc")
        out.append((m.event, d.get("repo"), about, d.get("cause")))
    return out


def _plan(plan_id: str, status: str = "todo", owner: str = "ada", tasks: int = 1) -> str:
    return workplan_text(
        plan_id,
        [
            {"id": f"T{i:02d}", "title": f"task {i}", "status": status, "owner": owner}
            for i in range(1, tasks + 1)
        ],
    )


def _repo(make_repo: Callable[[str], GitRepo], slug: str, prefix: str) -> GitRepo:
    repo = make_repo(slug)
    repo.write("statehub.toml", MANIFEST.format(slug=slug, title=slug.title(), prefix=prefix))
    repo.write(f"workplans/{prefix}-WP-0001.md", _plan(f"{prefix}-WP-0001"))
    repo.commit("start")
    return repo


@pytest.fixture
def two_repos(make_repo: Callable[[str], GitRepo], served_settings: Settings) -> tuple[GitRepo, GitRepo]:
    demo = _repo(make_repo, "demo", "DEMO")
    other = _repo(make_repo, "other", "OTH")
    with Hub(served_settings) as hub:
        hub.register(demo.root)
        hub.register(other.root)
    return demo, other


def _home(settings: Settings) -> Path:
    return settings.config_dir.parent


@pytest.fixture
def server(two_repos: tuple[GitRepo, GitRepo], served_settings: Settings) -> Iterator[HubServer]:
    with HubServer(_home(served_settings), env={"STATEHUB_STREAM_KEEPALIVE": "0.5"}) as running:
        yield running


def _stream(server: HubServer, query: str = "", **headers: str) -> Subscriber:
    return Subscriber(f"{server.url}/events/stream{query}", headers).start()


def _edit(server: HubServer, repo: GitRepo, slug: str, prefix: str, **plan: Any) -> None:
    """A hand edit: the file changes and is committed, then the hub is asked to look."""
    repo.write(f"workplans/{prefix}-WP-0001.md", _plan(f"{prefix}-WP-0001", **plan))
    repo.commit("hand edit")
    assert httpx.post(f"{server.url}/repos/{slug}/refresh", timeout=WAIT).status_code == 200


def _event(key: str, status: str = "blocked", plan: str = "DEMO-WP-0001") -> dict[str, Any]:
    return {
        "key": key,
        "kind": "task.status",
        "actor": "bob",
        "workplan": plan,
        "task": "T01",
        "status": status,
    }


def test_a_subscriber_sees_a_hand_edit_an_events_life_a_save_and_a_rebuild_once_and_in_order(
    server: HubServer, two_repos: tuple[GitRepo, GitRepo], served_settings: Settings
) -> None:
    demo, _other = two_repos
    watcher = _stream(server)
    assert watcher.status == 200

    _edit(server, demo, "demo", "DEMO", status="in-progress")
    watcher.wait_for("repo.indexed", repo="demo", cause="file-edit")

    answer = httpx.post(f"{server.url}/events", json=_event("ev-1"), timeout=WAIT)
    assert answer.status_code == 202, answer.text
    watcher.wait_for("event.applied", key="ev-1")

    async def save() -> None:
        client = await YClient(f"{server.ws_url}/sync/demo/statehub.toml?user=Ada").connect()
        await asyncio.wait_for(client.synced.wait(), WAIT)
        client.text.insert(len(str(client.text)), 'default_branch = "main"\n')
        deadline = time.monotonic() + WAIT
        while not _unsaved(server) and time.monotonic() < deadline:  # the edit reached the hub's room
            await asyncio.sleep(0.05)
        await client.save()
        await client.wait_for(lambda: any(m.get("type") == "save-result" for m in client.hub_messages), WAIT)
        result = next(m for m in client.hub_messages if m.get("type") == "save-result")
        await client.close()
        assert result["ok"], result

    asyncio.run(save())
    saved = watcher.wait_for("room.saved", doc="demo/statehub.toml")

    rebuilt = subprocess.run(
        [sys.executable, "-m", "statehub", "rebuild"],
        env={**_env(served_settings)},
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    watcher.wait(lambda ms: sum(m.data.get("cause") == "rebuild" for m in ms) == 2, "both repos rebuilt")
    time.sleep(1.5)  # anything extra (a repeat) would arrive within the log's poll interval
    got = [m for m in watcher.messages if m.event != "room.changed"]  # a room's own test follows
    assert _summary(got) == [
        ("task.changed", "demo", "DEMO-WP-0001-T01", "file-edit"),
        ("repo.indexed", "demo", None, "file-edit"),
        ("event.accepted", "demo", "ev-1", None),
        ("task.changed", "demo", "DEMO-WP-0001-T01", "event"),
        ("repo.indexed", "demo", None, "event"),
        ("event.applied", "demo", "ev-1", None),
        ("repo.indexed", "demo", None, "save"),
        ("room.saved", "demo", "demo/statehub.toml", None),
        ("repo.indexed", "demo", None, "rebuild"),
        ("repo.indexed", "other", None, "rebuild"),
    ]
    ids = [m.id for m in got]
    assert all(isinstance(i, int) for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert got[0].data["fields"]["status"] == {"old": "todo", "new": "in-progress"}
    assert got[3].data["fields"]["status"] == {"old": "in-progress", "new": "blocked"}
    assert got[5].data["commit"] == demo.git("log", "-1", "--format=%H", "--", "workplans").strip()
    assert saved.data["author"] == "Ada"
    assert saved.data["commit"] == demo.git("rev-parse", "HEAD").strip()
    assert got[8].data["counts"] == {"workplans": 1, "tasks": 1, "canon": 0, "file_errors": 0}
    assert watcher.comments >= 2  # the opening comment and at least one keepalive (0.5 s here)
    watcher.close()


def _room_states(watcher: Subscriber) -> list[tuple[bool, list[str], bool]]:
    return [(m.data["open"], m.data["people"], m.data["unsaved"]) for m in watcher.messages]


def test_a_room_says_who_is_in_it_and_whether_it_holds_a_draft_once_per_change(
    server: HubServer, two_repos: tuple[GitRepo, GitRepo]
) -> None:
    """The dashboard's open rooms and drafts (issue 15): ``room.changed`` when someone joins or
    leaves, a draft appears or is saved, the room closes; ``GET /sync`` says the same."""
    demo, _other = two_repos
    watcher = _stream(server, "?types=room.changed")
    doc = "demo/statehub.toml"
    url = f"{server.ws_url}/sync/{doc}"

    def wait_state(count: int, state: tuple[bool, list[str], bool]) -> None:
        watcher.wait(lambda ms: len(ms) >= count, f"room state {state}")
        assert _room_states(watcher)[count - 1] == state, _room_states(watcher)

    def listed() -> tuple[list[str], bool]:
        [room] = [r for r in httpx.get(f"{server.url}/sync", timeout=WAIT).json()["items"] if r["doc"] == doc]
        return room["people"], room["unsaved"]

    async def edit_then_leave() -> None:
        ada = await YClient(url + "?user=Ada").connect()
        await asyncio.wait_for(ada.synced.wait(), WAIT)
        await asyncio.to_thread(wait_state, 1, (True, ["Ada"], False))
        ada.text.insert(len(str(ada.text)), 'default_branch = "main"\n')
        await asyncio.to_thread(wait_state, 2, (True, ["Ada"], True))
        assert await asyncio.to_thread(listed) == (["Ada"], True)
        await ada.close()
        await asyncio.to_thread(wait_state, 3, (False, [], True))

    async def save_then_leave() -> None:
        bo = await YClient(url + "?user=Bo").connect()
        await asyncio.wait_for(bo.synced.wait(), WAIT)
        await asyncio.to_thread(wait_state, 4, (True, ["Bo"], True))
        await bo.save()
        await asyncio.to_thread(wait_state, 5, (True, ["Bo"], False))
        await bo.close()
        await asyncio.to_thread(wait_state, 6, (False, [], False))

    asyncio.run(edit_then_leave())
    assert listed() == ([], True)  # the draft outlives the room
    asyncio.run(save_then_leave())
    assert listed() == ([], False)
    assert 'default_branch = "main"' in demo.read("statehub.toml")
    time.sleep(1.0)  # a repeat would come within a few of the rooms' polls
    assert len(watcher.messages) == 6, _room_states(watcher)
    assert [m.event for m in watcher.messages] == ["room.changed"] * 6
    first = watcher.messages[0].data
    assert (first["repo"], first["doc"], first["path"]) == ("demo", doc, "statehub.toml")
    watcher.close()


def _unsaved(server: HubServer) -> bool:
    rooms = httpx.get(f"{server.url}/sync", timeout=WAIT).json()["items"]
    return any(r["doc"] == "demo/statehub.toml" and r["unsaved"] for r in rooms)


def _env(settings: Settings) -> dict[str, str]:
    import os

    env = dict(os.environ, STATEHUB_HOME=str(_home(settings)))
    env.pop("STATEHUB_DATABASE_URL", None)
    return env


def test_filters_hold(server: HubServer, two_repos: tuple[GitRepo, GitRepo]) -> None:
    demo, other = two_repos
    everything = _stream(server)
    by_repo = _stream(server, "?repo=other&types=task")
    by_plan = _stream(server, "?workplan=DEMO-WP-0001")
    by_owner = _stream(server, "?owner=carol")
    by_type = _stream(server, "?types=event.applied,repo")
    two = _stream(server, "?repo=demo&repo=other&types=task.changed")

    _edit(server, demo, "demo", "DEMO", status="done")
    _edit(server, other, "other", "OTH", status="done", owner="carol")
    assert httpx.post(
        f"{server.url}/events", json=_event("ev-f", "todo", "OTH-WP-0001"), timeout=WAIT
    ).is_success
    everything.wait_for("event.applied", key="ev-f")
    time.sleep(1.5)

    assert _summary(everything.messages) == [
        ("task.changed", "demo", "DEMO-WP-0001-T01", "file-edit"),
        ("repo.indexed", "demo", None, "file-edit"),
        ("task.changed", "other", "OTH-WP-0001-T01", "file-edit"),
        ("repo.indexed", "other", None, "file-edit"),
        ("event.accepted", "other", "ev-f", None),
        ("task.changed", "other", "OTH-WP-0001-T01", "event"),
        ("repo.indexed", "other", None, "event"),
        ("event.applied", "other", "ev-f", None),
    ]
    assert _summary(by_repo.messages) == [
        ("task.changed", "other", "OTH-WP-0001-T01", "file-edit"),
        ("task.changed", "other", "OTH-WP-0001-T01", "event"),
    ]
    assert [m.data["ref"] for m in by_plan.messages] == ["DEMO-WP-0001-T01"]
    assert _summary(by_owner.messages) == [
        ("task.changed", "other", "OTH-WP-0001-T01", "file-edit"),  # ada -> carol
        ("task.changed", "other", "OTH-WP-0001-T01", "event"),  # carol's task
    ]
    assert [m.event for m in by_type.messages] == [
        "repo.indexed",
        "repo.indexed",
        "repo.indexed",
        "event.applied",
    ]
    assert len(two.messages) == 3
    for subscriber in (everything, by_repo, by_plan, by_owner, by_type, two):
        subscriber.close()


def test_a_client_that_reconnects_with_last_event_id_gets_exactly_what_it_missed(
    server: HubServer, two_repos: tuple[GitRepo, GitRepo]
) -> None:
    demo, other = two_repos
    first = _stream(server)
    _edit(server, demo, "demo", "DEMO", status="done")
    seen = first.wait_for("repo.indexed", repo="demo")
    first.close()
    everything = _stream(server)

    _edit(server, demo, "demo", "DEMO", status="blocked")
    _edit(server, other, "other", "OTH", status="blocked")
    everything.wait_for("repo.indexed", repo="other")
    missed = list(everything.messages)

    again = _stream(server, "", **{"Last-Event-ID": str(seen.id)})
    again.wait(lambda ms: len(ms) >= len(missed), "the missed messages")
    by_since = _stream(server, f"?since={seen.id}&repo=other")
    by_since.wait(lambda ms: len(ms) >= 2, "the missed messages of other")
    _edit(server, demo, "demo", "DEMO", status="todo")  # live after the replay
    again.wait_for("repo.indexed", repo="demo", cause="file-edit")
    time.sleep(1.0)

    assert [(m.id, m.event) for m in again.messages[: len(missed)]] == [(m.id, m.event) for m in missed]
    assert _summary(again.messages[len(missed) :]) == [
        ("task.changed", "demo", "DEMO-WP-0001-T01", "file-edit"),
        ("repo.indexed", "demo", None, "file-edit"),
    ]
    assert [m.id for m in by_since.messages] == [m.id for m in missed if m.data["repo"] == "other"]
    for subscriber in (everything, again, by_since):
        subscriber.close()


def test_after_a_restart_ids_keep_rising_and_replay_still_works(
    server: HubServer, two_repos: tuple[GitRepo, GitRepo]
) -> None:
    demo, _other = two_repos
    before = _stream(server)
    _edit(server, demo, "demo", "DEMO", status="done")
    last = before.wait_for("repo.indexed", repo="demo")
    server.restart()
    assert before.ended.wait(WAIT)
    assert before.messages[-1].event == "dropped"  # told the hub was stopping

    after = _stream(server, f"?since={last.id}")
    _edit(server, demo, "demo", "DEMO", status="blocked")
    got = after.wait_for("repo.indexed", repo="demo", cause="file-edit")
    assert got.id is not None and last.id is not None and got.id > last.id
    assert _summary(after.messages) == [
        ("task.changed", "demo", "DEMO-WP-0001-T01", "file-edit"),
        ("repo.indexed", "demo", None, "file-edit"),
    ]
    replayed = _stream(server, "?since=0&types=task")
    replayed.wait(lambda ms: len(ms) >= 4, "the whole log's task changes")
    ids = [m.id for m in replayed.messages]
    assert ids == sorted(ids)
    assert [m.data["cause"] for m in replayed.messages] == [
        "repo-added",
        "repo-added",
        "file-edit",
        "file-edit",
    ]
    for subscriber in (after, replayed):
        subscriber.close()


def test_asking_for_more_than_the_log_keeps_first_gets_a_reset(server: HubServer) -> None:
    beyond = _stream(server, "?since=999999")
    reset = beyond.wait_for("reset")
    assert "reload" in reset.data["reason"]
    beyond.close()


def test_the_write_back_waits_for_the_fan_out_but_never_for_a_slow_subscriber(tmp_path: Path) -> None:
    """``ChangeLog.delivered`` (canon/ADR-038 "Delivery before write-back"): clear from an append
    until the subscribers that keep up took it; set with no subscriber; set even when a subscriber
    reads nothing (the write-back must not wait for it)."""
    log = ChangeLog(tmp_path / "changes.sqlite3")

    async def run() -> None:
        stream = Broadcaster(log, queue=10, poll_s=60, capacity=10, metrics=None)
        await stream.start()
        try:
            log.append([Change("relay.state", {"n": 0})])
            assert log.delivered.is_set()  # nobody subscribed: nothing to wait for
            reader = stream.subscribe(StreamFilter())  # may get n=0 too: not yet read when it came

            async def take(marker: bytes) -> None:
                while marker not in await asyncio.wait_for(reader.queue.get(), 10):
                    pass

            log.append([Change("relay.state", {"n": 1})])
            assert not log.delivered.is_set()  # appended, not yet sent
            await take(b'"n":1')
            assert await asyncio.to_thread(log.delivered.wait, 10)
            stream.subscribe(StreamFilter())  # reads nothing
            log.append([Change("relay.state", {"n": 2})])
            assert not log.delivered.is_set()
            await take(b'"n":2')
            assert await asyncio.to_thread(log.delivered.wait, 10)
        finally:
            await stream.stop()

    try:
        asyncio.run(run())
    finally:
        log.close()


def test_an_accepting_request_holds_the_write_back_until_its_message_is_sent(tmp_path: Path) -> None:
    """``Broadcaster.foreground`` (canon/ADR-044): while ``POST /events`` accepts, the gate the
    write-back waits at is shut, before anything is appended; it stays shut after the request
    until its message is sent, and opens then. With no subscriber nothing is held."""
    log = ChangeLog(tmp_path / "changes.sqlite3")

    async def run() -> None:
        stream = Broadcaster(log, queue=10, poll_s=60, capacity=10, metrics=None)
        await stream.start()
        try:
            with stream.foreground():
                assert log.delivered.is_set()  # nobody subscribed: the write-back runs on
            reader = stream.subscribe(StreamFilter())
            with stream.foreground():
                assert not log.delivered.is_set()  # shut before the request appended anything
                log.append([Change("event.accepted", {"key": "k1"})])
            assert not log.delivered.is_set()  # appended, not yet taken by the subscriber
            while b'"key":"k1"' not in await asyncio.wait_for(reader.queue.get(), 10):
                pass
            assert await asyncio.to_thread(log.delivered.wait, 10)
            with stream.foreground():  # a request that appends nothing (refused, duplicate)
                assert not log.delivered.is_set()
            assert log.delivered.is_set()
            with contextlib.suppress(RuntimeError), stream.foreground():  # one that fails
                raise RuntimeError
            assert log.delivered.is_set()
        finally:
            await stream.stop()

    try:
        asyncio.run(run())
    finally:
        log.close()


def test_messages_at_hand_reach_a_subscriber_together_and_a_burst_in_runs(tmp_path: Path) -> None:
    """The broadcaster offers the messages it has in a row (canon/ADR-044), so a stream finds them
    all queued at its next turn and sends them as one chunk; a burst gets turns every run of at
    most a quarter of the queue, so a subscriber that keeps up is never dropped."""
    from statehub.api.events import _gathered

    log = ChangeLog(tmp_path / "changes.sqlite3")

    async def run() -> None:
        stream = Broadcaster(log, queue=40, poll_s=60, capacity=10, metrics=None)
        await stream.start()
        try:
            reader = stream.subscribe(StreamFilter())
            chunks: list[list[int]] = []

            async def take(count: int) -> None:  # as a stream does: what is queued, at each turn
                while sum(map(len, chunks)) < count:
                    chunk = _gathered(reader, await asyncio.wait_for(reader.queue.get(), 10))
                    data = [line[6:] for line in chunk.split(b"\n") if line.startswith(b"data: ")]
                    chunks.append([json.loads(d)["n"] for d in data])

            log.append([Change("relay.state", {"n": n}) for n in range(5)])
            await take(5)
            assert chunks == [[0, 1, 2, 3, 4]]  # all five at its first turn, one chunk
            chunks.clear()
            log.append([Change("relay.state", {"n": n}) for n in range(5, 205)])
            await take(200)
            assert [n for chunk in chunks for n in chunk] == list(range(5, 205))
            assert not reader.dropped and len(chunks) > 1 and max(map(len, chunks)) <= 40

        finally:
            await stream.stop()

    try:
        asyncio.run(run())
    finally:
        log.close()


def test_a_subscriber_gets_what_queued_up_as_one_chunk_in_order_with_dropped_last() -> None:
    """``_gathered``: the frames queued behind the one taken go out with it, in order, up to a
    bound; a ``dropped`` message (always the last queued) stays last."""
    from statehub.api.events import _GATHER_BYTES, _gathered
    from statehub.changes import Stored
    from statehub.stream import RUN, Subscriber, frame

    async def run() -> None:
        subscriber = Subscriber(StreamFilter(), limit=1000)
        assert _gathered(subscriber, b"alone") == b"alone"
        for n in range(1, 4):
            stored = Stored(n, 0.0, "relay.state", None, None, (), json.dumps({"n": n}))
            assert subscriber.offer(stored, frame(stored.type, stored.id, stored.data))
        first = await subscriber.queue.get()
        chunk = _gathered(subscriber, first)
        numbers = [json.loads(line[6:])["n"] for line in chunk.split(b"\n") if line.startswith(b"data: ")]
        assert numbers == [1, 2, 3]
        assert subscriber.queue.empty()
        stored = Stored(4, 0.0, "relay.state", None, None, (), "{}")
        subscriber.offer(stored, frame(stored.type, stored.id, stored.data))
        subscriber.drop("test")  # what a full queue does: empty it, queue the final message alone
        chunk = _gathered(subscriber, await subscriber.queue.get())
        assert chunk.startswith(b"event: dropped") and chunk.count(b"event: ") == 1
        big = b"x" * (_GATHER_BYTES // 8)  # past the byte bound: a run of frames, no more
        fresh = Subscriber(StreamFilter(), limit=1000)
        for n in range(RUN + 5):
            fresh.queue.put_nowait(b"%d:" % n + big)
        chunk = _gathered(fresh, await fresh.queue.get())
        assert [part.split(b":")[0] for part in chunk.split(b"x") if part] == [b"%d" % n for n in range(RUN)]
        assert fresh.queue.qsize() == 5  # the rest goes in the next chunk, in order
        assert _gathered(fresh, await fresh.queue.get()).startswith(b"%d:" % RUN)

    asyncio.run(run())


def _slow_reader(server: HubServer) -> socket.socket:
    """A client that asks for the stream and then reads nothing (a tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(b"GET /events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
    return sock


def test_a_slow_subscriber_is_dropped_without_harming_the_others(
    make_repo: Callable[[str], GitRepo], served_settings: Settings, two_repos: tuple[GitRepo, GitRepo]
) -> None:
    demo, _other = two_repos
    with HubServer(_home(served_settings), env={"STATEHUB_STREAM_QUEUE": "300"}) as server:
        slow = _slow_reader(server)
        fast = _stream(server, "?types=task")
        count = 0
        # 6,000 task messages (about 3 MB) in steps the fast subscriber keeps up with: more than
        # the queue (300) and the loopback socket's buffers (a few MB once grown) hold for the slow one.
        for n in range(10, 25):
            demo.write(f"workplans/DEMO-WP-00{n}.md", _plan(f"DEMO-WP-00{n}", tasks=400))
            demo.commit("400 more tasks")
            assert httpx.post(f"{server.url}/repos/demo/refresh", timeout=WAIT).status_code == 200
            count += 400
            fast.wait(lambda ms, count=count: len(ms) >= count, f"{count} task messages")
        metrics = httpx.get(f"{server.url}/metrics", timeout=WAIT).text
        assert "statehub_stream_drops_total 1.0" in metrics
        received = b""
        slow.settimeout(WAIT)
        while b"event: dropped" not in received:
            chunk = slow.recv(65536)
            if not chunk:
                break
            received += chunk
        slow.close()
        assert b"event: dropped" in received
        assert b"reconnect with Last-Event-ID" in received
        assert len(fast.messages) == count  # every one, none lost for the fast subscriber
        assert all(m.event == "task.changed" for m in fast.messages)
        fast.close()


def test_a_burst_reaches_every_subscriber_exactly_once_in_order(
    server: HubServer, two_repos: tuple[GitRepo, GitRepo], served_settings: Settings
) -> None:
    """A burst of about 1,600 messages (offered in runs, sent in chunks of 64 KiB, canon/ADR-044)
    with an event accepted in the middle of it: every subscriber gets every id the log holds, once
    each and in order, the same as the others (bench/stream.py's burst check, small)."""
    import sqlite3

    from statehub.changes import changes_path

    demo, _other = two_repos
    subscribers = [_stream(server) for _ in range(6)]
    log = changes_path(served_settings.data_dir)

    def logged(after: int, through: int | None = None) -> list[int]:
        with contextlib.closing(sqlite3.connect(f"file:{log}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT id FROM change WHERE id > ? ORDER BY id", (after,)).fetchall()
        return [r[0] for r in rows if through is None or r[0] <= through]

    start = max(logged(0), default=0)  # the hub is quiet: the subscribers get what follows
    for n in range(10, 14):
        demo.write(f"workplans/DEMO-WP-00{n}.md", _plan(f"DEMO-WP-00{n}", tasks=400))
    demo.commit("1,600 more tasks")
    refreshed = threading.Thread(
        target=lambda: httpx.post(f"{server.url}/repos/demo/refresh", timeout=WAIT), daemon=True
    )
    refreshed.start()
    assert httpx.post(f"{server.url}/events", json=_event("ev-burst"), timeout=WAIT).status_code == 202
    refreshed.join(WAIT)
    last = max(s.wait_for("event.applied", key="ev-burst").id or 0 for s in subscribers)
    expected = logged(start, last)
    assert len(expected) > 1600
    for subscriber in subscribers:
        subscriber.wait(lambda ms: any((m.id or 0) >= last for m in ms), f"id {last}")
        got = [m.id for m in subscriber.messages if m.id is not None and m.id <= last]
        assert got == expected  # each once, in order, none missing
        subscriber.close()


@pytest.fixture
def secured_server(
    two_repos: tuple[GitRepo, GitRepo], served_settings: Settings
) -> Iterator[tuple[HubServer, Callable[..., str]]]:
    init_root_key(served_settings.root_key_file)
    root = load_root_key(served_settings.root_key_file)

    def token(right: str = "read", repos: tuple[str, ...] = ()) -> str:
        return mint(root, "agt-codex", right, repos).to_base64()

    with HubServer(_home(served_settings), env={"STATEHUB_AUTH": "required"}) as running:
        yield running, token


def test_a_repo_scoped_token_sees_only_its_repos(
    secured_server: tuple[HubServer, Callable[..., str]], two_repos: tuple[GitRepo, GitRepo]
) -> None:
    server, token = secured_server
    demo, other = two_repos
    admin = {"Authorization": f"Bearer {token('admin')}"}
    scoped = {"Authorization": f"Bearer {token('read', ('demo',))}"}
    assert httpx.get(f"{server.url}/events/stream", timeout=WAIT).status_code == 401
    refused = httpx.get(f"{server.url}/events/stream?repo=other", headers=scoped, timeout=WAIT)
    assert refused.status_code == 403
    assert refused.json()["status_code"] == 403

    everything = _stream(server, "", **admin)
    mine = _stream(server, "", **scoped)
    for slug, repo, prefix in (("other", other, "OTH"), ("demo", demo, "DEMO")):
        repo.write(f"workplans/{prefix}-WP-0001.md", _plan(f"{prefix}-WP-0001", status="done"))
        repo.commit("edit")
        assert httpx.post(f"{server.url}/repos/{slug}/refresh", headers=admin, timeout=WAIT).is_success
    everything.wait_for("repo.indexed", repo="demo")
    mine.wait_for("repo.indexed", repo="demo")
    replay = _stream(server, "?since=0", **scoped)
    replay.wait_for("repo.indexed", repo="demo", cause="file-edit")
    time.sleep(1.0)
    assert {m.data["repo"] for m in everything.messages} == {"demo", "other"}
    assert {m.data["repo"] for m in mine.messages} == {"demo"}
    assert {m.data["repo"] for m in replay.messages} == {"demo"}
    for subscriber in (everything, mine, replay):
        subscriber.close()


def test_a_repo_scoped_token_sees_only_its_repos_rooms(
    secured_server: tuple[HubServer, Callable[..., str]], two_repos: tuple[GitRepo, GitRepo]
) -> None:
    """Who edits what and the drafts, in ``GET /sync`` and ``room.changed``, are its repos' only."""
    server, token = secured_server
    editor = token("edit")
    scoped = {"Authorization": f"Bearer {token('read', ('other',))}"}
    everything = _stream(server, "?types=room.changed", Authorization=f"Bearer {token('admin')}")
    mine = _stream(server, "?types=room.changed", **scoped)

    async def visit(slug: str) -> None:
        client = await YClient(f"{server.ws_url}/sync/{slug}/statehub.toml?token={editor}").connect()
        await asyncio.wait_for(client.synced.wait(), WAIT)
        await asyncio.to_thread(everything.wait_for, "room.changed", repo=slug, open=True)
        await client.close()
        await asyncio.to_thread(everything.wait_for, "room.changed", repo=slug, open=False)

    asyncio.run(visit("demo"))
    asyncio.run(visit("other"))
    mine.wait_for("room.changed", repo="other", open=False)
    assert {m.data["repo"] for m in everything.messages} == {"demo", "other"}
    assert {m.data["repo"] for m in mine.messages} == {"other"}
    assert [m.data["people"] for m in mine.messages] == [["agt-codex"], []]
    listed = httpx.get(f"{server.url}/sync", headers=scoped, timeout=WAIT).json()
    assert {r["repo"] for r in listed["items"]} == {"other"} and listed["total"] == 2
    admin = httpx.get(f"{server.url}/sync", headers={"Authorization": f"Bearer {editor}"}, timeout=WAIT)
    assert {r["repo"] for r in admin.json()["items"]} == {"demo", "other"}
    for subscriber in (everything, mine):
        subscriber.close()


@pytest.mark.parametrize(
    ("query", "headers", "said"),
    [
        ("?types=task,bogus", {}, "starts no message type"),
        ("?since=abc", {}, "since"),
        ("?since=-1", {}, "since"),
        ("?" + "&".join(f"repo=r{i}" for i in range(51)), {}, "repo"),
        ("?repo=Not%20A%20Slug", {}, "not a repo slug"),
        ("", {"Last-Event-ID": "twelve"}, "last_event_id"),
    ],
)
def test_bad_parameters_answer_400_with_the_error_body(
    server: HubServer, query: str, headers: dict[str, str], said: str
) -> None:
    answer = httpx.get(f"{server.url}/events/stream{query}", headers=headers, timeout=WAIT)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["status_code"] == 400
    assert said.lower() in body["error"].lower()


def test_a_stream_ends_when_its_token_is_revoked_and_sends_nothing_after(
    secured_server: tuple[HubServer, Callable[..., str]],
    two_repos: tuple[GitRepo, GitRepo],
    served_settings: Settings,
) -> None:
    """Review of issue 14: the token was checked only when the stream opened, so a revoked
    token's stream kept carrying every change until the client left."""
    from biscuit_auth import Biscuit

    from statehub.auth.revocation import add_revocation

    server, token = secured_server
    demo, _other = two_repos
    admin = {"Authorization": f"Bearer {token('admin')}"}
    doomed = token("read", ("demo",))
    watcher = _stream(server, "", **admin)
    victim = _stream(server, "", Authorization=f"Bearer {doomed}")
    assert victim.status == 200
    root = load_root_key(served_settings.root_key_file)
    revocation = Biscuit.from_base64(doomed, root.public_key).revocation_ids[0]
    assert add_revocation(served_settings.revocation_file, revocation, "review 14")

    demo.write("workplans/DEMO-WP-0001.md", _plan("DEMO-WP-0001", status="done"))
    demo.commit("after the revocation")
    assert httpx.post(f"{server.url}/repos/demo/refresh", headers=admin, timeout=WAIT).is_success
    watcher.wait_for("repo.indexed", repo="demo", cause="file-edit")
    assert victim.ended.wait(WAIT), "the revoked token's stream is still open"
    assert [m.event for m in victim.messages] == ["dropped"]
    assert "revoked" in victim.messages[0].data["reason"]
    refused = httpx.get(
        f"{server.url}/events/stream", headers={"Authorization": f"Bearer {doomed}"}, timeout=WAIT
    )
    assert refused.status_code == 401
    watcher.close()


def test_a_stream_ends_when_its_token_expires(
    secured_server: tuple[HubServer, Callable[..., str]],
    two_repos: tuple[GitRepo, GitRepo],
    served_settings: Settings,
) -> None:
    import datetime as dt

    server, token = secured_server
    demo, _other = two_repos
    admin = {"Authorization": f"Bearer {token('admin')}"}
    root = load_root_key(served_settings.root_key_file)
    brief = mint(root, "agt-codex", "read", ("demo",), ttl=dt.timedelta(seconds=2)).to_base64()
    watcher = _stream(server, "", **admin)
    victim = _stream(server, "", Authorization=f"Bearer {brief}")
    assert victim.status == 200
    expired = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)
    while dt.datetime.now(dt.UTC) < expired:  # waits for the expiry, asserts nothing about time
        time.sleep(0.2)
    demo.write("workplans/DEMO-WP-0001.md", _plan("DEMO-WP-0001", status="done"))
    demo.commit("after the expiry")
    assert httpx.post(f"{server.url}/repos/demo/refresh", headers=admin, timeout=WAIT).is_success
    watcher.wait_for("repo.indexed", repo="demo", cause="file-edit")
    assert victim.ended.wait(WAIT), "the expired token's stream is still open"
    assert [m.event for m in victim.messages] == ["dropped"]
    watcher.close()


def test_one_token_holder_cannot_take_every_stream_slot(
    two_repos: tuple[GitRepo, GitRepo], served_settings: Settings
) -> None:
    """Review of issue 14: one read token could open STATEHUB_STREAM_SUBSCRIBERS streams and lock
    every other client of a fleet hub out (503 for all)."""
    init_root_key(served_settings.root_key_file)
    root = load_root_key(served_settings.root_key_file)
    greedy = {"Authorization": f"Bearer {mint(root, 'agt-greedy', 'read').to_base64()}"}
    other = {"Authorization": f"Bearer {mint(root, 'agt-other', 'read').to_base64()}"}
    env = {"STATEHUB_AUTH": "required", "STATEHUB_STREAM_PER_ACTOR": "2", "STATEHUB_STREAM_SUBSCRIBERS": "4"}
    with HubServer(_home(served_settings), env=env) as server:
        held = [_stream(server, "", **greedy) for _ in range(2)]
        assert all(s.status == 200 for s in held)
        refused = httpx.get(f"{server.url}/events/stream", headers=greedy, timeout=WAIT)
        assert refused.status_code == 503
        assert "STATEHUB_STREAM_PER_ACTOR" in refused.json()["error"]
        fine = _stream(server, "", **other)
        assert fine.status == 200
        held[0].close()
        fine.close()
