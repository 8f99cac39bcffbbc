"""MCP round trip over stdio, beside an in-process floor, in one run.

An agent's loop step: ``list_ready_tasks`` (limit 50), then a write tool
(``add_progress_note`` on a ready task: one event, applied and committed by the
``statehub mcp`` child process itself). Timed per call with the official SDK's
client driving ``statehub mcp`` over stdio, p50 and p99 over ``--rounds``; the
floor is the same work in this process with no protocol: ``queries.list_tasks``
on an open engine, and ``EventDesk.submit`` + ``apply_pending`` for the note (what
``statehub event note`` does once its process is up). When the hub has claims
(statehub.claims), the issue's loop is timed too: ``list_ready_tasks`` then
``claim_task`` on its first (claimable) task, beside ``claims.claim`` +
``apply_pending`` in process. Start-up of the child (``initialize``) is reported apart.

    .venv/bin/python bench/mcp.py [--repos 20] [--rounds 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path and its name would hide the
# SDK's ``mcp`` package: put the checkout there instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != _HERE)]

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client

from bench.corpus import build_corpus
from statehub.auth.event_policy import LOCAL_COMMAND
from statehub.cache import queries
from statehub.events import EventDesk, new_event_key
from statehub.hub import Hub
from statehub.mcpserver import TOOLS, Caller, call_tool, claims_library, read_anything
from statehub.settings import Settings


class _Access:
    def __init__(self, hub: Hub, desk: EventDesk) -> None:
        self.hub = hub
        self._desk = desk

    def desk(self) -> EventDesk:
        return self._desk


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def line(label: str, samples: list[float], floor: list[float] | None = None) -> str:
    text = f"{label:<34} p50 {pct(samples, 0.5):7.2f} ms  p99 {pct(samples, 0.99):7.2f} ms"
    if floor:
        ratio = statistics.median(samples) / statistics.median(floor)
        text += f"  (floor p50 {pct(floor, 0.5):6.2f} ms, ratio {ratio:5.1f}x)"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="statehub-bench-mcp-") as tmp:
        base = Path(tmp)
        corpus = build_corpus(base / "corpus", repos=args.repos)
        home = base / "home"
        env = {"STATEHUB_HOME": str(home)}
        settings = Settings.from_env(env).with_overrides(watch=False)
        with Hub(settings) as hub:
            for repo in corpus.repos:
                hub.register(repo)
            with hub.engine.connect() as conn:
                ready = queries.list_tasks(conn, ready=True, limit=1000).items
        targets = [t.ref for t in ready]
        print(
            f"corpus: {len(corpus.repos)} repos, {corpus.workplans} workplans, {corpus.tasks} tasks; "
            f"{len(targets)} ready; {args.rounds} rounds"
        )

        # the floor: the same work in this process, no protocol
        floor_list: list[float] = []
        floor_note: list[float] = []
        tool_list: list[float] = []
        floor_claim: list[float] = []
        mcp_claim: list[float] = []
        claims = claims_library()
        with Hub(settings) as hub, EventDesk(hub) as desk:
            access = _Access(hub, desk)
            caller = Caller("agt-bench", LOCAL_COMMAND, read_anything)
            tools = {spec.name: spec for spec in TOOLS}
            for i in range(args.rounds):
                start = time.perf_counter()
                answer = call_tool(tools, access, caller, "list_ready_tasks", {"limit": 50})
                tool_list.append(time.perf_counter() - start)
                assert not answer.is_error
                start = time.perf_counter()
                with hub.engine.connect() as conn:
                    queries.list_tasks(conn, ready=True, limit=50)
                floor_list.append(time.perf_counter() - start)
                ref = targets[i % len(targets)]
                workplan, _, task = ref.rpartition("-")
                event = {
                    "kind": "progress.note",
                    "workplan": workplan,
                    "task": task,
                    "note": f"floor round {i}",
                    "key": new_event_key(),
                    "actor": "agt-bench",
                }
                start = time.perf_counter()
                desk.submit(event, authorise=LOCAL_COMMAND)
                desk.apply_pending(timeout=5)
                floor_note.append(time.perf_counter() - start)
            for _ in range(args.rounds if claims is not None else 0):
                assert claims is not None
                ref = claims.list_claimable(desk, limit=1).items[0].ref
                start = time.perf_counter()
                claims.claim(desk, ref, "agt-bench-floor", authorise=LOCAL_COMMAND)
                desk.apply_pending(timeout=5)
                floor_claim.append(time.perf_counter() - start)

        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "statehub", "mcp", "--actor", "agt-bench"],
            env={**env, "PATH": os.environ.get("PATH", "")},
        )
        mcp_list: list[float] = []
        mcp_note: list[float] = []
        pair: list[float] = []
        started: list[float] = []

        async def scenario() -> None:
            start = time.perf_counter()
            async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                started.append(time.perf_counter() - start)
                for i in range(args.rounds):
                    begin = time.perf_counter()
                    listed = await session.call_tool("list_ready_tasks", {"limit": 50})
                    mid = time.perf_counter()
                    assert not listed.is_error, listed.content
                    ref = targets[i % len(targets)]
                    noted = await session.call_tool(
                        "add_progress_note", {"ref": ref, "note": f"mcp round {i}"}
                    )
                    end = time.perf_counter()
                    assert not noted.is_error, noted.content
                    assert noted.structured_content is not None
                    assert noted.structured_content["state"] == "applied", noted.structured_content
                    mcp_list.append(mid - begin)
                    mcp_note.append(end - mid)
                    pair.append(end - begin)
                for _ in range(args.rounds if claims is not None else 0):
                    begin = time.perf_counter()
                    listed = await session.call_tool("list_ready_tasks", {"limit": 50})
                    assert listed.structured_content is not None
                    ref = listed.structured_content["items"][0]["ref"]
                    won = await session.call_tool("claim_task", {"ref": ref})
                    mcp_claim.append(time.perf_counter() - begin)
                    assert not won.is_error, won.content

        anyio.run(scenario)

    print(f"statehub mcp start-up to initialized:  {started[0] * 1000:.0f} ms")
    print(line("list_ready_tasks (stdio)", mcp_list, floor_list))
    print(line("  of which the tool, in-process", tool_list, floor_list))
    print(line("add_progress_note (stdio, commit)", mcp_note, floor_note))
    print(
        line(
            "list_ready_tasks + note (stdio)",
            pair,
            [a + b for a, b in zip(floor_list, floor_note, strict=True)],
        )
    )
    if claims is None:
        print("claims: this hub has no statehub.claims; list_ready_tasks + claim_task not timed")
    else:
        both = [a + b for a, b in zip(floor_list, floor_claim, strict=True)]
        print(line("list_ready_tasks + claim_task", mcp_claim, both))


if __name__ == "__main__":
    main()
