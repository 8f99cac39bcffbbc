"""Relay state in the buffer: what is queued, how answers move events, decisions, backoff.

On the buffer file and on the PostgreSQL state schema (``state_backend``, canon/ADR-049)."""

from __future__ import annotations

import email.utils
import time
from typing import TYPE_CHECKING

import pytest

from sync.buffer import Outcome, Submission, WriteBuffer
from sync.relay import TokenSource, backoff_delay, retry_after
from sync.relay_queue import ParkedEvent, RelayCounts, RelayQueue, RelayState, UnknownRelayKey

if TYPE_CHECKING:
    from pathlib import Path

    from tests.backends import StateAt


def sub(key: str, note: str = "n") -> Submission:
    payload = {"key": key, "kind": "progress.note", "note": note, "actor": "agt-codex"}
    event = payload | {"repo": "local-slug", "at": "2026-07-03T22:29:55Z"}
    return Submission(key, "progress.note", "local-slug", payload, event, "CUST-WP-0054", "T02")


def test_events_accepted_after_the_relay_was_set_up_are_queued_in_order(state_backend: StateAt) -> None:
    path = state_backend("buffer.sqlite3")
    buffer = WriteBuffer(path)
    buffer.append([sub("before")])
    queue = RelayQueue(path)
    other_process = WriteBuffer(path)  # e.g. a CLI command accepting while the server runs
    other_process.append([sub("a"), sub("b")])
    buffer.append([sub("c")])
    assert queue.enqueue_new() == 3
    assert queue.enqueue_new() == 0
    items = queue.batch(RelayState.QUEUED, 10)
    assert [i.key for i in items] == ["a", "b", "c"]  # "before" predates the upstream setting
    # what goes upstream: as the client sent it, with the original time, without the local slug
    assert items[0].body == {
        "key": "a",
        "kind": "progress.note",
        "note": "n",
        "actor": "agt-codex",
        "at": "2026-07-03T22:29:55Z",
    }
    queue.close()
    reopened = RelayQueue(path)  # a restart resumes where it was
    assert [i.key for i in reopened.batch(RelayState.QUEUED, 2)] == ["a", "b"]
    assert [i.key for i in reopened.batch(RelayState.QUEUED, 2, after=items[1].seq)] == ["c"]
    for opened in (reopened, buffer, other_process):
        opened.close()


def test_answers_move_events_and_only_decisions_take_them_out(state_backend: StateAt) -> None:
    path = state_backend("buffer.sqlite3")
    buffer = WriteBuffer(path)
    queue = RelayQueue(path)
    buffer.append([sub(k) for k in "abcd"])
    queue.enqueue_new()
    queue.record(sent=["a", "b"], confirmed=["c"], parked={"d": "upstream rejected it: no workplan"})
    status = queue.status()
    assert status.counts == RelayCounts(queued=0, sent=2, confirmed=1, parked=1)
    assert status.pending == 2 and status.parked == 1
    assert status.oldest_pending_age_s is not None and status.oldest_pending_age_s >= 0
    assert status.parked_events == [ParkedEvent("d", "upstream rejected it: no workplan", 1)]
    queue.record(confirmed=["a"])
    queue.record(sent=["c"])  # a late answer cannot move a confirmed event back
    assert queue.status().counts.confirmed == 2

    with pytest.raises(UnknownRelayKey, match="sent, not parked"):
        queue.retry("b", "alice")
    with pytest.raises(UnknownRelayKey, match="not in the relay queue"):
        queue.retry("zzz", "alice")
    with pytest.raises(UnknownRelayKey, match="already confirmed"):
        queue.drop("a", "no", "alice")
    with pytest.raises(ValueError, match="needs a reason"):
        queue.drop("d", "  ", "alice")
    assert queue.status().decisions == []

    queue.retry("d", "alice")
    assert queue.get("d") is not None and queue.get("d").state is RelayState.QUEUED  # type: ignore[union-attr]
    dropped = queue.drop("b", "sent to the wrong fleet", "bob")
    assert (dropped.was, dropped.event["key"], dropped.reason, dropped.actor) == (
        RelayState.SENT,
        "b",
        "sent to the wrong fleet",
        "bob",
    )
    assert queue.get("b") is None and buffer.get("b") is not None  # the local record stays
    assert queue.enqueue_new() == 0  # a dropped event is not queued again
    decisions = queue.status().decisions
    assert [(d.key, d.decision, d.actor) for d in decisions] == [
        ("b", "drop", "bob"),
        ("d", "retry", "alice"),
    ]
    queue.close()
    buffer.close()


def test_the_buffer_answers_a_relayed_batch_per_event(state_backend: StateAt) -> None:
    buffer = WriteBuffer(state_backend("buffer.sqlite3"))
    buffer.append([sub("a")])
    outcomes = buffer.append([sub("b"), sub("a", note="changed"), sub("a")], conflicts="report")
    assert outcomes == [Outcome.ACCEPTED, Outcome.CONFLICT, Outcome.DUPLICATE]
    assert buffer.get("a").event["note"] == "n"  # type: ignore[union-attr]
    resent = [
        {"key": "a", "kind": "progress.note", "note": "n", "actor": "agt-codex"},
        {"key": "new"},
        "junk",
    ]
    assert {i: k for i, (k, _, _) in buffer.stored_as_sent(resent).items()} == {0: "a"}
    buffer.close()


def test_full_jitter_backoff_and_retry_after() -> None:
    assert backoff_delay(0, rand=lambda: 1.0) == 1.0
    assert backoff_delay(3, rand=lambda: 1.0) == 8.0
    assert backoff_delay(10, rand=lambda: 1.0) == 60.0  # capped
    assert backoff_delay(500, rand=lambda: 1.0) == 60.0
    assert backoff_delay(5, rand=lambda: 0.0) == 0.0
    assert all(0 <= backoff_delay(4) <= 16 for _ in range(100))
    assert retry_after("7") == 7.0
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= (retry_after(later) or 0) <= 31
    assert retry_after("soon") is None and retry_after(None) is None


def test_the_token_file_is_read_again_each_time(tmp_path: Path) -> None:
    path = tmp_path / "token"
    source = TokenSource("from-env", path)
    assert source.read() == "from-env"  # no file yet
    path.write_text("one\n")
    assert source.read() == "one"
    path.write_text("two")
    assert source.read() == "two"
    assert TokenSource().read() is None
