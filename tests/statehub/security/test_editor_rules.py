"""ADR-010, ADR-022: the editor obeys the rules events obey, and a failed save leaves no trace.

Against a real hub process and real repos: a ``registry/fleet.toml`` save
that places a workload on a frozen host, promotes without the gate, freezes
a planned target or adds a new violation is refused with the reasons the
fleet commands give (``registry.check_change``); a ``statehub.toml`` save
taking another registered repo's slug or prefix is refused. A save that git
refuses (a stale ``index.lock``, a locked branch ref) restores the file and
the index and answers with a short reason, never the git command line.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from registry import check_change
from tests.statehub.security.editorhub import MANIFEST, EditorHub, editor_hub, snapshot
from tests.ysync_client import YClient
from workplans import MachineRole, WorkloadState, parse_fleet
from workplans.fleet_events import FleetChange, PlaceWorkload, SetMachineRole, SetWorkloadState

if TYPE_CHECKING:
    from collections.abc import Iterator

FLEET = """[[machines]]
name = "home"
role = "production-home"

[[machines]]
name = "old"
role = "frozen-legacy"

[[workloads]]
name = "api"
current_host = "home"
target_host = "home"
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EditorHub]:
    with editor_hub(tmp_path_factory.mktemp("editor-rules")) as running:
        running.demo.write("registry/fleet.toml", FLEET)
        running.demo.commit("a fleet registry")
        yield running


@pytest.fixture
def fresh(hub: EditorHub) -> Iterator[EditorHub]:
    head = hub.demo.git("rev-parse", "HEAD").strip()
    yield hub
    for lock in (".git/index.lock", ".git/refs/heads/main.lock"):
        (hub.demo.root / lock).unlink(missing_ok=True)
    hub.demo.git("reset", "-q", "--hard", head)
    hub.demo.git("clean", "-qfdx")


def _save_text(hub: EditorHub, doc: str, text: str) -> dict[str, Any]:
    """Replace the room's text with ``text`` as a client would, save it, and return the outcome."""

    async def scenario() -> dict[str, Any]:
        client = await YClient(hub.room(doc, user="Ada")).connect()
        await asyncio.wait_for(client.synced.wait(), 10)
        with client.doc.transaction():
            del client.text[0 : len(client.text)]
            client.text.insert(0, text)
        await asyncio.sleep(0.3)
        await client.save()
        await client.wait_for(lambda: any(m.get("type") == "save-result" for m in client.hub_messages), 15)
        await client.close()
        return next(m for m in client.hub_messages if m.get("type") == "save-result")

    return asyncio.run(scenario())


def _expected(change: FleetChange) -> list[str]:
    return check_change(parse_fleet(FLEET), change)


EDITS = {
    "place on a frozen host": (
        FLEET.replace('target_host = "home"', 'target_host = "old"'),
        PlaceWorkload("api", "old"),
    ),
    "promote without the gate": (
        FLEET + 'state = "promoted"\n',
        SetWorkloadState("api", WorkloadState.PROMOTED),
    ),
    "freeze a planned target": (
        FLEET.replace('name = "home"\nrole = "production-home"', 'name = "home"\nrole = "frozen-legacy"'),
        SetMachineRole("home", MachineRole.FROZEN_LEGACY),
    ),
}


@pytest.mark.parametrize("case", list(EDITS))
def test_a_fleet_save_is_refused_with_the_fleet_commands_reasons(fresh: EditorHub, case: str) -> None:
    hub = fresh
    text, change = EDITS[case]
    expected = _expected(change)
    assert expected  # the fleet command refuses it too
    before = snapshot(hub.demo), snapshot(hub.beta)
    result = _save_text(hub, "demo/registry/fleet.toml", text)
    assert not result["ok"]
    assert [e["message"] for e in result["errors"]] == expected
    assert all(reason in result["message"] for reason in expected)
    assert (snapshot(hub.demo), snapshot(hub.beta)) == before


def test_a_new_workload_adds_no_violation_either(fresh: EditorHub) -> None:
    hub = fresh
    before = snapshot(hub.demo)
    added = FLEET + '\n[[workloads]]\nname = "batch"\ncurrent_host = "home"\ntarget_host = "old"\n'
    result = _save_text(hub, "demo/registry/fleet.toml", added)
    assert not result["ok"]
    assert [e["message"] for e in result["errors"]] == [
        "workload batch: target host old is frozen-legacy: it accepts no new placement"
    ]
    assert snapshot(hub.demo) == before


def test_an_edit_the_rules_allow_is_saved(fresh: EditorHub) -> None:
    hub = fresh
    allowed = FLEET + '\n[[machines]]\nname = "new"\nrole = "build"\n'
    result = _save_text(hub, "demo/registry/fleet.toml", allowed)
    assert result["ok"], result
    assert hub.demo.read("registry/fleet.toml") == allowed
    assert hub.demo.git("status", "--porcelain") == ""


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (MANIFEST.replace('slug = "demo"', 'slug = "beta"'), "slug 'beta' is already registered"),
        (
            MANIFEST.replace('["DEMO"]', '["DEMO", "BETA"]'),
            "prefix 'BETA' is already declared by repo 'beta'",
        ),
    ],
)
def test_a_manifest_save_may_not_take_another_repos_slug_or_prefix(
    fresh: EditorHub, text: str, reason: str
) -> None:
    hub = fresh
    before = snapshot(hub.demo), snapshot(hub.beta)
    result = _save_text(hub, "demo/statehub.toml", text)
    assert not result["ok"]
    assert reason in result["message"]
    assert (snapshot(hub.demo), snapshot(hub.beta)) == before


@pytest.mark.parametrize(
    ("lock", "reason"),
    [
        (".git/index.lock", "could not lock the repo's index"),
        (".git/refs/heads/main.lock", "git refused the commit: cannot lock ref"),
    ],
)
@pytest.mark.parametrize("doc", ["demo/statehub.toml", "demo/registry/fleet.toml", "new registry"])
def test_a_save_git_refuses_restores_the_file_and_the_index(
    fresh: EditorHub, lock: str, reason: str, doc: str
) -> None:
    hub = fresh
    if doc == "new registry":
        hub.demo.git("rm", "-q", "-r", "registry")
        hub.demo.commit("no registry yet")
        doc = "demo/registry/fleet.toml"
    rel = doc.partition("/")[2]
    original = (hub.demo.root / rel).read_text() if (hub.demo.root / rel).exists() else None
    new_text = (original or FLEET) + "# saved?\n"
    (hub.demo.root / lock).write_text("")
    before = snapshot(hub.demo)
    index = hub.demo.git("ls-files", "-s")
    result = _save_text(hub, doc, new_text)
    assert not result["ok"]
    message = str(result["message"])
    assert reason in message, message
    assert "cmdline" not in message and "git commit" not in message and "--only" not in message
    assert len(message) < 400
    assert snapshot(hub.demo) == before
    assert hub.demo.git("ls-files", "-s") == index
    assert hub.demo.git("diff", "--cached", "--name-only") == ""
    if original is None:
        assert not (hub.demo.root / "registry").exists()
    # Once the lock is gone, the same room saves.
    (hub.demo.root / lock).unlink()
    again = _save_text(hub, doc, new_text)
    assert again["ok"], again
    assert hub.demo.read(rel) == new_text


def test_an_invalid_save_writes_nothing(fresh: EditorHub) -> None:
    hub = fresh
    before = snapshot(hub.demo)
    result = _save_text(hub, "demo/registry/fleet.toml", FLEET + "state = \n")
    assert not result["ok"] and result["errors"]
    assert snapshot(hub.demo) == before
