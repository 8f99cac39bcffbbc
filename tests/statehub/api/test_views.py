"""What the web UI's views ask of the API (issue 15): lists filtered by several statuses, an owner
prefix and a sort, with their totals; a task's links and events; a workplan's overview."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from litestar.testing import TestClient

    Client = TestClient[Any]


def test_several_statuses_an_owner_prefix_and_a_sort_narrow_and_order_the_task_list(loaded: Client) -> None:
    every = loaded.get("/tasks?limit=1000").json()
    assert every["total"] == 7
    wanted = {t["ref"] for t in every["items"] if t["status"] in ("todo", "done")}
    both = loaded.get("/tasks?status=todo&status=done&limit=1000").json()
    assert both["total"] == len(wanted) == 5 and {t["ref"] for t in both["items"]} == wanted
    prefixed = loaded.get("/tasks", params={"owner_prefix": "co"}).json()
    assert {t["ref"] for t in prefixed["items"]} == {"OPS-WP-0001-T01", "OPS-WP-0001-T02"}
    assert loaded.get("/tasks", params={"owner_prefix": "Co"}).json()["total"] == 0  # case-sensitive
    assert loaded.get("/tasks", params={"owner_prefix": "%"}).json()["total"] == 0  # no wildcard
    titles = [t["title"] for t in loaded.get("/tasks?sort=title&desc=true&limit=1000").json()["items"]]
    assert titles == sorted(titles, reverse=True)
    page = loaded.get("/tasks?sort=title&limit=2&offset=2").json()
    assert page["total"] == 7 and [t["title"] for t in page["items"]] == sorted(titles)[2:4]
    claimable = loaded.get("/tasks?claimable=false&sort=title&desc=true").json()["items"]
    claimable = [t["title"] for t in claimable]
    assert claimable == sorted(claimable, reverse=True) and len(claimable) > 1
    assert loaded.get("/tasks?status=someday").status_code == 400
    claimable = loaded.get("/tasks?claimable=false&status=done&status=blocked").json()
    assert {t["status"] for t in claimable["items"]} == {"done", "blocked"}


def test_workplans_sort_and_filter_by_several_statuses(loaded: Client) -> None:
    plans = loaded.get("/workplans?status=draft&status=active&sort=owner&desc=true").json()
    assert [p["id"] for p in plans["items"]] == ["OPS-WP-0001", "APP-WP-0001"]
    assert loaded.get("/workplans?owner_prefix=ops-").json()["total"] == 1


def test_canon_sorts(loaded: Client) -> None:
    ids = [c["id"] for c in loaded.get("/canon?sort=kind&desc=true").json()["items"]]
    assert ids == ["RB-001", "ADR-001"]  # runbook after adr, reversed


def test_a_task_links_name_its_dependencies_and_dependents_across_repos(loaded: Client) -> None:
    links = loaded.get("/tasks/OPS-WP-0001-T03/links").json()
    assert links["task"]["ref"] == "OPS-WP-0001-T03"
    assert [(d["ref"], d["task"]["status"]) for d in links["dependencies"]] == [
        ("OPS-WP-0001-T02", "blocked")
    ]
    assert [t["ref"] for t in links["dependents"]] == ["APP-WP-0001-T04"]
    missing = loaded.get("/tasks/APP-WP-0001-T02/links").json()
    assert missing["dependencies"] == [{"ref": "OPS-WP-0009-T01", "task": None}]
    assert loaded.get("/tasks/OPS-WP-0001-T09/links").status_code == 404


def test_a_workplan_overview_counts_progress_and_links_leaving_it(loaded: Client) -> None:
    ops = loaded.get("/workplans/OPS-WP-0001/overview").json()
    assert ops["progress"] == {
        "total": 3,
        "done": 1,
        "by_status": {"todo": 1, "in-progress": 0, "blocked": 1, "done": 1, "cancelled": 0},
        "percent": 33,
    }
    assert ops["outside"] == []
    assert sorted((d["on"], d["task"]["ref"]) for d in ops["dependents"]) == [
        ("OPS-WP-0001-T01", "APP-WP-0001-T01"),
        ("OPS-WP-0001-T03", "APP-WP-0001-T04"),
    ]
    app = loaded.get("/workplans/APP-WP-0001/overview").json()
    assert [(d["ref"], d["task"] and d["task"]["repo"]) for d in app["outside"]] == [
        ("OPS-WP-0001-T01", "ops"),
        ("OPS-WP-0009-T01", None),
        ("OPS-WP-0001-T03", "ops"),
    ]
    assert app["progress"]["percent"] == 0 and app["dependents"] == []


def test_events_filter_by_task_and_kind_newest_first(loaded: Client) -> None:
    sent = [
        {
            "key": "v-1",
            "kind": "progress.note",
            "workplan": "OPS-WP-0001",
            "task": "T03",
            "note": "a",
            "actor": "dana",
        },
        {
            "key": "v-2",
            "kind": "task.status",
            "workplan": "OPS-WP-0001",
            "task": "T03",
            "status": "done",
            "actor": "dana",
        },
        {
            "key": "v-3",
            "kind": "progress.note",
            "workplan": "OPS-WP-0001",
            "task": "T01",
            "note": "b",
            "actor": "dana",
        },
    ]
    assert loaded.post("/events?each=true", json=sent).status_code == 202
    mine = loaded.get("/events?task=OPS-WP-0001-T03&desc=true").json()
    assert mine["total"] == 2
    assert [e["key"] for e in mine["items"]] == ["v-2", "v-1"]
    assert all(e["event"]["task"] == "T03" for e in mine["items"])
    assert loaded.get("/events?kind=task.status&task=OPS-WP-0001-T01").json()["total"] == 0
    assert loaded.get("/events?task=not-a-ref").status_code == 400
    assert loaded.get("/events?task=").json()["total"] == 3  # empty: any task
    assert loaded.get("/events?task=OPS-WP-0001-T03&workplan=APP-WP-0001").json()["total"] == 0
