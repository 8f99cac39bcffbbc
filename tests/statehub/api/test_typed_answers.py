"""Typed answers and an honest OpenAPI document (issue 11, ADR-025).

Every operation lists the error statuses it can answer with the one error shape,
enum parameters list their values, a bad enum value names the valid ones, and
the answers' schemas are the library's Structs.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient
from sqlalchemy import Column, MetaData, String, Table

from statehub.cache.answers import FileError, TaskItem
from statehub.cache.prepared import struct_columns
from workplans import TaskStatus

Client = TestClient[Any]

SCHEMA = "/schema/openapi.json"


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]


def test_every_operation_lists_its_errors_with_the_error_shape(client: Client) -> None:
    schema = client.get(SCHEMA).json()
    operations = _operations(schema)
    assert len(operations) >= 20, operations
    for method, path, operation in operations:
        responses = operation["responses"]
        assert {"400", "401", "403", "421", "500"} <= set(responses), (method, path)
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                refs = str(response["content"]["application/json"]["schema"])
                assert "#/components/schemas/ErrorBody" in refs, (method, path, status)
        if method in ("post", "delete"):
            assert {"413", "415"} <= set(responses), (method, path)
    error_body = schema["components"]["schemas"]["ErrorBody"]
    assert set(error_body["properties"]) == {"error", "status_code", "details"}
    assert sorted(error_body["required"]) == ["error", "status_code"]


def test_lookups_and_repo_filters_declare_404(client: Client) -> None:
    paths = client.get(SCHEMA).json()["paths"]
    for path in ("/tasks", "/tasks/{ref}", "/workplans/{workplan_id}", "/canon/{doc_id}", "/events"):
        assert "404" in paths[path]["get"]["responses"], path
    assert "409" in paths["/tasks/{ref}"]["get"]["responses"]


@pytest.mark.parametrize(
    ("path", "name", "values"),
    [
        ("/tasks", "status", ["todo", "in-progress", "blocked", "done", "cancelled"]),
        ("/workplans", "status", ["draft", "active", "blocked", "done", "cancelled"]),
        ("/canon", "kind", ["adr", "standard", "runbook", "note"]),
        ("/events", "state", ["pending", "applied", "rejected"]),
        ("/fleet/workloads", "state", ["running", "draining", "migrated", "promoted", "retired"]),
    ],
)
def test_enum_parameters_list_their_values(client: Client, path: str, name: str, values: list[str]) -> None:
    schema = client.get(SCHEMA).json()
    [parameter] = [p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == name]
    # one value ({"$ref": ...}) or several (``?status=todo&status=done``: an array of them)
    refs = [s.get("items", s)["$ref"] for s in parameter["schema"]["oneOf"] if "$ref" in s.get("items", s)]
    [ref] = refs
    assert schema["components"]["schemas"][ref.rsplit("/", 1)[1]]["enum"] == values


def test_a_bad_enum_value_names_the_parameter_as_sent_and_the_valid_values(client: Client) -> None:
    answer = client.get("/events?state=lost")
    assert answer.status_code == 400
    body = answer.json()
    assert set(body) == {"error", "status_code", "details"}
    assert "query parameter 'state'" in body["error"]
    assert "'lost' is not valid; valid values are pending, applied, rejected" in body["error"]
    [problem] = body["details"]["problems"]
    assert problem["key"] == "state" and problem["valid"] == ["pending", "applied", "rejected"]


def test_answers_are_the_library_structs(client: Client) -> None:
    schemas = client.get(SCHEMA).json()["components"]["schemas"]
    task = schemas["TaskItem"]
    assert list(task["properties"]) == [
        "ref",
        "workplan",
        "id",
        "repo",
        "path",
        "title",
        "status",
        "owner",
        "depends_on",
        "ready",
    ]
    assert sorted(task["required"]) == sorted(task["properties"])
    lane = schemas["LaneItem"]
    assert "from" in lane["properties"] and "from_" not in lane["properties"]


def test_a_struct_reads_its_fields_from_columns_named_by_field() -> None:
    table = Table("t", MetaData(), *(Column(n, String) for n in ("p", "l", "m")))
    shape = struct_columns(FileError, message=table.c.m, path=table.c.p, line=(table.c.l, int))
    assert [c.name for c in shape.columns] == ["path", "line", "message"]  # the Struct's order
    assert shape.read(("workplans/x.md", "3", "bad", "ignored")) == FileError("workplans/x.md", 3, "bad")
    with pytest.raises(TypeError, match=r"no column for \['line'\], no field for \['lines'\]"):
        struct_columns(FileError, path=table.c.p, lines=table.c.l, message=table.c.m)


def test_the_json_of_an_answer_is_what_clients_saw(loaded: Client) -> None:
    task = loaded.get("/tasks/OPS-WP-0001-T02").json()
    assert list(task) == [
        "ref",
        "workplan",
        "id",
        "repo",
        "path",
        "title",
        "status",
        "owner",
        "depends_on",
        "ready",
        "freshness",  # the task's fields as before, then how current the cache is (canon/ADR-033)
    ]
    assert task["ready"] is True  # blocked, and its one dependency is done
    assert task["depends_on"] == ["OPS-WP-0001-T01"]
    assert [r["repo"] for r in task["freshness"]["repos"]] == ["ops"]
    decoded = msgspec.convert(task, TaskItem)  # what a typed client of the old shape reads it into
    assert decoded.status is TaskStatus.BLOCKED
    assert msgspec.to_builtins(decoded) == {k: v for k, v in task.items() if k != "freshness"}
