"""The rooms' fan-out across replicas (canon/ADR-051): two stores and two buses on one PostgreSQL
state schema, each on connections of its own, as two replicas have them; and what stays the same
on SQLite (``state_backend``)."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
from pycrdt import Awareness, Doc, Text

import sync.room_bus as room_bus_module
from sync._durable_pg import PgState
from sync._pg_listen import PgListener
from sync.errors import RoomError
from sync.room_bus import NOTE_LIMIT, PRESENCE_BACKLOG, BusMessage, LocalRoomBus, PgRoomBus, room_bus
from sync.room_store import ROOM_CHANNEL, RoomPresence, RoomStore
from sync.rooms import REMOTE_PRESENCE_SECONDS, Member, Presence
from sync.seed import TEXT_NAME, doc_text, seed_doc
from sync.ysync import read_awareness

if TYPE_CHECKING:
    from pathlib import Path

    from tests.backends import StateAt

DOC = "demo/statehub.toml"


def _edit(base: bytes, insert: str, at: int = 0) -> bytes:
    doc: Doc[Any] = Doc()
    doc.apply_update(base)
    before = doc.get_state()
    doc.get(TEXT_NAME, type=Text).insert(at, insert)
    return doc.get_update(before)


def _replay(seed_text: str, updates: list[bytes]) -> str:
    doc: Doc[Any] = Doc()
    doc.apply_update(seed_doc(seed_text))
    for update in updates:
        doc.apply_update(update)
    return doc_text(doc)


class _Heard:
    """A bus's messages, as the rooms' callback gets them on the loop."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[BusMessage] = asyncio.Queue()
        self.reconnects = 0

    def __call__(self, message: BusMessage) -> None:
        self.messages.put_nowait(message)

    def reconnected(self) -> None:
        self.reconnects += 1

    async def next(self, timeout: float = 5) -> BusMessage:
        return await asyncio.wait_for(self.messages.get(), timeout)


def _bus(store: RoomStore) -> tuple[PgRoomBus, _Heard]:
    bus = room_bus(store)
    assert isinstance(bus, PgRoomBus)
    heard = _Heard()
    bus.start(heard, heard.reconnected)
    return bus, heard


def test_an_append_on_one_replica_wakes_the_other_which_reads_what_it_lacks(postgres_database: str) -> None:
    state = PgState(postgres_database)

    async def scenario() -> None:
        with RoomStore(state) as one, RoomStore(state) as two:
            bus_one, heard_one = _bus(one)
            bus_two, heard_two = _bus(two)
            try:
                seed = seed_doc("x = 1\n")
                pending = two.open_lineage(DOC, "x = 1\n", seed)
                update = _edit(seed, "# from one\n")
                uid = one.append(DOC, update)
                message = await heard_two.next()
                assert (message.kind, message.doc) == ("u", DOC)
                assert two.updates_after(DOC, pending.through) == [(uid, update)]
                # A replica is not told what it said itself.
                await asyncio.sleep(0.3)
                assert heard_one.messages.empty()
            finally:
                bus_one.close()
                bus_two.close()

    asyncio.run(scenario())


def test_ids_of_one_document_commit_in_order_so_a_reader_after_last_misses_none(
    postgres_database: str,
) -> None:
    """Two replicas append at once while a third reads ``id > last`` over and over: it sees every
    update exactly once (an id read past is never committed later)."""
    state = PgState(postgres_database)
    with RoomStore(state) as one, RoomStore(state) as two, RoomStore(state) as reader:
        seed = seed_doc("")
        one.open_lineage(DOC, "", seed)
        written: list[int] = []
        done = threading.Event()

        def write(store: RoomStore, who: str) -> None:
            for i in range(150):
                written.append(store.append(DOC, _edit(seed, f"{who}{i}")))

        threads = [threading.Thread(target=write, args=(s, w)) for s, w in ((one, "a"), (two, "b"))]
        for thread in threads:
            thread.start()
        seen: list[int] = []
        last = 0
        while not done.is_set():
            if not any(t.is_alive() for t in threads):
                done.set()
            for uid, _update in reader.updates_after(DOC, last):
                seen.append(uid)
                last = uid
        for uid, _update in reader.updates_after(DOC, last):
            seen.append(uid)
        assert sorted(seen) == sorted(written) and len(seen) == 300


