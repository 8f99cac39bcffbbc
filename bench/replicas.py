"""Replicas benchmark (issue 16): events/s with 1, 2 and 3 ``statehub serve --profile fleet`` replicas on
one home and one PostgreSQL database, and stream delivery across them, each beside a bare floor
measured in the same run.

    .venv/bin/python bench/replicas.py [--replicas 1,2,3] [--events 2000] [--stream 40]
                                       [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

For each number of replicas, on a fresh database and a fresh corpus (bench/_events_corpus.py: 12 repos
of 3 workplans):

* **events/s**: ``--events`` events (90% progress notes, 10% new tasks, every one changing its file)
  and a tenth of them again (exact resends), posted in batches of 50 by 4 client threads, each batch
  to the next replica (tests/statehub/replicas.py's ``RoundRobin``), timed until the write buffer has
  nothing pending; checked exactly-once by counting ``Statehub-Event`` trailers (one per key).
* **stream delivery**: ``--stream`` single events, each posted to the next replica, from just before
  the POST until its ``event.accepted`` reached one subscriber of ``GET /events/stream`` on every
  replica: p50/p95 over every (event, subscriber), and p95 for the subscriber on the replica that
  took the POST apart from those on the others (another replica learns of it by reading the shared
  change log).
* **the floor**: the same client against as many processes of ``bench/bare_replica_app.py`` (Litestar
  + psycopg: one INSERT of the batch and a NOTIFY in one transaction; each process LISTENs and fans
  out to its subscribers), on a fresh database of the same server; each hub figure's ratio to it.

Every process runs on this machine's cores, beside the client.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _databases import DEFAULT_POSTGRES_URL, cache_url
from _events_corpus import make_corpus
from _hubs import count_trailers, free_port
from sqlalchemy import create_engine, text
from stream import pct

from tests.statehub.replicas import Replicas, RoundRobin, StreamReader, note_events, send_load, with_resends

BATCH = 50
THREADS = 4
REPOS = 12


@dataclass
class Run:
    """One side (hub or floor) with one number of replicas."""

    seconds: float = 0.0
    events: int = 0
    exactly_once: bool = True
    same: list[float] = field(default_factory=list)
    """Seconds to the subscriber on the replica that took the POST."""
    other: list[float] = field(default_factory=list)
    """Seconds to the subscribers on the other replicas."""

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def every(self) -> list[float]:
        return self.same + self.other


def _load(
    client: RoundRobin, events: list[dict[str, Any]], settled: Any
) -> tuple[float, dict[str, list[str]]]:
    sent = with_resends(events, 0.1)
    started = time.perf_counter()
    results = send_load(client, sent, batch=BATCH, threads=THREADS)
    settled()
    return time.perf_counter() - started, results


def _stream(
    client: RoundRobin, readers: list[StreamReader], count: int, run: Run, template: dict[str, Any]
) -> None:
    for number in range(count):
        marker = f"bench-stream-{number}"
        first = number % len(readers)
        started = time.perf_counter()
        answered = client.post_events([template | {"key": marker, "note": marker}], first=first)
        if answered != [(marker, "accepted")]:
            raise SystemExit(f"stream event {marker}: {answered}")
        deadline = started + 30
        while not all(marker.encode() in r.client.seen for r in readers):
            if time.perf_counter() > deadline:
                raise SystemExit(f"{marker} did not reach every replica's subscriber in 30 s")
            time.sleep(0.002)
        for index, reader in enumerate(readers):
            (run.same if index == first else run.other).append(reader.client.seen[marker.encode()] - started)
        time.sleep(0.05)


def _template(workplan: str) -> dict[str, Any]:
    """A progress note on ``workplan``'s T01; each timed event adds its key and note."""
    return {
        "kind": "progress.note",
        "workplan": workplan,
        "task": "T01",
        "actor": "agt-bench",
        "at": "2026-12-01T19:00:00Z",
    }


def hub_run(replicas: int, database_url: str, work: Path, events: int, stream: int) -> Run:
    corpus = make_corpus(work / "repos", repos=REPOS, plans=3, tasks=5)
    tasks = [f"T{n:02d}" for n in range(1, 6)]
    plans = [(plan, tasks) for ids in corpus.plans.values() for plan in ids]
    group = Replicas([work / "home"], database_url, replicas, logs=work)
    group.register(corpus.repos)
    run = Run(events=events)
    readers: list[StreamReader] = []
    try:
        group.start()
        readers = [StreamReader(url, group.headers).start() for url in group.urls]
        with RoundRobin(group.urls, group.headers) as client:
            load = note_events(plans, events)
            run.seconds, results = _load(client, load, group.settle)
            counts = count_trailers(corpus.repos)
            run.exactly_once = counts == dict.fromkeys(results, 1) and all(
                r.count("accepted") <= 1 for r in results.values()
            )
            _stream(client, readers, stream, run, _template(plans[0][0]))
    finally:
        for reader in readers:
            reader.stop()
        group.stop()
    return run


