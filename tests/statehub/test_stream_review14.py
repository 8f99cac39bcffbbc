"""Issue 14's review: what a stream subscriber is told matches a fresh query, and a reconnecting
``EventSource`` (``?since=`` in its URL, ``Last-Event-ID`` from itself) gets nothing twice."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx

from statehub.cache.queries import get_task
from statehub.hub import Hub
from tests.gitfixtures import workplan_text
from tests.statehub.test_stream import (
    WAIT,
    _edit,
    _stream,
    server,  # noqa: F401 - a fixture
    two_repos,  # noqa: F401 - a fixture
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from statehub.settings import Settings
    from tests.gitfixtures import GitRepo
    from tests.hubserver import HubServer

MANIFEST = '[repo]\nslug = "{slug}"\ntitle = "{slug}"\nprefixes = [{prefixes}]\n'


def _manifest(slug: str, *prefixes: str) -> str:
    return MANIFEST.format(slug=slug, prefixes=", ".join(f'"{p}"' for p in prefixes))


def _task_messages(hub: Hub, after: int) -> list[dict[str, Any]]:
    return [json.loads(m.data) for m in hub.changes.after(after, 10_000) if m.type == "task.changed"]


def test_adding_or_removing_a_repo_never_says_another_repos_task_was_added_or_removed(
    make_repo: Callable[[str], GitRepo], settings: Settings
) -> None:
    """``demo``'s task depends on one of ``ops``: registering ``ops``, changing the prefixes it
    declares and removing it change no row of ``demo`` but its flags, and each message about a
    ``demo`` task is a change whose new values are what the cache says."""
    demo = make_repo("demo")
    demo.write("statehub.toml", _manifest("demo", "DEMO"))
    plan = [
        {
            "id": "T01",
            "title": "waits for ops",
            "status": "todo",
            "owner": "ada",
            "depends_on": ["OPS-WP-0001-T01"],
        }
    ]
    demo.write("workplans/DEMO-WP-0001.md", workplan_text("DEMO-WP-0001", plan))
    demo.commit("start")
    ops = make_repo("ops")
    ops.write("statehub.toml", _manifest("ops", "OPS"))
    done = [{"id": "T01", "title": "done already", "status": "done", "owner": "bob"}]
    ops.write("workplans/OPS-WP-0001.md", workplan_text("OPS-WP-0001", done))
    ops.commit("start")

    with Hub(settings) as hub:
        hub.register(demo.root)
        seen: list[dict[str, Any]] = []

        def step(change: Callable[[], object]) -> None:
            last = hub.changes.bounds()[1]
            change()
            found = _task_messages(hub, last)
            seen.extend(found)
            with hub.engine.connect() as conn:
                fresh = get_task(conn, "DEMO-WP-0001-T01")
            for message in found:
                if message["repo"] == "demo":
                    assert message["change"] == "changed", message
                    assert all(getattr(fresh, k) == v["new"] for k, v in message["fields"].items()), message

        step(lambda: hub.register(ops.root))
        ops.write("statehub.toml", _manifest("ops", "OPS", "OPX"))
        ops.commit("a second prefix")
        step(lambda: hub.refresh("ops"))
        ops.write(
            "statehub.toml", _manifest("ops", "OPX")
        )  # OPS given up: demo's dependency resolves no more
        ops.commit("OPS given up")
        step(lambda: hub.refresh("ops"))
        ops.write("statehub.toml", _manifest("ops", "OPS"))
        ops.commit("OPS back")
        step(lambda: hub.refresh("ops"))
        step(lambda: hub.remove("ops"))
    demo_messages = [m for m in seen if m["repo"] == "demo"]
    assert all(m["change"] == "changed" for m in demo_messages), demo_messages
    # the ready flag flips with ops' done task coming and going, and each flip is told once
    flips = [m["fields"]["ready"]["new"] for m in demo_messages if "ready" in m["fields"]]
    assert flips == [True, False, True, False], demo_messages


def test_an_event_source_reconnecting_to_a_since_url_with_last_event_id_gets_nothing_twice(
    server: HubServer,  # noqa: F811 - the fixture
    two_repos: tuple[GitRepo, GitRepo],  # noqa: F811 - the fixture
) -> None:
    """A browser's ``EventSource("/events/stream?since=N")`` sends ``Last-Event-ID`` (the last id
    it got) to the same URL when it reconnects by itself: the replay starts after that id."""
    demo, other = two_repos
    everything = _stream(server, "?since=0")
    _edit(server, demo, "demo", "DEMO", status="done")
    _edit(server, other, "other", "OTH", status="done")
    seen = everything.wait_for("repo.indexed", repo="demo", cause="file-edit")
    everything.wait_for("repo.indexed", repo="other", cause="file-edit")
    assert seen.id is not None
    after = [m.id for m in everything.messages if m.id is not None and m.id > seen.id]
    assert after, "messages after the demo edit"

    again = _stream(server, "?since=0", **{"Last-Event-ID": str(seen.id)})
    again.wait(lambda ms: len(ms) >= len(after), "the messages after Last-Event-ID")
    assert [m.id for m in again.messages] == after
    # the other way round too: a URL's since later than the header's id counts
    later = _stream(server, f"?since={seen.id}", **{"Last-Event-ID": "1"})
    later.wait(lambda ms: len(ms) >= len(after), "the messages after since")
    assert [m.id for m in later.messages] == after
    assert httpx.get(f"{server.url}/state/health", timeout=WAIT).status_code == 200
    for subscriber in (everything, again, later):
        subscriber.close()


def test_a_repo_filter_naming_no_registered_repo_is_404_as_on_get_tasks(server: HubServer) -> None:  # noqa: F811
    """A typo in ``repo`` (or ``statehub watch --repo``) must not be a stream that stays silent for ever."""
    answer = httpx.get(f"{server.url}/events/stream?repo=demo&repo=dmeo", timeout=WAIT)
    assert answer.status_code == 404, answer.text
    assert "dmeo" in answer.json()["error"]
    assert httpx.get(f"{server.url}/tasks?repo=dmeo", timeout=WAIT).status_code == 404
