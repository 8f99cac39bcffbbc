"""Benchmark the collaborative rooms: edit latency with 50 clients in one room, memory per open room.

Run: ``.venv/bin/python bench/crdt.py`` (``--help`` for the knobs). It builds
throwaway git repos and a hub home under a temp dir, starts a real hub server
on a free loopback port, and prints:

- latency: 50 WebSocket clients in one room, each sending an edit every
  ``--interval`` seconds; for each edit, the time from its send until every
  other client has received it. p50 and p99, and p99's ratio to the 30 ms target.
- memory: 200 open rooms (100 repos x 2 manifests, one member each); the
  server's resident memory growth divided by 200.

``--replicas URL`` (a PostgreSQL server the bench may CREATE DATABASE on, e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``) measures rooms across
replicas instead (canon/ADR-051): two hub processes over one hub home with their
state in a fresh database, ``--clients`` split between them in one room; each
edit's time to reach every other client, split into receivers on the sender's
replica and on the other one: p50 and p95 of each.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import websockets  # noqa: E402
from pycrdt import Doc, Text, create_sync_message, create_update_message  # noqa: E402

from bench._databases import cache_url  # noqa: E402
from statehub.hub import Hub  # noqa: E402
from statehub.settings import Settings  # noqa: E402
from sync.seed import TEXT_NAME  # noqa: E402
from tests.hubserver import HubServer  # noqa: E402

TARGET_P99_MS = 30.0
MANIFEST = (
    '[repo]\nslug = "{slug}"\ntitle = "Benchmark repo {slug}"\nprefixes = ["B{n}"]\ndefault_branch = "main"\n'
)
FLEET = "".join(
    f'[[machines]]\nname = "node{i:02d}"\naddress = "203.0.113.{i}"\nrole = "production-home"\n\n'
    for i in range(12)
) + "".join(
    f'[[workloads]]\nname = "svc{i:02d}"\ncurrent_host = "node{i % 12:02d}"\n'
    f'target_host = "node{(i + 1) % 12:02d}"\n'
    f'wave = {i % 4}\nstate = "running"\n\n'
    for i in range(20)
)


def make_repos(base: Path, count: int) -> Path:
    home = base / "hub-home"
    hub = Hub(Settings.from_env({"STATEHUB_HOME": str(home)}))
    for n in range(count):
        root = base / "repos" / f"r{n:03d}"
        (root / "registry").mkdir(parents=True)
        (root / "statehub.toml").write_text(MANIFEST.format(slug=f"r{n:03d}", n=n))
        (root / "registry" / "fleet.toml").write_text(FLEET)
        for args in (["init", "-q", "-b", "main"], ["add", "-A"]):
            subprocess.run(["git", *args], cwd=root, check=True)
        subprocess.run(
            ["git", "-c", "user.name=bench", "-c", "user.email=b@x.invalid", "commit", "-qm", "start"],
            cwd=root,
            check=True,
        )
        hub.register(root)
    hub.close()
    return home


class Client:
    def __init__(self, index: int, url: str, pending: dict[bytes, list[Any]], done: list[float]) -> None:
        self.index = index
        self.url = url
        self.pending = pending
        self.done = done
        self.doc: Doc[Any] = Doc()
        self.text = self.doc.get(TEXT_NAME, type=Text)
        self.synced = asyncio.Event()
        self.ws: Any = None
        self.reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self.ws = await websockets.connect(self.url, max_size=None, compression=None)
        self.reader = asyncio.create_task(self.read())
        await self.ws.send(create_sync_message(Doc()))

    async def read(self) -> None:
        try:
            async for message in self.ws:
                now = time.perf_counter()
                entry = self.pending.get(message)
                if entry is not None:
                    entry[1] -= 1
                    if entry[1] == 0:
                        self.done.append(now - entry[0])
                        del self.pending[message]
                elif message[:2] == b"\x00\x01":
                    self.synced.set()
        except websockets.ConnectionClosed:
            pass

    async def edit(self, seq: int, others: int) -> None:
        before = self.doc.get_state()
        self.text.insert(0, f"# client {self.index} edit {seq}\n")
        message = create_update_message(self.doc.get_update(before))
        self.pending[message] = [time.perf_counter(), others]
        await self.ws.send(message)


async def latency(server: HubServer, clients: int, edits: int, interval: float) -> dict[str, float]:
    pending: dict[bytes, list[Any]] = {}
    done: list[float] = []
    url = f"{server.ws_url}/sync/r000/statehub.toml?user=bench"
    members = [Client(i, url, pending, done) for i in range(clients)]
    for member in members:
        await member.connect()
    await asyncio.wait_for(asyncio.gather(*(m.synced.wait() for m in members)), 30)

    async def run(member: Client) -> None:
        await asyncio.sleep(interval * member.index / clients)  # spread the clients over one interval
        for seq in range(edits):
            started = time.perf_counter()
            await member.edit(seq, clients - 1)
            await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))

    started = time.perf_counter()
    await asyncio.gather(*(run(m) for m in members))
    deadline = time.perf_counter() + 30
    while pending and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    for member in members:
        await member.ws.close()
    ms = sorted(d * 1000 for d in done)
    return {
        "edits": len(ms),
        "lost": len(pending),
        "p50": statistics.median(ms),
        "p99": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
        "max": ms[-1],
        "edits_per_s": len(ms) / elapsed,
    }


class Receiver(Client):
    """A client that stamps when each other client's edit arrives (by the edit's message bytes)."""

    def __init__(self, index: int, url: str, sent: dict[bytes, tuple[int, float]], got: list[Any]) -> None:
        super().__init__(index, url, {}, [])
        self.sent = sent
        self.got = got

    async def read(self) -> None:
        try:
            async for message in self.ws:
                now = time.perf_counter()
                origin = self.sent.get(message)
                if origin is not None:
                    self.got.append((origin[0], self.index, now - origin[1]))
                elif message[:2] == b"\x00\x01":
                    self.synced.set()
        except websockets.ConnectionClosed:
            pass

    async def send_edit(self, seq: int) -> None:
        before = self.doc.get_state()
        self.text.insert(0, f"# client {self.index} edit {seq}\n")
        message = create_update_message(self.doc.get_update(before))
        self.sent[message] = (self.index, time.perf_counter())
        await self.ws.send(message)


async def replica_latency(
    servers: list[HubServer], clients: int, edits: int, interval: float
) -> dict[str, dict[str, float]]:
    """``clients`` in one room, alternately on each server; every edit's delivery time per receiver,
    grouped by whether the receiver is on the sender's replica."""
    sent: dict[bytes, tuple[int, float]] = {}
    got: list[tuple[int, int, float]] = []
    members = [
        Receiver(i, f"{servers[i % len(servers)].ws_url}/sync/r000/statehub.toml?user=bench", sent, got)
        for i in range(clients)
    ]
    for member in members:
        await member.connect()
    await asyncio.wait_for(asyncio.gather(*(m.synced.wait() for m in members)), 30)

    async def run(member: Receiver) -> None:
        await asyncio.sleep(interval * member.index / clients)
        for seq in range(edits):
            started = time.perf_counter()
            await member.send_edit(seq)
            await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))

    await asyncio.gather(*(run(m) for m in members))
    expected = clients * edits * (clients - 1)
    deadline = time.perf_counter() + 30
    while len(got) < expected and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    for member in members:
        await member.ws.close()
    groups: dict[str, list[float]] = {"same replica": [], "other replica": []}
    for sender, receiver, seconds in got:
        same = sender % len(servers) == receiver % len(servers)
        groups["same replica" if same else "other replica"].append(seconds * 1000)
    found = {}
    for name, values in groups.items():
        ms = sorted(values)
        if ms:
            found[name] = {
                "n": len(ms),
                "p50": statistics.median(ms),
                "p95": ms[min(len(ms) - 1, int(len(ms) * 0.95))],
                "max": ms[-1],
            }
    found["lost"] = {"n": expected - len(got)}
    return found