def test_presence_crosses_and_a_message_too_large_for_one_notify_goes_by_reference(
    postgres_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    """NOTIFY refuses 8000 bytes: a larger message is stored as a ``room_note`` row and its id
    notified. One state of 7.5 KB (under the room's 8 KiB bound, over what fitted inline) crosses
    whole; a message over :data:`NOTE_LIMIT` is not passed on and the log says so."""
    state = PgState(postgres_database)

    async def scenario() -> None:
        with RoomStore(state) as one, RoomStore(state) as two:
            bus_one, _ = _bus(one)
            bus_two, heard_two = _bus(two)
            try:
                small = _awareness({11: {"user": {"name": "Ada"}}})
                bus_one.publish("a", DOC, {"u": base64.b64encode(small).decode()})
                message = await heard_two.next()
                assert message.kind == "a" and message.awareness == small
                # One state of 7.5 KB: alone over NOTIFY's limit once base64 and JSON wrap it.
                alone = _awareness({21: {"user": {"name": "x" * 7500}}})
                bus_one.publish("a", DOC, {"u": base64.b64encode(alone).decode()})
                message = await heard_two.next()
                assert message.kind == "a" and message.awareness == alone
                # Eight states of 8 KB (what one member may set at most): one message, whole.
                most = _awareness({cid: {"user": {"name": "y" * 8000}} for cid in range(31, 39)})
                bus_one.publish("a", DOC, {"u": base64.b64encode(most).decode()})
                message = await heard_two.next()
                assert message.kind == "a" and message.awareness == most
                assert [e.client_id for e in read_awareness(message.awareness)] == list(range(31, 39))
                # A save's answer naming many problems: by reference too.
                answer = {"type": "save-result", "ok": False, "errors": [{"message": "z" * 100}] * 200}
                bus_one.publish("h", DOC, {"m": answer})
                message = await heard_two.next()
                assert message.kind == "h" and message.data["m"] == answer
                # Over the bus's bound: refused with a warning, nothing sent.
                huge = base64.b64encode(b"\x00" * NOTE_LIMIT).decode()
                bus_one.publish("a", DOC, {"u": huge})
                bus_one.publish("a", DOC, {"u": base64.b64encode(small).decode()})
                message = await heard_two.next()
                assert message.awareness == small
                assert "over the bus's limit" in caplog.text
                with pytest.raises(TimeoutError):
                    await heard_two.next(timeout=0.5)
            finally:
                bus_one.close()
                bus_two.close()

    asyncio.run(scenario())


def _awareness(states: dict[int, dict[str, Any]]) -> bytes:
    collected = Awareness(Doc())
    collected.set_local_state(None)
    for cid, value in states.items():
        own = Awareness(Doc(client_id=cid))
        own.set_local_state(value)
        collected.apply_awareness_update(own.encode_awareness_update([cid]), "test")
    return collected.encode_awareness_update(list(states))


def test_one_save_of_a_document_at_a_time_across_replicas(postgres_database: str) -> None:
    state = PgState(postgres_database)

    async def scenario() -> None:
        with RoomStore(state) as one, RoomStore(state) as two:
            bus_one, _ = _bus(one)
            bus_two, _ = _bus(two)
            order: list[str] = []

            async def save(bus: PgRoomBus, who: str, hold: float) -> None:
                async with bus.save_lock(DOC):
                    order.append(f"{who} in")
                    await asyncio.sleep(hold)
                    order.append(f"{who} out")

            try:
                first = asyncio.create_task(save(bus_one, "one", 0.5))
                await asyncio.sleep(0.2)
                await asyncio.gather(first, save(bus_two, "two", 0))
                assert order == ["one in", "one out", "two in", "two out"]
                async with bus_one.save_lock("other/statehub.toml"):  # another document: no wait
                    await asyncio.wait_for(save(bus_two, "three", 0), 2)
            finally:
                bus_one.close()
                bus_two.close()

    asyncio.run(scenario())


def test_a_lineage_another_replica_holds_open_is_not_forgotten(postgres_database: str) -> None:
    state = PgState(postgres_database)

    async def scenario() -> None:
        with RoomStore(state) as one, RoomStore(state) as two:
            bus_two, _ = _bus(two)
            try:
                one.open_lineage(DOC, "a\n", seed_doc("a\n"))
                await bus_two.hold(DOC)
                assert not one.forget(DOC)
                assert one.load(DOC) is not None
                await bus_two.release(DOC)
                assert one.forget(DOC)
                assert one.load(DOC) is None
            finally:
                bus_two.close()
            # A replica that dies lets go of its holds with its session.
            bus_three, _ = _bus(two)
            one.open_lineage(DOC, "a\n", seed_doc("a\n"))
            await bus_three.hold(DOC)
            bus_three.close()  # the server ends the session a moment after the connection closes
            _until(lambda: one.forget(DOC), 5)

    asyncio.run(scenario())


def test_a_lineage_opened_by_two_replicas_is_begun_once(state_backend: StateAt) -> None:
    where = state_backend("rooms.sqlite3")
    with RoomStore(where) as one, RoomStore(where) as two:
        seed = seed_doc("a\n")
        one.open_lineage(DOC, "a\n", seed)
        one.append(DOC, _edit(seed, "# kept\n"))
        pending = two.open_lineage(DOC, "a\n", seed)  # the second opener finds it and keeps it
        assert _replay(pending.seed_text, pending.updates) == "# kept\na\n"
        assert pending.through > 0


def test_a_compaction_keeps_the_updates_it_had_not_applied(state_backend: StateAt) -> None:
    where = state_backend("rooms.sqlite3")
    with RoomStore(where) as one, RoomStore(where) as two:
        seed = seed_doc("a\n")
        one.open_lineage(DOC, "a\n", seed)
        first = _edit(seed, "# one\n")
        through = one.append(DOC, first)
        two.append(DOC, _edit(seed, "# two\n", at=2))  # another replica's, not applied by one yet
        live: Doc[Any] = Doc()
        live.apply_update(seed)
        live.apply_update(first)
        one.file_written(DOC, doc_text(live), live.get_update(), live.get_update(), through=through)
        pending = two.load(DOC)
        assert pending is not None and len(pending.updates) == 2
        assert _replay(pending.seed_text, pending.updates) == "# one\na\n# two\n"


def test_on_sqlite_the_bus_is_one_process_alone(tmp_path: Path) -> None:
    async def scenario() -> None:
        with RoomStore(tmp_path / "rooms.sqlite3") as store:
            bus = room_bus(store)
            assert isinstance(bus, LocalRoomBus) and not bus.shared
            bus.start(_Heard(), lambda: None)
            await bus.hold(DOC)
            store.open_lineage(DOC, "", seed_doc(""))
            assert store.append(DOC, _edit(seed_doc(""), "x")) < store.append(DOC, _edit(seed_doc(""), "y"))
            async with bus.save_lock(DOC), bus.save_lock(DOC):  # nothing to wait for
                pass
            assert store.forget(DOC)  # held or not: nobody else can hold it
            bus.close()

    asyncio.run(scenario())


def test_a_remote_presence_expires_unless_renewed_and_is_not_taken_meanwhile() -> None:
    sent: list[bytes] = []
    published: list[bytes] = []
    presence = Presence(Doc(), lambda message, _sender: sent.append(message), published.append)
    presence.receive_remote(_awareness({7: {"user": {"name": "Bob"}}}))
    assert presence.awareness.states[7] == {"user": {"name": "Bob"}}
    assert sent and not published  # passed to the local members, not back to the replicas

    local = Member(channel=None)  # type: ignore[arg-type]  # nothing is sent: the room only queues
    impostor = _own(7, {"user": {"name": "Mallory"}}, clock=2)
    presence.receive(local, impostor)
    assert presence.awareness.states[7] == {"user": {"name": "Bob"}}
    assert local.outbox.qsize() == 1  # told why

    assert presence.expire() == []
    sent.clear()
    heard = presence.remote[7]
    assert presence.expire(heard + REMOTE_PRESENCE_SECONDS + 1) == [7]
    assert 7 not in presence.awareness.states and sent  # the members hear it left
    presence.receive(local, _own(7, {"user": {"name": "Bob"}}, clock=1))  # back here, at its old clock
    assert presence.awareness.states[7] == {"user": {"name": "Bob"}}
    assert published  # and the other replicas hear it from here now


def _own(client_id: int, state: dict[str, Any], *, clock: int) -> bytes:
    """An awareness update of ``client_id``'s own state at ``clock``."""
    own = Awareness(Doc(client_id=client_id))
    for _ in range(clock - 1):
        own.set_local_state({})
    own.set_local_state(state)
    return own.encode_awareness_update([client_id])


def test_a_listener_whose_connection_drops_listens_again_and_says_so(postgres_database: str) -> None:
    state = PgState(postgres_database)
    heard: list[str] = []
    connected: list[str] = []  # one entry per (re)connect: the listener's "look now"

    def on_notify(payload: str | None) -> None:
        if payload is None:
            connected.append("listening")
        else:
            heard.append(payload)

    listener = PgListener(state, ROOM_CHANNEL, on_notify)
    listener.start()
    _until(lambda: len(connected) == 1)
    try:
        with state.connect() as admin:
            admin.execute("SELECT pg_notify(%s, 'one')", (ROOM_CHANNEL,))
            _until(lambda: heard == ["one"])
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN%%' AND pid <> pg_backend_pid()"
            )
            _until(lambda: len(connected) == 2)
            admin.execute("SELECT pg_notify(%s, 'two')", (ROOM_CHANNEL,))
            _until(lambda: heard == ["one", "two"])
    finally:
        listener.close()