def floor_run(replicas: int, database_url: str, work: Path, events: int, stream: int) -> Run:
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE bare_event (key text PRIMARY KEY, body jsonb NOT NULL)"))
    engine.dispose()
    work.mkdir(parents=True)
    ports = [free_port() for _ in range(replicas)]
    app = Path(__file__).with_name("bare_replica_app.py")
    processes = []
    readers: list[StreamReader] = []
    run = Run(events=events)
    try:
        with (work / "bare.log").open("ab") as log:
            processes = [
                subprocess.Popen([sys.executable, str(app), database_url, str(port)], stdout=log, stderr=log)
                for port in ports
            ]
        for port in ports:
            _wait_port(port)
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        readers = [StreamReader(url, {}).start() for url in urls]
        plans = [(f"R{n:02d}-WP-0001", ["T01"]) for n in range(REPOS)]
        with RoundRobin(urls, {}) as client:
            load = note_events(plans, events, prefix="bench-floor")
            run.seconds, results = _load(client, load, lambda: None)
            run.exactly_once = all(r.count("accepted") == 1 for r in results.values())
            _stream(client, readers, stream, run, _template(plans[0][0]))
    finally:
        for reader in readers:
            reader.stop()
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
    return run


def _wait_port(port: int) -> None:
    for _ in range(1200):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise SystemExit(f"the bare app did not listen on {port}")


def _ms(values: list[float], q: float) -> float:
    return pct(values, q) * 1000 if values else float("nan")


def report(replicas: int, hub: Run, floor: Run, events: int) -> None:
    print(
        f"== {replicas} replica(s): {events} events (+{round(events * 0.1)} resends) over {REPOS} repos, "
        f"{THREADS} client threads, batches of {BATCH}, round-robin"
    )
    print(
        f"events/s: hub {hub.rate:.0f} (all applied and committed after {hub.seconds:.2f} s; exactly once: "
        f"{hub.exactly_once}); floor {floor.rate:.0f} (bare Litestar + psycopg INSERT + NOTIFY, "
        f"{replicas} process(es)); hub/floor {hub.rate / floor.rate:.2f}x"
    )
    line = (
        f"stream delivery (POST -> every replica's subscriber): p50 {_ms(hub.every, 0.5):.1f} ms, "
        f"p95 {_ms(hub.every, 0.95):.1f} ms (same replica p95 {_ms(hub.same, 0.95):.1f} ms"
    )
    if hub.other:
        line += f", other replicas p95 {_ms(hub.other, 0.95):.1f} ms"
    line += f"); floor p95 {_ms(floor.every, 0.95):.1f} ms"
    if floor.other:
        line += f" (other processes {_ms(floor.other, 0.95):.1f} ms)"
    line += f"; p95/floor p95 {pct(hub.every, 0.95) / pct(floor.every, 0.95):.1f}x"
    print(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--replicas", default="1,2,3", help="comma-separated numbers of replicas to run")
    parser.add_argument("--events", type=int, default=2000, help="unique events per run (plus 10%% resends)")
    parser.add_argument("--stream", type=int, default=40, help="single events timed to every subscriber")
    parser.add_argument(
        "--database-url", default=DEFAULT_POSTGRES_URL, help="a PostgreSQL server to CREATE DATABASE on"
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.replicas.split(",")]
    print(f"{os.cpu_count()} cores shared by every replica, the floor's processes, PostgreSQL and the client")
    ok = True
    for replicas in counts:
        with tempfile.TemporaryDirectory(prefix="statehub-bench-replicas-") as tmp:
            work = Path(tmp)
            with cache_url(args.database_url, work) as url:
                floor = floor_run(replicas, url, work / "floor", args.events, args.stream)
            with cache_url(args.database_url, work) as url:
                hub = hub_run(replicas, url, work / "hub", args.events, args.stream)
        report(replicas, hub, floor, args.events)
        ok = ok and hub.exactly_once and floor.exactly_once
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
