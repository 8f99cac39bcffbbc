"""review16a: an edit the state database did not keep is not in the room either (canon/ADR-046).

A room over a real PostgreSQL state schema whose database is dropped under it: the member whose
edit could not be stored is disconnected, and the room must not hold the edit meanwhile, or the
member's reconnect (which sends only what the room lacks) would never store it nor pass it on to
the others: the other member would miss it, and a restart of the hub would lose it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from pycrdt import Doc, Text, YMessageType, YSyncMessageType, create_sync_message, create_update_message
from sqlalchemy import text

from sync._durable_pg import PgState
from sync.room_store import RoomStore
from sync.rooms import Rooms
from sync.saving import Person
from sync.seed import TEXT_NAME
from tests.sync.test_rooms import MemoryChannel, PathLoader, _settle, _writer

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.engine import Engine

pytestmark = pytest.mark.postgres


def _step2(update: bytes) -> bytes:
    """A y-sync step 2 carrying ``update`` (what a reconnecting client sends the room lacks)."""
    message = bytearray(create_update_message(update))
    message[1] = YSyncMessageType.SYNC_STEP2
    return bytes(message)


def test_an_edit_the_state_database_did_not_keep_reaches_everyone_on_reconnect(
    tmp_path: Path, postgres_database: str, postgres_admin: Engine
) -> None:
    name = postgres_database.rsplit("/", 1)[1]

    def drop() -> None:
        with postgres_admin.connect() as admin:
            admin.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))

    def create() -> None:
        with postgres_admin.connect() as admin:
            admin.execute(text(f'CREATE DATABASE "{name}"'))

    async def scenario() -> None:
        path = tmp_path / "statehub.toml"
        path.write_text("x = 1\n")
        with RoomStore(PgState(postgres_database)) as store:
            async with Rooms(store, PathLoader(path), _writer(path, []), poll_interval=0.05) as rooms:
                ada, bob = MemoryChannel(), MemoryChannel()
                ada_task = asyncio.create_task(rooms.join("d", ada, Person("Ada")))
                bob_task = asyncio.create_task(rooms.join("d", bob, Person("Bob")))
                for channel in (ada, bob):
                    channel.inbox.put_nowait(create_sync_message(Doc()))
                await _settle()
                room = rooms.rooms["d"]
                client: Doc[Any] = Doc()
                client.apply_update(room.doc.get_update())
                before = client.get_state()
                client.get(TEXT_NAME, type=Text).insert(0, "# hi\n")
                await asyncio.to_thread(drop)
                ada.inbox.put_nowait(create_update_message(client.get_update(before)))
                ended = await asyncio.gather(ada_task, return_exceptions=True)
                assert isinstance(ended[0], BaseException)  # the store failed: ada is disconnected
                assert room.text == "x = 1\n"  # ... and the room holds nothing the store lacks

                await asyncio.to_thread(create)
                sent_to_bob = len(bob.sent)
                again = MemoryChannel()
                again_task = asyncio.create_task(rooms.join("d", again, Person("Ada")))
                again.inbox.put_nowait(create_sync_message(client))
                await _settle()
                again.inbox.put_nowait(_step2(client.get_update(room.doc.get_state())))
                await _settle()
                assert room.text == "# hi\nx = 1\n"
                updates = [
                    m
                    for m in bob.sent[sent_to_bob:]
                    if m[0] == YMessageType.SYNC and m[1] == YSyncMessageType.SYNC_UPDATE
                ]
                assert updates, "bob never received ada's edit"
                assert store.update_count("d") >= 1
                for channel in (again, bob):
                    channel.inbox.put_nowait(None)
                await asyncio.gather(again_task, bob_task)

    asyncio.run(scenario())
