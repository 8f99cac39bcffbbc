"""The real routes under a hub that requires tokens: POST /events, fleet role changes, CRDT saves
and the WebSocket upgrade. A refused request writes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient
from pycrdt import Doc, create_sync_message

from statehub.app import create_app
from statehub.auth.keys import init_root_key, load_root_key
from statehub.auth.tokens import mint
from tests.gitfixtures import GitRepo, workplan_text

if TYPE_CHECKING:
    from collections.abc import Iterator

    from biscuit_auth import KeyPair

    from statehub.settings import Settings

FLEET_EXAMPLE = Path(__file__).resolve().parents[2] / "registry" / "fleet_example.toml"


class Hub:
    def __init__(self, client: TestClient[Any], root: KeyPair) -> None:
        self.client = client
        self.root = root

    def headers(self, right: str, repos: tuple[str, ...] = (), actor: str = "agt-codex") -> dict[str, str]:
        return {"Authorization": f"Bearer {mint(self.root, actor, right, repos).to_base64()}"}

    def stored(self) -> int:
        answer = self.client.get("/events", headers=self.headers("read"))
        total: int = answer.json()["total"]
        return total


@pytest.fixture
def secured(settings: Settings, tmp_path: Path) -> Iterator[Hub]:
    init_root_key(settings.root_key_file)
    root = load_root_key(settings.root_key_file)
    with TestClient(create_app(settings.with_overrides(auth="required"))) as client:
        hub = client.app.state.hub
        for slug in ("alpha", "beta"):
            repo = GitRepo(tmp_path / slug)
            repo.write("statehub.toml", f'[repo]\nslug = "{slug}"\n')
            plan = f"{slug.upper()}-WP-0001"
            repo.write(f"workplans/{plan}.md", workplan_text(plan, [{"id": "T01", "title": "one"}]))
            if slug == "alpha":
                (repo.root / "registry").mkdir()
                shutil.copy(FLEET_EXAMPLE, repo.root / "registry" / "fleet.toml")
            repo.commit()
            hub.register(repo.root)
        yield Hub(client, root)


def _status(key: str, plan: str = "ALPHA-WP-0001", actor: str = "agt-codex") -> dict[str, str]:
    return {
        "key": key,
        "kind": "task.status",
        "workplan": plan,
        "task": "T01",
        "status": "done",
        "actor": actor,
    }


def test_events_need_a_token_that_may_write_to_each_events_repo(secured: Hub) -> None:
    post = secured.client.post
    assert post("/events", json=_status("E1")).status_code == 401
    assert post("/events", json=_status("E1"), headers=secured.headers("read")).status_code == 403
    other_repo = post(
        "/events", json=_status("E1", "BETA-WP-0001"), headers=secured.headers("write", ("alpha",))
    )
    assert other_repo.status_code == 403
    assert secured.stored() == 0
    allowed = post("/events", json=_status("E1"), headers=secured.headers("write", ("alpha",)))
    assert allowed.status_code == 202, allowed.text
    assert secured.stored() == 1


def test_an_event_must_be_sent_as_the_tokens_actor(secured: Hub) -> None:
    answer = secured.client.post(
        "/events", json=_status("E2", actor="someone-else"), headers=secured.headers("write")
    )
    assert answer.status_code == 403
    assert "'someone-else' is not this token's actor 'agt-codex'" in answer.json()["error"]
    assert secured.stored() == 0


def test_one_refused_event_stores_none_of_its_batch(secured: Hub) -> None:
    batch = [_status("B1"), _status("B2", "BETA-WP-0001")]
    answer = secured.client.post("/events", json=batch, headers=secured.headers("write", ("alpha",)))
    assert answer.status_code == 403
    assert secured.stored() == 0


def test_a_machine_role_change_needs_admin(secured: Hub) -> None:
    change = {
        "key": "R1",
        "kind": "fleet.machine.role",
        "repo": "alpha",
        "machine": "buildbox",
        "role": "experimental",
        "actor": "agt-codex",
    }
    refused = secured.client.post("/events", json=change, headers=secured.headers("write", ("alpha",)))
    assert refused.status_code == 403
    assert secured.stored() == 0
    allowed = secured.client.post("/events", json=change, headers=secured.headers("admin"))
    assert allowed.status_code == 202, allowed.text


def test_saving_a_manifest_needs_edit_and_the_fleet_registry_needs_admin(secured: Hub) -> None:
    post = secured.client.post
    assert post("/sync/alpha/statehub.toml/save", headers=secured.headers("read")).status_code == 403
    assert (
        post("/sync/alpha/statehub.toml/save", headers=secured.headers("edit", ("beta",))).status_code == 403
    )
    saved = post("/sync/alpha/statehub.toml/save", headers=secured.headers("edit", ("alpha",)))
    assert saved.status_code not in (401, 403), saved.text
    fleet = "/sync/alpha/registry/fleet.toml/save"
    assert post(fleet, headers=secured.headers("edit", ("alpha",))).status_code == 403
    assert post(fleet, headers=secured.headers("admin")).status_code not in (401, 403)


def test_a_refused_websocket_upgrade_closes_with_4401_or_4403(secured: Hub) -> None:
    room = "/sync/alpha/statehub.toml"
    with pytest.raises(WebSocketDisconnect) as refused, secured.client.websocket_connect(room) as socket:
        socket.receive()
    assert refused.value.code == 4401
    reader = secured.headers("read")["Authorization"].removeprefix("Bearer ")
    with (
        pytest.raises(WebSocketDisconnect) as read_only,
        secured.client.websocket_connect(f"{room}?token={reader}") as socket,
    ):
        socket.receive()
    assert read_only.value.code == 4403
    fleet_editor = secured.headers("edit", ("alpha",))["Authorization"].removeprefix("Bearer ")
    fleet_room = f"/sync/alpha/registry/fleet.toml?token={fleet_editor}"
    with (
        pytest.raises(WebSocketDisconnect) as not_admin,
        secured.client.websocket_connect(fleet_room) as socket,
    ):
        socket.receive()
    assert not_admin.value.code == 4403
    with secured.client.websocket_connect(f"{room}?token={fleet_editor}") as socket:
        socket.send_bytes(create_sync_message(Doc()))
        assert socket.receive_bytes()  # the room answers: the upgrade was accepted
