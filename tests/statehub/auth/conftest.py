"""A hub that requires tokens, with a root key, three registered repos and two probe routes.

The probe routes stand in for routes other packages add (POST /events, CRDT
saves, WS /sync/{doc}) and use the guard's API exactly as those must.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from biscuit_auth import KeyPair
from litestar import Request, WebSocket, post, websocket
from litestar.testing import TestClient

from statehub.app import create_app
from statehub.auth import PER_EVENT, authorize_event, requires, token_of
from statehub.auth.keys import init_root_key, load_root_key
from statehub.auth.tokens import mint
from statehub.settings import Settings
from tests.gitfixtures import GitRepo, workplan_text

if TYPE_CHECKING:
    from collections.abc import Iterator

    from litestar.datastructures import State
    from litestar.params import FromPath, JSONBody

REPOS = ("alpha", "beta", "gamma")


@post("/probe/events", opt=PER_EVENT, sync_to_thread=False)
def probe_events(request: Request[Any, Any, State], data: JSONBody[list[dict[str, str]]]) -> dict[str, int]:
    """How POST /events must use the guard: authorise every event, then write them all."""
    token = token_of(request)
    for event in data:
        authorize_event(token, event["repo"], event["actor"])
    written: list[dict[str, str]] = request.app.state.written
    written.extend(data)
    return {"accepted": len(data)}


@post("/probe/save/{slug:str}", opt=requires("edit"), sync_to_thread=False)
def probe_save(request: Request[Any, Any, State], slug: FromPath[str]) -> dict[str, str]:
    written: list[dict[str, str]] = request.app.state.written
    written.append({"saved": slug})
    return {"saved": slug}


@websocket("/probe/sync/{slug:str}", opt=requires("edit"))
async def probe_sync(socket: WebSocket[Any, Any, State], slug: FromPath[str]) -> None:
    await socket.accept()
    token = token_of(socket)
    await socket.send_json({"doc": slug, "actor": token.actor if token else None})
    await socket.close()


@dataclass
class SecuredHub:
    client: TestClient  # type: ignore[type-arg]
    root: KeyPair
    settings: Settings
    written: list[dict[str, str]] = field(default_factory=list)

    def token(self, actor: str = "agt-codex", right: str = "read", repos: tuple[str, ...] = ()) -> str:
        return mint(self.root, actor, right, repos).to_base64()

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def guarded_repos(tmp_path_factory: pytest.TempPathFactory) -> list[GitRepo]:
    """Three small repos, made once: hubs only read them, each from its own hub home."""
    base = tmp_path_factory.mktemp("guarded-repos")
    repos = []
    for slug in REPOS:
        repo = GitRepo(base / slug)
        repo.write("statehub.toml", f'[repo]\nslug = "{slug}"\n')
        repo.write(
            f"workplans/{slug.upper()}-WP-0001.md",
            workplan_text(f"{slug.upper()}-WP-0001", [{"id": "T01", "title": "one"}]),
        )
        repo.commit()
        repos.append(repo)
    return repos


@pytest.fixture
def secured(settings: Settings, guarded_repos: list[GitRepo]) -> Iterator[SecuredHub]:
    init_root_key(settings.root_key_file)
    root = load_root_key(settings.root_key_file)
    secure = settings.with_overrides(auth="required")
    repos = guarded_repos
    app = create_app(secure)
    app.register(probe_events)
    app.register(probe_save)
    app.register(probe_sync)
    written: list[dict[str, str]] = []
    app.state.written = written
    with TestClient(app) as client:
        hub = client.app.state.hub
        for repo in repos:
            hub.register(repo.root)
        yield SecuredHub(client, root, secure, written)
