"""GET /workplans, /tasks, /canon: filters, pages, ready, errors, OpenAPI."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

Client = TestClient  # type: ignore[type-arg]


def _refs(client: Client, query: str) -> list[str]:
    response = client.get(f"/tasks{query}")
    assert response.status_code == 200, response.text
    return [t["ref"] for t in response.json()["items"]]


def test_lists_answer_items_and_total(loaded: Client) -> None:
    body = loaded.get("/workplans").json()
    assert body["total"] == 2
    assert [w["id"] for w in body["items"]] == ["APP-WP-0001", "OPS-WP-0001"]
    assert body["items"][1] == {
        "id": "OPS-WP-0001",
        "repo": "ops",
        "path": "workplans/OPS-WP-0001.md",
        "title": "Production home",
        "status": "active",
        "owner": "ops-lead",
        "related": [],
        "task_count": 3,
    }
    assert loaded.get("/tasks").json()["total"] == 7
    assert loaded.get("/canon").json()["total"] == 2


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?repo=ops", ["OPS-WP-0001"]),
        ("?status=draft", ["APP-WP-0001"]),
        ("?owner=ops-lead", ["OPS-WP-0001"]),
        ("?owner=nobody", []),
        ("?repo=app&status=active", []),
    ],
)
def test_workplan_filters(loaded: Client, query: str, expected: list[str]) -> None:
    assert [w["id"] for w in loaded.get(f"/workplans{query}").json()["items"]] == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?repo=ops", ["OPS-WP-0001-T01", "OPS-WP-0001-T02", "OPS-WP-0001-T03"]),
        ("?workplan=APP-WP-0001&status=cancelled", ["APP-WP-0001-T03"]),
        ("?status=blocked&owner=codex", ["OPS-WP-0001-T02"]),
        ("?owner=dana", ["OPS-WP-0001-T03"]),
    ],
)
def test_task_filters(loaded: Client, query: str, expected: list[str]) -> None:
    assert _refs(loaded, query) == expected


def test_ready_means_open_and_every_dependency_done(loaded: Client) -> None:
    # APP T01: cross-repo dependency done -> ready; T02: dependency missing -> not;
    # T03 cancelled -> not; T04: dependency open -> not. OPS T02 blocked but its dependency is done.
    assert _refs(loaded, "?ready=true") == ["APP-WP-0001-T01", "OPS-WP-0001-T02"]
    assert set(_refs(loaded, "?ready=false")) == {
        "APP-WP-0001-T02",
        "APP-WP-0001-T03",
        "APP-WP-0001-T04",
        "OPS-WP-0001-T01",
        "OPS-WP-0001-T03",
    }
    task = loaded.get("/tasks/APP-WP-0001-T01").json()
    assert (task["ready"], task["depends_on"]) == (True, ["OPS-WP-0001-T01"])


def test_limit_and_offset_page_through_a_stable_order(loaded: Client) -> None:
    everything = _refs(loaded, "")
    first = loaded.get("/tasks?limit=3").json()
    second = loaded.get("/tasks?limit=3&offset=3").json()
    assert (first["total"], second["total"]) == (7, 7)
    assert [t["ref"] for t in first["items"] + second["items"]] == everything[:6]
    past = loaded.get("/tasks?offset=100").json()
    assert (past["items"], past["total"]) == ([], 7)


@pytest.mark.parametrize(
    ("path", "valid"),
    [
        ("/tasks?status=finished", "todo, in-progress, blocked, done, cancelled"),
        ("/workplans?status=open", "draft, active, blocked, done, cancelled"),
        ("/canon?kind=decision", "adr, standard, runbook, note"),
        ("/canon?status=final", "proposed, accepted, superseded, deprecated"),
    ],
)
def test_a_bad_filter_value_is_a_400_naming_the_valid_values(loaded: Client, path: str, valid: str) -> None:
    response = loaded.get(path)
    assert response.status_code == 400
    body: dict[str, Any] = response.json()
    assert valid in body["error"]
    assert body["status_code"] == 400


@pytest.mark.parametrize(
    "path", ["/tasks?limit=0", "/tasks?limit=1001", "/tasks?offset=-1", "/tasks?ready=maybe"]
)
def test_bad_paging_and_flags_are_400(loaded: Client, path: str) -> None:
    assert loaded.get(path).status_code == 400


def test_one_workplan_with_tasks_and_body(loaded: Client) -> None:
    plan = loaded.get("/workplans/OPS-WP-0001").json()
    assert [t["id"] for t in plan["tasks"]] == ["T01", "T02", "T03"]
    assert plan["body"] == "\n# Plan\n\nFree text.\n"
    assert plan["tasks"][1]["depends_on"] == ["OPS-WP-0001-T01"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/workplans/NOPE-WP-0001", "no workplan 'NOPE-WP-0001'"),
        ("/tasks/OPS-WP-0001-T99", "no task 'OPS-WP-0001-T99'"),
        ("/canon/ADR-999", "no canon document 'ADR-999'"),
        ("/canon/ADR-001?repo=app", "no canon document 'ADR-001' in repo 'app'"),
        ("/repos/nope", "no repo registered as 'nope'"),
    ],
)
def test_unknown_ids_are_404_with_a_json_error(loaded: Client, path: str, message: str) -> None:
    response = loaded.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert message in response.json()["error"]


def test_canon_filters_and_one_document(loaded: Client) -> None:
    assert [d["id"] for d in loaded.get("/canon?kind=runbook").json()["items"]] == ["RB-001"]
    assert [d["id"] for d in loaded.get("/canon?status=accepted&repo=ops").json()["items"]] == ["ADR-001"]
    doc = loaded.get("/canon/ADR-001").json()
    assert (doc["title"], doc["date"], doc["body"]) == ("Files", "2026-05-02", "Body.\n")


def test_openapi_documents_every_path(loaded: Client) -> None:
    schema = loaded.get("/schema/openapi.json").json()
    assert {
        "/state/health",
        "/repos",
        "/repos/{slug}",
        "/repos/{slug}/refresh",
        "/workplans",
        "/workplans/{workplan_id}",
        "/tasks",
        "/tasks/{ref}",
        "/canon",
        "/canon/{doc_id}",
    } <= set(schema["paths"])
    task_params = {p["name"] for p in schema["paths"]["/tasks"]["get"]["parameters"]}
    assert {"repo", "workplan", "status", "owner", "ready", "limit", "offset"} <= task_params


def test_schema_is_served_and_unknown_paths_are_json_404(loaded: Client) -> None:
    assert loaded.get("/schema").status_code == 200
    response = loaded.get("/no-such-path")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
