"""Helpers for event tests: a registered repo with one workplan, events to send, trailers to count."""

from __future__ import annotations

import re
from typing import Any

from tests.gitfixtures import GitRepo, workplan_text

__all__ = ["PLAN", "PLAN_PATH", "event", "plan_repo", "trailer_counts"]

PLAN = "CUST-WP-0054"
PLAN_PATH = "workplans/CUST-WP-0054.md"
PLAN_TEXT = (
    "+++\n"
    'id = "CUST-WP-0054"   # the plan\n'
    'title = "Workstation independence"\n'
    'status = "active"               # draft | active | blocked | done | cancelled\n'
    'owner = "custodian"\n'
    "\n"
    "# first task\n"
    "[[tasks]]\n"
    'id = "T01"\n'
    'title = "Fleet architecture"\n'
    'status = "done"   # finished in June\n'
    "\n"
    "[[tasks]]\n"
    'id = "T02"\n'
    'title = "De-hub the network"\n'
    'status = "in-progress"\n'
    'depends_on = ["T01"]\n'
    "+++\n"
    "\n"
    "# Workstation independence\n"
    "\n"
    "Free   text, kept *exactly*.\n"
)


def plan_repo(make_repo: Any, name: str = "the-custodian", text: str = PLAN_TEXT) -> GitRepo:
    repo: GitRepo = make_repo(name)
    repo.write(PLAN_PATH, text)
    repo.write("workplans/OTHER-WP-0001.md", workplan_text("OTHER-WP-0001", [{"id": "T01", "title": "x"}]))
    repo.commit("initial plans")
    return repo


def event(key: str, kind: str = "task.status", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "key": key,
        "kind": kind,
        "workplan": PLAN,
        "actor": "agt-codex",
        "at": "2026-07-03T22:29:55Z",
    }
    if kind == "task.status":
        base |= {"task": "T02", "status": "done"}
    elif kind == "progress.note":
        base |= {"task": "T02", "note": "tunnels moved"}
    elif kind == "workplan.status":
        base |= {"status": "done"}
    elif kind == "task.add":
        base |= {"task": "T03", "title": "Drain coulombcore"}
    return base | fields


def trailer_counts(repo: GitRepo) -> dict[str, int]:
    counts: dict[str, int] = {}
    for key in re.findall(r"^Statehub-Event: (\S+)$", repo.git("log", "--format=%B"), re.MULTILINE):
        counts[key] = counts.get(key, 0) + 1
    return counts
