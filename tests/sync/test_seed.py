"""Seeding and out-of-band merges: deterministic, lineage-aware, and keeping unsaved edits."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Text

from sync.seed import (
    TEXT_NAME,
    apply_text_change,
    doc_text,
    file_change_update,
    same_lineage,
    seed_client_id,
    seed_doc,
)
from sync.ysync import read_state_vector

MANIFEST = '[repo]\nslug = "demo"\ntitle = "Démo ✓"\nprefixes = ["DEMO"]\n'
texts = st.text(alphabet=st.sampled_from(list('ab\n =["]é✓😀')), max_size=40)


def _doc(*updates: bytes) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    for update in updates:
        doc.apply_update(update)
    return doc


def test_the_same_text_seeds_the_same_bytes_and_another_text_another_client() -> None:
    assert seed_doc(MANIFEST) == seed_doc(MANIFEST)
    assert seed_client_id(MANIFEST) != seed_client_id(MANIFEST + "\n")
    assert doc_text(_doc(seed_doc(MANIFEST))) == MANIFEST


def test_a_client_that_kept_its_copy_merges_a_reseeded_room_without_duplicates() -> None:
    client = _doc(seed_doc(MANIFEST))
    client.apply_update(seed_doc(MANIFEST))  # the hub restarted and seeded again
    assert doc_text(client) == MANIFEST


def test_an_empty_file_still_marks_its_lineage() -> None:
    state = read_state_vector(_doc(seed_doc("")).get_state())
    assert seed_client_id("") in state


def test_lineage_check() -> None:
    seed = seed_client_id(MANIFEST)
    assert same_lineage(seed, {})
    assert same_lineage(seed, {seed: 3, 12345: 7})
    assert not same_lineage(seed, {seed_client_id("old text"): 3})


@settings(max_examples=150, deadline=None)
@given(old=texts, new=texts)
def test_a_text_change_turns_old_into_new(old: str, new: str) -> None:
    doc = _doc(seed_doc(old))
    apply_text_change(doc, old, new)
    assert doc_text(doc) == new


@settings(max_examples=100, deadline=None)
@given(head=texts, tail=texts, new_tail=texts)
def test_a_file_change_keeps_unsaved_edits_elsewhere(head: str, tail: str, new_tail: str) -> None:
    old = head + "\n#---\n" + tail
    new = head + "\n#---\n" + new_tail
    file_state = seed_doc(old)
    live = _doc(file_state)
    live.get(TEXT_NAME, type=Text).insert(0, "# unsaved\n")  # somebody's unsaved edit at the top
    live.apply_update(file_change_update(file_state, old, new))
    assert doc_text(live) == "# unsaved\n" + new


def test_a_file_change_needs_the_file_state() -> None:
    with pytest.raises(ValueError, match="old file text"):
        file_change_update(seed_doc("a"), "b", "c")
