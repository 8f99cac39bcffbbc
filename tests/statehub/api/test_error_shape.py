"""Every error answers ``{"error", "status_code", "details"?}``, the framework's included (issue 11).

Also: unknown query parameters are 400 naming the valid ones, a ``?repo=`` filter
naming no registered repo is 404, and OPTIONS answers 204 with the route's ``Allow``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest
from litestar import get
from litestar.routes import HTTPRoute
from litestar.testing import TestClient

from statehub.app import create_app

if TYPE_CHECKING:
    from collections.abc import Iterator

    from statehub.settings import Settings

Client = TestClient[Any]


def assert_shape(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    assert set(body) <= {"error", "status_code", "details"}, body
    assert body["status_code"] == status
    assert isinstance(body["error"], str) and body["error"]
    assert "detail" not in body and "extra" not in body
    if "details" in body:
        assert isinstance(body["details"], dict) and body["details"]
    return body


def _api_get_routes(client: Client) -> list[tuple[str, str]]:
    """(path as declared, a concrete path) for every GET route in the schema."""
    found = []
    for route in client.app.routes:
        if not isinstance(route, HTTPRoute) or "GET" not in route.route_handler_map:
            continue
        handler, _ = route.route_handler_map["GET"]
        if not handler.include_in_schema or route.path.startswith("/schema"):
            continue
        found.append((route.path, re.sub(r"\{[^}]+\}", "x", route.path)))
    return found


# -- the framework's errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "key"),
    [("limit=0", "limit"), ("limit=abc", "limit"), ("offset=-1", "offset"), ("ready=maybe", "ready")],
)
def test_a_bad_query_value_is_400_in_the_hub_shape(client: Client, query: str, key: str) -> None:
    body = assert_shape(client.get(f"/tasks?{query}"), 400)
    assert f"query parameter {key!r}" in body["error"]
    [problem] = body["details"]["problems"]
    assert problem["key"] == key and problem["source"] == "query"


def test_a_missing_required_parameter_is_400(client: Client) -> None:
    body = assert_shape(client.get("/fleet/drain-plan"), 400)
    assert "'machine'" in body["error"]


def test_malformed_json_is_400(client: Client) -> None:
    answer = client.post("/repos", content=b"{bad", headers={"content-type": "application/json"})
    assert "malformed" in assert_shape(answer, 400)["error"]


def test_a_body_of_the_wrong_shape_is_400(client: Client) -> None:
    body = assert_shape(client.post("/repos", json={"nope": 1}), 400)
    assert "path" in body["error"] and body["details"]["problems"][0]["source"] == "body"


def test_an_unknown_path_is_404(client: Client) -> None:
    body = assert_shape(client.get("/nope/nothing"), 404)
    assert "/nope/nothing" in body["error"]


def test_a_method_the_route_does_not_allow_is_405_with_allow(client: Client) -> None:
    answer = client.put("/tasks")
    body = assert_shape(answer, 405)
    assert answer.headers["allow"] == "GET, OPTIONS"
    assert "PUT" in body["error"] and "GET, OPTIONS" in body["error"]


def test_a_body_over_the_limit_is_413(client: Client, settings: Settings) -> None:
    too_big = b"[" + b"1," * settings.max_body_bytes + b"1]"
    answer = client.post("/events", content=too_big, headers={"content-type": "application/json"})
    assert str(settings.max_body_bytes) in assert_shape(answer, 413)["error"].replace(",", "")


def test_middleware_refusals_have_the_shape(client: Client) -> None:
    assert_shape(client.get("/tasks", headers={"host": "evil.example"}), 421)  # crosssite: Host
    assert_shape(client.post("/repos", content=b"{}", headers={"content-type": "text/plain"}), 415)
    assert_shape(client.get("/tasks?owner=%00"), 400)  # inputbounds: a control character


def test_a_hub_error_puts_its_data_under_details(client: Client) -> None:
    body = assert_shape(client.post("/events", json=[]), 422)
    assert body["details"]["problems"][0]["message"] == "the list is empty"


@pytest.fixture
def crashing(settings: Settings) -> Iterator[Client]:
    @get("/crash", sync_to_thread=False)
    def crash() -> None:
        raise RuntimeError("secret internals /home/someone")

    app = create_app(settings)
    app.register(crash)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def test_a_bug_is_500_with_a_generic_sentence(crashing: Client) -> None:
    body = assert_shape(crashing.get("/crash"), 500)
    assert "secret" not in body["error"] and "Traceback" not in body["error"]
    assert "details" not in body


# -- query parameters -----------------------------------------------------------------------------------


def test_unknown_query_parameters_are_400_on_every_get_route(client: Client) -> None:
    routes = _api_get_routes(client)
    assert len(routes) >= 15, routes
    for declared, path in routes:
        body = assert_shape(client.get(f"{path}?bogus=1&also=2"), 400)
        assert "'also', 'bogus'" in body["error"], (declared, body)
        assert body["details"]["unknown"] == ["also", "bogus"]
        assert "bogus" not in body["details"]["allowed"]


def test_the_task_list_names_its_parameters(client: Client) -> None:
    body = assert_shape(client.get("/tasks?state=done"), 400)
    assert body["details"]["allowed"] == [
        "claimable",
        "desc",
        "limit",
        "offset",
        "owner",
        "owner_prefix",
        "ready",
        "repo",
        "sort",
        "status",
        "workplan",
    ]
    assert "status" in body["error"]


def test_declared_parameters_stay_allowed(client: Client) -> None:
    assert client.get("/fleet/workloads?state=running&wave=1&host=h").status_code == 404  # no fleet registry
    assert client.get("/events?state=pending&limit=5&offset=0").status_code == 200
    assert client.get("/tasks?status=todo&ready=true&limit=1").status_code == 200
    assert client.post("/events?each=true", json=[]).status_code != 400


def test_a_repeated_query_parameter_is_400(loaded: Client) -> None:
    """Review finding: ``?repo=ops&repo=nope`` passed the repo check on the first value and
    filtered by the last, answering an empty 200 page; every hub parameter takes one value but
    those declared as lists (``status`` of the task and workplan lists: any of them)."""
    body = assert_shape(loaded.get("/workplans?repo=ops&repo=nope"), 400)
    assert body["details"] == {"repeated": ["repo"]}
    body = assert_shape(loaded.get("/tasks?status=todo&limit=1&status=done&limit=2&owner=a&owner=b"), 400)
    assert body["details"] == {"repeated": ["limit", "owner"]}
    assert "'limit', 'owner'" in body["error"]
    assert loaded.get("/tasks?repo=ops&status=todo&status=done").status_code == 200


def test_unknown_parameters_on_other_methods_are_400_too(client: Client) -> None:
    assert_shape(client.post("/repos?bogus=1", json={"path": "/nowhere"}), 400)


# -- unknown repo filters -------------------------------------------------------------------------------

REPO_FILTERED = [
    "/workplans",
    "/tasks",
    "/canon",
    "/events",
    "/fleet/machines",
    "/fleet/workloads",
    "/fleet/lanes",
    "/fleet/readiness",
]


@pytest.mark.parametrize("path", REPO_FILTERED)
def test_a_filter_naming_an_unknown_repo_is_404(client: Client, path: str) -> None:
    body = assert_shape(client.get(f"{path}?repo=nope"), 404)
    assert "'nope'" in body["error"]


def test_a_known_repo_filter_answers(loaded: Client) -> None:
    assert loaded.get("/tasks?repo=ops").json()["total"] == 3
    assert loaded.get("/canon?repo=ops").status_code == 200


# -- OPTIONS --------------------------------------------------------------------------------------------


def test_options_answers_204_with_what_the_route_allows(client: Client) -> None:
    for route in client.app.routes:
        if not isinstance(route, HTTPRoute) or route.path.startswith(("/schema", "/static")):
            continue
        path = re.sub(r"\{[^}]+\}", "x", route.path)
        answer = client.options(path)
        assert answer.status_code == 204, (route.path, answer.text)
        assert answer.headers["allow"] == ", ".join(sorted(route.methods)), route.path


def test_options_lists_every_handler_of_a_controller_path(client: Client) -> None:
    # Litestar's own OPTIONS answer listed only the first handler's methods here.
    assert client.options("/repos/x").headers["allow"] == "DELETE, GET, OPTIONS"
