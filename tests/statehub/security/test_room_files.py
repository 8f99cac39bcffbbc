"""ADR-022: a room reads and a save writes no file outside its repo, and no symlink, ever.

Each variant plants a manifest (``statehub.toml``, ``registry/fleet.toml``)
or the ``registry`` directory as a symlink (absolute, relative, into another
repo, to the hub's root key file, chains), a FIFO or a directory, commits it
as a pusher would, and then opens the room, saves it and lists it against a
real hub process. Each asserts the refusal (status, reason), that no byte of
the target reached the client, and that nothing was written or committed in
either repo.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
import websockets

from tests.statehub.security.editorhub import (
    BETA_FLEET,
    MANIFEST,
    EditorHub,
    editor_hub,
    refusal,
    snapshot,
)
from tests.ysync_client import YClient

if TYPE_CHECKING:
    from pathlib import Path

Plant = Callable[[EditorHub], str]
"""Plants one variant in demo (committed where git can hold it); returns the doc to open."""


def _link(hub: EditorHub, rel: str, target: str | Path) -> None:
    path = hub.demo.root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        path.unlink()
    path.symlink_to(target)


def _commit(hub: EditorHub) -> None:
    hub.demo.commit("a pusher's change")


def manifest_to_key(hub: EditorHub) -> str:
    _link(hub, "statehub.toml", hub.settings.root_key_file)
    _commit(hub)
    return "demo/statehub.toml"


def manifest_relative_into_beta(hub: EditorHub) -> str:
    _link(hub, "statehub.toml", "../beta/statehub.toml")
    _commit(hub)
    return "demo/statehub.toml"


def manifest_to_own_file(hub: EditorHub) -> str:
    hub.demo.write("real.toml", MANIFEST)
    _link(hub, "statehub.toml", "real.toml")
    _commit(hub)
    return "demo/statehub.toml"


def manifest_chain_to_key(hub: EditorHub) -> str:
    _link(hub, "hop2", hub.settings.root_key_file)
    _link(hub, "hop1", "hop2")
    _link(hub, "statehub.toml", "hop1")
    _commit(hub)
    return "demo/statehub.toml"


def manifest_fifo(hub: EditorHub) -> str:
    (hub.demo.root / "statehub.toml").unlink()
    os.mkfifo(hub.demo.root / "statehub.toml")
    return "demo/statehub.toml"


def manifest_directory(hub: EditorHub) -> str:
    (hub.demo.root / "statehub.toml").unlink()
    (hub.demo.root / "statehub.toml").mkdir()
    (hub.demo.root / "statehub.toml" / "x").write_text("x\n")
    return "demo/statehub.toml"


def fleet_absolute_into_beta(hub: EditorHub) -> str:
    _link(hub, "registry/fleet.toml", hub.beta.root / "registry/fleet.toml")
    _commit(hub)
    return "demo/registry/fleet.toml"


def fleet_relative_into_beta(hub: EditorHub) -> str:
    _link(hub, "registry/fleet.toml", "../../beta/registry/fleet.toml")
    _commit(hub)
    return "demo/registry/fleet.toml"


def fleet_to_key(hub: EditorHub) -> str:
    _link(hub, "registry/fleet.toml", hub.settings.root_key_file)
    _commit(hub)
    return "demo/registry/fleet.toml"


def fleet_fifo(hub: EditorHub) -> str:
    (hub.demo.root / "registry").mkdir()
    os.mkfifo(hub.demo.root / "registry/fleet.toml")
    return "demo/registry/fleet.toml"


def registry_dir_absolute_into_beta(hub: EditorHub) -> str:
    _link(hub, "registry", hub.beta.root / "registry")
    _commit(hub)
    return "demo/registry/fleet.toml"


def registry_dir_relative_into_beta(hub: EditorHub) -> str:
    _link(hub, "registry", "../beta/registry")
    _commit(hub)
    return "demo/registry/fleet.toml"


def registry_dir_chain(hub: EditorHub) -> str:
    _link(hub, "elsewhere", hub.beta.root / "registry")
    _link(hub, "registry", "elsewhere")
    _commit(hub)
    return "demo/registry/fleet.toml"


def registry_dir_to_key_dir(hub: EditorHub) -> str:
    (hub.settings.root_key_file.parent / "fleet.toml").symlink_to(hub.settings.root_key_file)
    _link(hub, "registry", hub.settings.root_key_file.parent)
    _commit(hub)
    return "demo/registry/fleet.toml"


VARIANTS: dict[str, tuple[Plant, str]] = {
    "manifest -> key file (absolute)": (manifest_to_key, "is a symbolic link"),
    "manifest -> ../beta (relative, another repo)": (manifest_relative_into_beta, "is a symbolic link"),
    "manifest -> a file in its own repo": (manifest_to_own_file, "is a symbolic link"),
    "manifest -> hop1 -> hop2 -> key file (chain)": (manifest_chain_to_key, "is a symbolic link"),
    "manifest is a FIFO": (manifest_fifo, "is not a regular file"),
    "manifest is a directory": (manifest_directory, "is not a regular file"),
    "fleet.toml -> beta's (absolute)": (fleet_absolute_into_beta, "is a symbolic link"),
    "fleet.toml -> beta's (relative)": (fleet_relative_into_beta, "is a symbolic link"),
    "fleet.toml -> key file": (fleet_to_key, "is a symbolic link"),
    "fleet.toml is a FIFO": (fleet_fifo, "is not a regular file"),
    "registry/ -> beta's registry/ (absolute)": (registry_dir_absolute_into_beta, "is a symbolic link"),
    "registry/ -> ../beta/registry (relative)": (registry_dir_relative_into_beta, "is a symbolic link"),
    "registry/ -> elsewhere -> beta's (chain)": (registry_dir_chain, "is a symbolic link"),
    "registry/ -> the key's directory": (registry_dir_to_key_dir, "is a symbolic link"),
}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EditorHub]:
    with editor_hub(tmp_path_factory.mktemp("room-files")) as running:
        yield running


@pytest.fixture
def fresh(hub: EditorHub) -> Iterator[EditorHub]:
    """The demo repo back at its first commit after each variant."""
    base = hub.demo.git("rev-list", "--max-parents=0", "HEAD").strip()
    yield hub
    key_dir = hub.settings.root_key_file.parent
    (key_dir / "fleet.toml").unlink(missing_ok=True)
    for rel in ("statehub.toml", "registry"):
        path = hub.demo.root / rel
        if path.is_dir() and not path.is_symlink():
            for child in sorted(path.rglob("*"), reverse=True):
                child.unlink() if not child.is_dir() or child.is_symlink() else child.rmdir()
            path.rmdir()
        elif path.is_symlink() or path.exists():
            path.unlink()
    hub.demo.git("reset", "-q", "--hard", base)
    hub.demo.git("clean", "-qfdx")


def _secrets(hub: EditorHub) -> list[str]:
    return [hub.key_text, "BETA-FLEET-MARKER", 'prefixes = ["BETA"]']


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_room_on_a_planted_path_is_refused_and_nothing_leaks_or_is_written(
    fresh: EditorHub, variant: str
) -> None:
    hub = fresh
    plant, reason = VARIANTS[variant]
    doc = plant(hub)
    before = snapshot(hub.demo), snapshot(hub.beta)
    key_before = hub.settings.root_key_file.read_bytes()

    status, body = refusal(hub.room(doc, user="Ada"))
    assert status == 400, body
    assert reason in body
    saved = hub.call("POST", f"/sync/{doc}/save?user=Ada")
    assert saved.status_code == 400, saved.text
    assert reason in saved.json()["error"]
    listed = hub.call("GET", "/sync")
    assert listed.status_code == 200
    item = next(i for i in listed.json()["items"] if i["doc"] == doc)
    assert reason in item["error"]

    for secret in _secrets(hub):
        assert secret not in body
        assert secret not in saved.text
        assert secret not in listed.text
    assert (snapshot(hub.demo), snapshot(hub.beta)) == before
    assert hub.settings.root_key_file.read_bytes() == key_before
    assert hub.beta.read("registry/fleet.toml") == BETA_FLEET
    assert hub.call("GET", "/state/health").status_code == 200


def test_a_registry_turned_symlink_under_an_open_room_is_neither_read_nor_written(fresh: EditorHub) -> None:
    """The finding: a ``registry`` directory symlink into another repo made a save overwrite its file."""
    hub = fresh
    received: list[bytes] = []

    async def scenario() -> None:
        ada = await YClient(hub.room("demo/registry/fleet.toml", user="Ada")).connect()
        await asyncio.wait_for(ada.synced.wait(), 10)
        ada.on_update.append(received.append)
        ada.text.insert(0, '[[machines]]\nname = "d1"\nrole = "build"\n')
        await asyncio.sleep(0.3)
        _link(hub, "registry", hub.beta.root / "registry")
        await ada.wait_for(lambda: any(m.get("type") == "error" for m in ada.hub_messages), 10)
        assert (
            "is a symbolic link" in next(m for m in ada.hub_messages if m.get("type") == "error")["message"]
        )
        await ada.save()
        await ada.wait_for(lambda: any(m.get("type") == "save-result" for m in ada.hub_messages), 10)
        result = next(m for m in ada.hub_messages if m.get("type") == "save-result")
        assert not result["ok"] and "is a symbolic link" in result["message"]
        assert "BETA-FLEET-MARKER" not in str(ada.text)
        await ada.close()
        received.extend(str(m).encode() for m in ada.hub_messages)

    beta_before = snapshot(hub.beta)
    demo_head = hub.demo.git("rev-parse", "HEAD")
    asyncio.run(scenario())
    answer = httpx.post(f"{hub.url}/sync/demo/registry/fleet.toml/save?user=Ada", timeout=30)
    assert answer.status_code == 400 and "is a symbolic link" in answer.json()["error"]
    assert all(b"BETA-FLEET-MARKER" not in chunk for chunk in received)
    assert snapshot(hub.beta) == beta_before
    assert hub.demo.git("rev-parse", "HEAD") == demo_head
    assert not (hub.beta.root / "registry" / "fleet.toml").read_text().startswith('[[machines]]\nname = "d1"')


def test_a_manifest_turned_symlink_to_the_key_under_an_open_room_sends_nothing_of_it(
    fresh: EditorHub,
) -> None:
    hub = fresh
    seen: list[bytes] = []

    async def scenario() -> None:
        ada = await YClient(hub.room(user="Ada")).connect()
        await asyncio.wait_for(ada.synced.wait(), 10)
        ada.on_update.append(seen.append)
        _link(hub, "statehub.toml", hub.settings.root_key_file)
        await ada.wait_for(lambda: any(m.get("type") == "error" for m in ada.hub_messages), 10)
        with pytest.raises(websockets.InvalidStatus) as late:  # a newcomer is refused, the room goes on
            await websockets.connect(hub.room(user="Bob"))
        assert late.value.response.status_code == 400
        assert hub.key_text.encode() not in late.value.response.body
        assert str(ada.text) == MANIFEST
        await ada.close()

    asyncio.run(scenario())
    assert all(hub.key_text.encode() not in chunk for chunk in seen)
    status, body = refusal(hub.room(user="Cy"))
    assert status == 400 and "is a symbolic link" in body and hub.key_text not in body
