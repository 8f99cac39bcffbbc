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
difference into ``Y.Text`` deletes and inserts, made on a fork of the
document as it was when it matched the file, so edits that other people have
not saved yet, elsewhere in the document, survive the merge. The difference
is taken line by line (:func:`text_edits`), never character by character: a
character-level ``difflib`` over a 20 KB manifest took 87 s. Common leading
and trailing lines are trimmed in linear time; the lines between are matched
by ``difflib`` only while their count product stays under a budget, else
they are replaced as one block (which still keeps every unsaved edit outside
that block, and every unsaved insertion inside it).
"""

from __future__ import annotations

import difflib
import hashlib
from typing import Any

from pycrdt import Doc, Map, Text

__all__ = [
    "MERGE_LINE_BUDGET",
    "META_NAME",
    "TEXT_NAME",
    "apply_text_change",
    "doc_text",
    "file_change_update",
    "same_lineage",
    "seed_client_id",
    "seed_doc",
    "text_edits",
]

TEXT_NAME = "manifest"
META_NAME = "meta"
MERGE_LINE_BUDGET = 250_000
"""Changed old lines x changed new lines up to which ``difflib`` matches lines; beyond, one block."""


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


def text_edits(old: str, new: str, *, budget: int = MERGE_LINE_BUDGET) -> list[tuple[int, int, str]]:
    """Line-level edits that turn ``old`` into ``new``: ``(start, end, insert)`` in code points of ``old``.

    The edits are ascending and do not overlap. Linear in the text's size
    plus, for the changed middle, ``difflib`` over lines while
    ``len(old lines) * len(new lines)`` stays within ``budget`` (0: one block).
    """
    a = old.splitlines(keepends=True)
    b = new.splitlines(keepends=True)
    shortest = min(len(a), len(b))
    head = 0
    while head < shortest and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < shortest - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    old_mid, new_mid = a[head : len(a) - tail], b[head : len(b) - tail]
    if not old_mid and not new_mid:
        return []
    starts = [0]
    for line in a:
        starts.append(starts[-1] + len(line))
    if len(old_mid) * len(new_mid) <= budget:
        matcher = difflib.SequenceMatcher(None, old_mid, new_mid, autojunk=False)
        ops = [op for op in matcher.get_opcodes() if op[0] != "equal"]
    else:
        ops = [("replace", 0, len(old_mid), 0, len(new_mid))]
    return [(starts[head + i1], starts[head + i2], "".join(new_mid[j1:j2])) for _tag, i1, i2, j1, j2 in ops]


def apply_text_change(doc: Doc[Any], old: str, new: str, *, budget: int = MERGE_LINE_BUDGET) -> int:
    """Edit ``doc``'s text, which reads ``old``, into ``new`` line by line (see :func:`text_edits`).

    Edits are applied from the end so earlier positions stay valid. pycrdt
    indexes text in UTF-8 bytes, so code-point positions are converted once,
    in one pass. Returns the number of edits.
    """
    ytext = doc.get(TEXT_NAME, type=Text)
    edits = text_edits(old, new, budget=budget)
    in_bytes: list[tuple[int, int, str]] = []
    position = offset = 0
    for start, end, insert in edits:
        offset += len(old[position:start].encode("utf-8"))
        length = len(old[start:end].encode("utf-8"))
        in_bytes.append((offset, length, insert))
        offset += length
        position = end
    with doc.transaction():
        for b_start, b_length, insert in reversed(in_bytes):
            if b_length:
                del ytext[b_start : b_start + b_length]
            if insert:
                ytext.insert(b_start, insert)
    return len(edits)


def file_change_update(file_state: bytes, old: str, new: str, *, budget: int = MERGE_LINE_BUDGET) -> bytes:
    """The update that turns the file's text from ``old`` into ``new``, made on a fork of the file's state.

    ``file_state`` is the document as it was when its text equalled the file
    (``old``). The edits are made there, by a fresh client id, and the
    resulting update merges into the live room like anybody's edit: the CRDT
    keeps every unsaved edit made since, wherever it is, and duplicates nothing.
    Pure and thread-safe: the room runs it off the event loop.
    """
    fork: Doc[Any] = Doc()
    fork.apply_update(file_state)
    if doc_text(fork) != old:
        raise ValueError("the file state does not hold the old file text")
    before = fork.get_state()
    apply_text_change(fork, old, new, budget=budget)
    return fork.get_update(before)
