"""Claims benchmark: 50 agents racing for 1,000 claimable tasks through a real hub server, beside a
bare claim server measured in the same run (canon/ADR-032).

Each agent loops like a real one: ask ``GET /tasks?claimable=true&limit=100``, pick one of the
answers at random, ``POST /tasks/{ref}/claim``; a 409 (someone else was faster) sends it back to
the list. The run ends when the list is empty. The agents share one asyncio loop in this process,
each on its own keep-alive connection, and speak HTTP/1.1 directly (``_Connection``): the load
generator runs on the same cores as the server, so it must cost as little as it can (50 httpx
threads cost ~1 ms of CPU per request and held the bare floor under 200 claims/s). Printed:

* claims/s: won claims over the time until the last one was won (target >= 200), and attempts/s;
* double claims: tasks won by more than one agent (must be 0), and claim trailers in git per task
  (must be exactly one each, authored by the winner);
* time until every claim commit is in git (the buffer has nothing pending);
* CPU per claim of the hub (server and its git children), of the bare server and of the load
  generator, from /proc and ``time.process_time``;
* the floor: the same agents against ``bench/bare_claims_app.py`` (Litestar + sqlite3, the same
  ``BEGIN IMMEDIATE`` decision on a WAL file with ``synchronous=FULL``, no cache, event or git),
  and a bare in-process ``BEGIN IMMEDIATE`` claim rate with 50 threads and no HTTP.

    .venv/bin/python bench/claims.py [--agents 50] [--tasks 1000] [--state-url postgresql://...]

Runs ``python -m statehub serve`` on a free 127.0.0.1 port under a temporary STATEHUB_HOME.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _hubs import count_trailers, free_port, start_hub

HERE = Path(__file__).resolve().parent
TARGET = 200.0
PLANS_PER_REPO = 10


@dataclass
class Run:
    won: list[tuple[str, str]] = field(default_factory=list)
    """(ref, actor) per 200."""
    attempts: int = 0
    lost: int = 0
    last_won: float = 0.0
    client_cpu_s: float = 0.0
    """CPU seconds the load generator (this process) spent during the race."""


def make_corpus(root: Path, tasks: int, repos: int) -> list[Path]:
    """``repos`` git repos, ``PLANS_PER_REPO`` workplans each, ``tasks`` todo tasks in all."""
    per_plan = max(1, tasks // (repos * PLANS_PER_REPO))
    made = []
    for r in range(repos):
        repo = root / f"claims-{r:02d}"
        (repo / "workplans").mkdir(parents=True)
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
        for p in range(PLANS_PER_REPO):
            plan = f"CLM{r:02d}-WP-{p + 1:04d}"
            lines = ["+++", f'id = "{plan}"', f'title = "Claims {r}/{p}"', 'status = "active"']
            for t in range(per_plan):
                lines += [
                    "",
                    "[[tasks]]",
                    f'id = "T{t + 1:02d}"',
                    f'title = "task {t + 1}"',
                    'status = "todo"',
                ]
            (repo / "workplans" / f"{plan}.md").write_text("\n".join([*lines, "+++", "", "# Plan", ""]))
        subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
        subprocess.run(
            [
                "git",
                "-c",
                "user.name=bench",
                "-c",
                "user.email=bench@statehub.invalid",
                "commit",
                "-qm",
                "plans",
            ],
            cwd=repo,
            check=True,
        )
        made.append(repo)
    return made


def cpu_s(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of process ``pid`` itself and of its reaped children (git), from
    /proc (Linux; zeros elsewhere): steadier than the claim rate on a machine shared with other work."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = float(os.sysconf("SC_CLK_TCK"))
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


class _Connection:
    """One agent's keep-alive HTTP/1.1 connection, spoken directly on an asyncio stream: the load
    generator must cost the machine (two cores, shared with the server) as little as it can, so the
    figure measures the server. A full client (httpx, 50 threads, the first rounds) spent ~1 ms of
    CPU and a GIL hand-off per request in the bench's own process, beside the server it measured."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    async def request(self, method: str, target: str, body: object = None) -> tuple[int, Any]:
        """The answer's status and its JSON body (bodies are small: Content-Length, never chunked)."""
        data = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {target} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(data)}\r\n"
        if body is not None:
            head += "Content-Type: application/json\r\n"
        self.writer.write(head.encode() + b"\r\n" + data)
        lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
        length = {k.strip().lower(): v.strip() for k, v in headers.items()}.get("content-length")
        if length is None:
            raise SystemExit(f"{method} {target}: an answer without Content-Length ({lines[:8]})")
        payload = await self.reader.readexactly(int(length))
        return status, json.loads(payload) if payload else None


