"""A consistency sweep: per repo, pull, re-index, apply pending events, push, report.

The sweep holds the applier lock for one repo at a time, so the server's
applier and CLI commands can keep working on the other repos meanwhile. The
last report is kept in the data dir (``sweeps/latest.json``) so the API shows
a sweep the CLI ran and the other way round.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from statehub.atomic import atomic_write
from statehub.cache import queries
from statehub.events import EventDesk
from statehub.gitrepo import open_repo
from statehub.settings import Settings
from statehub.sweep.findings import find_problems
from statehub.sweep.remote import fetch, integrate, push, upstream

__all__ = ["latest_sweep", "sweep", "sweep_repo"]


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _latest_path(settings: Settings) -> Path:
    return settings.data_dir / "sweeps" / "latest.json"


def sweep_repo(desk: EventDesk, slug: str) -> dict[str, Any]:
    """Sweep one registered repo; the caller holds the applier lock."""
    hub = desk.hub
    root = hub.repo(slug).path
    report: dict[str, Any] = {
        "repo": slug,
        "remote": None,
        "pulled": 0,
        "rebased": False,
        "events": {"applied": 0, "unchanged": 0, "rejected": 0, "waiting": 0},
        "commits": [],
        "pushed": False,
        "push": "no remote",
        "problems": [],
    }
    repo = open_repo(root)
    try:
        desk.applier.recover(slug, repo)
        target = upstream(repo)
        problem: str | None = None
        if target is not None:
            remote, branch = target
            report["remote"] = f"{remote}/{branch}"
            problem = fetch(repo, remote)
            if problem is None:
                merged = integrate(repo, remote, branch)
                report["pulled"], report["rebased"], problem = merged.pulled, merged.rebased, merged.problem
            if problem:
                report["problems"].append(problem)
        hub.refresh(slug)
        applied = desk.apply_locked([slug])[0]
        for name in report["events"]:
            report["events"][name] = getattr(applied, name)
        report["commits"] = applied.commits
        report["problems"].extend(applied.reasons)
        if target is not None and problem is None:
            remote, branch = target
            pushed = push(repo, remote, branch)
            report["pushed"], report["push"] = pushed.pushed, pushed.reason or "pushed"
            if pushed.attempts > 1:
                report["push"] = (
                    f"pushed after {pushed.attempts} attempts" if pushed.pushed else pushed.reason
                )
            if not pushed.pushed and pushed.reason != "nothing to push":
                report["problems"].append(pushed.reason)
            hub.refresh(slug)
        elif target is not None:
            report["push"] = "not pushed: the repo could not be brought in step with its remote"
    finally:
        repo.close()
    with hub.engine.connect() as conn:
        report["findings"] = find_problems(conn, slug)
        report["counts"] = queries.get_repo(conn, slug)["counts"]
    return report


def sweep(
    desk: EventDesk,
    slugs: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Sweep the named repos (default: all registered), one at a time, and keep the report."""
    hub = desk.hub
    targets = list(slugs) if slugs else [r.slug for r in hub.repos()]
    for slug in targets:
        hub.repo(slug)  # unknown slugs fail before anything is done
    started = _now()
    repos: list[dict[str, Any]] = []
    for slug in targets:
        desk.lock.acquire()
        try:
            repos.append(sweep_repo(desk, slug))
        except Exception as error:  # one broken repo must not stop the sweep of the others
            repos.append({"repo": slug, "error": f"{type(error).__name__}: {error}", "findings": []})
        finally:
            desk.lock.release()
        if progress:
            progress(slug)
    report = {
        "started_at": started,
        "finished_at": _now(),
        "repos": repos,
        "totals": {
            "repos": len(repos),
            "findings": sum(len(r.get("findings", [])) for r in repos),
            "commits": sum(len(r.get("commits", [])) for r in repos),
            "pushed": sum(1 for r in repos if r.get("pushed")),
            "problems": sum(len(r.get("problems", [])) + (1 if "error" in r else 0) for r in repos),
        },
    }
    _save(_latest_path(hub.settings), report)
    return report


def _save(path: Path, report: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(report, indent=2))


def latest_sweep(settings: Settings) -> dict[str, Any] | None:
    path = _latest_path(settings)
    if not path.exists():
        return None
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded
