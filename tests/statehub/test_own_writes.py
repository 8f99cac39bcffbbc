"""The hub's own writes cost the file watcher nothing, and a person's change right after one is seen
(canon/ADR-048).

The watcher's refresh (``RepoWatcher._refresh``) is called here as its loop calls it, with the
repo-relative paths of a batch, so what it does after the write-back is checked without waiting
for a notifier; re-indexes are counted by ``statehub_index_duration_seconds`` of the repo.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import httpx
from sqlalchemy import func, select

from statehub.auth import LOCAL_COMMAND
from statehub.cache.schema import TASKS, WORKPLANS
from statehub.events.service import EventDesk
from statehub.hub import Hub
from statehub.metrics import HubMetrics
from statehub.watcher import RepoWatcher
from tests.hubserver import HubServer
from tests.statehub.eventfixtures import PLAN, PLAN_PATH, event, plan_repo
from tests.statehub.test_stream import WAIT, Subscriber, _stream, _summary, two_repos

__all__ = ["two_repos"]  # the fixture, shared with the stream's tests

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from statehub.settings import Settings
    from tests.gitfixtures import GitRepo


def _indexes(metrics: HubMetrics, slug: str) -> float:
    """How many re-indexes of ``slug`` the hub counted."""
    found = metrics.registry.get_sample_value("statehub_index_duration_seconds_count", {"repo": slug})
    return found or 0.0


def _status(hub: Hub, task: str) -> str:
    with hub.engine.connect() as conn:
        return str(conn.execute(select(TASKS.c.status).where(TASKS.c.ref == f"{PLAN}-{task}")).scalar())


def _said(hub: Hub, last: int) -> list[tuple[str, str | None]]:
    """The change log's messages after ``last``: (type, cause)."""
    return [(c.type, json.loads(c.data).get("cause")) for c in hub.changes.after(last)]


def _rename_save(root: Path, rel: str, text: str) -> None:
    """An editor's atomic save: a temp file renamed over the path (a new inode)."""
    temp = root / f"{rel}.swp-save"
    temp.write_text(text, encoding="utf-8")
    temp.replace(root / rel)


def test_the_watcher_reads_nothing_of_the_hubs_own_write_yet_sees_a_person_right_after(
    settings: Settings, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = plan_repo(make_repo)
    metrics = HubMetrics()
    with Hub(settings, metrics=metrics) as hub, EventDesk(hub) as desk:
        slug = hub.register(repo.root).repo
        watcher = RepoWatcher(hub)
        desk.submit(event("E1"), authorise=LOCAL_COMMAND)  # T02 in-progress -> done
        _pruned, last = hub.changes.bounds()
        (applied,) = desk.apply_pending() or []
        assert applied.applied == 1 and applied.commits
        assert _indexes(metrics, slug) == 1  # the write-back's own re-index
        said = [s for s in _said(hub, last) if s[0] in ("task.changed", "repo.indexed")]
        assert said == [("task.changed", "event"), ("repo.indexed", "event")]
        _pruned, last = hub.changes.bounds()

        watcher._refresh(slug, [PLAN_PATH], repo.root)  # the watcher's batch of the hub's own write
        assert _indexes(metrics, slug) == 1  # nothing re-indexed, nothing read
        assert hub.changes.after(last) == []

        # A person's save right after, the same size (an editor's atomic rename: a new inode).
        written = repo.read(PLAN_PATH)
        edited = written.replace('status = "done"   # finished', 'status = "todo"   # finished', 1)
        assert len(edited) == len(written) and edited != written
        _rename_save(repo.root, PLAN_PATH, edited)
        watcher._refresh(slug, [PLAN_PATH], repo.root)
        assert _indexes(metrics, slug) == 2
        assert _status(hub, "T01") == "todo"
        assert _said(hub, last) == [("task.changed", "file-edit"), ("repo.indexed", "file-edit")]
        _pruned, last = hub.changes.bounds()

        # Written in place (the inode kept), another size: seen as well.
        (repo.root / PLAN_PATH).write_text(edited.replace('status = "todo"', 'status = "blocked"', 1))
        watcher._refresh(slug, [PLAN_PATH], repo.root)
        assert _indexes(metrics, slug) == 3
        assert _status(hub, "T01") == "blocked"

        # A path that is no source file (a directory renamed, a checkout) refreshes the whole repo.
        watcher._refresh(slug, ["workplans"], repo.root)
        assert _indexes(metrics, slug) == 4
        # A source file gone, or new, is no file the cache holds as it is.
        (repo.root / "workplans/OTHER-WP-0001.md").unlink()
        watcher._refresh(slug, ["workplans/OTHER-WP-0001.md"], repo.root)
        assert _indexes(metrics, slug) == 5
        with hub.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(WORKPLANS)).scalar() == 1


def _metric(server: HubServer, name: str, repo: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=WAIT).text
    for line in text.splitlines():
        if line.startswith(f'{name}{{repo="{repo}"}} '):
            return float(line.split()[-1])
    return 0.0


def test_an_applied_event_changes_say_cause_event_once_with_the_watcher_on(
    two_repos: tuple[GitRepo, GitRepo], served_settings: Settings
) -> None:
    demo, _other = two_repos
    home = served_settings.config_dir.parent
    with HubServer(home, watch=True, env={"STATEHUB_STREAM_KEEPALIVE": "0.5"}) as server:
        watcher: Subscriber = _stream(server)
        for n, status in enumerate(("blocked", "in-progress", "done")):
            answer = httpx.post(
                f"{server.url}/events",
                json={
                    "key": f"own-{n}",
                    "kind": "task.status",
                    "actor": "bob",
                    "workplan": "DEMO-WP-0001",
                    "task": "T01",
                    "status": status,
                },
                timeout=WAIT,
            )
            assert answer.status_code == 202, answer.text
            watcher.wait_for("event.applied", key=f"own-{n}")
        # A person's edit after the hub's writes: the watcher handles batches in turn, so once its
        # change is out, the batches of the hub's own writes were handled before it.
        path = "workplans/DEMO-WP-0001.md"
        demo.write(path, demo.read(path).replace('title = "task 1"', 'title = "by hand"'))
        watcher.wait_for("repo.indexed", repo="demo", cause="file-edit")
        got = [m for m in watcher.messages if m.event in ("task.changed", "repo.indexed")]
        assert _summary(got) == [
            *[
                ("task.changed", "demo", "DEMO-WP-0001-T01", "event"),
                ("repo.indexed", "demo", None, "event"),
            ]
            * 3,
            ("task.changed", "demo", "DEMO-WP-0001-T01", "file-edit"),
            ("repo.indexed", "demo", None, "file-edit"),
        ]
        assert got[-2].data["fields"]["title"] == {"old": "task 1", "new": "by hand"}
        # Three write-back re-indexes and the person's edit; none for the hub's own writes.
        assert _metric(server, "statehub_index_duration_seconds_count", "demo") == 4
        watcher.close()
