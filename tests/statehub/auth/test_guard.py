"""The guard on the real app: every refusal has a reason a person can act on, and writes nothing."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

import pytest
from biscuit_auth import KeyPair
from litestar.exceptions import WebSocketDisconnect

from statehub.auth.guard import OPEN_PATHS
from statehub.auth.revocation import add_revocation
from statehub.auth.tokens import attenuate, mint
from statehub.errors import Forbidden

if TYPE_CHECKING:
    from statehub.auth.verify import TokenVerifier
    from tests.statehub.auth.conftest import SecuredHub


def test_reads_need_a_token(secured: SecuredHub) -> None:
    response = secured.client.get("/tasks")
    assert response.status_code == 401
    assert "statehub token mint" in response.json()["error"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    ok = secured.client.get("/tasks", headers=secured.bearer(secured.token()))
    assert ok.status_code == 200
    assert ok.json()["total"] == 3


def test_health_is_open_for_probes(secured: SecuredHub) -> None:
    assert secured.client.get("/state/health").status_code == 200


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer not-a-token", "Bearer " + "A" * 300],
    ids=["basic", "empty", "garbage", "base64-noise"],
)
def test_malformed_tokens_are_refused(secured: SecuredHub, header: str) -> None:
    response = secured.client.get("/tasks", headers={"Authorization": header})
    assert response.status_code == 401
    assert header.split(" ", 1)[-1] not in response.json()["error"] or header == "Bearer"


def test_forged_and_wrong_key_tokens_are_refused(secured: SecuredHub) -> None:
    other = mint(KeyPair(), "agt-codex", "admin").to_base64()
    response = secured.client.get("/tasks", headers=secured.bearer(other))
    assert response.status_code == 401
    assert "signature does not verify" in response.json()["error"]
    good = secured.token(right="admin")
    forged = good[:40] + ("A" if good[40] != "A" else "B") + good[41:]
    assert secured.client.get("/tasks", headers=secured.bearer(forged)).status_code == 401


def test_admin_routes_refuse_lower_rights_and_write_nothing(
    secured: SecuredHub, tmp_path_factory: pytest.TempPathFactory
) -> None:
    before = secured.settings.hub_file.read_text(encoding="utf-8")
    token = secured.token(right="edit")
    response = secured.client.delete("/repos/alpha", headers=secured.bearer(token))
    assert response.status_code == 403
    assert "grants edit" in response.json()["error"]
    assert "--right admin" in response.json()["error"]
    assert secured.settings.hub_file.read_text(encoding="utf-8") == before
    assert secured.client.post("/repos/alpha/refresh", headers=secured.bearer(token)).status_code == 403
    admin = secured.token(right="admin", repos=("alpha",))
    assert secured.client.post("/repos/alpha/refresh", headers=secured.bearer(admin)).status_code == 200
    assert secured.client.delete("/repos/beta", headers=secured.bearer(admin)).status_code == 403
    assert secured.settings.hub_file.read_text(encoding="utf-8") == before


def test_expired_tokens_get_401_with_the_time(secured: SecuredHub) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    token = mint(secured.root, "agt-codex", "read", ttl=dt.timedelta(hours=1), now=past).to_base64()
    response = secured.client.get("/tasks", headers=secured.bearer(token))
    assert response.status_code == 401
    assert "expired" in response.json()["error"]
    assert "valid until" in response.json()["error"]


def test_revocation_is_reloaded_and_covers_narrowed_tokens(secured: SecuredHub) -> None:
    parent = mint(secured.root, "agt-codex", "write")
    child = attenuate(parent.to_base64(), secured.root.public_key, right="read").to_base64()
    assert secured.client.get("/tasks", headers=secured.bearer(child)).status_code == 200
    add_revocation(secured.settings.revocation_file, parent.revocation_ids[0], "test")
    for token in (parent.to_base64(), child):
        response = secured.client.get("/tasks", headers=secured.bearer(token))
        assert response.status_code == 401
        assert "revoked" in response.json()["error"]
    other = secured.token()
    assert secured.client.get("/tasks", headers=secured.bearer(other)).status_code == 200


def test_revoking_only_the_child_leaves_the_parent(secured: SecuredHub) -> None:
    parent = mint(secured.root, "agt-codex", "write")
    child = attenuate(parent.to_base64(), secured.root.public_key, repos=["alpha"])
    add_revocation(secured.settings.revocation_file, child.revocation_ids[1])
    assert secured.client.get("/tasks", headers=secured.bearer(child.to_base64())).status_code == 401
    assert secured.client.get("/tasks", headers=secured.bearer(parent.to_base64())).status_code == 200


def test_over_attenuated_token_is_refused_with_the_limiting_check(secured: SecuredHub) -> None:
    admin = mint(secured.root, "ops-lead", "admin").to_base64()
    narrowed = attenuate(admin, secured.root.public_key, right="read").to_base64()
    response = secured.client.post("/repos/alpha/refresh", headers=secured.bearer(narrowed))
    assert response.status_code == 403
    assert "narrowed in block 1" in response.json()["error"]
    assert secured.client.get("/repos/alpha", headers=secured.bearer(narrowed)).status_code == 200


def test_events_are_authorised_one_by_one_before_any_is_written(secured: SecuredHub) -> None:
    token = secured.token(actor="agt-codex", right="write", repos=("alpha", "beta"))
    event = {"repo": "alpha", "actor": "agt-codex"}
    ok = secured.client.post("/probe/events", json=[event], headers=secured.bearer(token))
    assert ok.status_code == 201
    assert secured.written == [event]
    batch = [event, {"repo": "gamma", "actor": "agt-codex"}]
    refused = secured.client.post("/probe/events", json=batch, headers=secured.bearer(token))
    assert refused.status_code == 403
    assert "'gamma'" in refused.json()["error"]
    impostor = [{"repo": "alpha", "actor": "ops-lead"}]
    refused = secured.client.post("/probe/events", json=impostor, headers=secured.bearer(token))
    assert refused.status_code == 403
    assert "not this token's actor 'agt-codex'" in refused.json()["error"]
    reader = secured.token(actor="agt-codex", right="read")
    assert (
        secured.client.post("/probe/events", json=[event], headers=secured.bearer(reader)).status_code == 403
    )
    assert secured.client.post("/probe/events", json=[event]).status_code == 401
    assert secured.written == [event]


def test_edit_routes_need_edit_on_the_repo(secured: SecuredHub) -> None:
    writer = secured.token(right="write")
    assert secured.client.post("/probe/save/alpha", headers=secured.bearer(writer)).status_code == 403
    editor = secured.token(right="edit", repos=("alpha",))
    assert secured.client.post("/probe/save/beta", headers=secured.bearer(editor)).status_code == 403
    assert secured.client.post("/probe/save/alpha", headers=secured.bearer(editor)).status_code == 201
    assert secured.written == [{"saved": "alpha"}]


def test_a_refused_websocket_upgrade_closes_with_4401_or_4403(secured: SecuredHub) -> None:
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        secured.client.websocket_connect("/probe/sync/alpha") as socket,
    ):
        socket.receive()
    assert refused.value.code == 4401
    reader = secured.token(right="read")
    with (
        pytest.raises(WebSocketDisconnect) as forbidden,
        secured.client.websocket_connect("/probe/sync/alpha", headers=secured.bearer(reader)) as socket,
    ):
        socket.receive()
    assert forbidden.value.code == 4403
    editor = secured.token(actor="ann", right="edit", repos=("alpha",))
    with secured.client.websocket_connect(f"/probe/sync/alpha?token={editor}") as socket:
        assert socket.receive_json() == {"doc": "alpha", "actor": "ann"}


def test_authorize_event_directly(secured: SecuredHub) -> None:
    from statehub.auth.guard import authorize_event

    verifier: TokenVerifier = secured.client.app.state.auth.verifier
    token = verifier.verify(secured.token(actor="agt-codex", right="write", repos=("alpha",)))
    authorize_event(token, "alpha", "agt-codex")
    authorize_event(None, "anything", "anyone")  # an open hub: nothing to check
    with pytest.raises(Forbidden):
        authorize_event(token, "beta", "agt-codex")
    with pytest.raises(Forbidden):
        authorize_event(token, "alpha", "someone-else")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
    authorize_event(token, "alpha", "agt-codex", now=later)  # no ttl: no expiry
    with pytest.raises(ValueError, match="timezone-aware"):
        authorize_event(token, "alpha", "agt-codex", now=dt.datetime.now())  # noqa: DTZ005 - naive on purpose


PUBLIC = {
    ("GET", "/"),  # the web UI's page: it signs in (ADR-040)
    ("GET", "/static"),  # its code, no hub data
    ("POST", "/auth/session"),  # sign-in takes the token in its body
    ("DELETE", "/auth/session"),  # sign-out: the session's CSRF token, or nothing to end
}
"""The only routes answered without a token besides OPEN_PATHS; anything else opened by mistake fails."""


def test_every_route_is_guarded(secured: SecuredHub) -> None:
    """Enumerate the app's routes: each one refuses a request without a token (except the probe)."""
    checked = []
    public = set()
    for route in secured.client.app.routes:
        path = route.path.replace("{slug:str}", "alpha")
        path = re.sub(r"\{[^}]+\}", "x", path)
        for method in sorted(getattr(route, "methods", {"GET"}) - {"OPTIONS", "HEAD"}):
            if route.path in OPEN_PATHS:
                continue
            if (method, route.path.split("/{")[0] or "/") in PUBLIC:
                response = secured.client.request(method, path)
                assert response.status_code != 401, (method, route.path)
                public.add((method, route.path.split("/{")[0] or "/"))
                continue
            if "websocket" in type(route).__name__.lower():
                with (
                    pytest.raises(WebSocketDisconnect) as closed,
                    secured.client.websocket_connect(path) as ws,
                ):
                    ws.receive()
                assert closed.value.code == 4401, (route.path, closed.value.code)
            else:
                response = secured.client.request(method, path)
                assert response.status_code == 401, (method, route.path, response.status_code)
            checked.append((method, route.path))
    assert ("POST", "/repos") in checked
    assert ("GET", "/schema/openapi.json") in checked
    assert ("GET", "/auth/session") in checked  # who am I needs a token
    assert public == PUBLIC


def test_an_open_route_cannot_act_for_a_token_holder(secured: SecuredHub) -> None:
    """token_of fails closed: an events route marked OPEN by mistake writes nothing."""
    from litestar import Request, post

    from statehub.auth import OPEN, authorize_event, token_of

    @post("/probe/misconfigured", opt=OPEN, sync_to_thread=False)
    def misconfigured(request: Request) -> dict[str, str]:  # type: ignore[type-arg]
        authorize_event(token_of(request), "alpha", "anyone")
        secured.written.append({"misconfigured": "yes"})
        return {}

    secured.client.app.register(misconfigured)
    response = secured.client.post(
        "/probe/misconfigured", headers=secured.bearer(secured.token(right="admin"))
    )
    assert response.status_code == 401
    assert secured.written == []
