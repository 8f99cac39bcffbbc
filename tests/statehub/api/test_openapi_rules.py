"""The OpenAPI document's own rules (ADR-031), read from the served document.

- every operation lists 400, 401, 403, 421 and 500; every write lists 413 and 415; every
  error status's body is :class:`statehub.api.errorshape.ErrorBody` (a save may also
  answer its ``SaveAnswer``);
- OPTIONS on every documented path answers 204 with ``Allow`` naming the path's methods;
- every error answer, the framework's included, validates against the document's
  ``ErrorBody`` schema;
- a hub with tokens declares the bearer scheme on every operation but ``/state/health``;
  an open hub declares none.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import jsonschema_rs
import pytest
from litestar.testing import TestClient

from statehub.api.errorshape import COMMON_STATUSES, WRITE_STATUSES
from statehub.app import create_app
from statehub.auth.guard import OPEN_PATHS
from statehub.auth.keys import init_root_key, load_root_key
from statehub.auth.tokens import mint

if TYPE_CHECKING:
    from collections.abc import Iterator

    from statehub.settings import Settings
    from tests.gitfixtures import GitRepo

Client = TestClient  # type: ignore[type-arg]
METHODS = ("get", "put", "post", "delete", "patch", "head")
WRITES = ("post", "put", "delete", "patch")
ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


@pytest.fixture
def document(loaded: Client) -> dict[str, Any]:
    served: dict[str, Any] = loaded.get("/schema/openapi.json").json()
    return served


def test_every_operation_lists_its_error_statuses_with_the_error_body(document: dict[str, Any]) -> None:
    operations = list(_operations(document))
    assert len(operations) >= 25
    for path, method, operation in operations:
        statuses = {int(status) for status in operation["responses"]}
        where = f"{method.upper()} {path}"
        assert set(COMMON_STATUSES) <= statuses, where
        if method in WRITES:
            assert set(WRITE_STATUSES) <= statuses, where
        for status, answer in operation["responses"].items():
            if int(status) < 400:
                continue
            schema = answer["content"]["application/json"]["schema"]
            assert schema == ERROR_BODY or ERROR_BODY in schema.get("oneOf", []), (where, status)


def test_options_answers_the_methods_each_path_allows(loaded: Client, document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        answer = loaded.options(concrete)
        assert answer.status_code == 204, path
        allowed = {m.strip() for m in answer.headers["allow"].split(",")}
        assert allowed == {m.upper() for m in item if m in METHODS} | {"OPTIONS"}, path


def test_names_in_paths_and_queries_state_their_bounds(document: dict[str, Any]) -> None:
    for path, method, operation in _operations(document):
        for parameter in operation.get("parameters", []):
            schema = parameter["schema"]
            if schema.get("type") == "string" or {"type": "string"} in schema.get("oneOf", []):
                assert "pattern" in schema, (method, path, parameter["name"])
                assert "maxLength" in schema or parameter["name"] == "key", (method, path, parameter["name"])
    wave = next(p for p in document["paths"]["/fleet/workloads"]["get"]["parameters"] if p["name"] == "wave")
    assert wave["schema"]["minimum"] == 0


ERRORS = [
    ("GET", "/tasks?state=done", None, 400),  # a query parameter the route does not take
    ("GET", "/tasks?status=someday", None, 400),  # a bad enum value
    ("GET", "/tasks?limit=0", None, 400),  # out of range
    ("GET", "/tasks?repo=nope", None, 404),  # a repo filter naming no repo
    ("GET", "/repos/Not-A-Slug", None, 400),  # outside the slug's pattern
    ("GET", "/repos/nope", None, 404),
    ("GET", "/workplans/NOPE-WP-0001", None, 404),
    ("GET", "/events/no-such-key", None, 404),
    ("GET", "/no/such/path", None, 404),
    ("GET", "/schema/nothing", None, 404),  # Litestar's HTML page, answered as JSON
    ("DELETE", "/tasks", None, 405),
    ("POST", "/events", None, 400),  # no body
    ("POST", "/events", b"{not json", 400),
    ("POST", "/events", b"[{}]", 422),
    ("POST", "/repos", b'{"path": "relative"}', 400),
    ("POST", "/repos", b"path=/x", 415),  # not JSON
    ("POST", "/sync/ops/statehub.toml", None, 404),  # not a save
]


@pytest.mark.parametrize(("method", "path", "body", "status"), ERRORS)
def test_every_error_answer_validates_against_the_error_body(
    loaded: Client, document: dict[str, Any], method: str, path: str, body: bytes | None, status: int
) -> None:
    validator = jsonschema_rs.validator_for(document["components"]["schemas"]["ErrorBody"])
    headers = {"Content-Type": "text/plain" if body == b"path=/x" else "application/json"}
    answer = loaded.request(method, path, content=body, headers=headers if body is not None else None)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    payload = answer.json()
    validator.validate(payload)
    assert payload["status_code"] == status


@pytest.fixture
def guarded(settings: Settings, workspace: dict[str, GitRepo]) -> Iterator[tuple[Client, str]]:
    """A hub that requires tokens, its repos registered; with a read token for ``ops``."""
    init_root_key(settings.root_key_file)
    token = mint(load_root_key(settings.root_key_file), "agt-reader", "read", ["ops"]).to_base64()
    with TestClient(create_app(settings.with_overrides(auth="required"))) as client:
        for repo in workspace.values():
            client.app.state.hub.register(repo.root)
        yield client, token


def test_token_errors_validate_and_the_document_declares_the_bearer_scheme(
    guarded: tuple[Client, str],
) -> None:
    client, token = guarded
    assert client.get("/state/health").status_code == 200  # open: no token
    document = client.get("/schema/openapi.json", headers={"Authorization": f"Bearer {token}"}).json()
    validator = jsonschema_rs.validator_for(document["components"]["schemas"]["ErrorBody"])
    for answer, status in [
        (client.get("/tasks"), 401),
        (client.get("/tasks", headers={"Authorization": "Bearer forged"}), 401),
        (client.post("/repos/app/refresh", headers={"Authorization": f"Bearer {token}"}), 403),
        (client.post("/repos", json={"path": "/x"}, headers={"Authorization": f"Bearer {token}"}), 403),
    ]:
        assert answer.status_code == status, answer.text
        validator.validate(answer.json())
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    signing = {("/auth/session", "post"), ("/auth/session", "delete")}  # sign-in, sign-out: no token
    for path, method, operation in _operations(document):
        expected = None if path in OPEN_PATHS or (path, method) in signing else [{"bearer": []}]
        assert operation.get("security") == expected, (method, path)


def test_an_open_hub_declares_no_security(document: dict[str, Any]) -> None:
    assert "securitySchemes" not in document.get("components", {})
    assert all("security" not in operation for _path, _method, operation in _operations(document))
