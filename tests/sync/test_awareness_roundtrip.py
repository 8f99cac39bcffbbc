"""Awareness round trip: what one client says about itself is what every peer reads (pycrdt ``Awareness``).

States are any JSON object (a cursor, a user's name and colour, ...). Encoded by
one ``Awareness``, framed as a y-protocol awareness message and applied to
another, they come back equal, with their clocks; a cleared state removes the
client on the other side. The same holds through a room: the entries the room
reads (``sync.ysync.read_awareness``, for the rule binding client ids to
connections) are those pycrdt encoded, and what a member sets reaches the other
members as it was set, through the room's own ``Awareness`` (``sync.rooms.Presence``).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pycrdt import Awareness, Doc, YMessageType, create_awareness_message, read_message

from sync.rooms import Member, Presence
from sync.ysync import join_awareness, read_awareness

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


@given(st.dictionaries(st.integers(0, 2**32 - 1), states, min_size=1, max_size=5))
def test_the_entries_a_room_reads_are_those_pycrdt_encoded(by_client: dict[int, dict[str, Any]]) -> None:
    many = Awareness(Doc())
    many.set_local_state(None)
    for client_id, state in by_client.items():
        own = Awareness(Doc(client_id=client_id))
        own.set_local_state(state)
        many.apply_awareness_update(own.encode_awareness_update([client_id]), "remote")
    update = many.encode_awareness_update(list(by_client))
    entries = read_awareness(update)
    assert [(e.client_id, e.clock, e.state) for e in entries] == [(c, 1, s) for c, s in by_client.items()]
    assert join_awareness(entries) == update


@given(st.lists(states, min_size=1, max_size=4))
def test_what_a_member_sets_reaches_the_other_members_as_it_was_set(sequence: list[dict[str, Any]]) -> None:
    relayed: list[tuple[bytes, Member | None]] = []
    room = Presence(Doc(), lambda message, sender: relayed.append((message, sender)))
    alice = Awareness(Doc())
    connection = Member(channel=None)  # type: ignore[arg-type]  # nothing is sent: the room only queues
    bob = Awareness(Doc())
    for state in sequence:
        alice.set_local_state(state)
        room.receive(connection, alice.encode_awareness_update([alice.client_id]))
        message, sender = relayed[-1]
        assert sender is connection  # relayed to everyone but the member who set it
        _send_message(message, bob)
        assert bob.states[alice.client_id] == state
        assert bob.meta[alice.client_id]["clock"] == alice.meta[alice.client_id]["clock"]
    assert connection.outbox.empty()  # nothing refused
    room.forget(connection)
    _send_message(relayed[-1][0], bob)
    assert alice.client_id not in bob.states


def _send_message(message: bytes, receiver: Awareness) -> None:
    assert message[0] == YMessageType.AWARENESS
    receiver.apply_awareness_update(read_message(message[1:]), "hub")
