"""A workplan id belongs to its repo's prefixes (ADR-022, FORMAT.md).

A file claiming an id outside its repo's prefixes, or under a prefix another
repo declares, is an error on that file alone: the owner's workplan stays
served, its tasks stay ready, and events naming the id are written to the
owner's file only. Tried against a real hub process over real git repos.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from tests.gitfixtures import GitRepo, workplan_text
from tests.statehub.hubprocess import HubProcess

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path


def _manifest(slug: str, *prefixes: str) -> str:
    listed = ", ".join(f'"{p}"' for p in prefixes)
    return f'[repo]\nslug = "{slug}"\n' + (f"prefixes = [{listed}]\n" if prefixes else "")


def _plan(plan_id: str, title: str = "Real") -> str:
    return workplan_text(plan_id, [{"id": "T01", "title": title, "status": "todo"}])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[HubProcess]:
    process = HubProcess(tmp_path / "hub-home", tmp_path / "hub.log")
    process.start()
    yield process
    process.stop()


def _repo(make_repo: Callable[[str], GitRepo], slug: str, *prefixes: str, **plans: str) -> GitRepo:
    repo = make_repo(slug)
    repo.write("statehub.toml", _manifest(slug, *prefixes))
    for name, text in plans.items():
        repo.write(f"workplans/{name}.md", text)
    repo.commit("setup")
    return repo


def _register(server: HubProcess, *repos: GitRepo) -> None:
    for repo in repos:
        answer = server.call("POST", "/repos", json={"path": str(repo.root)})
        assert answer.status_code == 201, answer.text


def _errors(server: HubProcess, slug: str) -> list[dict[str, object]]:
    errors: list[dict[str, object]] = server.call("GET", f"/repos/{slug}").json()["errors"]
    return errors


def _served(server: HubProcess) -> list[tuple[str, str]]:
    return sorted((p["id"], p["repo"]) for p in server.call("GET", "/workplans?limit=100").json()["items"])


def _settle(server: HubProcess, key: str) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found: dict[str, object] = server.call("GET", f"/events/{key}").json()
        if found["state"] != "pending":
            return found
        time.sleep(0.1)
    raise AssertionError(f"event {key} still pending")


def test_an_impostor_id_is_an_error_on_its_file_and_events_go_to_the_owner(
    server: HubProcess, make_repo: Callable[[str], GitRepo]
) -> None:
    beta = _repo(make_repo, "beta", "BETA", **{"BETA-WP-0001": _plan("BETA-WP-0001")})
    alpha = _repo(
        make_repo,
        "alpha",
        "ALPHA",
        **{"ALPHA-WP-0001": _plan("ALPHA-WP-0001"), "stolen": _plan("BETA-WP-0001", "Impostor")},
    )
    _register(server, beta, alpha)
    errors = _errors(server, "alpha")
    assert len(errors) == 1
    assert errors[0]["path"] == "workplans/stolen.md"
    assert errors[0]["line"] == 2  # the id line
    message = str(errors[0]["message"])
    assert "BETA-WP-0001 is outside this repo's prefixes (ALPHA)" in message
    assert "repo 'beta' declares BETA" in message
    assert _errors(server, "beta") == []
    assert _served(server) == [("ALPHA-WP-0001", "alpha"), ("BETA-WP-0001", "beta")]
    plan = server.call("GET", "/workplans/BETA-WP-0001")
    assert plan.status_code == 200 and plan.json()["repo"] == "beta" and plan.json()["title"] == "A workplan"
    task = server.call("GET", "/tasks/BETA-WP-0001-T01").json()
    assert (task["repo"], task["title"], task["ready"]) == ("beta", "Real", True)
    assert "Impostor" not in server.call("GET", "/tasks?limit=100").text
    assert server.call("GET", "/repos/alpha").json()["counts"]["workplans"] == 1

    alpha_head = alpha.git("rev-parse", "HEAD")
    stolen = alpha.read("workplans/stolen.md")
    event = {"key": "E-OWNER", "kind": "task.status", "workplan": "BETA-WP-0001", "task": "T01"}
    answer = server.call("POST", "/events", json=event | {"status": "done", "actor": "agt"})
    assert answer.status_code == 202, answer.text
    assert _settle(server, "E-OWNER")["state"] == "applied"
    assert 'status = "done"' in beta.read("workplans/BETA-WP-0001.md")
    assert alpha.read("workplans/stolen.md") == stolen
    assert alpha.git("rev-parse", "HEAD") == alpha_head
    refused = server.call(
        "POST", "/events", json=event | {"key": "E-X", "repo": "alpha", "status": "todo", "actor": "agt"}
    )
    assert refused.status_code == 422 and "is in repo 'beta', not 'alpha'" in refused.text


def test_a_repo_without_prefixes_may_not_use_a_declared_prefix(
    server: HubProcess, make_repo: Callable[[str], GitRepo]
) -> None:
    beta = _repo(make_repo, "beta", "BETA", **{"BETA-WP-0001": _plan("BETA-WP-0001")})
    loose = _repo(
        make_repo, "loose", **{"a": _plan("BETA-WP-0001", "Impostor"), "b": _plan("FREE-WP-0001", "Free")}
    )
    _register(server, loose, beta)  # the impostor registered first changes nothing
    errors = _errors(server, "loose")
    assert [e["path"] for e in errors] == ["workplans/a.md"]
    assert "this repo declares no prefixes" in str(errors[0]["message"])
    assert _served(server) == [("BETA-WP-0001", "beta"), ("FREE-WP-0001", "loose")]


def test_the_most_specific_prefix_owns_an_id(server: HubProcess, make_repo: Callable[[str], GitRepo]) -> None:
    rail = _repo(
        make_repo, "rail", "RAIL", **{"x": _plan("RAIL-BS-WP-0001", "Impostor"), "y": _plan("RAIL-WP-0001")}
    )
    railbs = _repo(make_repo, "rail-bs", "RAIL-BS", **{"z": _plan("RAIL-BS-WP-0001")})
    _register(server, rail, railbs)
    errors = _errors(server, "rail")
    assert [e["path"] for e in errors] == ["workplans/x.md"]
    assert "repo 'rail-bs' declares RAIL-BS, more specific than this repo's prefixes (RAIL)" in str(
        errors[0]["message"]
    )
    assert _served(server) == [("RAIL-BS-WP-0001", "rail-bs"), ("RAIL-WP-0001", "rail")]


def test_a_prefix_declared_twice_serves_neither_claim_and_registration_refuses_it(
    server: HubProcess, make_repo: Callable[[str], GitRepo]
) -> None:
    beta = _repo(make_repo, "beta", "BETA", **{"BETA-WP-0001": _plan("BETA-WP-0001")})
    twin = _repo(make_repo, "twin", "BETA", "TWIN", **{"t": _plan("BETA-WP-0001", "Impostor")})
    _register(server, beta)
    refused = server.call("POST", "/repos", json={"path": str(twin.root)})
    assert refused.status_code == 409
    assert "prefix BETA is already declared by repo 'beta'" in refused.text
    assert [r["slug"] for r in server.call("GET", "/repos").json()["items"]] == ["beta"]
    assert _served(server) == [("BETA-WP-0001", "beta")]

    # the clash arrives later, by a push to a registered repo: the hub cannot tell which claim is
    # real, so neither file is served and no event is accepted for the id (nothing lands in the wrong file)
    twin.write("statehub.toml", _manifest("twin", "TWIN"))
    twin.commit("no clash")
    _register(server, twin)
    assert "Impostor" not in server.call("GET", "/workplans/BETA-WP-0001").text
    twin.write("statehub.toml", _manifest("twin", "BETA", "TWIN"))
    twin.commit("clash")
    assert server.call("POST", "/repos/twin/refresh").status_code == 200
    assert _served(server) == []
    assert server.call("GET", "/workplans/BETA-WP-0001").status_code == 409
    event = {"key": "E-TWIN", "kind": "task.status", "workplan": "BETA-WP-0001", "task": "T01"}
    answer = server.call("POST", "/events", json=event | {"status": "done", "actor": "agt"})
    assert answer.status_code == 422 and "claimed by more than one file" in answer.text
    assert server.call("GET", "/events/E-TWIN").status_code == 404


def test_a_prefix_change_judges_other_repos_claims_again(
    server: HubProcess, make_repo: Callable[[str], GitRepo]
) -> None:
    beta = _repo(make_repo, "beta", **{"BETA-WP-0001": _plan("BETA-WP-0001")})
    loose = _repo(make_repo, "loose", **{"a": _plan("BETA-WP-0002", "Loose")})
    _register(server, beta, loose)
    assert _served(server) == [("BETA-WP-0001", "beta"), ("BETA-WP-0002", "loose")]

    beta.write("statehub.toml", _manifest("beta", "BETA"))
    beta.commit("declare BETA")
    assert server.call("POST", "/repos/beta/refresh").status_code == 200
    assert _served(server) == [("BETA-WP-0001", "beta")]
    assert [e["path"] for e in _errors(server, "loose")] == ["workplans/a.md"]
    assert server.call("GET", "/tasks/BETA-WP-0002-T01").status_code == 404

    assert server.call("DELETE", "/repos/beta").status_code == 200
    assert _served(server) == [("BETA-WP-0002", "loose")]
    assert _errors(server, "loose") == []
