"""Awareness round trip: what one client says about itself is what every peer reads (pycrdt ``Awareness``).

States are any JSON object (a cursor, a user's name and colour, ...). Encoded by
one ``Awareness``, framed as a y-protocol awareness message and applied to
another, they come back equal, with their clocks; a cleared state removes the
client on the other side.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pycrdt import Awareness, Doc, YMessageType, create_awareness_message, read_message

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=["Cs"]), max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
states = st.dictionaries(st.text(max_size=8), json_values, max_size=5)


def _send(sender: Awareness, receiver: Awareness) -> None:
    """Frame the sender's own entry as the wire does and apply it on the receiver."""
    message = create_awareness_message(sender.encode_awareness_update([sender.client_id]))
    assert message[0] == YMessageType.AWARENESS
    receiver.apply_awareness_update(read_message(message[1:]), "remote")


@given(st.lists(states, min_size=1, max_size=4))
def test_every_state_a_client_sets_is_what_a_peer_reads(sequence: list[dict[str, Any]]) -> None:
    alice, bob = Awareness(Doc()), Awareness(Doc())
    for state in sequence:
        alice.set_local_state(state)
        _send(alice, bob)
        assert bob.states[alice.client_id] == state
        assert bob.meta[alice.client_id]["clock"] == alice.meta[alice.client_id]["clock"]


@given(states, states)
def test_two_clients_are_read_apart_and_a_cleared_state_leaves(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    alice, bob, hub = Awareness(Doc()), Awareness(Doc()), Awareness(Doc())
    alice.set_local_state(first)
    bob.set_local_state(second)
    _send(alice, hub)
    _send(bob, hub)
    assert hub.states[alice.client_id] == first
    assert hub.states[bob.client_id] == second
    alice.set_local_state(None)
    _send(alice, hub)
    assert alice.client_id not in hub.states
    assert hub.states[bob.client_id] == second


@given(states, states)
def test_an_older_update_does_not_overwrite_a_newer_one(old: dict[str, Any], new: dict[str, Any]) -> None:
    alice, bob = Awareness(Doc()), Awareness(Doc())
    alice.set_local_state(old)
    stale = alice.encode_awareness_update([alice.client_id])
    alice.set_local_state(new)
    _send(alice, bob)
    bob.apply_awareness_update(stale, "late")
    assert bob.states[alice.client_id] == new