def replicas(args: argparse.Namespace) -> None:
    """Two replicas over one home, their state in a fresh PostgreSQL database (``--replicas URL``)."""
    with (
        tempfile.TemporaryDirectory(prefix="statehub-bench-") as tmp,
        cache_url(args.replicas, Path(tmp)) as url,
    ):
        home = make_repos(Path(tmp), 1)
        env = {"STATEHUB_STATE_URL": url}
        one = HubServer(home, env=env).start()
        two = HubServer(home, env=env)
        two.log = home / "server-2.log"
        try:
            two.start()
            found = asyncio.run(replica_latency([one, two], args.clients, args.edits, args.interval))
        finally:
            two.stop()
            one.stop()
    print(
        f"rooms across replicas: {args.clients} clients in one room, half on each of 2 replicas, "
        f"one edit per client every {args.interval:g} s ({found['lost']['n']:.0f} deliveries missing)"
    )
    for name in ("same replica", "other replica"):
        if name in found:
            row = found[name]
            print(
                f"  send -> a client on the {name}: p50 {row['p50']:.1f} ms, p95 {row['p95']:.1f} ms, "
                f"max {row['max']:.1f} ms ({row['n']:.0f} deliveries)"
            )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def memory(server: HubServer, repos: int) -> dict[str, float]:
    assert server.process is not None
    pid = server.process.pid
    warm = await websockets.connect(f"{server.ws_url}/sync/r000/statehub.toml", max_size=None)
    await warm.send(create_sync_message(Doc()))
    await warm.recv()
    await asyncio.sleep(0.5)
    before = rss_mb(pid)
    sockets = []
    for n in range(1, repos):
        for path in ("statehub.toml", "registry/fleet.toml"):
            ws = await websockets.connect(f"{server.ws_url}/sync/r{n:03d}/{path}", max_size=None)
            await ws.send(create_sync_message(Doc()))
            await ws.recv()
            sockets.append(ws)
    await asyncio.sleep(1.0)
    after = rss_mb(pid)
    rooms = len(sockets)
    for ws in [warm, *sockets]:
        await ws.close()
    return {"rooms": rooms, "before_mb": before, "after_mb": after, "per_room_mb": (after - before) / rooms}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--edits", type=int, default=20, help="edits per client")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between one client's edits")
    parser.add_argument("--rooms", type=int, default=200, help="open rooms for the memory figure (even)")
    parser.add_argument(
        "--replicas",
        metavar="POSTGRESQL_URL",
        default=None,
        help="measure one room across two replicas with their state on this PostgreSQL server instead",
    )
    args = parser.parse_args()
    if args.replicas:
        replicas(args)
        return
    with tempfile.TemporaryDirectory(prefix="statehub-bench-") as tmp:
        home = make_repos(Path(tmp), max(1, args.rooms // 2) + 1)
        with HubServer(home) as server:
            lat = asyncio.run(latency(server, args.clients, args.edits, args.interval))
        with HubServer(home) as server:
            mem = asyncio.run(memory(server, max(1, args.rooms // 2) + 1))
    print(
        f"latency: {args.clients} clients in one room, one edit per client every {args.interval:g} s "
        f"({lat['edits_per_s']:.0f} edits/s, {lat['edits']:.0f} edits, "
        f"{lat['lost']:.0f} not delivered to all)"
    )
    print(
        f"  send -> received by all {args.clients - 1} others: "
        f"p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, max {lat['max']:.1f} ms; "
        f"p99 / target {TARGET_P99_MS:.0f} ms = {lat['p99'] / TARGET_P99_MS:.2f}"
    )
    print(
        f"memory: {mem['rooms']:.0f} open rooms (one member each): server RSS {mem['before_mb']:.1f} -> "
        f"{mem['after_mb']:.1f} MB, {mem['per_room_mb'] * 1024:.0f} KB per room"
    )


if __name__ == "__main__":
    main()
