"""Events benchmark: 10,000 events over a 74-repo synthetic corpus, from the first POST until
every event is applied and committed; checks exactly-once by counting ``Statehub-Event`` trailers.

    .venv/bin/python bench/events.py            # target: >= 500 events/s
    .venv/bin/python bench/events.py --watch    # the same with the hub's file watcher on

Runs a real hub server (``python -m statehub serve``) on a free 127.0.0.1 port under a temporary
STATEHUB_HOME, posts in batches of 100 from 4 client threads, 10% of the events being exact
resends (duplicates).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _events_corpus import make_corpus, make_events
from _hubs import count_trailers, free_port, start_hub

TARGET = 500.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repos", type=int, default=74)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--watch", action="store_true", help="Run the hub with its file watcher on.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="statehub-bench-events-") as tmp:
        root = Path(tmp)
        corpus = make_corpus(root / "repos", repos=args.repos)
        events, unique = make_events(corpus, args.events, duplicates=0.10)
        port = free_port()
        process = start_hub(root / "home", port, root / "hub.log", STATEHUB_WATCH="1" if args.watch else "0")
        url = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=url, timeout=120) as client:
                for repo in corpus.repos:
                    client.post("/repos", json={"path": str(repo)}).raise_for_status()
                lanes: list[list[dict[str, Any]]] = [[] for _ in range(args.clients)]
                for item in events:  # each client speaks for its own repos, in order, like an agent
                    lanes[int(item["actor"].rsplit("-", 1)[1]) % args.clients].append(item)

                def send(lane: list[dict[str, Any]]) -> list[str]:
                    results: list[str] = []
                    for i in range(0, len(lane), args.batch):
                        answer = client.post("/events", json=lane[i : i + args.batch])
                        if answer.status_code != 202:
                            raise SystemExit(
                                f"POST /events answered {answer.status_code}: {answer.text[:500]}"
                            )
                        results.extend(r["result"] for r in answer.json()["results"])
                    return results

                started = time.perf_counter()
                with ThreadPoolExecutor(args.clients) as pool:
                    results = [r for rs in pool.map(send, lanes) for r in rs]
                posted = time.perf_counter() - started
                while True:
                    buffer = client.get("/state/health").json()["buffer"]
                    if buffer["pending"] == 0:
                        break
                    time.sleep(0.02)
                elapsed = time.perf_counter() - started
        finally:
            process.terminate()
            process.wait(timeout=60)
        counts = count_trailers(corpus.repos)
    accepted, duplicate = results.count("accepted"), results.count("duplicate")
    exactly_once = len(counts) == unique and set(counts.values()) == {1}
    rate = len(events) / elapsed
    print(f"events: {len(events)} sent ({accepted} accepted, {duplicate} duplicates) over {args.repos} repos")
    print(f"buffer after the run: {buffer}")
    print(f"trailers: {len(counts)} keys, {sum(counts.values())} trailers; exactly once: {exactly_once}")
    print(f"posting took {posted:.2f} s; all applied and committed after {elapsed:.2f} s")
    print(f"throughput: {rate:.0f} events/s (target >= {TARGET:.0f}; ratio {rate / TARGET:.2f}x)")
    ok = exactly_once and accepted == unique and buffer["rejected"] == 0 and rate >= TARGET
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
