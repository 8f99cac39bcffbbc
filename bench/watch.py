"""Watcher benchmark: how long from a person's save until the API shows it, beside the bare floor.

    .venv/bin/python bench/watch.py            # the earlier figure: p95 ~71-86 ms

A real hub server (``python -m statehub serve``, watcher on) over a synthetic corpus
of ``--repos`` git repos (3 workplans of 5 tasks each), registered by the CLI. Each
sample saves one workplan with a task's status flipped (every other save an editor's
atomic rename: temp file, then ``rename`` over the path) and polls
``GET /tasks/{ref}`` on a kept-alive connection until the new status shows; the
time from the save to that answer is the latency.

The floors are measured in the same run: the bare time for a watchfiles event to
arrive for a write (``awatch`` with the hub's own step and debounce, over one
directory, in this process), and the bare round trip of the same GET. What the hub
adds is the refresh of the touched repo and the poll's granularity.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from watchfiles import awatch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _events_corpus import make_corpus
from _hubs import free_port, start_hub

from statehub.watcher import DEBOUNCE_MS, STEP_MS


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _ms(values: list[float]) -> str:
    return f"p50 {_percentile(values, 0.5) * 1000:6.1f} ms   p95 {_percentile(values, 0.95) * 1000:6.1f} ms"


async def _event_floor(directory: Path, samples: int) -> list[float]:
    """Seconds from a write until watchfiles yields it, with the hub's step and debounce."""
    stop = asyncio.Event()
    target = directory / "floor.md"
    target.write_text("0")
    watch = awatch(
        directory,
        stop_event=stop,
        watch_filter=None,
        step=STEP_MS,
        debounce=DEBOUNCE_MS,
        rust_timeout=500,
        yield_on_timeout=True,
    ).__aiter__()
    await watch.__anext__()  # the first timeout: the notifier runs
    found: list[float] = []
    for number in range(samples):
        started = time.perf_counter()
        target.write_text(str(number))
        while not await watch.__anext__():
            pass
        found.append(time.perf_counter() - started)
        await asyncio.sleep(0.02)
    stop.set()
    await watch.aclose()  # type: ignore[attr-defined]
    return found


def _save(path: Path, text: str, *, atomic: bool) -> None:
    if atomic:
        temp = path.with_name(f".{path.name}.tmp")
        temp.write_text(text, encoding="utf-8")
        temp.replace(path)
    else:
        path.write_text(text, encoding="utf-8")


def _until_shown(client: httpx.Client, ref: str, status: str, timeout: float = 30) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if client.get(f"/tasks/{ref}").json().get("status") == status:
            return time.perf_counter()
    raise SystemExit(f"{ref} did not show {status!r} within {timeout} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=20)
    parser.add_argument("--samples", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="statehub-bench-watch-") as tmp:
        root = Path(tmp)
        floor = asyncio.run(_event_floor(Path(tempfile.mkdtemp(dir=root)), args.samples))
        corpus = make_corpus(root / "repos", repos=args.repos)
        home = root / "home"
        env = os.environ | {"STATEHUB_HOME": str(home)}
        env.pop("STATEHUB_DATABASE_URL", None)
        subprocess.run(
            [sys.executable, "-m", "statehub", "repos", "add", *map(str, corpus.repos)],
            env=env,
            check=True,
            capture_output=True,
        )
        port = free_port()
        hub = start_hub(home, port, root / "hub.log", STATEHUB_WATCH="1")
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                time.sleep(1)  # the watch is armed (its first check) and the startup reconcile done
                round_trips = []
                for _ in range(args.samples):
                    started = time.perf_counter()
                    client.get("/tasks/R00-WP-0001-T01")
                    round_trips.append(time.perf_counter() - started)
                latencies: list[float] = []
                for number in range(args.samples):
                    repo = corpus.repos[number % len(corpus.repos)]
                    plan_id = corpus.plans[repo.name][0]
                    path = repo / "workplans" / f"{plan_id}.md"
                    text = path.read_text(encoding="utf-8")
                    at = text.index('status = "', text.index('id = "T01"'))  # T01's own status line
                    then = "done" if text.startswith('status = "todo"', at) else "todo"
                    now = "todo" if then == "done" else "done"
                    changed = text[:at] + text[at:].replace(f'status = "{now}"', f'status = "{then}"', 1)
                    started = time.perf_counter()
                    _save(path, changed, atomic=number % 2 == 1)
                    latencies.append(_until_shown(client, f"{plan_id}-T01", then) - started)
                    time.sleep(0.05)
        finally:
            hub.terminate()
            hub.wait(timeout=60)
    floor_p50, floor_p95 = _percentile(floor, 0.5), _percentile(floor, 0.95)
    print(f"watcher over {args.repos} repos, {args.samples} saves (half atomic renames), step {STEP_MS} ms")
    print(f"  floor: watchfiles event for a write   {_ms(floor)}")
    print(f"  floor: GET /tasks/{{ref}} round trip    {_ms(round_trips)}")
    print(f"  save until the API shows it          {_ms(latencies)}")
    print(
        f"  ratio to the event floor             p50 {_percentile(latencies, 0.5) / floor_p50:.2f}x"
        f"   p95 {_percentile(latencies, 0.95) / floor_p95:.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
