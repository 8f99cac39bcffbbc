"""The write buffer: acceptance order, duplicates, conflicts, states, and surviving a reopen.

On the buffer file and on the PostgreSQL state schema (``state_backend``, canon/ADR-049)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sync.buffer import BufferCounts, EventState, KeyConflict, Outcome, Submission, Writeback, WriteBuffer

if TYPE_CHECKING:
    from tests.backends import StateAt


def sub(key: str, note: str = "n", repo: str = "r1") -> Submission:
    payload = {"key": key, "kind": "progress.note", "note": note}
    return Submission(key, "progress.note", repo, payload, payload | {"repo": repo}, "CUST-WP-0054", None)


def test_duplicates_are_recognised_and_conflicts_store_nothing(state_backend: StateAt) -> None:
    buffer = WriteBuffer(state_backend("buffer.sqlite3"))
    assert buffer.append([sub("a"), sub("b"), sub("a")]) == [
        Outcome.ACCEPTED,
        Outcome.ACCEPTED,
        Outcome.DUPLICATE,
    ]
    assert buffer.append([sub("a")]) == [Outcome.DUPLICATE]
    with pytest.raises(KeyConflict, match="'a' was already used for a different event"):
        buffer.append([sub("c"), sub("a", note="changed")])
    assert buffer.get("c") is None
    with pytest.raises(KeyConflict):
        buffer.append([sub("d"), sub("d", note="other")])
    assert buffer.counts() == BufferCounts(pending=2, applied=0, rejected=0)
    buffer.close()


def test_events_survive_a_reopen_and_keep_acceptance_order(state_backend: StateAt) -> None:
    path = state_backend("buffer.sqlite3")
    first = WriteBuffer(path)
    first.append([sub(f"k{i}", repo="r2" if i % 2 else "r1") for i in range(6)])
    first.close()
    again = WriteBuffer(path)
    assert [e.key for e in again.pending()] == [f"k{i}" for i in range(6)]
    assert [e.key for e in again.pending("r2")] == ["k1", "k3", "k5"]
    assert again.pending_repos() == ["r1", "r2"]
    if isinstance(path, Path):
        with sqlite3.connect(path) as raw:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again.close()


def test_states_move_once_with_reasons(state_backend: StateAt) -> None:
    buffer = WriteBuffer(state_backend("b.sqlite3"))
    buffer.append([sub("a"), sub("b"), sub("c")])
    buffer.wait(["a"], "uncommitted changes in workplans/x.md")
    pending_a = buffer.get("a")
    assert pending_a is not None
    assert (pending_a.state, pending_a.reason) == (
        EventState.PENDING,
        "uncommitted changes in workplans/x.md",
    )
    record = buffer.begin_writeback(
        Writeback("r1", "abc", ["a"], [{"path": "p", "before": "1", "after": "2"}])
    )
    files = [{"path": "p", "before": "1", "after": "2"}]
    assert buffer.writebacks("r1", "host:/w") == [Writeback("r1", "abc", ["a"], files, record)]
    buffer.finish({"a": "c0ffee", "b": None}, {"c": "task T07 is no longer in the workplan"}, [record])
    assert buffer.writebacks("r1", "host:/w") == []
    done = buffer.get("a")
    assert done is not None and done.state is EventState.APPLIED and done.commit == "c0ffee"
    assert done.reason is None
    rejected = buffer.get("c")
    assert rejected is not None and rejected.reason == "task T07 is no longer in the workplan"
    buffer.finish({"c": "x"}, {})  # a decided event never moves again
    again = buffer.get("c")
    assert again is not None and again.state is EventState.REJECTED
    items, total = buffer.list_events(state="applied", limit=1, offset=1)
    assert total == 2 and [e.key for e in items] == ["b"]
    assert buffer.counts() == BufferCounts(pending=0, applied=2, rejected=1)
    buffer.close()


def test_a_checkout_resolves_only_its_own_write_backs(state_backend: StateAt) -> None:
    """Replicas with their own clones share one buffer (canon/ADR-053): a record left by a killed
    replica in its clone is never resolved, and closed, by another replica against a different
    clone; a record from before records named their checkout is anyone's, as it was. A checkout
    asks by its id and by the name records gave it before (``<host>:<work tree>``, layout 3), and
    each record comes back with the place it was made."""
    buffer = WriteBuffer(state_backend("buffer.sqlite3"))
    files = [{"path": "p", "before": "1", "after": "2"}]
    ida, idb = "a" * 32, "b" * 32
    mine = buffer.begin_writeback(Writeback("r1", "abc", ["a"], files, checkout=ida, place="h:/w/r1/.git"))
    theirs = buffer.begin_writeback(Writeback("r1", "abc", ["b"], files, checkout=idb, place="h:/v/r1/.git"))
    old = buffer.begin_writeback(Writeback("r1", "abc", ["c"], files))
    before = buffer.begin_writeback(Writeback("r1", "abc", ["d"], files, checkout="host-a:/w/r1"))
    other_repo = buffer.begin_writeback(Writeback("r2", "abc", ["e"], files, checkout=ida))
    assert [w.id for w in buffer.writebacks("r1", ida, "host-a:/w/r1")] == [mine, old, before]
    assert [w.id for w in buffer.writebacks("r1", idb, "host-b:/w/r1")] == [theirs, old]
    assert [w.id for w in buffer.writebacks("r1", ida, ida)] == [mine, old]
    assert [w.id for w in buffer.writebacks("r2", ida)] == [other_repo]
    found = buffer.writebacks("r1", idb)[0]
    assert (found.checkout, found.place) == (idb, "h:/v/r1/.git")
    buffer.close()
