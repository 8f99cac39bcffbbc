"""Loading a file into a room: a deterministic seed, and file changes turned into ``Y.Text`` edits.

**The text lives in the root ``Y.Text`` named ``"manifest"``** (``TEXT_NAME``);
a Yjs client binds its editor to ``ydoc.getText("manifest")``.

Seeding: the file's text is inserted by a fixed client id *derived from the
text* (as jupyter-collaboration seeds with a fixed id, but one per text, so two
different seeds never reuse one id for different content). Two hubs, or one hub
before and after a restart, that seed the same text build byte-identical
documents, so a client that kept its copy merges with no duplicate. The same
seed transaction writes ``meta["seed"]`` so even an empty file leaves a mark of
the lineage, which is how a room recognises a client from another lineage
(see :func:`same_lineage`).

Out-of-band changes: :func:`file_change_update` turns the old-to-new file
difference (difflib opcodes) into ``Y.Text`` deletes and inserts, made on a
fork of the document as it was when it matched the file, so edits that other
people have not saved yet, elsewhere in the document, survive the merge.
"""

from __future__ import annotations

import difflib
import hashlib
from typing import Any

from pycrdt import Doc, Map, Text

__all__ = [
    "META_NAME",
    "TEXT_NAME",
    "apply_text_change",
    "doc_text",
    "file_change_update",
    "same_lineage",
    "seed_client_id",
    "seed_doc",
]

TEXT_NAME = "manifest"
META_NAME = "meta"


def seed_client_id(text: str) -> int:
    """The client id that seeds ``text``: the same text always gets the same id (31 bits, like Yjs)."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def seed_doc(text: str) -> bytes:
    """The seed update for ``text``: identical bytes on every hub, every time."""
    doc: Doc[Any] = Doc(client_id=seed_client_id(text))
    ytext = doc.get(TEXT_NAME, type=Text)
    meta = doc.get(META_NAME, type=Map)
    with doc.transaction():
        meta["seed"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if text:
            ytext.insert(0, text)
    return doc.get_update()


def doc_text(doc: Doc[Any]) -> str:
    return str(doc.get(TEXT_NAME, type=Text))


def same_lineage(seed_id: int, client_state: dict[int, int]) -> bool:
    """May a client whose state vector is ``client_state`` merge into a room seeded by ``seed_id``?

    A fresh client (empty state) may. A client that holds the room's seed may.
    A client that holds content but not this seed came from an earlier lineage
    (the file changed, or the room was re-seeded): merging would duplicate the
    text, so it must drop its copy and resync.
    """
    return not client_state or seed_id in client_state


def apply_text_change(doc: Doc[Any], old: str, new: str) -> int:
    """Edit ``doc``'s text, which reads ``old``, into ``new`` with the fewest edits difflib finds.

    Edits are applied from the end so earlier positions stay valid. pycrdt
    indexes text in UTF-8 bytes, so code-point positions are converted.
    """
    ytext = doc.get(TEXT_NAME, type=Text)
    ops = [
        op for op in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes() if op[0] != "equal"
    ]
    with doc.transaction():
        for _tag, i1, i2, j1, j2 in reversed(ops):
            b_start = len(old[:i1].encode("utf-8"))
            if i2 > i1:
                del ytext[b_start : b_start + len(old[i1:i2].encode("utf-8"))]
            if j2 > j1:
                ytext.insert(b_start, new[j1:j2])
    return len(ops)


def file_change_update(file_state: bytes, old: str, new: str) -> bytes:
    """The update that turns the file's text from ``old`` into ``new``, made on a fork of the file's state.

    ``file_state`` is the document as it was when its text equalled the file
    (``old``). The edits are made there, by a fresh client id, and the
    resulting update merges into the live room like anybody's edit: the CRDT
    keeps every unsaved edit made since, wherever it is, and duplicates nothing.
    """
    fork: Doc[Any] = Doc()
    fork.apply_update(file_state)
    if doc_text(fork) != old:
        raise ValueError("the file state does not hold the old file text")
    before = fork.get_state()
    apply_text_change(fork, old, new)
    return fork.get_update(before)
