"""Events benchmark: events posted to a real hub until every one is applied and committed, checked
exactly-once by counting ``Statehub-Event`` trailers, beside a bare git floor. Two cases:

* ``single``: 10,000 events over a 74-repo synthetic corpus, one actor per repo (long runs of one
  actor: few commits). Target >= 500 events/s.
* ``interleaved``: 3,000 events by 8 actors taking turns over 5 repos, each actor posting its own
  small batches at once (consecutive events of a repo come from different actors: about one commit
  per event, each authored by its actor). Target >= 300 events/s.

    .venv/bin/python bench/events.py                      # both cases
    .venv/bin/python bench/events.py --case interleaved
    .venv/bin/python bench/events.py --watch              # with the hub's file watcher on

Runs ``python -m statehub serve`` on a free 127.0.0.1 port under a temporary STATEHUB_HOME;
10% of the events are exact resends (duplicates). The floor is plain git doing the same commits
(one per run of one actor in each repo, in the order the hub accepted the events, each with the
actor as author and the event's file grown by a line) through one ``git fast-import`` per repo:
what any hub must at least pay in git, with no HTTP, no durable buffer, no parsing, no index.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _events_corpus import Corpus, make_corpus, make_events
from _hubs import count_trailers, free_port, start_hub


@dataclass(frozen=True)
class Case:
    name: str
    events: int
    repos: int
    actors: int
    """0: one actor per repo; N: N actors taking turns."""
    clients: int
    batch: int
    target: float


CASES = {
    "single": Case("single", 10_000, 74, 0, 4, 100, 500.0),
    "interleaved": Case("interleaved", 3_000, 5, 8, 8, 5, 300.0),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=[*CASES, "both"], default="both")
    parser.add_argument("--events", type=int, help="Override the case's number of events.")
    parser.add_argument("--watch", action="store_true", help="Run the hub with its file watcher on.")
    args = parser.parse_args()
    names = list(CASES) if args.case == "both" else [args.case]
    ok = True
    for name in names:
        case = CASES[name]
        if args.events:
            case = dataclasses.replace(case, events=args.events)
        ok = run(case, args.watch) and ok
    return 0 if ok else 1


def run(case: Case, watch: bool) -> bool:
    with tempfile.TemporaryDirectory(prefix="statehub-bench-events-") as tmp:
        root = Path(tmp)
        corpus = make_corpus(root / "repos", repos=case.repos)
        events, unique = make_events(corpus, case.events, duplicates=0.10, actors=case.actors)
        port = free_port()
        process = start_hub(root / "home", port, root / "hub.log", STATEHUB_WATCH="1" if watch else "0")
        url = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=url, timeout=120) as client:
                for repo in corpus.repos:
                    client.post("/repos", json={"path": str(repo)}).raise_for_status()
                lanes: list[list[dict[str, Any]]] = [[] for _ in range(case.clients)]
                for item in events:  # each client speaks for its own actors, in order, like an agent
                    lanes[int(item["actor"].rsplit("-", 1)[1]) % case.clients].append(item)

                def send(lane: list[dict[str, Any]]) -> list[str]:
                    results: list[str] = []
                    for i in range(0, len(lane), case.batch):
                        answer = client.post("/events", json=lane[i : i + case.batch])
                        if answer.status_code != 202:
                            raise SystemExit(
                                f"POST /events answered {answer.status_code}: {answer.text[:500]}"
                            )
                        results.extend(r["result"] for r in answer.json()["results"])
                    return results

                started = time.perf_counter()
                with ThreadPoolExecutor(case.clients) as pool:
                    results = [r for rs in pool.map(send, lanes) for r in rs]
                posted = time.perf_counter() - started
                while True:
                    buffer = client.get("/state/health").json()["buffer"]
                    if buffer["pending"] == 0:
                        break
                    time.sleep(0.02)
                elapsed = time.perf_counter() - started
                accepted_order = _accepted_order(client)
        finally:
            process.terminate()
            process.wait(timeout=60)
        counts = count_trailers(corpus.repos)
        commits = sum(_commits_by_hub(repo) for repo in corpus.repos)
        floor_s, floor_commits = floor(corpus, root / "floor", accepted_order)
    accepted, duplicate = results.count("accepted"), results.count("duplicate")
    committed = {key for _, _, _, key, with_commit in accepted_order if with_commit}
    exactly_once = set(counts) == committed and set(counts.values()) == {1}
    rate = len(events) / elapsed
    floor_rate = len(events) / floor_s
    actors = f"{case.actors} actors taking turns" if case.actors else "one actor per repo"
    print(f"== {case.name}: {actors}, {case.clients} clients posting batches of {case.batch}")
    print(f"events: {len(events)} sent ({accepted} accepted, {duplicate} duplicates) over {case.repos} repos")
    print(f"buffer after the run: {buffer}")
    print(
        f"trailers: {len(counts)} keys, {sum(counts.values())} trailers for {len(committed)} events "
        f"applied with a commit ({unique - len(committed)} without: the file already said so); "
        f"exactly once: {exactly_once}"
    )
    print(f"hub commits: {commits} (floor: {floor_commits})")
    print(f"posting took {posted:.2f} s; all applied and committed after {elapsed:.2f} s")
    print(f"floor (plain git, one commit per actor run): {floor_s:.2f} s, {floor_rate:.0f} events/s")
    print(
        f"throughput: {rate:.0f} events/s (target >= {case.target:.0f}; ratio {rate / case.target:.2f}x); "
        f"{elapsed / floor_s:.1f}x the floor's time"
    )
    return exactly_once and accepted == unique and buffer["rejected"] == 0 and rate >= case.target


def _accepted_order(client: httpx.Client) -> list[tuple[str, str, str, str, bool]]:
    """(repo, actor, workplan, key, committed) of every event the hub holds, in acceptance order;
    ``committed`` is false for an event the file already reflected when it came (no commit)."""
    order: list[tuple[str, str, str, str, bool]] = []
    offset = 0
    while True:
        page = client.get("/events", params={"limit": 1000, "offset": offset}).json()
        for item in page["items"]:
            event = item["event"]
            committed = item["commit"] is not None
            order.append((item["repo"], event["actor"], event["workplan"], item["key"], committed))
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            return order


def _commits_by_hub(repo: Path) -> int:
    out = subprocess.run(
        ["git", "log", "--format=%cn"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    return out.splitlines().count("State Hub")


def floor(corpus: Corpus, base: Path, order: list[tuple[str, str, str, str, bool]]) -> tuple[float, int]:
    """Seconds plain git takes to make the hub's commits, and how many: see the module docstring."""
    fresh = make_corpus(base, repos=len(corpus.repos))
    by_repo: dict[str, list[tuple[str, str, str]]] = {}
    for repo, actor, plan, key, committed in order:
        if not committed:
            continue
        by_repo.setdefault(repo, []).append((actor, plan, key))
    commits = 0
    started = time.perf_counter()
    for path in fresh.repos:
        texts = {plan: (path / "workplans" / f"{plan}.md").read_bytes() for plan in fresh.plans[path.name]}
        stream: list[bytes] = []
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, check=True
        ).stdout.strip()
        runs: list[tuple[str, list[tuple[str, str]]]] = []
        for actor, plan, key in by_repo.get(path.name, []):
            if runs and runs[-1][0] == actor:
                runs[-1][1].append((plan, key))
            else:
                runs.append((actor, [(plan, key)]))
        for number, (actor, items) in enumerate(runs):
            touched: dict[str, None] = {}
            for plan, key in items:
                texts[plan] += f"- {key}\n".encode()
                touched[plan] = None
            message = ("bench\n\n" + "".join(f"Statehub-Event: {key}\n" for _, key in items)).encode()
            now = int(time.time())
            stream.append(
                b"commit refs/heads/main\n"
                + f"author {actor} <{actor}@users.statehub.invalid> {now} +0000\n".encode()
                + f"committer State Hub <statehub@statehub.invalid> {now} +0000\n".encode()
                + f"data {len(message)}\n".encode()
                + message
                + (f"from {head}\n".encode() if number == 0 else b"")
            )
            for plan in touched:
                data = texts[plan]
                header = f"M 100644 inline workplans/{plan}.md\ndata {len(data)}\n"
                stream.append(header.encode() + data + b"\n")
        commits += len(runs)
        subprocess.run(["git", "fast-import", "--quiet"], cwd=path, input=b"".join(stream), check=True)
    return time.perf_counter() - started, commits


if __name__ == "__main__":
    raise SystemExit(main())