def _until(predicate: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.02)


def test_a_replica_whose_connections_drop_holds_its_rooms_again(postgres_database: str) -> None:
    state = PgState(postgres_database)

    async def scenario() -> None:
        with RoomStore(state) as one, RoomStore(state) as two:
            bus_two, heard = _bus(two)
            try:
                one.open_lineage(DOC, "a\n", seed_doc("a\n"))
                await bus_two.hold(DOC)
                connects = heard.reconnects  # the listener's first LISTEN counts as one
                with state.connect() as admin:
                    admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                        "AND (query LIKE 'LISTEN%%' OR query LIKE '%%advisory_lock_shared%%')"
                    )
                deadline = asyncio.get_running_loop().time() + 10
                while heard.reconnects == connects:
                    assert asyncio.get_running_loop().time() < deadline, "the listener did not reconnect"
                    await asyncio.sleep(0.05)
                await bus_two.hold("other/statehub.toml")  # queued after the sender's look at its connection
                assert not one.forget(DOC)  # still held: replica two has it open
                update = _edit(seed_doc("a\n"), "# after\n")
                one.append(DOC, update)
                message = await heard.next()
                assert message.kind == "u"
            finally:
                bus_two.close()

    asyncio.run(scenario())


def test_a_save_waiting_too_long_on_another_replica_is_refused(
    postgres_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(room_bus_module, "SAVE_WAIT_SECONDS", 1)
    state = PgState(postgres_database)

    async def scenario() -> None:
        with RoomStore(state) as one, RoomStore(state) as two:
            bus_one, _ = _bus(one)
            bus_two, _ = _bus(two)
            try:
                async with bus_one.save_lock(DOC):
                    with pytest.raises(RoomError) as refused:
                        async with bus_two.save_lock(DOC):
                            pass
                    assert refused.value.status == 409 and "save again" in refused.value.message
                async with bus_two.save_lock(DOC):  # free again
                    pass
            finally:
                bus_one.close()
                bus_two.close()

    asyncio.run(scenario())


def _keepalives(conn: Any) -> tuple[str, ...]:
    """The server-side TCP settings of ``conn``'s session, and libpq's keepalive on this end."""
    shown = tuple(
        str(conn.execute(f"SHOW {name}").fetchone()[0])
        for name in (
            "tcp_keepalives_idle",
            "tcp_keepalives_interval",
            "tcp_keepalives_count",
            "tcp_user_timeout",
        )
    )
    return (*shown, conn.info.get_parameters().get("keepalives", "unset"))


def test_the_connections_holding_session_locks_give_up_a_silent_peer_within_the_window(
    postgres_database: str,
) -> None:
    """A host that loses power sends no FIN: only TCP keepalives (or ``tcp_user_timeout``) let the
    server end its sessions and free their advisory locks. Every state connection carries both
    ends' settings from ``dead_peer_s``: the store's, the bus's (``open`` holds), a save's lock,
    the listener's and the applier lock's (the leader sets its own: tests/sync/test_leader.py)."""
    from sync.applier_lock import AdvisoryRepoLocks

    state = PgState(postgres_database, dead_peer_s=30)
    want = ("10", "3", "6", "30000", "1")  # seconds, a third idle, six probes a ninth apart; 30 s unacked
    with state.connect() as plain:
        assert _keepalives(plain) == want
        assert plain.info.host == "127.0.0.1"  # TCP: over a Unix socket the server shows 0s

    async def scenario() -> None:
        with RoomStore(state) as store:
            bus, _ = _bus(store)
            try:
                assert bus._conn is not None
                assert _keepalives(bus._conn) == want
                with await asyncio.to_thread(bus._lock_save, DOC) as saving:
                    assert _keepalives(saving) == want
                with state.connect() as looking:  # the listener's session, seen from outside
                    assert bus._listener is not None and bus._listener.backend_pid is not None
                    row = looking.execute(
                        "SELECT client_addr IS NOT NULL FROM pg_stat_activity WHERE pid = %s",
                        (bus._listener.backend_pid,),
                    ).fetchone()
                    assert row == (True,)
            finally:
                bus.close()

    asyncio.run(scenario())
    locks = AdvisoryRepoLocks(state)
    assert locks.acquire("demo", timeout=5)
    try:
        assert locks._conn is not None
        assert _keepalives(locks._conn) == want
    finally:
        locks.release("demo")
        locks.close()
    with pytest.raises(ValueError, match="dead_peer_s=5: give seconds from 10"):
        PgState(postgres_database, dead_peer_s=5)


def test_a_room_presence_row_no_replica_wrote_is_skipped_and_the_listing_still_answers(
    postgres_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A DB user planting a row whose ``people`` is not a JSON list of names (review16e): every
    replica's ``GET /sync`` read the rows and answered 500 until the row expired (never, with a
    ``heard_at`` ahead), and each replica's presence loop logged a traceback a second."""
    state = PgState(postgres_database)
    with RoomStore(state) as one:
        one.post_presence("r1", {DOC: RoomPresence(("ada",), True, False)}, [])
        with state.connect() as conn:
            for replica, people in [
                ("zz1", "not json"),
                ("zz2", '"eve"'),
                ("zz3", '{"a": 1}'),
                ("zz4", "[null]"),
            ]:
                conn.execute(
                    "INSERT INTO room_presence (doc, replica, people, open, unsaved, heard_at) "
                    "VALUES (%s, %s, %s, true, false, now() + interval '1 day')",
                    (DOC, replica, people),
                )
        with caplog.at_level("WARNING", logger="sync.room_store"):
            found = one.presence()
            again = one.presence()  # the next look: no second warning for the same rows
        assert found == again == {DOC: {"r1": RoomPresence(("ada",), True, False)}}
        assert sum("people is not a JSON list of names" in r.getMessage() for r in caplog.records) == 4


def test_awareness_updates_past_the_backlog_are_not_queued_and_the_rest_still_crosses(
    postgres_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    """review16e: one member setting an 8 KiB presence in a loop queued every update for the sender
    (30,000 in 10 s, each a ``room_note`` insert): hundreds of MB held, the other replica caught up
    75 s later, and a room's ``hold`` or a save's answer waited behind them. Past
    :data:`PRESENCE_BACKLOG` waiting commands an awareness update is dropped (its client renews it);
    every other kind is still queued, and once the sender catches up presence crosses again."""
    state = PgState(postgres_database)
    pad = base64.b64encode(b"x" * 6000).decode()

    async def scenario() -> None:
        with RoomStore(state) as one, RoomStore(state) as two:
            sender = room_bus(one)
            assert isinstance(sender, PgRoomBus)
            with caplog.at_level("WARNING", logger="sync.room_bus"):
                for _ in range(PRESENCE_BACKLOG + 50):  # before the sender runs: nothing is taken off
                    sender.publish("a", DOC, {"u": pad})
            assert sender._commands.qsize() == PRESENCE_BACKLOG
            assert sum("awareness updates not passed on" in r.getMessage() for r in caplog.records) == 1
            sender.publish("h", DOC, {"m": {"type": "save-result", "ok": True}})  # still queued
            assert sender._commands.qsize() == PRESENCE_BACKLOG + 1
            bus_two, heard_two = _bus(two)
            try:
                sender.start(_Heard(), lambda: None)
                kinds = [(await heard_two.next(30)).kind for _ in range(PRESENCE_BACKLOG + 1)]
                assert sorted(kinds) == ["a"] * PRESENCE_BACKLOG + ["h"]  # "h" inline may pass a note
                sender.publish("a", DOC, {"u": "AA=="})  # caught up: crosses again
                assert (await heard_two.next(10)).data["u"] == "AA=="
            finally:
                sender.close()
                bus_two.close()

    asyncio.run(scenario())


def test_a_save_answer_over_the_note_limit_crosses_with_its_first_problems(postgres_database: str) -> None:
    """review16e: a 256 KiB text of 60,000 bad prefixes made a save's answer of 4.6 MB, over
    :data:`NOTE_LIMIT`: it was not passed on, and the other replica's members never heard that the
    save failed. It crosses with the problems that fit and the count of the others."""
    state = PgState(postgres_database)
    errors = [
        {"line": 4, "column": 1, "message": f"prefix 'a{i}' must look like CUST or RAIL-BS"}
        for i in range(60000)
    ]
    answer = {"type": "save-result", "ok": False, "message": "not saved: 60000 problems", "errors": errors}

    async def scenario() -> None:
        with RoomStore(state) as one, RoomStore(state) as two:
            bus_one, _ = _bus(one)
            bus_two, heard_two = _bus(two)
            try:
                bus_one.publish("h", DOC, {"m": answer})
                heard = (await heard_two.next(10)).data["m"]
                assert heard["ok"] is False and heard["message"] == answer["message"]
                assert 0 < len(heard["errors"]) < len(errors)
                assert heard["errors"] == errors[: len(heard["errors"])]
                assert heard["errors_omitted"] == len(errors) - len(heard["errors"])
            finally:
                bus_one.close()
                bus_two.close()

    asyncio.run(scenario())
