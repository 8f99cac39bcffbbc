"""The leader's advisory lock on a real PostgreSQL (canon/ADR-052): one leader among many, and the
lock moves to another process within the retry interval when the leader's session ends."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from typing import TYPE_CHECKING

import psycopg
import pytest

from sync._durable_pg import PgState
from sync.buffer import Submission, WriteBuffer
from sync.leader import LEADER_LOCK, Leader
from sync.relay import Relay, TokenSource
from sync.relay_queue import RelayQueue, RelayState

if TYPE_CHECKING:
    from pathlib import Path

RETRY_S = 0.3


def _leaders(*leaders: Leader) -> list[Leader]:
    return [leader for leader in leaders if leader.is_leader]


def _settle(*leaders: Leader, within: float = 5.0) -> list[Leader]:
    """Wait until exactly one leads (or ``within`` passes); the leaders then."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and len(_leaders(*leaders)) != 1:
        time.sleep(0.02)
    return _leaders(*leaders)


def _terminate_leader_sessions(state: PgState) -> int:
    with psycopg.connect(state.url, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'statehub-leader' AND datname = current_database() "
            "AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid::bigint = %s AND objid::bigint = %s)",
            (LEADER_LOCK >> 32, LEADER_LOCK & 0xFFFFFFFF),
        ).fetchone()
    return int(row[0]) if row else 0


def test_the_files_backend_always_leads_and_starts_nothing() -> None:
    leader = Leader(None)
    leader.start()
    assert leader.is_leader
    status = leader.status()
    assert (status.backend, status.leader, status.terms) == ("files", True, 1)
    leader.stop()
    assert leader.is_leader  # one process per data dir: nobody else could take over


def test_a_retry_interval_out_of_bounds_is_refused() -> None:
    with pytest.raises(ValueError, match="retry_s"):
        Leader(None, retry_s=0)


@pytest.mark.postgres
def test_only_one_of_three_leads_and_stopping_it_hands_over(postgres_database: str) -> None:
    state = PgState(postgres_database)
    leaders = [Leader(state, retry_s=RETRY_S) for _ in range(3)]
    heard: list[tuple[int, bool]] = []
    for number, leader in enumerate(leaders):
        leader.on_change.append(lambda leading, n=number: heard.append((n, leading)))
        leader.start()
    try:
        first = _settle(*leaders)
        assert len(first) == 1
        time.sleep(3 * RETRY_S)  # the others keep trying, and keep failing
        assert _leaders(*leaders) == first
        assert first[0].status().leader
        others = [leader for leader in leaders if leader is not first[0]]
        assert all("another process holds" in leader.status().detail for leader in others)

        first[0].stop()  # a clean stop gives the lock up: another takes it within the retry interval
        started = time.monotonic()
        second = _settle(*others, within=RETRY_S * 3 + 1)
        assert len(second) == 1
        assert time.monotonic() - started < RETRY_S * 3 + 1
        assert not first[0].is_leader
        gone = leaders.index(first[0])
        assert (gone, True) in heard
        assert (gone, False) in heard
        assert heard.index((gone, False)) > heard.index((gone, True))
    finally:
        for leader in leaders:
            leader.stop()


@pytest.mark.postgres
def test_a_killed_session_ends_leadership_at_once_and_another_takes_it(postgres_database: str) -> None:
    state = PgState(postgres_database)
    leaders = [Leader(state, retry_s=RETRY_S), Leader(state, retry_s=RETRY_S)]
    lost_at: list[float] = []
    for leader in leaders:
        leader.on_change.append(lambda leading: None if leading else lost_at.append(time.monotonic()))
        leader.start()
    try:
        (old,) = _settle(*leaders)
        (other,) = [leader for leader in leaders if leader is not old]
        killed = time.monotonic()
        assert _terminate_leader_sessions(state) == 1
        assert old.wait(leading=False, timeout=RETRY_S + 1)  # noticed from the socket, not a timer
        assert lost_at
        assert lost_at[0] - killed < RETRY_S + 1
        assert old.status().last_error is not None
        assert _settle(*leaders, within=3 * RETRY_S + 1)  # one of them leads again
        (new,) = _leaders(*leaders)
        # the old leader's session went first, so the other's next try (or the old one's
        # reconnection) wins: never both
        time.sleep(3 * RETRY_S)
        assert _leaders(*leaders) == [new]
        assert new.status().since is not None
        assert other.status().terms + old.status().terms == 2
    finally:
        for leader in leaders:
            leader.stop()


