"""Claims on a hub that requires tokens (ADR-032): a token claims, heartbeats and releases as its own
actor only, unless it is admin on the task's repo; every refusal writes nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from litestar.testing import TestClient

from statehub.app import create_app
from statehub.auth.keys import init_root_key, load_root_key
from statehub.auth.tokens import mint
from tests.gitfixtures import GitRepo, workplan_text

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from statehub.settings import Settings

REF = "TOK-WP-0001-T01"


@pytest.fixture
def guarded(
    settings: Settings, make_repo: Callable[[str], GitRepo]
) -> Iterator[tuple[TestClient[Any], Callable[..., dict[str, str]]]]:
    repo = make_repo("tok")
    repo.write("statehub.toml", '[repo]\nslug = "tok"\n')
    repo.write("workplans/TOK-WP-0001.md", workplan_text("TOK-WP-0001", [{"id": "T01", "title": "one"}]))
    repo.commit()
    init_root_key(settings.root_key_file)
    root = load_root_key(settings.root_key_file)

    def headers(actor: str, right: str, repos: tuple[str, ...] = ()) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint(root, actor, right, repos).to_base64()}"}

    with TestClient(create_app(settings.with_overrides(auth="required"))) as client:
        client.app.state.hub.register(repo.root)
        yield client, headers


def test_a_token_claims_only_as_its_own_actor_unless_admin(
    guarded: tuple[TestClient[Any], Callable[..., dict[str, str]]],
) -> None:
    client, headers = guarded
    body = {"actor": "agt-b"}
    assert client.post(f"/tasks/{REF}/claim", json=body).status_code == 401
    assert client.post(f"/tasks/{REF}/claim", json=body, headers=headers("agt-b", "read")).status_code == 403
    mismatch = client.post(f"/tasks/{REF}/claim", json=body, headers=headers("agt-a", "write"))
    assert mismatch.status_code == 403
    assert "not this token's actor" in mismatch.json()["error"]
    other_repo = client.post(
        f"/tasks/{REF}/claim", json=body, headers=headers("agt-b", "write", ("elsewhere",))
    )
    assert other_repo.status_code == 403
    assert client.get(f"/tasks/{REF}/claim", headers=headers("agt-a", "read")).json()["held"] is False
    assert client.get("/events", headers=headers("agt-a", "read")).json()["total"] == 0

    won = client.post(f"/tasks/{REF}/claim", json=body, headers=headers("agt-b", "write", ("tok",)))
    assert won.status_code == 200, won.text
    for path, extra in (("heartbeat", {}), ("release", {"status": "done"})):
        refused = client.post(f"/tasks/{REF}/{path}", json=body | extra, headers=headers("agt-a", "write"))
        assert refused.status_code == 403, path
    assert client.get(f"/tasks/{REF}/claim", headers=headers("agt-a", "read")).json()["actor"] == "agt-b"

    # an admin on the repo acts for another actor (a hub relaying its people's claims, ADR-021)
    released = client.post(
        f"/tasks/{REF}/release", json=body | {"status": "todo"}, headers=headers("ops", "admin", ("tok",))
    )
    assert released.status_code == 200, released.text
    assert released.json()["actor"] == "agt-b"
