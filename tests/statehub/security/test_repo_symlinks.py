"""No file outside a repo is ever read, served or written (ADR-022).

Real git repos commit symbolic links of every shape (file, directory, absolute,
relative, into another registered repo, chains, a link to a file of the same
repo) and a FIFO sits in a work tree; a real hub registers them. Each must be a
file error for its path, no byte of what it points at may appear in any API
answer, and event write-back must never write through a link: the target's
bytes stay the same and nothing is committed in either repo.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import pytest

from tests.gitfixtures import GitRepo, workplan_text
from tests.statehub.hubprocess import HubProcess

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

SECRET = "OUTSIDE-SECRET-7f3a"
PRIVATE = "BETA-PRIVATE-91c2"

BETA_MANIFEST = '[repo]\nslug = "beta"\ntitle = "Beta"\nprefixes = ["BETA"]\n'
FLEET = '[[machines]]\nname = "{name}"\nrole = "production-home"\n'


def _canon(doc_id: str, title: str) -> str:
    return f'+++\nid = "{doc_id}"\ntitle = "{title}"\nkind = "adr"\nstatus = "accepted"\n+++\nBody {title}.\n'


def _secrets(place: Path, marker: str) -> None:
    """Files any kind of reader would accept, each carrying ``marker``."""
    place.mkdir(parents=True, exist_ok=True)
    (place / "workplan.md").write_text(workplan_text("ALPHA-WP-0099", [{"id": "T01", "title": marker}]))
    (place / "canon.md").write_text(_canon("ADR-099", marker))
    (place / "manifest.toml").write_text(f'[repo]\nslug = "stolen"\ntitle = "{marker}"\n')
    (place / "fleet.toml").write_text(FLEET.format(name=marker.lower()))
    (place / "workplans").mkdir(exist_ok=True)
    (place / "workplans" / "ALPHA-WP-0098.md").write_text(
        workplan_text("ALPHA-WP-0098", [{"id": "T01", "title": marker}])
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[HubProcess]:
    process = HubProcess(tmp_path / "hub-home", tmp_path / "hub.log")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def world(tmp_path: Path, make_repo: Callable[[str], GitRepo]) -> dict[str, Any]:
    """beta: a victim repo with served files and private ones; a secret dir outside every repo."""
    outside = tmp_path / "outside"
    _secrets(outside, SECRET)
    beta = make_repo("beta")
    beta.write("statehub.toml", BETA_MANIFEST)
    beta.write("workplans/BETA-WP-0001.md", workplan_text("BETA-WP-0001", [{"id": "T01", "title": "Real"}]))
    beta.write("canon/ADR-001.md", _canon("ADR-001", "Beta decides"))
    beta.write("registry/fleet.toml", FLEET.format(name="beta-node"))
    _secrets(beta.root / "private", PRIVATE)
    beta.commit("beta")
    return {"outside": outside, "beta": beta}


def _link(repo: GitRepo, rel: str, target: str) -> None:
    path = repo.root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


def _everything(server: HubProcess) -> str:
    """Every answer a client can get about the repos, concatenated."""
    answers = [server.call("GET", p).text for p in ("/repos", "/workplans?limit=1000", "/tasks?limit=1000")]
    answers += [server.call("GET", p).text for p in ("/canon?limit=1000", "/state/health", "/sync")]
    for repo in server.call("GET", "/repos").json()["items"]:
        answers.append(server.call("GET", f"/repos/{repo['slug']}").text)
        for kind in ("machines", "workloads", "lanes"):
            answers.append(server.call("GET", f"/fleet/{kind}?repo={repo['slug']}").text)
    for plan in server.call("GET", "/workplans?limit=1000").json()["items"]:
        answers.append(server.call("GET", f"/workplans/{plan['id']}").text)
    for doc in server.call("GET", "/canon?limit=1000").json()["items"]:
        answers.append(server.call("GET", f"/canon/{doc['id']}?repo={doc['repo']}").text)
    return "\n".join(answers)


def _errors(server: HubProcess, slug: str) -> dict[str, str]:
    answer = server.call("GET", f"/repos/{slug}")
    assert answer.status_code == 200, answer.text
    return {e["path"]: e["message"] for e in answer.json()["errors"]}


def _assert_nothing_leaks(server: HubProcess) -> None:
    seen = _everything(server)
    assert SECRET not in seen
    assert PRIVATE not in seen
    assert "root:x:0" not in seen
    assert "stolen" not in seen


def test_file_links_of_every_shape_are_file_errors_and_never_read(
    server: HubProcess, world: dict[str, Any], make_repo: Callable[[str], GitRepo]
) -> None:
    outside, beta = world["outside"], world["beta"]
    alpha = make_repo("alpha")
    alpha.write("workplans/ALPHA-WP-0001.md", workplan_text("ALPHA-WP-0001", [{"id": "T01", "title": "Own"}]))
    variants = {
        "workplans/absolute.md": str(outside / "workplan.md"),
        "workplans/relative-into-beta.md": "../../beta/private/workplan.md",
        "workplans/beta-served.md": "../../beta/workplans/BETA-WP-0001.md",
        "workplans/passwd.md": "/etc/passwd",
        "workplans/same-repo.md": "ALPHA-WP-0001.md",
        "workplans/chain.md": "../links/one",
        "workplans/dangling.md": str(outside / "nothing-here.md"),
        "workplans/deeper/dir-link": str(outside / "workplans"),
        "canon/ADR-009.md": "../../beta/private/canon.md",
        "canon/absolute.md": str(outside / "canon.md"),
        "statehub.toml": str(outside / "manifest.toml"),
        "registry/fleet.toml": "../../beta/private/fleet.toml",
    }
    for rel, target in variants.items():
        _link(alpha, rel, target)
    _link(alpha, "links/one", "two")
    _link(alpha, "links/two", str(outside / "workplan.md"))
    alpha.commit("links")
    assert "120000" in alpha.git("ls-files", "-s", "workplans/absolute.md")  # git holds a real symlink
    os.mkfifo(alpha.root / "workplans" / "fifo.md")
    beta_head = world["beta"].git("rev-parse", "HEAD")

    for repo in (beta, alpha):
        answer = server.call("POST", "/repos", json={"path": str(repo.root)})
        assert answer.status_code == 201, answer.text
    assert answer.json()["slug"] == "alpha"  # not the slug of the linked manifest

    errors = _errors(server, "alpha")
    for rel in variants:
        assert errors.get(rel, "").startswith("is a symbolic link"), (rel, errors)
    assert errors["workplans/fifo.md"].startswith("is not a regular file")
    assert "workplans/ALPHA-WP-0001.md" not in errors
    plans = server.call("GET", "/workplans?limit=100").json()["items"]
    assert sorted((p["id"], p["repo"], p["path"]) for p in plans) == [
        ("ALPHA-WP-0001", "alpha", "workplans/ALPHA-WP-0001.md"),
        ("BETA-WP-0001", "beta", "workplans/BETA-WP-0001.md"),
    ]
    assert server.call("GET", "/workplans/BETA-WP-0001").json()["repo"] == "beta"
    assert _errors(server, "beta") == {}
    _assert_nothing_leaks(server)

    # a refresh keeps every error, and removing a link clears its error
    (alpha.root / "workplans" / "passwd.md").unlink()
    assert server.call("POST", "/repos/alpha/refresh").status_code == 200
    errors = _errors(server, "alpha")
    assert "workplans/passwd.md" not in errors and "workplans/absolute.md" in errors
    _assert_nothing_leaks(server)
    assert world["beta"].git("rev-parse", "HEAD") == beta_head
    assert world["beta"].git("status", "--porcelain") == ""


@pytest.mark.parametrize("absolute", [False, True], ids=["relative", "absolute"])
def test_directory_links_into_another_repo_are_file_errors(
    server: HubProcess, world: dict[str, Any], make_repo: Callable[[str], GitRepo], absolute: bool
) -> None:
    beta = world["beta"]
    gamma = make_repo("gamma")
    for top in ("workplans", "canon", "registry"):
        target = beta.root / "private" / top if top == "workplans" else beta.root / top
        _link(gamma, top, str(target) if absolute else os.path.relpath(target, gamma.root))
    gamma.commit("directory links")
    for repo in (beta, gamma):
        assert server.call("POST", "/repos", json={"path": str(repo.root)}).status_code == 201
    errors = _errors(server, "gamma")
    assert set(errors) == {"workplans", "canon", "registry"}
    assert all(m.startswith("is a symbolic link") for m in errors.values())
    repo = server.call("GET", "/repos/gamma").json()
    assert repo["counts"] == {"workplans": 0, "tasks": 0, "canon": 0}
    fleet = server.call("GET", "/fleet/machines?repo=gamma")
    assert fleet.status_code == 422 and "is a symbolic link" in fleet.text, fleet.text
    assert server.call("GET", "/canon/ADR-001?repo=gamma").status_code == 404
    _assert_nothing_leaks(server)


def _wait_reason(server: HubProcess, key: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found: dict[str, Any] = server.call("GET", f"/events/{key}").json()
        if found.get("reason") or found.get("state") != "pending":
            return found
        time.sleep(0.1)
    raise AssertionError(f"event {key} was never attempted")


def _swap_for_link(repo: GitRepo, rel: str, target: str) -> None:
    """What a pushed commit can do between an event's intake and its write-back."""
    path = repo.root / rel
    if path.is_dir() and not path.is_symlink():
        repo.git("rm", "-rq", rel)
    elif path.exists():
        path.unlink()
    _link(repo, rel, target)
    repo.commit(f"{rel} is a link now")


