"""Change stream benchmark: 200 subscribers of ``GET /events/stream`` on loopback, a real hub over the
74-repo corpus (bench/corpus.py), beside a bare Litestar SSE fan-out measured in the same run.

    .venv/bin/python bench/stream.py [--subscribers 200] [--saves 30] [--events 50]

What it prints:

* **save -> delivery**: a workplan file rewritten on disk (a task's title changed), the hub's
  file watcher re-indexing it, until its ``task.changed`` reached each subscriber: p50/p95 over
  every (save, subscriber), and of the time until the last subscriber had it. Target p95 <= 150 ms.
* **event -> delivery**: ``POST /events`` (a task.status event) until its ``event.accepted``
  reached each subscriber. Target p95 <= 50 ms.
* the hub's resident memory (VmRSS) with no subscriber and with all of them;
* a slow subscriber (connected, reading nothing): the others' event latency with it there; then a
  burst of about 1,500 changes: whether every other subscriber got every message the change log
  holds for it, by id, once each and in order, and whether the slow one was dropped
  (``statehub_stream_drops_total``; with the default queue of 1000 and a loopback socket's
  buffers, a burst this size may not be enough: tests/statehub/test_stream.py shows the drop
  with a small queue);
* the floor: the bare fan-out (``bench/bare_stream_app.py``: ``POST /publish`` puts one frame in
  every subscriber's queue) to the same number of subscribers by the same client, and each hub
  figure's ratio to it.

The client is one asyncio process reading raw sockets (no SSE library), timing the first byte
sequence that carries each message's marker.

    .venv/bin/python bench/stream.py --replicas postgresql://postgres@127.0.0.1:5432/postgres

measures instead two hub processes on one data dir whose change log is in the PostgreSQL state
schema of a fresh database made on that server (canon/ADR-050), ``--subscribers`` on each:
``POST /events`` to one, until its ``event.accepted`` reached each subscriber of the same replica
and of the other one (which learns of it by ``NOTIFY``; its poll, ``STATEHUB_STREAM_POLL``, is
left at its default 0.5 s: without the notification the other replica would take up to that).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _hubs import free_port, start_hub
from corpus import build_corpus

from statehub.hub import Hub
from statehub.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Iterator


@dataclass
class Client:
    """One subscriber: when it first saw each marker (perf_counter seconds) and what it read.

    Messages are counted and searched whole: a read ends wherever the socket's bytes end, which
    under a burst is anywhere inside a message (a read of 64 KiB behind a chunk of more), so a
    pattern looked for in each read alone (``\nevent: ``, a marker) is missed when a read boundary
    cuts it. ``rest`` keeps the bytes after the last complete message for the next read."""

    seen: dict[bytes, float] = field(default_factory=dict)
    messages: int = 0
    ids: list[int] = field(default_factory=list)
    """Every message id received, in order (what exactly-once is checked on)."""
    dropped: bool = False
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    rest: bytes = b""

    def take(self, chunk: bytes, now: float) -> None:
        """Account for the complete SSE messages that ``chunk`` ends (``\n\n`` closes one; the
        response's chunked-encoding size lines sit between messages, before an ``id:`` line)."""
        data = self.rest + chunk
        end = data.rfind(b"\n\n")
        if end < 0:
            self.rest = data
            return
        self.rest = data[end + 2 :]
        for message in data[: end + 2].split(b"\n\n"):
            kind = _EVENT.search(message)
            if kind is None:
                continue  # a comment (keepalive, the stream's opening) or the tail of the split
            self.messages += 1
            if kind.group(1) == b"dropped":
                self.dropped = True
            if (ident := _ID.search(message)) is not None:
                self.ids.append(int(ident.group(1)))
            for marker in _MARKER.findall(message):
                self.seen.setdefault(marker, now)


_MARKER = re.compile(rb"bench-[a-z]+-\d+")
_EVENT = re.compile(rb"(?:^|\n)event: ([^\n]*)")
_ID = re.compile(rb"(?:^|\n)id: (\d+)\n")


async def subscribe(port: int, path: str, client: Client) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    try:
        while True:
            chunk = await reader.read(1 << 16)
            if not chunk:
                return
            client.opened.set()
            client.take(chunk, time.perf_counter())
    finally:
        writer.close()


async def stop(tasks: list[asyncio.Task[None]]) -> None:
    """Close every subscriber's connection (a server waits for open responses before it stops)."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def slow_reader(port: int) -> socket.socket:
    """A subscriber that reads nothing after asking (a small receive buffer, like a stuck client)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return sock


async def delivered(
    clients: list[Client], marker: bytes, started: float, timeout: float = 20.0
) -> list[float]:
    """Seconds from ``started`` until each client saw ``marker``."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if all(marker in c.seen for c in clients):
            return [c.seen[marker] - started for c in clients]
        await asyncio.sleep(0.002)
    missing = sum(marker not in c.seen for c in clients)
    raise SystemExit(f"{missing} subscribers never got {marker!r}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Figures:
    each: list[float] = field(default_factory=list)
    last: list[float] = field(default_factory=list)

    def add(self, latencies: list[float]) -> None:
        self.each += latencies
        self.last.append(max(latencies))

    def line(self, what: str, floor: Figures | None = None, target: float | None = None) -> str:
        p50, p95 = pct(self.each, 0.5) * 1000, pct(self.each, 0.95) * 1000
        l50, l95 = pct(self.last, 0.5) * 1000, pct(self.last, 0.95) * 1000
        text = (
            f"{what}: p50 {p50:.1f} ms, p95 {p95:.1f} ms; last subscriber p50 {l50:.1f} ms, p95 {l95:.1f} ms"
        )
        if floor is not None:
            f95 = pct(floor.each, 0.95) * 1000
            text += f"; p95/floor p95 {p95 / f95:.1f}x"
        if target is not None:
            text += f"; target p95 <= {target:g} ms: {'met' if p95 <= target else 'NOT met'}"
        return text


async def connect(port: int, path: str, count: int) -> tuple[list[Client], list[asyncio.Task[None]]]:
    clients = [Client() for _ in range(count)]
    tasks = []
    for client in clients:
        tasks.append(asyncio.create_task(subscribe(port, path, client)))
        await asyncio.sleep(0)
    await asyncio.wait_for(asyncio.gather(*(c.opened.wait() for c in clients)), 60)
    return clients, tasks


async def floor_run(args: argparse.Namespace, work: Path) -> tuple[Figures, float]:
    port = free_port()
    log = (work / "bare.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("bare_stream_app.py")), str(port)],
        stdout=log,
        stderr=log,
    )
    try:
        for _ in range(600):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        clients, tasks = await connect(port, "/stream", args.subscribers)
        figures = Figures()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for n in range(args.events):
                marker = f"bench-floor-{n}"
                started = time.perf_counter()
                await http.post("/publish", json={"key": marker, "kind": "task.status", "repo": "repo-000"})
                figures.add(await delivered(clients, marker.encode(), started))
                await asyncio.sleep(0.05)
        memory = rss_mb(process.pid)
        await stop(tasks)
        return figures, memory
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _retitle(path: Path, marker: str) -> None:
    text = path.read_text(encoding="utf-8")
    head, sep, rest = text.partition("[[tasks]]")
    if not sep:
        raise SystemExit(f"{path} has no task")
    rest = re.sub(r'title = "[^"]*"', f'title = "{marker}"', rest, count=1)
    path.write_text(head + sep + rest, encoding="utf-8")


async def hub_run(args: argparse.Namespace, work: Path) -> dict[str, object]:
    corpus = build_corpus(work / "corpus")
    home = work / "home"
    settings = Settings.from_env({"STATEHUB_HOME": str(home)})
    started = time.perf_counter()
    with Hub(settings) as hub:
        for repo in corpus.repos:
            hub.register(repo)
    print(
        f"corpus: {len(corpus.repos)} repos, {corpus.workplans} workplans, {corpus.tasks} tasks; "
        f"registered in {time.perf_counter() - started:.1f} s"
    )
    port = free_port()
    process = start_hub(home, port, work / "hub.log", STATEHUB_WATCH="1")
    out: dict[str, object] = {}
    try:
        await asyncio.sleep(2)  # the watcher opens its watches
        out["rss_0"] = rss_mb(process.pid)
        clients, tasks = await connect(port, "/events/stream", args.subscribers)
        await asyncio.sleep(1)
        out["rss_n"] = rss_mb(process.pid)

        saves = Figures()
        walls: dict[str, tuple[float, float]] = {}
        """marker -> (wall clock when it was saved or sent, seconds until the last subscriber had it)"""
        for n in range(args.saves):
            repo = corpus.repos[(n * 7) % len(corpus.repos)]
            plans = sorted((repo / "workplans").glob("R*-WP-*.md"))
            marker = f"bench-save-{n}"
            wall, started = time.time(), time.perf_counter()
            _retitle(plans[n % len(plans)], marker)
            latencies = await delivered(clients, marker.encode(), started)
            saves.add(latencies)
            walls[marker] = (wall, max(latencies))
            await asyncio.sleep(0.2)
        out["saves"] = saves

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:

            async def events(figures: Figures, count: int, tag: str) -> None:
                for n in range(count):
                    r = (n * 11) % len(corpus.repos)
                    marker = f"bench-{tag}-{n}"
                    event = {
                        "key": marker,
                        "kind": "task.status",
                        "actor": "bench",
                        "workplan": f"R{r:03d}-WP-0001",
                        "task": "T01",
                        "status": ("todo", "blocked", "in-progress")[n % 3],
                    }
                    wall, started = time.time(), time.perf_counter()
                    answer = await http.post("/events", json=event)
                    if answer.status_code != 202:
                        raise SystemExit(f"POST /events: {answer.status_code} {answer.text}")
                    latencies = await delivered(clients, marker.encode(), started)
                    figures.add(latencies)
                    walls[marker] = (wall, max(latencies))
                    await asyncio.sleep(0.05)

            accepted = Figures()
            await events(accepted, args.events, "event")
            out["events"] = accepted

            slow = slow_reader(port)
            await asyncio.sleep(0.5)
            with_slow = Figures()
            await events(with_slow, args.events, "slow")
            out["with_slow"] = with_slow

            # A burst: every task and workplan title of 5 repos changes at once (~1,500 messages).
            changes = home / "data" / "changes.sqlite3"
            burst_repos = [_slug(repo) for repo in corpus.repos[60:65]]
            start_id = _logged(changes, "SELECT coalesce(max(id), 0) FROM change")[0]
            burst_started = time.perf_counter()
            for repo in corpus.repos[60:65]:
                for plan in (repo / "workplans").glob("R*-WP-*.md"):
                    text = plan.read_text(encoding="utf-8")
                    plan.write_text(text.replace('title = "', 'title = "B '), encoding="utf-8")
            marker = "bench-burst-0"
            await asyncio.sleep(1.0)
            started = time.perf_counter()
            await http.post(
                "/events",
                json={
                    "key": marker,
                    "kind": "task.status",
                    "actor": "bench",
                    "workplan": "R001-WP-0001",
                    "task": "T01",
                    "status": "done",
                },
            )
            try:
                await delivered(clients, marker.encode(), started, timeout=60)
            except SystemExit as missed:
                print(f"burst: {missed}")
            # The burst ends with each repo's repo.indexed (its last message); then every subscriber
            # must hold exactly the ids the change log holds from the burst's start to there.
            expected: list[int] = []
            deadline = time.perf_counter() + 60
            while time.perf_counter() < deadline:
                if not expected:
                    ends = {
                        repo: end
                        for repo, end in _logged(
                            changes,
                            "SELECT repo, max(id) FROM change WHERE type = 'repo.indexed' AND id > ? "
                            "GROUP BY repo",
                            start_id,
                            rows=True,
                        )
                        if repo in burst_repos
                    }
                    if len(ends) == len(burst_repos):
                        through = max(ends.values())
                        expected = _logged(
                            changes, "SELECT id FROM change WHERE id > ? AND id <= ?", start_id, through
                        )
                if expected and all(c.ids and c.ids[-1] >= expected[-1] for c in clients):
                    break
                await asyncio.sleep(0.2)
            got_ids = [[i for i in c.ids if start_id < i <= (expected or [0])[-1]] for c in clients]
            out["burst_messages"] = [len(ids) for ids in got_ids]
            out["burst_ids"] = (
                len(expected),
                sum(len(set(ids)) != len(ids) for ids in got_ids),  # subscribers with an id twice
                sum(not set(expected) <= set(ids) for ids in got_ids),  # subscribers missing one
                sum(ids != sorted(ids) for ids in got_ids),  # subscribers given ids out of order
            )
            out["burst_s"] = time.perf_counter() - burst_started
            metrics = (await http.get("/metrics")).text
            drops = re.search(r"^statehub_stream_drops_total (\S+)$", metrics, re.MULTILINE)
            out["drops"] = float(drops.group(1)) if drops else float("nan")
            slow.setblocking(False)
            got = b""
            with contextlib.suppress(BlockingIOError):
                while chunk := slow.recv(1 << 20):
                    got += chunk
            out["slow_told"] = b"event: dropped" in got or b"event: dropped" in _drain(slow)
            slow.close()
            out["dropped_flags"] = sum(c.dropped for c in clients)
            out["rss_end"] = rss_mb(process.pid)
        await stop(tasks)
    finally:
        process.terminate()
        process.wait(20)
    out["split"] = _split(home / "data" / "changes.sqlite3", walls)
    return out


def _slug(repo: Path) -> str:
    found = re.search(
        r'^slug = "([^"]+)"', (repo / "statehub.toml").read_text(encoding="utf-8"), re.MULTILINE
    )
    if found is None:
        raise SystemExit(f"{repo} names no slug")
    return found.group(1)


def _logged(log: Path, query: str, *args: object, rows: bool = False) -> list[Any]:
    """The change log's answer to ``query`` (read-only, beside the running hub): first columns, or rows."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"file:{log}?mode=ro", uri=True)) as db:
        found = db.execute(query, args).fetchall()
    return found if rows else [row[0] for row in found]


def _split(log: Path, walls: dict[str, tuple[float, float]]) -> dict[str, tuple[list[float], list[float]]]:
    """Per kind of trial (save, event): seconds from the change to its message being logged (the
    log's ``at``, the same machine's clock), and from then until the last subscriber had it."""
    import sqlite3

    split: dict[str, tuple[list[float], list[float]]] = {}
    with contextlib.closing(sqlite3.connect(log)) as db:
        for marker, (wall, total) in walls.items():
            found = db.execute("SELECT min(at) FROM change WHERE data LIKE ?", (f'%"{marker}"%',)).fetchone()[
                0
            ]
            if found is None:
                continue
            kind = marker.split("-")[1]
            logged, sent = split.setdefault(kind, ([], []))
            logged.append(found - wall)
            sent.append(total - (found - wall))
    return split


def _drain(sock: socket.socket) -> bytes:
    sock.setblocking(True)
    sock.settimeout(5)
    got = b""
    with contextlib.suppress(OSError):
        while b"event: dropped" not in got and (chunk := sock.recv(1 << 20)):
            got += chunk
    return got


async def replica_run(args: argparse.Namespace, work: Path, state_url: str) -> tuple[Figures, Figures]:
    """``POST /events`` to replica one; delivery to the subscribers of one (same) and two (other)."""
    corpus = build_corpus(work / "corpus", repos=args.repos)
    home = work / "home"
    settings = Settings.from_env({"STATEHUB_HOME": str(home), "STATEHUB_STATE_URL": state_url})
    with Hub(settings) as hub:
        for repo in corpus.repos:
            hub.register(repo)
    ports = [free_port(), free_port()]
    env = {"STATEHUB_STATE_URL": state_url}
    processes = [start_hub(home, port, work / f"hub-{port}.log", **env) for port in ports]
    same, other = Figures(), Figures()
    try:
        clients: list[list[Client]] = []
        tasks: list[asyncio.Task[None]] = []
        for port in ports:
            found, opened = await connect(port, "/events/stream", args.subscribers)
            clients.append(found)
            tasks += opened
        await asyncio.sleep(1)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports[0]}", timeout=30) as http:
            for n in range(args.events):
                r = (n * 11) % len(corpus.repos)
                marker = f"bench-replica-{n}"
                event = {
                    "key": marker,
                    "kind": "task.status",
                    "actor": "bench",
                    "workplan": f"R{r:03d}-WP-0001",
                    "task": "T01",
                    "status": ("todo", "blocked", "in-progress")[n % 3],
                }
                started = time.perf_counter()
                answer = await http.post("/events", json=event)
                if answer.status_code != 202:
                    raise SystemExit(f"POST /events: {answer.status_code} {answer.text}")
                here, there = await asyncio.gather(
                    delivered(clients[0], marker.encode(), started),
                    delivered(clients[1], marker.encode(), started),
                )
                same.add(here)
                other.add(there)
                await asyncio.sleep(0.05)
        await stop(tasks)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(20)
    return same, other


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A database of its own on the server of ``admin_url`` (a libpq URL), dropped afterwards."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    name = f"statehub_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def replicas_main(args: argparse.Namespace) -> int:
    with (
        tempfile.TemporaryDirectory(prefix="statehub-stream-bench-") as tmp,
        fresh_database(args.replicas) as url,
    ):
        same, other = await replica_run(args, Path(tmp), url)
    n = args.subscribers
    print(
        f"two replicas, one data dir, change log in PostgreSQL; {n} subscribers on each; {args.repos} repos"
    )
    print(same.line(f"POST /events to replica one -> event.accepted at its own {n} subscribers"))
    print(other.line(f"POST /events to replica one -> event.accepted at replica two's {n} subscribers"))
    o95, s95 = pct(other.each, 0.95), pct(same.each, 0.95)
    print(f"other replica p95 / same replica p95: {o95 / s95:.2f}x (+{(o95 - s95) * 1000:.1f} ms)")
    return 0


