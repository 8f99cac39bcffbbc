"""A small y-sync client over a real WebSocket (pycrdt's helpers, websockets), for tests and the bench."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import websockets
from pycrdt import (
    Awareness,
    Doc,
    Text,
    TransactionEvent,
    YMessageType,
    YSyncMessageType,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    handle_sync_message,
    read_message,
)

from sync import ysync
from sync.seed import TEXT_NAME

__all__ = ["YClient", "claim_presence"]


def claim_presence(states: dict[int, dict[str, Any] | None], clock: int = 1) -> bytes:
    """An awareness message setting ``states`` by client id, each at ``clock`` (None: that client left).

    Encoded by pycrdt's ``Awareness`` as each client's own would be: how a
    client claims client ids, its own or (misbehaving) somebody else's.
    """
    collected = Awareness(Doc())
    collected.set_local_state(None)
    for client_id, state in states.items():
        own = Awareness(Doc(client_id=client_id))  # its own state starts at clock 0
        for _ in range(clock - 1):
            own.set_local_state({})
        own.set_local_state(state)
        collected.apply_awareness_update(own.encode_awareness_update([client_id]), "claim")
    return create_awareness_message(collected.encode_awareness_update(list(states)))


class YClient:
    """Connects to ``url``, syncs a Doc, sends its local edits, records State Hub messages."""

    def __init__(self, url: str, *, name: str | None = None) -> None:
        self.url = url
        self.name = name
        self.doc: Doc[Any] = Doc()
        self.text = self.doc.get(TEXT_NAME, type=Text)
        self.awareness = Awareness(self.doc)
        """Its own presence and, as the room relays them, everyone else's."""
        self.hub_messages: list[dict[str, Any]] = []
        self.synced = asyncio.Event()
        self.closed: tuple[int, str] | None = None
        self.on_update: list[Any] = []
        self._ws: Any = None
        self._task: asyncio.Task[None] | None = None
        self._remote = False
        self.doc.observe(self._local_change)

    async def connect(self) -> YClient:
        self._ws = await websockets.connect(self.url, max_size=None)
        self._task = asyncio.create_task(self._read())
        await self._ws.send(create_sync_message(self.doc))
        if self.name:
            await self.set_presence({"user": {"name": self.name}})
        return self

    async def set_presence(self, state: dict[str, Any] | None) -> None:
        """Set this client's awareness state and send it, as y-websocket does."""
        self.awareness.set_local_state(state)
        update = self.awareness.encode_awareness_update([self.awareness.client_id])
        await self._ws.send(create_awareness_message(update))

    def _local_change(self, event: TransactionEvent) -> None:
        if not self._remote and self._ws is not None:
            asyncio.get_running_loop().create_task(self._ws.send(create_update_message(event.update)))

    async def _read(self) -> None:
        try:
            async for message in self._ws:
                self._handle(bytes(message))
        except websockets.ConnectionClosed:
            pass
        finally:
            close = self._ws.close_code, self._ws.close_reason
            self.closed = (close[0] or 0, close[1] or "")

    def _handle(self, message: bytes) -> None:
        kind = message[0]
        if kind == YMessageType.SYNC:
            self._remote = True
            try:
                reply = handle_sync_message(message[1:], self.doc)
            finally:
                self._remote = False
            if reply is not None:  # the room's sync step 1, answered with what it lacks
                asyncio.get_running_loop().create_task(self._ws.send(reply))
                return
            if message[1] == YSyncMessageType.SYNC_STEP2:
                self.synced.set()
            for callback in self.on_update:
                callback(read_message(message[2:]))
        elif kind == YMessageType.AWARENESS:
            self.awareness.apply_awareness_update(read_message(message[1:]), "hub")
        elif kind == ysync.STATEHUB:
            self.hub_messages.append(ysync.read_hub_message(message[1:]))

    async def save(self) -> None:
        await self._ws.send(ysync.hub_message({"type": "save"}))

    async def wait_for(self, predicate: Any, timeout: float = 5.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"condition not met in {timeout} s; text is {str(self.text)!r}")
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