@pytest.mark.parametrize(
    "swap",
    ["file-into-beta", "file-absolute-outside", "workplans-dir-into-beta", "registry-dir-into-beta"],
)
def test_write_back_never_writes_through_a_link(
    server: HubProcess, world: dict[str, Any], make_repo: Callable[[str], GitRepo], swap: str
) -> None:
    outside, beta = world["outside"], world["beta"]
    plan = workplan_text("ALPHA-WP-0001", [{"id": "T01", "title": "Own", "status": "todo"}])
    alpha = make_repo("alpha")
    alpha.write("statehub.toml", '[repo]\nslug = "alpha"\nprefixes = ["ALPHA"]\n')
    alpha.write("workplans/ALPHA-WP-0001.md", plan)
    alpha.write("registry/fleet.toml", FLEET.format(name="alpha-node"))
    alpha.commit("alpha")
    # copies an attacker would want the hub to write into: same plan, same registry shape
    beta.write("private/workplans/ALPHA-WP-0001.md", plan)
    beta.write("private/registry/fleet.toml", FLEET.format(name="alpha-node"))
    beta.commit("copies")
    (outside / "ALPHA-WP-0001.md").write_text(plan)
    for repo in (beta, alpha):
        assert server.call("POST", "/repos", json={"path": str(repo.root)}).status_code == 201

    if swap == "file-into-beta":
        target = beta.root / "private/workplans/ALPHA-WP-0001.md"
        _swap_for_link(alpha, "workplans/ALPHA-WP-0001.md", "../../beta/private/workplans/ALPHA-WP-0001.md")
    elif swap == "file-absolute-outside":
        target = outside / "ALPHA-WP-0001.md"
        _swap_for_link(alpha, "workplans/ALPHA-WP-0001.md", str(target))
    elif swap == "workplans-dir-into-beta":
        target = beta.root / "private/workplans/ALPHA-WP-0001.md"
        _swap_for_link(alpha, "workplans", "../beta/private/workplans")
    else:
        target = beta.root / "private/registry/fleet.toml"
        _swap_for_link(alpha, "registry", str(beta.root / "private/registry"))
    before = target.read_bytes()
    heads = {r.root.name: r.git("rev-parse", "HEAD") for r in (alpha, beta)}

    if swap.startswith("registry"):
        sent = {"key": "E-SWAP", "kind": "fleet.machine.role", "repo": "alpha", "machine": "alpha-node"}
        sent |= {"role": "build", "actor": "mallory"}
        refused_path = "registry"
    else:
        sent = {"key": "E-SWAP", "kind": "task.status", "workplan": "ALPHA-WP-0001", "task": "T01"}
        sent |= {"status": "done", "actor": "mallory"}
        refused_path = "workplans" if swap.startswith("workplans") else "workplans/ALPHA-WP-0001.md"
    answer = server.call("POST", "/events", json=sent)
    assert answer.status_code == 202, answer.text  # the cache still knew the regular file
    found = _wait_reason(server, "E-SWAP")
    assert found["state"] == "pending"
    assert f"{refused_path}: is a symbolic link" in found["reason"]

    assert target.read_bytes() == before
    assert {r.root.name: r.git("rev-parse", "HEAD") for r in (alpha, beta)} == heads
    assert beta.git("status", "--porcelain") == ""
    assert server.call("POST", "/repos/alpha/refresh").status_code == 200
    assert _errors(server, "alpha")[refused_path].startswith("is a symbolic link")
    assert SECRET not in _everything(server)