async def main_async(args: argparse.Namespace) -> int:
    if args.replicas:
        return await replicas_main(args)
    with tempfile.TemporaryDirectory(prefix="statehub-stream-bench-") as tmp:
        work = Path(tmp)
        floor, floor_rss = await floor_run(args, work)
        hub = await hub_run(args, work)
    n = args.subscribers
    saves, events, with_slow = hub["saves"], hub["events"], hub["with_slow"]
    assert isinstance(saves, Figures) and isinstance(events, Figures) and isinstance(with_slow, Figures)
    print(f"subscribers: {n} on loopback; {os.cpu_count()} cores shared with the client")
    print(floor.line(f"floor (bare Litestar SSE fan-out, POST /publish -> {n} subscribers)"))
    print(saves.line("save -> task.changed at every subscriber (watcher on)", floor, 150))
    print(events.line("POST /events -> event.accepted at every subscriber", floor, 50))
    print(with_slow.line("the same with one slow subscriber connected", floor))
    e95, s95 = pct(events.each, 0.95), pct(with_slow.each, 0.95)
    print(
        f"slow subscriber: others' p95 {s95 * 1000:.1f} ms vs {e95 * 1000:.1f} ms without ({s95 / e95:.2f}x)"
    )
    counts, burst_ids = hub["burst_messages"], hub["burst_ids"]
    assert isinstance(counts, list) and isinstance(burst_ids, tuple)
    ids, twice, missing, disorder = burst_ids
    print(
        f"burst of {ids} messages (the change log's, through each burst repo's repo.indexed): the fast "
        f"subscribers got {min(counts)}..{max(counts)}; subscribers with an id twice: {twice}, missing "
        f"one: {missing}, given ids out of order: {disorder}; drops counted {hub['drops']:g}, the slow one "
        f"told 'dropped': {hub['slow_told']}, fast ones dropped: {hub['dropped_flags']}; burst delivered "
        f"in {hub['burst_s']:.1f} s"
    )
    split = hub["split"]
    assert isinstance(split, dict)
    for kind, (logged, sent) in split.items():
        to_log = f"p50 {pct(logged, 0.5) * 1000:.1f} ms, p95 {pct(logged, 0.95) * 1000:.1f} ms"
        to_all = f"p50 {pct(sent, 0.5) * 1000:.1f} ms, p95 {pct(sent, 0.95) * 1000:.1f} ms"
        print(f"  {kind}: to the change log {to_log}; from the log to the last subscriber {to_all}")
    rss_0, rss_n, rss_end = hub["rss_0"], hub["rss_n"], hub["rss_end"]
    assert isinstance(rss_0, float) and isinstance(rss_n, float) and isinstance(rss_end, float)
    print(
        f"hub RSS: {rss_0:.0f} MB with no subscriber (after its start's reconcile), {rss_n:.0f} MB with {n}, "
        f"{rss_end:.0f} MB after every run above; bare fan-out app with {n}: {floor_rss:.0f} MB"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--saves", type=int, default=30)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument(
        "--replicas",
        metavar="POSTGRES_URL",
        help="measure two replicas on a fresh database of this server instead (module docstring)",
    )
    parser.add_argument("--repos", type=int, default=74, help="corpus repos (--replicas only)")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
