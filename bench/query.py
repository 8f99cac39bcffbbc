"""Read latency and throughput of the hub's busiest questions, beside a bare endpoint, in one run.

Serves the synthetic corpus (bench/corpus.py) with a real uvicorn server on
loopback in a subprocess, and the bare endpoint (bench/bare_app.py) over the same
cache in another: Litestar + sqlite3 over the SQLite file, or, with
``--database-url postgresql+psycopg://...``, Litestar + psycopg over the same
PostgreSQL database the hub reads (the floor is then bare PostgreSQL, not
in-process SQLite), vacuumed and analysed first as autovacuum leaves it. Then it asks both
    GET /tasks?status=blocked&owner=codex
    GET /tasks?ready=true&limit=50
with httpx. Targets: p99 <= 10 ms; throughput >= 60% of the bare endpoint.

Throughput is judged as requests served per second of the server process's own
CPU time: four client threads in one Python process saturate before a bare
server does, so client-side requests per second would compare the client with
itself. On PostgreSQL a server's CPU time includes its own PostgreSQL backends'
(found by ``application_name`` in pg_stat_activity), so work moved into the
database is counted too. Client-side req/s is printed too.

    .venv/bin/python bench/query.py [--repos 74] [--requests 1000] [--rounds 3]

The hub is served with STATEHUB_WATCH=0: the watcher does not touch the read path.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from sqlalchemy.engine import make_url

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench._databases import add_database_option, cache_url  # noqa: E402
from bench.corpus import build_corpus  # noqa: E402
from statehub.hub import Hub  # noqa: E402
from statehub.settings import Settings  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator

P99_TARGET_MS = 10.0
THROUGHPUT_TARGET = 0.6
QUERIES = {
    "blocked+owner": "/tasks?status=blocked&owner=codex",
    "ready limit 50": "/tasks?ready=true&limit=50",
}


HUB_APPLICATION = "statehub-bench-hub"
BARE_APPLICATION = "statehub-bench-bare"


def _named(url: str, application: str) -> str:
    """``url`` with libpq's ``application_name`` set, so the bench can find its backends."""
    return (
        make_url(url)
        .update_query_dict({"application_name": application})
        .render_as_string(hide_password=False)
    )


