"""``WS /sync/{doc}`` and ``POST /sync/{doc}/save``: collaborative editing of one manifest.

``{doc}`` is ``<repo slug>/<path>`` with path ``statehub.toml`` or
``registry/fleet.toml``. The socket speaks y-sync (see ``sync.ysync``); the
text is the root ``Y.Text`` named ``"manifest"``.

Who you are: ``?user=NAME`` (and optionally ``&email=ADDRESS``) on the socket
or the save; without it the room takes ``user.name`` / ``user.email`` from the
client's awareness state, as y-codemirror's presence sets it. Saves need a name:
it becomes the commit author, and everyone else who edited since the last
save becomes a ``Co-authored-by:`` trailer.
"""

from __future__ import annotations

import json
from typing import Any

from litestar import Request, Response, WebSocket, get, post, websocket
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.exceptions import WebSocketDisconnect

from statehub.auth import authorize_request, refuse_socket, requires, token_of
from statehub.errors import HubError, NotFound
from statehub.hub import Hub
from statehub.manifests import EDITABLE, resolve_doc
from sync.rooms import RESYNC_CLOSE_CODE, Rooms
from sync.saving import Person
from workplans import FLEET_PATH

__all__ = ["ROUTES", "LitestarChannel"]


class LitestarChannel:
    """Litestar's WebSocket as pycrdt's ``Channel`` protocol: binary frames in, binary frames out."""

    def __init__(self, socket: WebSocket[Any, Any, Any], path: str) -> None:
        self._socket = socket
        self._path = path

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self) -> LitestarChannel:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.recv()
        except WebSocketDisconnect:
            raise StopAsyncIteration from None

    async def send(self, message: bytes) -> None:
        await self._socket.send_bytes(message)

    async def recv(self) -> bytes:
        message = await self._socket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(detail="closed")
        data: Any = message.get("bytes")
        return bytes(data) if data is not None else str(message.get("text", "")).encode("utf-8")


def _person(user: str | None, email: str | None) -> Person | None:
    return Person(user.strip(), (email or "").strip() or None) if user and user.strip() else None


async def _refuse(socket: WebSocket[Any, Any, Any], error: HubError) -> None:
    """Refuse before accepting: an HTTP answer with the reason where the server allows it.

    A refusal of the token (401, 403) closes with 4401/4403 and the reason instead,
    as the guard's do (``refuse_socket``, ADR-016).
    """
    if error.status_code in (401, 403):
        await refuse_socket(socket, error)
        return
    body = json.dumps({"error": error.message, "status_code": error.status_code}).encode()
    extensions: Any = socket.scope.get("extensions") or {}
    if "websocket.http.response" in extensions:
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        start: Any = {
            "type": "websocket.http.response.start",
            "status": error.status_code,
            "headers": headers,
        }
        end: Any = {"type": "websocket.http.response.body", "body": body}
        await socket.send(start)
        await socket.send(end)
    else:
        await socket.close(code=4000 + error.status_code, reason=error.message[:120])


def repo_of_doc(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """``{doc}`` is ``<repo slug>/<path>``: the repo a room belongs to, for the token guard."""
    doc = connection.path_params.get("doc")
    if not isinstance(doc, str):
        return None
    return doc.strip("/").split("/", 1)[0] or None


def _authorize_edit(connection: ASGIConnection[Any, Any, Any, Any], path: str, repo: str) -> None:
    """Editing the fleet registry can change what machines may host: that needs admin, like role changes."""
    if path == FLEET_PATH:
        authorize_request(token_of(connection), "admin", repo)


@websocket("/sync/{doc:path}", opt=requires("edit", repo=repo_of_doc))
async def sync_room(
    socket: WebSocket[Any, Any, Any], doc: str, user: str | None = None, email: str | None = None
) -> None:
    state: State = socket.app.state
    hub: Hub = state.hub
    rooms: Rooms = state.rooms
    try:
        manifest = resolve_doc(hub, doc)
        _authorize_edit(socket, manifest.path, manifest.repo.slug)
    except HubError as error:
        await _refuse(socket, error)
        return
    await socket.accept()
    channel = LitestarChannel(socket, manifest.name)
    stayed = await rooms.join(manifest.name, manifest.file, channel, _person(user, email))
    if not stayed:
        await socket.close(code=RESYNC_CLOSE_CODE, reason="resync: the file changed since you last synced")


@post("/sync/{doc:path}", tags=["sync"], status_code=200, opt=requires("edit", repo=repo_of_doc))
async def save_room(
    request: Request[Any, Any, Any], doc: str, user: str | None = None, email: str | None = None
) -> Response[dict[str, Any]]:
    """``POST /sync/<slug>/<path>/save?user=NAME``: validate and commit the room's text.

    200 with the commit when saved; 422 with ``errors`` (line, column, message)
    when the manifest is invalid (nothing written); 409 when the file could not
    be written (it moved on disk, or it holds somebody's uncommitted change).
    """
    name = doc.strip("/")
    if not name.endswith("/save"):
        raise NotFound(f"POST /sync/{name} is not a route: save a room with POST /sync/<slug>/<path>/save")
    hub: Hub = request.app.state.hub
    rooms: Rooms = request.app.state.rooms
    manifest = resolve_doc(hub, name.removesuffix("/save"))
    _authorize_edit(request, manifest.path, manifest.repo.slug)
    outcome = await rooms.save(manifest.name, manifest.file, _person(user, email))
    status = 200 if outcome.ok else 422 if outcome.errors else 409
    return Response({"doc": manifest.name, **outcome.to_json()}, status_code=status)


@get("/sync", tags=["sync"], sync_to_thread=False)
def list_rooms(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Every editable manifest of every registered repo: who has it open, whether it has unsaved edits."""
    hub: Hub = request.app.state.hub
    rooms: Rooms = request.app.state.rooms
    found = []
    for repo in hub.repos():
        for path, kind in EDITABLE.items():
            name = f"{repo.slug}/{path}"
            room = rooms.rooms.get(name)
            found.append(
                {
                    "doc": name,
                    "repo": repo.slug,
                    "path": path,
                    "kind": kind,
                    "exists": (repo.path / path).is_file(),
                    "people": room.people() if room else [],
                    "unsaved": room.unsaved if room else False,
                }
            )
    return {"items": found, "total": len(found)}


ROUTES = [list_rooms, sync_room, save_room]