async def _race(url: str, agents: int) -> tuple[Run, float]:
    run = Run()
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connections = [
        _Connection(*await asyncio.open_connection(host, int(port)), f"{host}:{port}") for _ in range(agents)
    ]

    async def agent(number: int, http: _Connection) -> None:
        actor = f"agt-{number:02d}"
        pick = random.Random(number)
        while True:
            status, listed = await http.request("GET", "/tasks?claimable=true&limit=100")
            if status != 200:
                raise SystemExit(f"the claimable list answered {status}: {str(listed)[:300]}")
            items = listed["items"]
            if not items:
                return
            ref = pick.choice(items)["ref"]
            status, answer = await http.request(
                "POST", f"/tasks/{ref}/claim", {"actor": actor, "lease_s": 3600}
            )
            run.attempts += 1
            if status == 200:
                run.won.append((ref, actor))
                run.last_won = time.perf_counter()
            elif status == 409:
                run.lost += 1
            else:
                raise SystemExit(f"claim answered {status}: {str(answer)[:300]}")

    started = time.perf_counter()
    cpu = time.process_time()
    try:
        await asyncio.gather(*(agent(n, c) for n, c in enumerate(connections)))
    finally:
        for connection in connections:
            connection.writer.close()
    run.client_cpu_s = time.process_time() - cpu
    return run, started


def race(url: str, agents: int) -> tuple[Run, float]:
    """``agents`` agents, each with its own keep-alive connection, claiming until nothing is
    claimable; all on one asyncio loop in this process (:class:`_Connection`)."""
    return asyncio.run(_race(url, agents))


def bare_sqlite(path: Path, refs: list[str], agents: int) -> float:
    """Claims/s of ``agents`` threads doing only the ``BEGIN IMMEDIATE`` decision, each its own
    connection (WAL, synchronous=FULL), each walking its own shuffled copy of ``refs``."""
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE lease (ref TEXT PRIMARY KEY, actor TEXT NOT NULL, expires_at REAL NOT NULL)")
    setup.close()
    won = Counter[str]()
    lock = threading.Lock()
    start = threading.Barrier(agents)

    def agent(number: int) -> None:
        db = sqlite3.connect(path, isolation_level=None, timeout=60)
        db.execute("PRAGMA synchronous=FULL")
        order = refs[:]
        random.Random(number).shuffle(order)
        start.wait()
        for ref in order:
            db.execute("BEGIN IMMEDIATE")
            held = db.execute("SELECT actor FROM lease WHERE ref = ?", (ref,)).fetchone()
            if held is None:
                db.execute("INSERT INTO lease VALUES (?, ?, ?)", (ref, f"agt-{number}", time.time() + 900))
            db.execute("COMMIT")
            if held is None:
                with lock:
                    won[ref] += 1
        db.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(agents) as pool:
        list(pool.map(agent, range(agents)))
    elapsed = time.perf_counter() - started
    assert sum(won.values()) == len(refs) and set(won.values()) == {1}
    return len(refs) / elapsed