@pytest.mark.postgres
def test_a_sigkilled_process_frees_the_lock_for_this_one(postgres_database: str) -> None:
    state = PgState(postgres_database)
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from sync._durable_pg import PgState
                from sync.leader import Leader
                leader = Leader(PgState({state.url!r}), retry_s={RETRY_S})
                leader.start()
                assert leader.wait(True, 20)
                print("leading", flush=True)
                time.sleep(600)
                """
            ),
        ],
        stdout=subprocess.PIPE,
    )
    here = Leader(state, retry_s=RETRY_S)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"leading"
        here.start()
        time.sleep(3 * RETRY_S)
        assert not here.is_leader
        child.kill()
        child.wait(10)
        killed = time.monotonic()
        assert here.wait(leading=True, timeout=RETRY_S + 2)
        assert time.monotonic() - killed < RETRY_S + 2
    finally:
        child.kill()
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
        here.stop()


def test_an_unreachable_database_is_followed_and_said() -> None:
    leader = Leader(PgState("postgresql://postgres@127.0.0.1:1/nowhere"), retry_s=RETRY_S)
    leader.start()
    try:
        deadline = time.monotonic() + 5
        while leader.status().last_error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        status = leader.status()
        assert not status.leader
        assert status.last_error is not None
        assert "nowhere" in status.last_error
        assert "cannot reach" in status.detail
    finally:
        leader.stop()


@pytest.mark.postgres
def test_only_the_leaders_relay_sends(postgres_database: str, tmp_path: Path) -> None:
    """A follower's relay step sends nothing and leaves the queue as it was; the leader's tries (here
    an upstream that refuses connections, so its status says so); after a hand-over the other sends."""
    state = PgState(postgres_database)
    first, second = Leader(state, retry_s=RETRY_S), Leader(state, retry_s=RETRY_S)
    first.start()
    assert first.wait(True, 10)
    second.start()
    path = tmp_path / "buffer.sqlite3"
    buffer = WriteBuffer(path)
    queue = RelayQueue(path)
    buffer.append([_submission("k1")])
    closed = f"http://127.0.0.1:{_closed_port()}"
    following = Relay(queue, closed, TokenSource("t"), leader=second, cap=0.5)
    leading = Relay(queue, closed, TokenSource("t"), leader=first, cap=0.5)
    try:
        assert following.step() == following.poll
        assert queue.status().reachable is None
        assert [item.key for item in queue.batch(RelayState.QUEUED, 10)] == []  # not even enqueued
        leading.step()
        assert queue.status().reachable is False
        assert [item.key for item in queue.batch(RelayState.QUEUED, 10)] == ["k1"]
        queue.set_status(reachable=None)
        first.stop()
        assert second.wait(True, 3 * RETRY_S + 1)
        following.step()
        assert queue.status().reachable is False
    finally:
        following._client.close()
        leading._client.close()
        first.stop()
        second.stop()
        queue.close()
        buffer.close()


def _submission(key: str) -> Submission:
    payload = {"key": key, "kind": "progress.note", "note": "n", "actor": "agt-codex"}
    event = payload | {"repo": "local-slug", "at": "2026-07-03T22:29:55Z"}
    return Submission(key, "progress.note", "local-slug", payload, event, "CUST-WP-0054", "T02")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
