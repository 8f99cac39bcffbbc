"""A small y-sync client over a real WebSocket (pycrdt + websockets), for tests and the benchmark."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import websockets
from pycrdt import Decoder, Doc, Text, TransactionEvent, YMessageType, YSyncMessageType

from sync import ysync
from sync.seed import TEXT_NAME

__all__ = ["YClient"]


class YClient:
    """Connects to ``url``, syncs a Doc, sends its local edits, records State Hub messages."""

    def __init__(self, url: str, *, name: str | None = None) -> None:
        self.url = url
        self.name = name
        self.doc: Doc[Any] = Doc()
        self.text = self.doc.get(TEXT_NAME, type=Text)
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
        await self._ws.send(ysync.sync_step1(self.doc.get_state()))
        if self.name:
            state = json.dumps({"user": {"name": self.name}})
            entry = ysync.AwarenessEntry(self.doc.client_id, 1, state)
            await self._ws.send(ysync.encode_awareness([entry]))
        return self

    def _local_change(self, event: TransactionEvent) -> None:
        if not self._remote and self._ws is not None:
            asyncio.get_running_loop().create_task(self._ws.send(ysync.sync_update(event.update)))

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
        decoder = Decoder(message)
        kind = decoder.read_var_uint()
        if kind == YMessageType.SYNC:
            step = decoder.read_var_uint()
            payload = decoder.read_message() or b""
            if step == YSyncMessageType.SYNC_STEP1:
                asyncio.get_running_loop().create_task(
                    self._ws.send(ysync.sync_step2(self.doc.get_update(payload)))
                )
                return
            self._remote = True
            try:
                self.doc.apply_update(payload)
            finally:
                self._remote = False
            if step == YSyncMessageType.SYNC_STEP2:
                self.synced.set()
            for callback in self.on_update:
                callback(payload)
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