def bare_server(root: Path, refs: list[str], agents: int) -> tuple[float, Run, int, float]:
    """Claims/s, the run, double claims and the server's CPU seconds of the same agents against
    bench/bare_claims_app.py."""
    path = root / "bare.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE task (ref TEXT PRIMARY KEY)")
    db.execute("CREATE TABLE lease (ref TEXT PRIMARY KEY, actor TEXT NOT NULL, expires_at REAL NOT NULL)")
    db.executemany("INSERT INTO task VALUES (?)", [(r,) for r in refs])
    db.close()
    port = free_port()
    with (root / "bare.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, str(HERE / "bare_claims_app.py"), str(path), str(port)], stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(400):
            try:
                httpx.get(f"{url}/tasks?limit=1", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        cpu_before = cpu_s(process.pid)[0]
        run, started = race(url, agents)
        server_cpu = cpu_s(process.pid)[0] - cpu_before
    finally:
        process.terminate()
        process.wait(timeout=30)
    doubles = sum(1 for count in Counter(ref for ref, _ in run.won).values() if count > 1)
    return len(run.won) / (run.last_won - started), run, doubles, server_cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repos", type=int, default=10)
    parser.add_argument(
        "--state-url",
        help="keep the hub's write buffer, leases and applier lock in this PostgreSQL database's state "
        "schema (STATEHUB_STATE_URL, canon/ADR-049); the cache stays SQLite. Default: files",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="statehub-bench-claims-") as tmp:
        root = Path(tmp)
        repos = make_corpus(root / "repos", args.tasks, args.repos)
        port = free_port()
        state = {"STATEHUB_STATE_URL": args.state_url} if args.state_url else {}
        process = start_hub(root / "home", port, root / "hub.log", **state)
        url = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=url, timeout=120) as client:
                for repo in repos:
                    client.post("/repos", json={"path": str(repo)}).raise_for_status()
                total = client.get("/tasks", params={"claimable": "true", "limit": 1}).json()["total"]
                refs = [
                    t["ref"]
                    for offset in range(0, total, 1000)
                    for t in client.get("/tasks", params={"limit": 1000, "offset": offset}).json()["items"]
                ]
                cpu_before = cpu_s(process.pid)
                run, started = race(url, args.agents)
                claimed_s = run.last_won - started
                while client.get("/state/health").json()["buffer"]["pending"]:
                    time.sleep(0.02)
                in_git_s = time.perf_counter() - started
                cpu_after = cpu_s(process.pid)
                owners = {
                    t["ref"]: t["owner"]
                    for offset in range(0, total, 1000)
                    for t in client.get("/tasks", params={"limit": 1000, "offset": offset}).json()["items"]
                }
                buffer = client.get("/state/health").json()["buffer"]
        finally:
            process.terminate()
            process.wait(timeout=60)
        trailers = count_trailers(repos)
        floor_http, floor_run, floor_doubles, floor_cpu = bare_server(root, refs, args.agents)
        floor_sqlite = bare_sqlite(root / "bare-sqlite.sqlite3", refs, args.agents)
    winners = Counter(ref for ref, _ in run.won)
    doubles = sum(1 for count in winners.values() if count > 1)
    owner_ok = all(owners.get(ref) == actor for ref, actor in run.won)
    rate = len(run.won) / claimed_s
    print(f"== {args.agents} agents over {total} claimable tasks in {args.repos} repos")
    print(
        f"hub: {len(run.won)} claims won in {claimed_s:.2f} s = {rate:.0f} claims/s "
        f"(target >= {TARGET:.0f}; ratio {rate / TARGET:.2f}x); "
        f"{run.attempts} attempts ({run.lost} lost with 409) = {run.attempts / claimed_s:.0f} attempts/s"
    )
    print(
        f"double claims: {doubles}; claim trailers in git: {len(trailers)} tasks, "
        f"max {max(trailers.values(), default=0)} per task; owners in the cache match the winners: {owner_ok}"
    )
    print(f"all claim commits in git after {in_git_s:.2f} s (buffer: {buffer})")
    server_cpu, git_cpu = (after - before for after, before in zip(cpu_after, cpu_before, strict=True))
    print(
        f"hub CPU until then: server {server_cpu:.1f} s + git children {git_cpu:.1f} s = "
        f"{1000 * (server_cpu + git_cpu) / max(1, len(run.won)):.1f} ms per claim"
    )
    print(
        f"floor, bare Litestar + sqlite3 BEGIN IMMEDIATE server, same agents: {floor_http:.0f} claims/s "
        f"({floor_run.attempts} attempts, {floor_doubles} double claims); hub/floor {rate / floor_http:.2f}"
    )
    print(
        f"CPU per claim: bare server {1000 * floor_cpu / max(1, len(floor_run.won)):.1f} ms; "
        f"load generator {1000 * run.client_cpu_s / max(1, len(run.won)):.2f} ms (hub run), "
        f"{1000 * floor_run.client_cpu_s / max(1, len(floor_run.won)):.2f} ms (bare run)"
    )
    print(f"floor, bare sqlite3 BEGIN IMMEDIATE, {args.agents} threads, no HTTP: {floor_sqlite:.0f} claims/s")
    ok = (
        doubles == 0
        and len(run.won) == total
        and len(trailers) == total
        and set(trailers.values()) == {1}
        and owner_ok
        and rate >= TARGET
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
