"""/repos: register, list, show with file errors, refresh, remove; /state/health."""

from __future__ import annotations

from typing import TYPE_CHECKING

from litestar.testing import TestClient

from tests.gitfixtures import GitRepo, workplan_text

if TYPE_CHECKING:
    from pathlib import Path

    from statehub.settings import Settings

Client = TestClient  # type: ignore[type-arg]


def test_register_returns_counts_and_file_errors(client: Client, workspace: dict[str, GitRepo]) -> None:
    response = client.post("/repos", json={"path": str(workspace["app"].root)})
    assert response.status_code == 201
    body = response.json()
    assert (body["slug"], body["files"], body["parsed"]) == ("app", 2, 2)
    assert body["counts"] == {"workplans": 1, "tasks": 4, "canon": 0}
    assert body["errors"] == [
        {
            "path": "workplans/broken.md",
            "line": 4,
            "message": "'status' = 'someday' is not one of draft | active | blocked | done | cancelled",
        }
    ]


def test_list_and_show(loaded: Client) -> None:
    listed = loaded.get("/repos").json()
    assert listed["total"] == 2
    assert [(r["slug"], r["workplan_count"], r["error_count"]) for r in listed["items"]] == [
        ("app", 1, 1),
        ("ops", 1, 0),
    ]
    ops = loaded.get("/repos/ops").json()
    assert (ops["title"], ops["prefixes"], ops["errors"]) == ("Operations", ["OPS"], [])


def test_registering_a_non_git_path_is_a_400(client: Client, tmp_path: Path) -> None:
    response = client.post("/repos", json={"path": str(tmp_path)})
    assert response.status_code == 400
    assert "is not inside a git work tree" in response.json()["error"]
    assert client.post("/repos", json={}).status_code == 400


def test_refresh_reports_what_changed(loaded: Client, workspace: dict[str, GitRepo]) -> None:
    assert loaded.post("/repos/ops/refresh").json()["parsed"] == 0
    workspace["ops"].write(
        "workplans/OPS-WP-0001.md", workplan_text("OPS-WP-0001", [{"id": "T01", "title": "x"}])
    )
    body = loaded.post("/repos/ops/refresh").json()
    assert (body["parsed"], body["counts"]["tasks"]) == (1, 1)
    # the dependent task in the other repo follows: its dependency no longer exists as done
    assert loaded.get("/tasks/APP-WP-0001-T01").json()["ready"] is False
    assert loaded.post("/repos/nope/refresh").status_code == 404


def test_remove(loaded: Client) -> None:
    assert loaded.delete("/repos/ops").json() == {"removed": "ops"}
    assert loaded.get("/repos/ops").status_code == 404
    assert loaded.get("/tasks?repo=ops").status_code == 404
    assert all(not t["ref"].startswith("OPS-") for t in loaded.get("/tasks").json()["items"])
    assert loaded.get("/tasks/APP-WP-0001-T01").json()["ready"] is False
    assert loaded.delete("/repos/ops").status_code == 404


def test_health(loaded: Client, settings: Settings) -> None:
    body = loaded.get("/state/health").json()
    assert body["status"] == "ok"
    backend = "sqlite" if settings.database_url.startswith("sqlite") else "postgresql"
    assert (body["profile"], body["repos"], body["cache"]["backend"]) == ("dev", 2, backend)


def test_an_unreadable_hub_toml_is_named_not_hidden_as_a_bug(
    client: Client, settings: Settings, workspace: dict[str, GitRepo]
) -> None:
    """hub.toml broken while the hub runs: the answer says which file and why (HubFileBroken, 409:
    the hub keeps the list it last read and writes nothing over the person's edit), not the
    generic sentence of a bug."""
    settings.hub_file.write_text("[[repos]\n", encoding="utf-8")
    response = client.post("/repos", json={"path": str(workspace["app"].root)})
    assert response.status_code == 409
    assert settings.hub_file.read_text(encoding="utf-8") == "[[repos]\n"
    assert response.json()["error"].startswith("cannot read the list of registered repos: ")
    assert str(settings.hub_file) in response.json()["error"]