def settle(url: str) -> None:
    """Leave the freshly loaded tables as autovacuum does within a minute or so: visibility map
    set (a count is then an index-only scan) and statistics gathered. Both servers read this one
    database; a load just committed makes the ready count a sequential scan for either."""
    import psycopg

    with psycopg.connect(url.replace("+psycopg", "", 1), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _process_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:  # a backend that ended meanwhile
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """A server's process and, on PostgreSQL, its backends (named by ``application_name``)."""

    def __init__(self, pid: int, database_url: str | None, application: str | None) -> None:
        self.pid, self.database_url, self.application = pid, database_url, application

    def backends(self) -> list[int]:
        if self.database_url is None:
            return []
        import psycopg

        with psycopg.connect(self.database_url.replace("+psycopg", "", 1), autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [self.application]
            ).fetchall()
        return [row[0] for row in rows]

    def cpu(self) -> dict[int, float]:
        """CPU seconds by process: the server's own and its backends', so throughput can be judged
        by the server's cost per request rather than by how fast a Python client can send."""
        return {pid: _process_cpu(pid) for pid in [self.pid, *self.backends()]}


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two readings; a backend born meanwhile counts from zero."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


@contextmanager
def serving(
    command: list[str], env: dict[str, str], port: int, database_url: str | None, application: str | None
) -> Iterator[tuple[str, Server]]:
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + "/tasks?limit=1", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server {command} did not come up") from None
                time.sleep(0.1)
        yield url, Server(process.pid, database_url, application)
    finally:
        process.terminate()
        process.wait(timeout=10)


def latency(url: str, path: str, requests: int) -> tuple[float, float]:
    with httpx.Client(base_url=url) as client:
        for _ in range(100):
            client.get(path).raise_for_status()
        times = []
        for _ in range(requests):
            start = time.perf_counter()
            client.get(path).raise_for_status()
            times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def throughput(url: str, server: Server, path: str, seconds: float, clients: int = 4) -> tuple[float, float]:
    """(requests per wall second seen by the clients, requests per server CPU second)."""
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def run(index: int) -> None:
        with httpx.Client(base_url=url) as client:
            while time.monotonic() < stop:
                client.get(path).raise_for_status()
                counts[index] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    start, cpu = time.monotonic(), server.cpu()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    served = sum(counts)
    return served / (time.monotonic() - start), served / max(cpu_spent(cpu, server.cpu()), 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=74)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    add_database_option(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="statehub-query-") as tmp:
        base = Path(tmp)
        corpus = build_corpus(base / "corpus", repos=args.repos)
        env = {**os.environ, "STATEHUB_HOME": str(base / "home"), "STATEHUB_WATCH": "0"}
        env.pop("STATEHUB_DATABASE_URL", None)
        settings = Settings.from_env(env)
        hub = Hub(settings)  # the bare endpoint always reads this SQLite cache
        for repo in corpus.repos:
            hub.register(repo)
        hub.close()
        database = ExitStack()
        pg_url: str | None = None
        bare_database = str(settings.default_cache_file)
        if args.database_url and not args.database_url.startswith("sqlite"):
            pg_url = database.enter_context(cache_url(args.database_url, base))
            env["STATEHUB_HOME"] = str(base / "home-pg")
            env["STATEHUB_DATABASE_URL"] = _named(pg_url, HUB_APPLICATION)
            served = Hub(Settings.from_env(env))
            for repo in corpus.repos:
                served.register(repo)
            served.close()
            bare_database = _named(pg_url, BARE_APPLICATION)
            settle(pg_url)
        print(f"corpus: {len(corpus.repos)} repos, {corpus.workplans} workplans, {corpus.tasks} tasks")
        kind = "postgresql" if pg_url else "sqlite"
        print(f"hub cache: {kind}; bare: Litestar + {'psycopg' if pg_url else 'sqlite3'} on the same {kind}")

        hub_port, bare_port = _free_port(), _free_port()
        hub_cmd = [sys.executable, "-m", "statehub", "serve", "--port", str(hub_port)]
        bare_cmd = [sys.executable, str(HERE / "bare_app.py"), bare_database, str(bare_port)]
        results: dict[str, dict[str, tuple[float, float, float, float]]] = {}
        with (
            serving(hub_cmd, env, hub_port, pg_url, HUB_APPLICATION) as hub,
            serving(bare_cmd, env, bare_port, pg_url, BARE_APPLICATION) as bare,
        ):
            (hub_url, _), (bare_url, _) = hub, bare
            for name, path in QUERIES.items():
                hub_total = httpx.get(hub_url + path).json()["total"]
                bare_total = httpx.get(bare_url + path).json()["total"]
                assert hub_total == bare_total, (name, hub_total, bare_total)
                # Rounds alternate hub and bare so load from other work on the machine hits both
                # alike; each figure is the median over the rounds.
                rounds: dict[str, list[tuple[float, float, float, float]]] = {"hub": [], "bare": []}
                for _ in range(args.rounds):
                    for label, (url, server) in (("hub", hub), ("bare", bare)):
                        p50, p99 = latency(url, path, args.requests)
                        rps, capacity = throughput(url, server, path, args.seconds)
                        rounds[label].append((p50, p99, rps, capacity))
                for label, figures in rounds.items():
                    medians = tuple(statistics.median(f[i] for f in figures) for i in range(4))
                    results.setdefault(name, {})[label] = medians  # type: ignore[assignment]
                print(f"{name}: {hub_total} matching tasks")
        database.close()

    met = True
    for name, by in results.items():
        hp50, hp99, hrps, hcap = by["hub"]
        bp50, bp99, brps, bcap = by["bare"]
        ratio = hcap / bcap
        met = met and hp99 <= P99_TARGET_MS and ratio >= THROUGHPUT_TARGET
        print(f"GET {QUERIES[name]}")
        print(
            f"  hub : p50 {hp50:6.2f} ms  p99 {hp99:6.2f} ms  {hrps:7.0f} req/s "
            f"(p99 target <= {P99_TARGET_MS:.0f} ms)"
        )
        print(f"  bare: p50 {bp50:6.2f} ms  p99 {bp99:6.2f} ms  {brps:7.0f} req/s")
        print(f"  server capacity: hub {hcap:.0f}, bare {bcap:.0f} requests per server CPU second")
        print(f"  throughput hub/bare {ratio:.2f}  (target >= {THROUGHPUT_TARGET})")
    print("targets met" if met else "TARGETS MISSED")


if __name__ == "__main__":
    main()
