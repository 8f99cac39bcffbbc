"""GET /search: ranked hits with snippets on both cache backends, refreshed with the files,
bounded input, and no query syntax that can reach the database as syntax."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
from litestar.testing import TestClient

from tests.gitfixtures import GitRepo, workplan_text

if TYPE_CHECKING:
    from collections.abc import Callable

Client = TestClient  # type: ignore[type-arg]

NOTE = (
    "- 2026-05-02T10:00:00Z DOCS-WP-0001-T01 @agt-codex: the zeppelin mooring is measured <!-- event:k1 -->\n"
)


@pytest.fixture
def searchable(client: Client, make_repo: Callable[[str], GitRepo]) -> tuple[Client, GitRepo]:
    docs = make_repo("docs")
    docs.write("statehub.toml", '[repo]\nslug = "docs"\nprefixes = ["DOCS"]\n')
    docs.write(
        "workplans/DOCS-WP-0001.md",
        workplan_text(
            "DOCS-WP-0001",
            [
                {"id": "T01", "title": "Measure the zeppelin hangar"},
                {"id": "T02", "title": "Paint the walls"},
            ],
            title="Airship hangar",
            body="\n# Plan\n\nThe hangar holds one airship.\n\n## Progress\n\n" + NOTE,
        ),
    )
    docs.write(
        "canon/ADR-001.md",
        '+++\nid = "ADR-001"\ntitle = "Zeppelins are measured in metres"\nkind = "adr"\n'
        'status = "accepted"\n+++\nEvery zeppelin length is written in metres, never feet.\n',
    )
    docs.commit()
    assert client.post("/repos", json={"path": str(docs.root)}).status_code == 201
    return client, docs


def _hits(client: Client, query: str) -> list[tuple[str, str]]:
    response = client.get(f"/search?{query}")
    assert response.status_code == 200, response.text
    return [(h["kind"], h["ref"]) for h in response.json()["items"]]


def test_search_finds_titles_bodies_notes_and_canon_ranked(searchable: tuple[Client, GitRepo]) -> None:
    client, _docs = searchable
    body = client.get("/search?q=zeppelin").json()
    found = {(h["kind"], h["ref"]) for h in body["items"]}
    assert found == {("task", "DOCS-WP-0001-T01"), ("workplan", "DOCS-WP-0001"), ("canon", "ADR-001")}
    assert body["total"] == 3
    scores = [h["score"] for h in body["items"]]
    assert scores == sorted(scores, reverse=True)
    task = next(h for h in body["items"] if h["kind"] == "task")
    assert task == {
        "kind": "task",
        "ref": "DOCS-WP-0001-T01",
        "workplan": "DOCS-WP-0001",
        "repo": "docs",
        "path": "workplans/DOCS-WP-0001.md",
        "title": "Measure the zeppelin hangar",
        "snippet": "Measure the **zeppelin** hangar",
        "score": task["score"],
    }
    plan = next(h for h in body["items"] if h["kind"] == "workplan")
    assert "**zeppelin**" in plan["snippet"]  # found in its Progress note
    assert "mooring" in plan["snippet"]
    # every word must occur; English endings are folded ("measured" ~ "measure")
    assert _hits(client, "q=measure+metres") == [("canon", "ADR-001")]
    assert _hits(client, "q=hangar&kind=task") == [("task", "DOCS-WP-0001-T01")]
    assert _hits(client, "q=airship&repo=docs") == [("workplan", "DOCS-WP-0001")]
    assert _hits(client, "q=nothingmatchesthis") == []


def test_search_pages_are_stable(searchable: tuple[Client, GitRepo]) -> None:
    client, _docs = searchable
    everything = _hits(client, "q=zeppelin")
    assert _hits(client, "q=zeppelin&limit=1") + _hits(client, "q=zeppelin&limit=2&offset=1") == everything
    assert client.get("/search?q=zeppelin&limit=1").json()["total"] == 3


def test_search_follows_the_files(searchable: tuple[Client, GitRepo]) -> None:
    client, docs = searchable
    docs.write(
        "workplans/DOCS-WP-0001.md",
        workplan_text("DOCS-WP-0001", [{"id": "T01", "title": "Weigh the dirigible"}], title="Hangar"),
    )
    (docs.root / "canon/ADR-001.md").unlink()
    assert client.post("/repos/docs/refresh").status_code == 200
    assert _hits(client, "q=zeppelin") == []
    assert _hits(client, "q=dirigible") == [("task", "DOCS-WP-0001-T01")]
    client.app.state.hub.rebuild()
    assert _hits(client, "q=dirigible") == [("task", "DOCS-WP-0001-T01")]
    assert _hits(client, "q=zeppelin") == []


@pytest.mark.parametrize(
    "q",
    [
        '"zeppelin',
        'zeppelin"',
        "zeppelin AND OR NOT",
        "NEAR(zeppelin hangar)",
        "zeppelin*",
        "title:zeppelin",
        "-zeppelin ^hangar",
        "(zeppelin",
        "zeppelin & | ! <-> :*",
        "'; DROP TABLE task; --",
    ],
)
def test_query_syntax_is_never_syntax(searchable: tuple[Client, GitRepo], q: str) -> None:
    client, _docs = searchable
    response = client.get("/search", params={"q": q})
    assert response.status_code == 200, response.text
    assert response.json()["total"] >= 0
    assert client.get("/tasks").json()["total"] == 2


@pytest.mark.parametrize(
    ("query", "status", "says"),
    [
        ("", 400, "q"),
        ("q=", 400, "q"),
        ("q=%22%22%20--", 400, "no word"),
        ("q=" + "a" * 257, 400, "q"),
        ("q=" + "+".join(["w"] * 17), 400, "at most 16"),
        ("q=x&kind=room", 400, "kind"),
        ("q=x&limit=0", 400, "limit"),
        ("q=x&repo=nope", 404, "nope"),
    ],
)
def test_bad_search_input_is_the_one_error_shape(
    searchable: tuple[Client, GitRepo], query: str, status: int, says: str
) -> None:
    client, _docs = searchable
    response = client.get(f"/search?{query}")
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status_code"] == status
    assert says in body["error"] or says in str(body.get("details"))


def test_search_says_how_fresh_it_is(searchable: tuple[Client, GitRepo]) -> None:
    """Review of issue 13: every read answer carries ``freshness`` (deliverable 4); ``/search``
    answered ``{"items", "total"}`` alone. Now it names the repos searched, and a hand edit not
    yet indexed shows as ``changed_since`` (polled: freshness is worked out at most once a second)."""
    client, docs = searchable
    body = client.get("/search?q=zeppelin&repo=docs").json()
    assert [r["repo"] for r in body["freshness"]["repos"]] == ["docs"]
    assert body["freshness"]["repos"][0]["changed_since"] is False
    docs.write(
        "canon/ADR-002.md", '+++\nid = "ADR-002"\ntitle = "New"\nkind = "adr"\nstatus = "accepted"\n+++\n'
    )
    deadline = time.monotonic() + 30
    while not client.get("/search?q=zeppelin").json()["freshness"]["stale"]:
        assert time.monotonic() < deadline, "the edit never showed in /search's freshness"
        time.sleep(0.1)
