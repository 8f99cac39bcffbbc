"""The parts of the rooms' wire format that pycrdt has no helper for, and State Hub's own message.

pycrdt writes and reads the standard y-sync messages (``create_sync_message``,
``handle_sync_message``, ``create_update_message``, ``create_awareness_message``,
``read_message``) and keeps awareness states (``Awareness``: clocks, encoding,
applying an update). Stock Yjs clients (y-websocket's ``WebsocketProvider``)
speak that format; this module holds the rest of what the rooms exchange with them.
One WebSocket binary message is ``varUint(type)`` then its body:

- ``3`` query awareness (:data:`QUERY_AWARENESS`, no body): answered with every
  awareness state the room holds. pycrdt's ``YMessageType`` has no member for it.
- ``100`` State Hub (:data:`STATEHUB`): ``varString(JSON object)``, our own
  messages: ``save`` from a client; ``save-result``, ``error``, ``resync``,
  ``file-changed`` and ``file-missing`` from the room. A stock client ignores
  them (y-websocket logs "Unable to compute message" and goes on); our editor
  registers a handler for type 100.

And two readers the room's own rules need, where pycrdt only applies:

- :func:`read_state_vector` (a sync step 1's body): the lineage check asks
  whether the client's copy holds the room's seed (ADR-012).
- :func:`read_awareness` (an awareness update, ``varUint(n)`` entries of
  ``varUint(client id), varUint(clock), varString(state JSON)``): a connection
  may set or clear only the presence it introduced (ADR-022), so the room looks
  at each entry before pycrdt's ``Awareness`` applies the ones it accepts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pycrdt import Decoder, write_message, write_var_uint

__all__ = [
    "QUERY_AWARENESS",
    "STATEHUB",
    "AwarenessEntry",
    "error_message",
    "hub_message",
    "join_awareness",
    "read_awareness",
    "read_hub_message",
    "read_state_vector",
]

QUERY_AWARENESS = 3
"""y-websocket's message asking for every awareness state (no body)."""
STATEHUB = 100
"""State Hub's own message: a JSON object as a ``varString``."""


def hub_message(payload: dict[str, Any]) -> bytes:
    """A State Hub message (type 100) carrying ``payload`` as JSON."""
    return write_var_uint(STATEHUB) + write_message(json.dumps(payload, separators=(",", ":")).encode())


def error_message(message: str) -> bytes:
    """The State Hub message telling a member what the room refused, and why."""
    return hub_message({"type": "error", "message": message})


def read_hub_message(body: bytes) -> dict[str, Any]:
    """The JSON of a State Hub message, given the bytes after its type; ``{}`` if it is not an object."""
    try:
        payload = json.loads(Decoder(body).read_var_string())
    except (ValueError, IndexError, RuntimeError):  # UnicodeDecodeError is a ValueError
        return {}
    return payload if isinstance(payload, dict) else {}


def read_state_vector(data: bytes) -> dict[int, int]:
    """A Yjs state vector (``varUint(n)`` pairs of ``varUint(client id), varUint(clock)``) as a dict.

    RuntimeError or IndexError (pycrdt's ``Decoder``) when ``data`` ends early.
    """
    decoder = Decoder(data)
    state = {}
    for _ in range(decoder.read_var_uint()):
        client = decoder.read_var_uint()
        state[client] = decoder.read_var_uint()
    return state


@dataclass(frozen=True, slots=True)
class AwarenessEntry:
    """One client's entry in an awareness update, as it was sent."""

    client_id: int
    clock: int
    state: Any
    """The state's JSON value; None when the client left (``null``, or an empty string as pycrdt reads it)."""
    size: int
    """Bytes of the state's JSON (UTF-8)."""
    raw: bytes
    """The entry's bytes in the update: what is accepted is passed on unchanged."""


def read_awareness(update: bytes) -> list[AwarenessEntry]:
    """The entries of an awareness update (the body of an awareness message, unframed).

    ValueError when a state is not JSON or the update ends early; RuntimeError
    or IndexError (pycrdt's ``Decoder``) when a number is cut off.
    """
    decoder = Decoder(update)
    entries = []
    for _ in range(decoder.read_var_uint()):
        start = decoder.i0
        client_id = decoder.read_var_uint()
        clock = decoder.read_var_uint()
        data = decoder.read_message()
        if data is None or decoder.length < 0:
            raise ValueError("the awareness update ends in the middle of a state")
        state = json.loads(data) if data else None
        entries.append(AwarenessEntry(client_id, clock, state, len(data), update[start : decoder.i0]))
    return entries


def join_awareness(entries: list[AwarenessEntry]) -> bytes:
    """An awareness update holding ``entries`` exactly as they were sent."""
    return write_var_uint(len(entries)) + b"".join(entry.raw for entry in entries)
