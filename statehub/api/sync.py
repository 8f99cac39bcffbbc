"""``GET /sync``, ``WS /sync/{doc}`` and ``POST /sync/{doc}/save``: collaborative editing of manifests.

``{doc}`` is ``<repo slug>/<path>`` with path ``statehub.toml`` or
``registry/fleet.toml``. The socket speaks y-sync (see ``sync.ysync``); the
text is the root ``Y.Text`` named ``"manifest"``.

A room on a manifest that may not be read (a symlink anywhere on its path,
outside the repo, not a regular file, not UTF-8, over the size limit) is
refused before the socket is accepted: an HTTP 400/413 with the reason, or a
close with 4400/4413 and the reason where the server cannot answer HTTP, and
not one byte of the file is sent (ADR-022).

Who you are, who may edit what, and what the rooms are: :mod:`statehub.editing`.
The author of a save is the saver; everyone else who edited since the last
save becomes a ``Co-authored-by:`` trailer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, WebSocket, get, post, websocket
from litestar.connection import ASGIConnection
from litestar.exceptions import WebSocketDisconnect
from litestar.params import QueryParameter

from statehub import editing
from statehub.answers import Page
from statehub.api.deps import MAX_NAME, PRINTABLE, DocPath, HubDep, RoomsDep
from statehub.api.errorshape import WRITE_STATUSES, error_body, error_responses
from statehub.auth import refuse_socket, requires, token_of
from statehub.auth.guard import StillAllowed
from statehub.editing import RoomItem, SaveAnswer
from statehub.errors import HubError, as_hub_error
from sync.saving import RoomError

__all__ = ["LitestarChannel", "SyncController", "repo_of_doc"]

User = Annotated[
    str | None,
    QueryParameter(
        pattern=PRINTABLE,
        max_length=MAX_NAME,
        description="Who edits and saves (an open hub, or an admin token).",
    ),
]
Email = Annotated[
    str | None,
    QueryParameter(pattern=PRINTABLE, max_length=MAX_NAME, description="The author's email, with user."),
]


class LitestarChannel:
    """Litestar's WebSocket as pycrdt's ``Channel`` protocol: binary frames in, binary frames out."""

    def __init__(
        self, socket: WebSocket[Any, Any, Any], path: str, check: Callable[[], None] | None = None
    ) -> None:
        self._socket = socket
        self._path = path
        self._check = check
        self.refused: HubError | None = None
        """Why the connection was ended after it opened (its token revoked or expired, its session
        ended): ``check`` raised it before a message was acted on; the handler closes with it."""

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self) -> LitestarChannel:
        return self

    async def __anext__(self) -> bytes:
        """The next message; the connection ends (``refused`` says why) when ``check`` refuses it."""
        try:
            message = await self.recv()
        except WebSocketDisconnect:
            raise StopAsyncIteration from None
        if self._check is not None:
            try:
                self._check()
            except HubError as error:
                self.refused = error
                raise StopAsyncIteration from None
        return message

    async def send(self, message: bytes) -> None:
        await self._socket.send_bytes(message)

    async def recv(self) -> bytes:
        message = await self._socket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(detail="closed")
        data: Any = message.get("bytes")
        return bytes(data) if data is not None else str(message.get("text", "")).encode("utf-8")


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
    body = msgspec.json.encode(error_body(error.message, error.status_code))
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


class SyncController(Controller):
    path = "/sync"
    tags = ["sync"]

    @get("/", responses=error_responses())
    async def list_rooms(
        self, request: Request[Any, Any, Any], hub: HubDep, rooms: RoomsDep
    ) -> Page[RoomItem]:
        """Every editable manifest of every registered repo: who has it open, whether it has unsaved edits.

        ``unsaved`` counts drafts kept in the room store for rooms nobody has
        open (a closed tab, a restarted hub), not only open rooms; ``error`` says
        why the editor would refuse the file, when it would. A repo-scoped token
        sees its own repos' manifests only. ``room.changed`` on the change stream
        says when a room opens, closes, gains or loses someone, or gains or loses a draft.
        """
        return await editing.list_rooms(hub, rooms, token_of(request))

    @websocket("/{doc:path}", opt=requires("edit", repo=repo_of_doc))
    async def sync_room(
        self,
        socket: WebSocket[Any, Any, Any],
        hub: HubDep,
        rooms: RoomsDep,
        doc: DocPath,
        user: User = None,
        email: Email = None,
    ) -> None:
        """y-sync for one manifest (docs/architecture.md, "WebSocket contract")."""
        try:
            manifest, person = editing.open_edit(hub, token_of(socket), doc, user, email)
        except HubError as error:
            await _refuse(socket, error)
            return
        repo = repo_of_doc(socket)
        channel = LitestarChannel(socket, manifest.name, StillAllowed(socket, "edit", repo))
        try:
            async with rooms.holding(manifest.name) as room:
                await socket.accept()
                leave = await room.serve(channel, person)
        except RoomError as error:  # raised before accept: nothing of the file was sent
            await _refuse(socket, as_hub_error(error))
            return
        if channel.refused is not None:  # revoked, expired or signed out while open: 4401 / 4403
            await socket.close(
                code=4000 + channel.refused.status_code, reason=_close_reason(channel.refused.message)
            )
        elif leave.code is not None:
            await socket.close(code=leave.code, reason=_close_reason(leave.reason))

    @post(
        "/{doc:path}",
        status_code=200,
        opt=requires("edit", repo=repo_of_doc),
        responses=error_responses(
            404, 409, 422, *WRITE_STATUSES, refusal=SaveAnswer, refused_with=(400, 409, 413, 422)
        ),
    )
    async def save_room(
        self,
        request: Request[Any, Any, Any],
        hub: HubDep,
        rooms: RoomsDep,
        doc: DocPath,
        user: User = None,
        email: Email = None,
    ) -> Response[SaveAnswer]:
        """``POST /sync/<slug>/<path>/save?user=NAME``: validate and commit the room's text.

        200 with the commit when saved; 422 with ``errors`` (line, column, message)
        when the manifest is invalid (nothing written); 409 when the file could not
        be written (it moved on disk, or it holds somebody's uncommitted change).
        """
        target = editing.save_target(doc)
        answer, status = await editing.save_room(hub, rooms, token_of(request), target, user, email)
        return Response(answer, status_code=status)
