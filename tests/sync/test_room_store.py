"""The pending-edits store: written before broadcast, survives reopening, compacts on save.

On a SQLite file and on the PostgreSQL state schema (``state_backend``, canon/ADR-046)."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

import pytest
from pycrdt import Doc, Text

from sync.errors import StoreTooNew
from sync.room_store import RoomStore
from sync.seed import TEXT_NAME, doc_text, seed_doc

if TYPE_CHECKING:
    from pathlib import Path

    from tests.backends import StateAt


def _edit(base: bytes, insert: str) -> bytes:
    doc: Doc[Any] = Doc()
    doc.apply_update(base)
    before = doc.get_state()
    doc.get(TEXT_NAME, type=Text).insert(0, insert)
    return doc.get_update(before)


def test_a_reopened_store_gives_back_every_update(state_backend: StateAt) -> None:
    store = RoomStore(state_backend("rooms.sqlite3"))
    seed = seed_doc("x = 1\n")
    store.begin("demo/statehub.toml", "x = 1\n", seed)
    first = _edit(seed, "# a\n")
    store.append("demo/statehub.toml", first)
    store.append("demo/statehub.toml", _edit(seed + b"", "# b\n"))
    store.close()

    again = RoomStore(state_backend("rooms.sqlite3"))
    pending = again.load("demo/statehub.toml")
    assert pending is not None
    assert pending.seed_text == pending.file_text == "x = 1\n"
    assert len(pending.updates) == 2
    doc: Doc[Any] = Doc()
    doc.apply_update(seed_doc(pending.seed_text))
    for update in pending.updates:
        doc.apply_update(update)
    assert "# a\n" in doc_text(doc) and "# b\n" in doc_text(doc)
    assert doc_text(doc).endswith("x = 1\n")
    again.close()


def test_compaction_keeps_the_same_document(state_backend: StateAt) -> None:
    with RoomStore(state_backend("rooms.sqlite3")) as store:
        seed = seed_doc("")
        store.begin("d", "", seed)
        doc: Doc[Any] = Doc()
        doc.apply_update(seed)
        text = doc.get(TEXT_NAME, type=Text)
        for i in range(20):
            before = doc.get_state()
            text.insert(len(str(text)), f"line {i}\n")
            store.append("d", doc.get_update(before))
        store.compact("d")
        assert store.update_count("d") == 1
        pending = store.load("d")
        assert pending is not None
        rebuilt: Doc[Any] = Doc()
        rebuilt.apply_update(seed_doc(pending.seed_text))
        rebuilt.apply_update(pending.updates[0])
        assert doc_text(rebuilt) == doc_text(doc)


def test_a_saved_and_closed_room_is_forgotten(state_backend: StateAt) -> None:
    with RoomStore(state_backend("rooms.sqlite3")) as store:
        store.begin("d", "a", seed_doc("a"))
        store.file_written("d", "ab", seed_doc("ab"), seed_doc("ab"))
        assert store.update_count("d") == 1
        store.forget("d")
        assert store.load("d") is None
        assert store.docs() == []


def test_a_store_from_a_newer_hub_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "rooms.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(StoreTooNew, match="unsaved editor changes"):
        RoomStore(path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 99


def test_editors_are_kept_in_order_across_reopening_until_a_save(state_backend: StateAt) -> None:
    store = RoomStore(state_backend("rooms.sqlite3"))
    store.begin("d", "a", seed_doc("a"))
    store.credit("d", "Bob", None)
    store.credit("d", "Ada", "ada@example.org")
    store.credit("d", "Bob", None)
    store.close()
    again = RoomStore(state_backend("rooms.sqlite3"))
    assert again.editors("d") == [("Bob", None), ("Ada", "ada@example.org")]
    again.clear_editors("d")
    assert again.editors("d") == []
    again.close()


def test_a_lineage_is_adopted_exactly_and_a_stale_one_replaced(
    state_backend: StateAt, tmp_path: Path
) -> None:
    """What a hub moving its rooms file into PostgreSQL does (statehub.state): every row as it was."""
    with RoomStore(tmp_path / "old.sqlite3") as old:
        seed = seed_doc("a\n")
        old.begin("d", "a\n", seed)
        old.append("d", _edit(seed, "x"))
        old.append("d", _edit(seed, "y"))
        old.credit("d", "Bob", None)
        old.credit("d", "Ada", "ada@example.org")
        pending, editors = old.load("d"), old.editors("d")
    assert pending is not None
    with RoomStore(state_backend("rooms.sqlite3")) as store:
        store.begin("d", "stale", seed_doc("stale"))
        store.credit("d", "Eve", None)
        store.adopt("d", pending, editors)
        assert store.load("d") == pending
        assert store.editors("d") == editors
        assert store.drafts() == ["d"]
