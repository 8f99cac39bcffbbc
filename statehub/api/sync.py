"""``WS /sync/{doc}`` and ``POST /sync/{doc}/save``: collaborative editing of one manifest.

``{doc}`` is ``<repo slug>/<path>`` with path ``statehub.toml`` or
``registry/fleet.toml``. The socket speaks y-sync (see ``sync.ysync``); the
text is the root ``Y.Text`` named ``"manifest"``.

A room on a manifest that may not be read (a symlink anywhere on its path,
outside the repo, not a regular file, not UTF-8, over the size limit) is
refused before the socket is accepted: an HTTP 400/413 with the reason, or a
close with 4400/4413 and the reason where the server cannot answer HTTP, and
not one byte of the file is sent (ADR-022).

Who you are (ADR-022): on a hub with tokens, the token's actor; only an
admin token may name another author with ``?user=NAME`` (and
``&email=ADDRESS``). On an open hub, ``?user=NAME`` (and ``&email=``), else
``user.name`` / ``user.email`` from the client's own awareness state, else
the repo's git identity (``git config user.name``). Names and emails are one
line without ``<``, ``>`` or control characters. The author of a save is the
saver; everyone else who edited since the last save becomes a
``Co-authored-by:`` trailer.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from litestar import Request, Response, WebSocket, get, post, websocket
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.exceptions import WebSocketDisconnect

from statehub.auth import authorize_request, refuse_socket, requires, token_of
from statehub.collab import ManifestFiles
from statehub.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    HubError,
    NotFound,
    PayloadTooLarge,
    Unprocessable,
)
from statehub.hub import Hub
from statehub.manifests import EDITABLE, resolve_doc
from sync.rooms import Rooms
from sync.saving import Person, RoomError, RoomInputError
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


_BY_STATUS: dict[int, type[HubError]] = {
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: Unprocessable,
}


def _hub_error(error: RoomError) -> HubError:
    return _BY_STATUS.get(error.status, BadRequest)(error.message)


def _person(
    connection: ASGIConnection[Any, Any, Any, Any], repo: str, user: str | None, email: str | None
) -> Person | None:
    """Who this connection edits and saves as (ADR-022); Forbidden / BadRequest when it may not say so.

    A token hub: the token's actor, or, for an admin token only, the
    ``?user=`` / ``&email=`` it names. An open hub: ``?user=`` / ``&email=``
    or None (the room then asks awareness, the saver the repo's git identity).
    """
    name = user.strip() if user and user.strip() else None
    address = email.strip() if email and email.strip() else None
    token = token_of(connection)
    try:
        if token is None:
            if address is not None and name is None:
                raise BadRequest("&email= needs ?user=NAME with it")
            return Person(name, address) if name else None
        if (name is None or name == token.actor) and address is None:
            return Person(token.actor)
        try:
            authorize_request(token, "admin", repo)
        except HubError:
            raise Forbidden(
                f"this token acts as {token.actor!r}: saves are authored by it; only an admin token may "
                "name another author (drop ?user= and &email=)"
            ) from None
        return Person(name or token.actor, address)
    except RoomInputError as error:
        raise BadRequest(f"?user= / &email=: {error.message}") from None


def _close_reason(message: str, limit: int = 120) -> str:
    """A WebSocket close reason: at most ``limit`` bytes of UTF-8 (the protocol allows 123)."""
    data = message.encode()
    return message if len(data) <= limit else data[: limit - 3].decode(errors="ignore") + "..."


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
        await socket.close(code=4000 + error.status_code, reason=_close_reason(error.message))


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
        person = _person(socket, manifest.repo.slug, user, email)
    except HubError as error:
        await _refuse(socket, error)
        return
    try:
        async with rooms.holding(manifest.name) as room:
            await socket.accept()
            leave = await room.serve(LitestarChannel(socket, manifest.name), person)
    except RoomError as error:  # raised before accept: nothing of the file was sent
        await _refuse(socket, _hub_error(error))
        return
    if leave.code is not None:
        await socket.close(code=leave.code, reason=_close_reason(leave.reason))


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
    person = _person(request, manifest.repo.slug, user, email)
    try:
        outcome = await rooms.save(manifest.name, person)
    except RoomError as error:
        raise _hub_error(error) from None
    status = 200 if outcome.ok else outcome.status or (422 if outcome.errors else 409)
    return Response({"doc": manifest.name, **outcome.to_json()}, status_code=status)


def _files(hub: Hub) -> list[dict[str, Any]]:
    """Each editable manifest, whether it exists and why the editor would refuse it (no content read)."""
    files = ManifestFiles(hub)
    found = []
    for repo in hub.repos():
        for path, kind in EDITABLE.items():
            name = f"{repo.slug}/{path}"
            try:
                exists, problem = files.problem(name)
            except RoomError as error:
                exists, problem = False, error.message
            item = {"doc": name, "repo": repo.slug, "path": path, "kind": kind, "exists": exists}
            found.append(item | ({"error": problem} if problem else {}))
    return found


@get("/sync", tags=["sync"])
async def list_rooms(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Every editable manifest of every registered repo: who has it open, whether it has unsaved edits.

    ``unsaved`` counts drafts kept in the room store for rooms nobody has
    open (a closed tab, a restarted hub), not only open rooms; ``error`` says
    why the editor would refuse the file, when it would.
    """
    hub: Hub = request.app.state.hub
    rooms: Rooms = request.app.state.rooms
    found = await asyncio.to_thread(_files, hub)
    drafts = await rooms.drafts()
    for item in found:
        room = rooms.rooms.get(item["doc"])
        item["people"] = room.people() if room else []
        item["unsaved"] = item["doc"] in drafts
    return {"items": found, "total": len(found)}


ROUTES = [list_rooms, sync_room, save_room]
