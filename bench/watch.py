"""Watcher benchmark: how long from a person's save until the API shows it, beside the bare floor.

    .venv/bin/python bench/watch.py --repos 74   # issue 14: p95 under 100 ms (canon/ADR-039)

A real hub server (``python -m statehub serve``, watcher on) over a synthetic corpus
of ``--repos`` git repos (3 workplans of 5 tasks each), registered by the CLI. Each
sample saves one workplan with a task's status flipped (every other save an editor's
atomic rename: temp file, then ``rename`` over the path) and polls
``GET /tasks/{ref}`` on a kept-alive connection until the new status shows; the
time from the save to that answer is the latency.

The floors are measured in the same run: the bare time for a watchfiles event to
arrive for a write (``awatch`` with the hub's own step and debounce, over one
directory, in this process; and with the settings before ADR-039, 30/200 ms, so a
lower step cannot flatter the ratio), and the bare round trip of the same GET. What
the hub adds is the refresh of the touched repo and the poll's granularity.

Then a burst (``--burst`` saves of one workplan, one every ``--burst-gap-ms``, half
of them atomic renames) shows what a storm of saves costs: how many refreshes the
watcher ran for it (``statehub_index_duration_seconds_count`` on ``GET /metrics``),
the server's CPU seconds (``/proc/<pid>/stat``) from the first save until the last
shows plus a settle, beside the CPU it spends idle over as long, and the time from
the last save until the API shows it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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


PREVIOUS_STEP_MS, PREVIOUS_DEBOUNCE_MS = 30, 200
"""The watcher's settings before canon/ADR-039, whose event floor is shown beside the current one."""


async def _event_floor(directory: Path, samples: int, step: int, debounce: int) -> list[float]:
    """Seconds from a write until watchfiles yields it, with ``step`` and ``debounce`` (ms)."""
    stop = asyncio.Event()
    target = directory / "floor.md"
    target.write_text("0")
    watch = awatch(
        directory,
        stop_event=stop,
        watch_filter=None,
        step=step,
        debounce=debounce,
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


def _cpu_seconds(pid: int) -> float:
    """User and system CPU seconds process ``pid`` has used (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_INDEX_COUNT = re.compile(r'^statehub_index_duration_seconds_count\{repo="([^"]+)"\} (\S+)$', re.MULTILINE)


def _refreshes(client: httpx.Client, slug: str) -> int:
    """How many times the hub re-indexed ``slug`` so far (its metrics)."""
    counts = {name: float(value) for name, value in _INDEX_COUNT.findall(client.get("/metrics").text)}
    return round(counts.get(slug, 0))


def _flip(path: Path) -> tuple[str, str]:
    """(new text, new status) of a workplan with its T01's status flipped between todo and done."""
    text = path.read_text(encoding="utf-8")
    at = text.index('status = "', text.index('id = "T01"'))  # T01's own status line
    then = "done" if text.startswith('status = "todo"', at) else "todo"
    now = "todo" if then == "done" else "done"
    return text[:at] + text[at:].replace(f'status = "{now}"', f'status = "{then}"', 1), then


@dataclass(frozen=True, slots=True)
class Burst:
    saves: int
    refreshes: int
    cpu: float
    """Server CPU seconds from the first save until the last showed, plus the settle."""
    idle_cpu: float
    """Server CPU seconds over as long with no save."""
    last_shown: float
    """Seconds from the last save until the API showed it."""


def _burst(client: httpx.Client, pid: int, repo: Path, plan_id: str, saves: int, gap: float) -> Burst:
    """``saves`` saves of one workplan ``gap`` seconds apart; what they cost the server."""
    path = repo / "workplans" / f"{plan_id}.md"
    settle = 0.5
    before, cpu_before, started = _refreshes(client, repo.name), _cpu_seconds(pid), time.perf_counter()
    then = ""
    for number in range(saves):
        changed, then = _flip(path)
        _save(path, changed, atomic=number % 2 == 1)
        time.sleep(gap)
    last = time.perf_counter() - gap
    shown = _until_shown(client, f"{plan_id}-T01", then)
    time.sleep(settle)
    cpu, span = _cpu_seconds(pid) - cpu_before, time.perf_counter() - started
    refreshes = _refreshes(client, repo.name) - before
    idle_before = _cpu_seconds(pid)
    time.sleep(span)
    return Burst(saves, refreshes, cpu, _cpu_seconds(pid) - idle_before, shown - last)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=20)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--burst", type=int, default=100, help="saves in the burst (0: none)")
    parser.add_argument("--burst-gap-ms", type=float, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="statehub-bench-watch-") as tmp:
        root = Path(tmp)
        floor, previous = (
            asyncio.run(_event_floor(Path(tempfile.mkdtemp(dir=root)), args.samples, step, debounce))
            for step, debounce in ((STEP_MS, DEBOUNCE_MS), (PREVIOUS_STEP_MS, PREVIOUS_DEBOUNCE_MS))
        )
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
                    changed, then = _flip(path)
                    started = time.perf_counter()
                    _save(path, changed, atomic=number % 2 == 1)
                    latencies.append(_until_shown(client, f"{plan_id}-T01", then) - started)
                    time.sleep(0.05)
                burst = None
                if args.burst:
                    repo, gap = corpus.repos[-1], args.burst_gap_ms / 1000
                    burst = _burst(client, hub.pid, repo, corpus.plans[repo.name][1], args.burst, gap)
        finally:
            hub.terminate()
            hub.wait(timeout=60)
    floor_p50, floor_p95 = _percentile(floor, 0.5), _percentile(floor, 0.95)
    print(
        f"watcher over {args.repos} repos, {args.samples} saves (half atomic renames), "
        f"step {STEP_MS} ms, debounce {DEBOUNCE_MS} ms"
    )
    print(f"  floor: watchfiles event for a write   {_ms(floor)}")
    print(f"    (at {PREVIOUS_STEP_MS}/{PREVIOUS_DEBOUNCE_MS} ms, before ADR-039)  {_ms(previous)}")
    print(f"  floor: GET /tasks/{{ref}} round trip    {_ms(round_trips)}")
    print(f"  save until the API shows it          {_ms(latencies)}")
    print(
        f"  ratio to the event floor             p50 {_percentile(latencies, 0.5) / floor_p50:.2f}x"
        f"   p95 {_percentile(latencies, 0.95) / floor_p95:.2f}x"
    )
    print(
        f"  ratio to the {PREVIOUS_STEP_MS} ms-step floor          "
        f"p50 {_percentile(latencies, 0.5) / _percentile(previous, 0.5):.2f}x"
        f"   p95 {_percentile(latencies, 0.95) / _percentile(previous, 0.95):.2f}x"
    )
    if burst is not None:
        print(
            f"  burst: {burst.saves} saves {args.burst_gap_ms:g} ms apart -> {burst.refreshes} refreshes, "
            f"server CPU {burst.cpu:.2f} s (idle over as long: {burst.idle_cpu:.2f} s), "
            f"last save shown after {burst.last_shown * 1000:.0f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
