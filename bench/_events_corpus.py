"""A synthetic corpus for the events benchmark: N git repos with workplans, and a stream of events.

Kept apart from any shared corpus generator so the events benchmark can evolve on its own.
Every unique event changes its file when applied in order, so "exactly once" can be checked by
counting one ``Statehub-Event`` trailer per unique key.
"""

from __future__ import annotations

import random
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Corpus", "make_corpus", "make_events"]

STATUSES = ["todo", "in-progress", "blocked", "done", "cancelled"]
PLAN_STATUSES = ["draft", "active", "blocked", "done"]


@dataclass
class Corpus:
    repos: list[Path]
    plans: dict[str, list[str]] = field(default_factory=dict)
    """repo slug -> workplan ids."""


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _plan_text(plan_id: str, tasks: int) -> str:
    lines = [
        "+++",
        f'id = "{plan_id}"   # synthetic',
        f'title = "Plan {plan_id}"',
        'status = "active"               # draft | active | blocked | done | cancelled',
        'owner = "custodian"',
    ]
    for number in range(1, tasks + 1):
        lines += ["", "[[tasks]]", f'id = "T{number:02d}"', f'title = "Task {number}"', 'status = "todo"']
    lines += ["+++", "", f"# {plan_id}", "", "Free text that must survive every write-back.", ""]
    return "\n".join(lines)


def make_corpus(root: Path, repos: int = 74, plans: int = 3, tasks: int = 5) -> Corpus:
    corpus = Corpus([])
    for index in range(repos):
        slug = f"repo-{index:02d}"
        path = root / slug
        (path / "workplans").mkdir(parents=True)
        _git(path, "init", "-q", "-b", "main")
        _git(path, "config", "user.email", "bench@statehub.invalid")
        _git(path, "config", "user.name", "Bench")
        ids = [f"R{index:02d}-WP-{n:04d}" for n in range(1, plans + 1)]
        for plan_id in ids:
            (path / "workplans" / f"{plan_id}.md").write_text(_plan_text(plan_id, tasks), encoding="utf-8")
        _git(path, "add", "-A")
        _git(path, "commit", "-q", "-m", "synthetic plans")
        corpus.repos.append(path)
        corpus.plans[slug] = ids
    return corpus


def make_events(
    corpus: Corpus, total: int, duplicates: float, seed: int = 7, actors: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """``total`` events of mixed kinds, a ``duplicates`` share of them exact resends; (events, unique).

    ``actors=0``: one actor per repo (``agt-<slug>``); ``actors=N``: ``agt-0`` .. ``agt-<N-1>`` take
    turns, so consecutive events of a repo come from different actors (the interleaved case)."""
    rng = random.Random(seed)
    unique_count = round(total * (1 - duplicates))
    task_status: dict[tuple[str, str], str] = {}
    plan_status: dict[str, str] = {}
    next_task: dict[str, int] = {}
    events: list[dict[str, Any]] = []
    slugs = list(corpus.plans)
    for number in range(unique_count):
        slug = rng.choice(slugs)
        plan = rng.choice(corpus.plans[slug])
        base = {
            "key": f"BENCH{number:06d}",
            "workplan": plan,
            "actor": f"agt-{number % actors}" if actors else f"agt-{slug}",
            "at": "2026-07-03T22:29:55Z",
        }
        roll = rng.random()
        if roll < 0.5:
            task = f"T{rng.randint(1, 5):02d}"
            events.append(base | {"kind": "progress.note", "task": task, "note": f"step {number} done"})
        elif roll < 0.8:
            task = f"T{rng.randint(1, 5):02d}"
            current = task_status.get((plan, task), "todo")
            status = rng.choice([s for s in STATUSES if s != current])
            task_status[(plan, task)] = status
            events.append(base | {"kind": "task.status", "task": task, "status": status})
        elif roll < 0.9:
            new = next_task.get(plan, 6)
            next_task[plan] = new + 1
            events.append(base | {"kind": "task.add", "task": f"T{new:02d}", "title": f"Added {number}"})
        else:
            current = plan_status.get(plan, "active")
            status = rng.choice([s for s in PLAN_STATUSES if s != current])
            plan_status[plan] = status
            events.append(base | {"kind": "workplan.status", "status": status})
    for _ in range(total - unique_count):  # exact resends of events already sent
        position = rng.randrange(len(events))
        events.insert(rng.randrange(position + 1, len(events) + 1), dict(events[position]))
    return events, unique_count
