"""The y-sync wire format as stock Yjs clients (y-websocket's ``WebsocketProvider``) speak it.

One WebSocket binary message is ``varUint(type)`` then its body:

- ``0`` sync: ``varUint(step)`` then ``varUint8Array``; step 0 carries a state
  vector (sync step 1), steps 1 and 2 carry an update (sync step 2, update).
- ``1`` awareness: ``varUint8Array`` of ``varUint(n)`` entries of
  ``varUint(client id), varUint(clock), varString(state JSON)``; ``"null"``
  means the client left.
- ``3`` query awareness: answer with every known awareness state.
- ``100`` State Hub: ``varString(JSON)``. Our own messages (``save``, ``saved``,
  ``errors``, ``resync``, ``hello``). A stock client ignores them (y-websocket
  logs "Unable to compute message" and goes on).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pycrdt import Decoder, Encoder, YMessageType, YSyncMessageType, write_message, write_var_uint

__all__ = [
    "QUERY_AWARENESS",
    "STATEHUB",
    "AwarenessEntry",
    "decode_awareness",
    "decode_state_vector",
    "encode_awareness",
    "hub_message",
    "read_hub_message",
    "sync_step1",
    "sync_step2",
    "sync_update",
    "write_awareness",
]

QUERY_AWARENESS = 3
STATEHUB = 100


@dataclass(frozen=True, slots=True)
class AwarenessEntry:
    client_id: int
    clock: int
    state_json: str

    @property
    def state(self) -> Any:
        try:
            return json.loads(self.state_json)
        except ValueError:
            return None


def _sync(step: int, payload: bytes) -> bytes:
    return write_var_uint(YMessageType.SYNC) + write_var_uint(step) + write_message(payload)


def sync_step1(state_vector: bytes) -> bytes:
    return _sync(YSyncMessageType.SYNC_STEP1, state_vector)


def sync_step2(update: bytes) -> bytes:
    return _sync(YSyncMessageType.SYNC_STEP2, update)


def sync_update(update: bytes) -> bytes:
    return _sync(YSyncMessageType.SYNC_UPDATE, update)


def decode_state_vector(data: bytes) -> dict[int, int]:
    decoder = Decoder(data)
    count = decoder.read_var_uint()
    state = {}
    for _ in range(count):
        client = decoder.read_var_uint()
        state[client] = decoder.read_var_uint()
    return state


def decode_awareness(data: bytes) -> list[AwarenessEntry]:
    decoder = Decoder(data)
    entries = []
    for _ in range(decoder.read_var_uint()):
        client = decoder.read_var_uint()
        clock = decoder.read_var_uint()
        entries.append(AwarenessEntry(client, clock, decoder.read_var_string()))
    return entries


def encode_awareness(entries: list[AwarenessEntry]) -> bytes:
    """A whole awareness message (type 1) carrying ``entries``."""
    inner = Encoder()
    inner.write_var_uint(len(entries))
    for entry in entries:
        inner.write_var_uint(entry.client_id)
        inner.write_var_uint(entry.clock)
        inner.write_var_string(entry.state_json)
    return write_var_uint(YMessageType.AWARENESS) + write_message(inner.to_bytes())


def write_awareness(payload: bytes) -> bytes:
    """An awareness message (type 1) around an already encoded awareness update."""
    return write_var_uint(YMessageType.AWARENESS) + write_message(payload)


def hub_message(payload: dict[str, Any]) -> bytes:
    encoder = Encoder()
    encoder.write_var_uint(STATEHUB)
    encoder.write_var_string(json.dumps(payload, separators=(",", ":")))
    return encoder.to_bytes()


def read_hub_message(body: bytes) -> dict[str, Any]:
    """The JSON of a State Hub message, given the bytes after its type; ``{}`` if it is not an object."""
    try:
        payload = json.loads(Decoder(body).read_var_string())
    except (ValueError, IndexError, RuntimeError, UnicodeDecodeError):
        return {}
    return payload if isinstance(payload, dict) else {}
