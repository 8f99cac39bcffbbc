"""A real hub process over two real repos (demo, beta), for the editor's trust-boundary tests (ADR-022).

``demo`` declares prefix DEMO and has no fleet registry; ``beta`` declares
BETA and holds ``registry/fleet.toml`` with a marker line that must never be
sent to a client of demo's rooms. Both repos and the hub's root key file are
the targets the tests point symlinks at.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import websockets

from statehub.auth.keys import init_root_key, load_root_key
from statehub.auth.tokens import mint
from statehub.hub import Hub
from statehub.settings import Settings
from tests.gitfixtures import GitRepo
from tests.statehub.hubprocess import HubProcess

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx

__all__ = ["BETA_FLEET", "MANIFEST", "EditorHub", "RepoSnapshot", "editor_hub", "refusal", "snapshot"]

MANIFEST = '[repo]\nslug = "demo"\ntitle = "Demo"\nprefixes = ["DEMO"]\n'
BETA_FLEET = (
    "# BETA-FLEET-MARKER: beta's own registry, never to be sent through demo's rooms\n"
    '[[machines]]\nname = "b1"\nrole = "production-home"\n\n'
    '[[workloads]]\nname = "api"\ncurrent_host = "b1"\n'
)


@dataclass
class EditorHub:
    home: Path
    settings: Settings
    demo: GitRepo
    beta: GitRepo
    process: HubProcess
    tokens: bool

    @property
    def url(self) -> str:
        return self.process.url

    def room(self, doc: str = "demo/statehub.toml", **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"ws://127.0.0.1:{self.process.port}/sync/{doc}" + (f"?{query}" if query else "")

    def token(self, actor: str, right: str, repos: tuple[str, ...] = ()) -> str:
        return mint(load_root_key(self.settings.root_key_file), actor, right, list(repos)).to_base64()

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.process.call(method, path, **kwargs)

    @property
    def key_text(self) -> str:
        return self.settings.root_key_file.read_text(encoding="utf-8").strip()


@dataclass(frozen=True)
class RepoSnapshot:
    head: str
    status: str
    files: dict[str, str]


def snapshot(repo: GitRepo) -> RepoSnapshot:
    """HEAD, ``git status`` and a digest of every file: equal snapshots mean nothing was written."""
    files = {}
    for path in sorted(repo.root.rglob("*")):
        if ".git" in path.relative_to(repo.root).parts:
            continue
        rel = str(path.relative_to(repo.root))
        if path.is_symlink():
            files[rel] = "link:" + str(path.readlink())
        elif path.is_file():
            files[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    head = repo.git("rev-parse", "HEAD").strip()
    return RepoSnapshot(head, repo.git("status", "--porcelain", "--untracked-files=all"), files)


def refusal(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """Open ``url`` as a WebSocket expecting a refusal: (HTTP status, body or close reason).

    A refusal is an HTTP answer to the upgrade, or an accepted socket closed at once with
    4000 + the status and the reason, before any message (ADR-022).
    """

    async def attempt() -> tuple[int, str]:
        try:
            socket = await websockets.connect(url, additional_headers=headers or {}, open_timeout=10)
        except websockets.InvalidStatus as refused:
            return refused.response.status_code, refused.response.body.decode("utf-8", "replace")
        received = []
        try:
            async with asyncio.timeout(10):
                async for message in socket:
                    received.append(message)
        except websockets.ConnectionClosed:
            pass
        code = socket.close_code or 0
        if not received and 4400 <= code < 4600:  # accepted, then refused at once: 4000 + status
            return code - 4000, socket.close_reason or ""
        raise AssertionError(f"accepted, then closed with {code} after {received!r}")

    return asyncio.run(attempt())


@contextlib.contextmanager
def editor_hub(base: Path, *, tokens: bool = False, **env: str) -> Iterator[EditorHub]:
    """Two registered repos and a running hub (with tokens required when ``tokens``)."""
    home = base / "hub-home"
    settings = Settings.from_env({"STATEHUB_HOME": str(home), "STATEHUB_WATCH": "0"})
    demo = GitRepo(base / "repos" / "demo")
    demo.write("statehub.toml", MANIFEST)
    demo.commit("start")
    beta = GitRepo(base / "repos" / "beta")
    beta.write("statehub.toml", '[repo]\nslug = "beta"\nprefixes = ["BETA"]\n')
    beta.write("registry/fleet.toml", BETA_FLEET)
    beta.commit("start")
    hub = Hub(settings)
    try:
        hub.register(demo.root)
        hub.register(beta.root)
    finally:
        hub.close()
    init_root_key(settings.root_key_file)
    process = HubProcess(home, base / "hub.log")
    process.start(**({"STATEHUB_AUTH": "required"} if tokens else {}), **env)
    try:
        yield EditorHub(home, settings, demo, beta, process, tokens)
    finally:
        process.stop()
