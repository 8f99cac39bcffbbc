"""Repo files have size limits; a file over one is a file error, never parsed (ADR-022).

At, just over and far over each limit (bytes per kind of file, tasks per
workplan), against a real hub over real git repos; and write-back refuses to
grow a file past its limit, with the reason on the event, writing and
committing nothing.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from statehub.repofiles import FileLimits
from tests.gitfixtures import GitRepo, workplan_text
from tests.statehub.hubprocess import HubProcess

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

MiB = 1024 * 1024


def _padded(text: str, size: int) -> str:
    """``text`` with its body padded so the file is exactly ``size`` bytes."""
    missing = size - len(text.encode("utf-8"))
    assert missing >= 0
    lines, rest = divmod(missing, 64)
    return text + ("x" * 63 + "\n") * lines + "y" * rest


def _padded_toml(text: str, size: int) -> str:
    """TOML ``text`` padded with comment lines to exactly ``size`` bytes."""
    missing = size - len(text.encode("utf-8"))
    assert missing >= 2
    lines, rest = divmod(missing - 2, 64)
    return text + ("#" + "x" * 62 + "\n") * lines + "#" + "y" * rest + "\n"


def _tasks(count: int, *, inline: bool = False) -> str:
    if inline:
        rows = ", ".join(f'{{id = "T{i:06d}", title = "t"}}' for i in range(1, count + 1))
        return f'+++\nid = "SIZE-WP-0099"\ntitle = "Inline"\nstatus = "active"\ntasks = [{rows}]\n+++\n'
    rows = "".join(f'[[tasks]]\nid = "T{i:06d}"\ntitle = "t"\n' for i in range(1, count + 1))
    return f'+++\nid = "SIZE-WP-{count % 10000:04d}"\ntitle = "Many"\nstatus = "active"\n{rows}+++\n'


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., HubProcess]]:
    started: list[HubProcess] = []

    def run(**env: str) -> HubProcess:
        process = HubProcess(tmp_path / "hub-home", tmp_path / "hub.log")
        process.start(**env)
        started.append(process)
        return process

    yield run
    for process in started:
        process.stop()


def _errors(server: HubProcess, slug: str) -> dict[str, str]:
    answer = server.call("GET", f"/repos/{slug}")
    assert answer.status_code == 200, answer.text
    return {e["path"]: e["message"] for e in answer.json()["errors"]}


def _register(server: HubProcess, repo: GitRepo) -> float:
    began = time.monotonic()
    answer = server.call("POST", "/repos", json={"path": str(repo.root)})
    assert answer.status_code == 201, answer.text
    return time.monotonic() - began


def test_each_kind_of_file_at_just_over_and_far_over_its_byte_limit(
    start: Callable[..., HubProcess], make_repo: Callable[[str], GitRepo]
) -> None:
    server = start()
    repo = make_repo("sizes")
    manifest = '[repo]\nslug = "sizes"\nprefixes = ["SIZE"]\n'
    repo.write("statehub.toml", _padded_toml(manifest, 64 * 1024))  # at the limit
    repo.write("workplans/at.md", _padded(workplan_text("SIZE-WP-0001"), MiB))
    repo.write("workplans/over.md", _padded(workplan_text("SIZE-WP-0002"), MiB + 1))
    repo.write("workplans/far.md", _padded(workplan_text("SIZE-WP-0003"), 50 * MiB))
    canon = '+++\nid = "ADR-001"\ntitle = "Big"\nkind = "adr"\nstatus = "accepted"\n+++\n'
    repo.write("canon/at.md", _padded(canon, MiB))
    repo.write("canon/over.md", _padded(canon.replace("ADR-001", "ADR-002"), MiB + 1))
    repo.write("registry/fleet.toml", _padded_toml('[[machines]]\nname = "n1"\nrole = "build"\n', MiB + 1))
    repo.commit("sizes")
    assert _register(server, repo) < 20
    errors = _errors(server, "sizes")
    assert errors == {
        "workplans/over.md": "is 1,048,577 bytes, over the limit of 1,048,576 bytes; "
        "it is not read (STATEHUB_MAX_WORKPLAN_BYTES)",
        "workplans/far.md": "is 52,428,800 bytes, over the limit of 1,048,576 bytes; "
        "it is not read (STATEHUB_MAX_WORKPLAN_BYTES)",
        "canon/over.md": "is 1,048,577 bytes, over the limit of 1,048,576 bytes; "
        "it is not read (STATEHUB_MAX_CANON_BYTES)",
        "registry/fleet.toml": "is 1,048,577 bytes, over the limit of 1,048,576 bytes; "
        "it is not read (STATEHUB_MAX_FLEET_BYTES)",
    }
    assert [p["id"] for p in server.call("GET", "/workplans").json()["items"]] == ["SIZE-WP-0001"]
    assert [c["id"] for c in server.call("GET", "/canon").json()["items"]] == ["ADR-001"]
    assert server.call("GET", "/repos/sizes").json()["prefixes"] == ["SIZE"]

    repo.write("statehub.toml", _padded_toml(manifest, 64 * 1024 + 1))  # just over: not read, no prefixes
    repo.commit("manifest over")
    assert server.call("POST", "/repos/sizes/refresh").status_code == 200
    assert _errors(server, "sizes")["statehub.toml"] == (
        "is 65,537 bytes, over the limit of 65,536 bytes; it is not read (STATEHUB_MAX_MANIFEST_BYTES)"
    )
    assert server.call("GET", "/repos/sizes").json()["prefixes"] == []


def test_workplans_at_just_over_and_far_over_the_task_limit(
    start: Callable[..., HubProcess], make_repo: Callable[[str], GitRepo]
) -> None:
    server = start(STATEHUB_MAX_WORKPLAN_BYTES=str(100 * MiB))
    repo = make_repo("tasks")
    repo.write("workplans/at.md", _tasks(1000))
    repo.write("workplans/over.md", _tasks(1001))
    repo.write("workplans/far.md", _tasks(100_000))
    repo.write("workplans/inline.md", _tasks(1001, inline=True))
    repo.commit("tasks")
    took = _register(server, repo)
    assert took < 10, f"a 100,000-task file must be refused unparsed, took {took:.1f} s"
    errors = _errors(server, "tasks")
    assert set(errors) == {"workplans/over.md", "workplans/far.md", "workplans/inline.md"}
    assert errors["workplans/over.md"].startswith("has 1,001 tasks, over the limit of 1,000 tasks")
    assert errors["workplans/far.md"].startswith("has 100,000 tasks, over the limit of 1,000 tasks")
    assert errors["workplans/inline.md"].startswith("has 1,001 tasks, over the limit of 1,000 tasks")
    plans = server.call("GET", "/workplans").json()["items"]
    assert [(p["id"], p["task_count"]) for p in plans] == [("SIZE-WP-1000", 1000)]
    assert server.call("GET", "/tasks?limit=1").json()["total"] == 1000


def test_write_back_refuses_to_grow_a_file_past_its_limits(
    start: Callable[..., HubProcess], make_repo: Callable[[str], GitRepo]
) -> None:
    server = start(STATEHUB_MAX_WORKPLAN_BYTES="4096", STATEHUB_MAX_WORKPLAN_TASKS="3")
    repo = make_repo("grow")
    near = _padded(workplan_text("GROW-WP-0001", [{"id": "T01", "title": "t"}]), 4096 - 20)
    full = workplan_text("GROW-WP-0002", [{"id": f"T0{i}", "title": "t"} for i in (1, 2, 3)])
    repo.write("workplans/near.md", near)
    repo.write("workplans/full.md", full)
    repo.commit("near the limits")
    _register(server, repo)
    head = repo.git("rev-parse", "HEAD")
    base = {"actor": "agt", "at": "2026-07-03T22:29:55Z"}
    events = [
        base | {"key": "E-NOTE", "kind": "progress.note", "workplan": "GROW-WP-0001", "note": "n" * 200},
        base | {"key": "E-ADD", "kind": "task.add", "workplan": "GROW-WP-0002", "task": "T04", "title": "x"},
    ]
    assert server.call("POST", "/events", json=events).status_code == 202
    server.wait_settled()
    note = server.call("GET", "/events/E-NOTE").json()
    assert note["state"] == "rejected"
    assert note["reason"].startswith("workplans/near.md would grow to ")
    assert "over the limit of 4,096 bytes" in note["reason"]
    add = server.call("GET", "/events/E-ADD").json()
    assert add["state"] == "rejected"
    assert add["reason"].startswith("workplans/full.md would hold 4 tasks, over the limit of 3 tasks")
    assert repo.read("workplans/near.md") == near and repo.read("workplans/full.md") == full
    assert repo.git("rev-parse", "HEAD") == head

    # a file that grew past the limit after intake makes its events wait, with the reason
    small = {"key": "E-WAIT", "kind": "task.status", "workplan": "GROW-WP-0001", "task": "T01"}
    repo.write("workplans/near.md", _padded(near, 5000))
    repo.commit("grown by a person")
    head = repo.git("rev-parse", "HEAD")
    assert server.call("POST", "/events", json=base | small | {"status": "done"}).status_code == 202
    deadline = time.monotonic() + 60
    while not (found := server.call("GET", "/events/E-WAIT").json()).get("reason"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert found["state"] == "pending"
    assert "workplans/near.md: is 5,000 bytes, over the limit of 4,096 bytes" in found["reason"]
    assert repo.git("rev-parse", "HEAD") == head


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "lots", "9" * 20])
def test_a_limit_setting_must_be_a_whole_number(value: str) -> None:
    with pytest.raises(ValueError, match=f"STATEHUB_MAX_WORKPLAN_TASKS={value!r}: give a whole number"):
        FileLimits.from_env({"STATEHUB_MAX_WORKPLAN_TASKS": value})
    assert FileLimits.from_env({"STATEHUB_MAX_CANON_BYTES": "10"}).bytes_for("canon") == 10
