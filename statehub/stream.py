"""The change stream's fan-out: one reader of the change log, a bounded queue per subscriber.

``GET /events/stream`` (``statehub.api.events``) subscribes; :class:`Broadcaster`
(one per server, started by the app's lifespan) reads new messages from the
change log (``statehub.changes.ChangeLog.after``) in id order, encodes each
once as an SSE frame, and offers it to every subscriber whose filter takes it
(:class:`StreamFilter`, applied before queueing). It reads when the log says
this process appended (at once, handed the messages), when a PostgreSQL log
notifies an append by another process, a replica or a CLI command (at once,
``ChangeLog.listen``; canon/ADR-050), and every ``stream_poll_s`` seconds in
any case (a CLI command's append to a SQLite log, or a notification lost while
the listener reconnected).

A subscriber's queue holds at most ``stream_queue`` frames. One more and the
subscriber is dropped: its queue is emptied, a final ``dropped`` message is
queued, and its stream ends after sending it (``statehub_stream_drops_total``
counts it). So a client that cannot keep up costs the hub a bounded amount of
memory, never holds up the others (offering never waits), and learns it must
reconnect with ``Last-Event-ID`` (canon/ADR-038).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from statehub.changes import TYPES

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from statehub.changes import ChangeLog, Stored
    from statehub.metrics import HubMetrics
    from sync._pg_listen import PgListener

__all__ = ["MAX_REPOS", "RUN", "Broadcaster", "StreamFilter", "Subscriber", "frame", "parse_types"]

log = logging.getLogger(__name__)

MAX_REPOS = 50
"""The most ``repo`` parameters one subscription may give."""
MAX_TYPES = 32
"""The most type prefixes one ``types`` parameter may list."""
_READ_BATCH = 1000
_SETTLE_TURNS = 50
RUN = 64
"""Messages offered in a row before the streams get an event loop turn (:meth:`Broadcaster._send`)."""


def parse_types(text: str | None) -> tuple[str, ...] | None:
    """``types=task,event.applied`` -> the prefixes; None (every type) when absent or empty.

    Each prefix must start at least one type (:data:`statehub.changes.TYPES`); ValueError
    names one that does not."""
    if text is None or not text.strip():
        return None
    prefixes = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    if len(prefixes) > MAX_TYPES:
        raise ValueError(f"types lists {len(prefixes)} prefixes; give at most {MAX_TYPES}")
    for prefix in prefixes:
        if not any(t.startswith(prefix) for t in TYPES):
            raise ValueError(
                f"types: {prefix[:100]!r} starts no message type; types are {', '.join(TYPES)} "
                "(give whole types or prefixes such as task, event, claim.)"
            )
    return prefixes


@dataclass(frozen=True, slots=True)
class StreamFilter:
    """Which messages a subscriber gets: every given condition holds (None: no condition).

    ``repos``: the message's repo is one of them; ``workplan``: its workplan is this one;
    ``owner``: it names this owner (a task's or workplan's owner before or after, a claim's
    holder, an event's actor); ``types``: its type starts with one of these prefixes;
    ``allowed``: the token's repo scope (None: every repo). A message with no repo (relay,
    fleet, sweep) passes ``allowed`` but not a ``repos`` condition.
    """

    repos: frozenset[str] | None = None
    workplan: str | None = None
    owner: str | None = None
    types: tuple[str, ...] | None = None
    allowed: Callable[[str], bool] | None = None

    def takes(self, message: Stored) -> bool:
        if self.types is not None and not message.type.startswith(self.types):
            return False
        if self.repos is not None and message.repo not in self.repos:
            return False
        if self.workplan is not None and message.workplan != self.workplan:
            return False
        if self.owner is not None and self.owner not in message.owners:
            return False
        return self.allowed is None or message.repo is None or self.allowed(message.repo)


def frame(kind: str, ident: int | None, data: str) -> bytes:
    """One SSE message: ``id``, ``event`` and one ``data`` line (the JSON holds no newline)."""
    head = f"id: {ident}\n" if ident is not None else ""
    return f"{head}event: {kind}\ndata: {data}\n\n".encode()


@dataclass(eq=False, slots=True)
class Subscriber:
    """One stream's queue of encoded frames and its filter."""

    filter: StreamFilter
    limit: int
    queue: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    dropped: bool = False
    last: int = 0
    """The id of the last message offered to it (queued or filtered out)."""
    floor: int = 0
    """Messages at or below this id are not queued (a replay from there sent them already)."""
    actor: str | None = None
    """The token's actor (None on an open hub): what ``STATEHUB_STREAM_PER_ACTOR`` counts."""

    def offer(self, message: Stored, encoded: bytes) -> bool:
        """Queue ``encoded`` if the filter takes ``message``; False when that overflowed the queue."""
        self.last = message.id
        if self.dropped or message.id <= self.floor or not self.filter.takes(message):
            return True
        if self.queue.qsize() >= self.limit:
            return False
        self.queue.put_nowait(encoded)
        return True

    def drop(self, reason: str) -> None:
        """Empty the queue and leave only the final ``dropped`` message in it."""
        self.dropped = True
        while not self.queue.empty():
            self.queue.get_nowait()
        data = json.dumps({"reason": reason, "last_id": self.last}, separators=(",", ":"))
        self.queue.put_nowait(frame("dropped", None, data))


class Broadcaster:
    """Reads the change log and fans each new message out to the subscribers (module docstring)."""

    def __init__(
        self,
        changes: ChangeLog,
        *,
        queue: int,
        poll_s: float,
        capacity: int,
        metrics: HubMetrics | None,
        per_actor: int | None = None,
    ) -> None:
        self.changes = changes
        self.queue = queue
        self.poll_s = poll_s
        self.capacity = capacity
        self.per_actor = per_actor or capacity
        """Streams one token actor may hold open at once (``STATEHUB_STREAM_PER_ACTOR``): one token
        holder cannot take every slot of ``capacity`` and lock the others out."""
        self.metrics = metrics
        self.subscribers: set[Subscriber] = set()
        self._by_actor: collections.Counter[str] = collections.Counter()
        self.last = changes.bounds()[1]
        """The newest id read from the log (what a live subscription starts after)."""
        self._wake: asyncio.Event | None = None
        self._pending: collections.deque[list[Stored]] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._woken = 0
        """How many times :meth:`wake` was called (from any thread)."""
        self._waiting: list[Subscriber] = []
        """Subscribers that keep up and were given a frame this round (see :meth:`_settle`)."""
        self._task: asyncio.Task[None] | None = None
        self._run_length = 0
        """Messages offered since the streams last had a turn (:meth:`_send`)."""
        self._elsewhere = False
        """Another process appended (a notification said so): read the log at the next round."""
        self._listener: PgListener | None = None
        self.notices = 0
        """Notifications that made this reader look at the log (another process's appends)."""

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.changes.on_append.append(self.wake)
        self._task = asyncio.create_task(self._run(), name="statehub-stream")
        self._listener = await asyncio.to_thread(self.changes.listen, self.notified)

    async def stop(self) -> None:
        if self._listener is not None:
            await asyncio.to_thread(self._listener.close)
        if self.wake in self.changes.on_append:
            self.changes.on_append.remove(self.wake)
        self.changes.sending(False)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.end_all("the hub is stopping; reconnect with Last-Event-ID")

    def end_all(self, reason: str) -> None:
        """End every stream after a final ``dropped`` message saying ``reason`` (on the event loop)."""
        for subscriber in list(self.subscribers):
            if not subscriber.dropped:
                subscriber.drop(reason)

    def wake(self, stored: list[Stored]) -> None:
        """Deliver what this process just appended (safe from any thread: the change log calls it
        after each append). The messages are handed over as stored, so the log is not read again;
        one that does not follow the last delivered id (another process appended in between) makes
        the reader read the log first."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            self._woken += 1
            if self.subscribers:
                self.changes.sending(True)  # until _settle saw them sent
            loop.call_soon_threadsafe(self._arrived, stored)

    def notified(self, newest: int | None) -> None:
        """Another process appended up to id ``newest`` (None: it may have; a listener that just
        (re)connected says so): read the log now, not at the next poll (safe from any thread: the
        change log's listener calls it). A notification of this process's own append, handed over
        already, is let go. As with :meth:`wake`, the write-back waits for the fan-out between its
        steps (canon/ADR-044): another replica's messages go out as promptly as this one's."""
        loop = self._loop
        if loop is None or loop.is_closed() or (newest is not None and newest <= self.last):
            return
        self._woken += 1
        if self.subscribers:
            self.changes.sending(True)  # until _settle saw them sent
        loop.call_soon_threadsafe(self._noticed)

    def _noticed(self) -> None:
        self._elsewhere = True
        if self._wake is not None:
            self._wake.set()

    def foreground(self) -> contextlib.AbstractContextManager[None]:
        """While a request accepts a change its subscribers wait for (``POST /events``): the
        write-back and re-indexes pause at their next step (``ChangeLog.foreground``), so the
        request and the fan-out of its ``event.accepted`` have the GIL to themselves. Nothing is
        held with no subscriber."""
        return self.changes.foreground() if self.subscribers else contextlib.nullcontext()

    def _arrived(self, stored: list[Stored]) -> None:
        self._pending.append(stored)
        if self._wake is not None:
            self._wake.set()

    def full(self, actor: str | None = None) -> bool:
        """Whether one more stream (for ``actor``, None on an open hub) would pass a limit."""
        if actor is not None and self._by_actor[actor] >= self.per_actor:
            return True
        return len(self.subscribers) >= self.capacity

    def subscribe(self, stream_filter: StreamFilter, actor: str | None = None) -> Subscriber:
        subscriber = Subscriber(stream_filter, self.queue, last=self.last, actor=actor)
        self.subscribers.add(subscriber)
        if actor is not None:
            self._by_actor[actor] += 1
        if self.metrics is not None:
            self.metrics.stream_subscribers.set(len(self.subscribers))
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber not in self.subscribers:
            return
        self.subscribers.discard(subscriber)
        if subscriber.actor is not None:
            self._by_actor[subscriber.actor] -= 1
            if self._by_actor[subscriber.actor] <= 0:
                del self._by_actor[subscriber.actor]
        if self.metrics is not None:
            self.metrics.stream_subscribers.set(len(self.subscribers))

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            woken = False
            with contextlib.suppress(TimeoutError):
                woken = await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()
            woken_before = self._woken
            elsewhere, self._elsewhere = self._elsewhere, False
            try:
                await self._handed_over()
                if elsewhere:
                    self.notices += 1
                if not woken or elsewhere:  # what other processes appended
                    await self._read_log()
            except Exception:  # a log that cannot be read now is read again at the next wake
                log.exception("reading the change log failed")
            await self._settle(woken_before)

    async def _settle(self, woken_before: int) -> None:
        """Let the streams send this round's frames, then tell the change log they are sent
        (``ChangeLog.delivered``, which the write-back waits for between its steps).

        The subscribers that keep up (their queue was empty when given a frame) are waited for,
        one event loop turn at a time, at most :data:`_SETTLE_TURNS` turns; a slow one is not.
        Messages handed over meanwhile end the wait: they are offered first (the next round waits
        for these subscribers too), not after up to 50 turns beside a busy write-back."""
        self._run_length = 0  # the streams get their turns here
        waiting, self._waiting = self._waiting, []
        for _ in range(_SETTLE_TURNS):
            waiting = [s for s in waiting if not s.queue.empty() and not s.dropped]
            if not waiting:
                break
            if self._pending:
                self._waiting = waiting  # the flag stays clear: the next round follows at once
                return
            await asyncio.sleep(0)
        if self._woken == woken_before and not self._pending:
            self.changes.sending(False)

    async def _handed_over(self) -> None:
        while self._pending:
            batch = self._pending.popleft()
            if batch[-1].id <= self.last:
                continue  # read from the log already
            if batch[0].id > self.last + 1:
                await self._read_log(until=batch[0].id - 1)  # another process's messages come first
            for message in batch:
                if message.id > self.last:
                    await self._send(message)

    async def _read_log(self, until: int | None = None) -> None:
        while True:
            found = await asyncio.to_thread(self.changes.after, self.last, _READ_BATCH)
            for message in found:
                if until is not None and message.id > until:
                    return
                await self._send(message)
            if len(found) < _READ_BATCH:
                return

    async def _send(self, message: Stored) -> None:
        self.publish(message)
        # Messages at hand are offered in a row, so each stream sends them as one chunk (a
        # write-back's task.changed, repo.indexed and event.applied ahead of the next
        # event.accepted: one pass through the response stack per subscriber, not one each);
        # every RUN messages (at most a quarter of a queue) the streams get a turn, so a burst
        # (a rebuild, a checkout) of thousands does not fill the queue of a subscriber that keeps up.
        self._run_length += 1
        if self._run_length >= min(RUN, max(1, self.queue // 4)):
            self._run_length = 0
            await asyncio.sleep(0)

    def publish(self, message: Stored) -> None:
        """Offer one message (read from the log, in id order) to every subscriber."""
        self.last = message.id
        encoded = frame(message.type, message.id, message.data)
        for subscriber in list(self.subscribers):
            if subscriber.queue.empty():
                self._waiting.append(subscriber)
            if not subscriber.offer(message, encoded):
                subscriber.drop(
                    f"more than {self.queue} messages waited for this subscriber; "
                    "reconnect with Last-Event-ID to replay what it missed"
                )
                if self.metrics is not None:
                    self.metrics.stream_drops.inc()


async def replay(
    changes: ChangeLog, since: int, until: int, stream_filter: StreamFilter
) -> AsyncIterator[bytes]:
    """The frames of the log's messages after ``since`` up to ``until`` that ``stream_filter`` takes."""
    last = since
    while last < until:
        found = await asyncio.to_thread(changes.after, last, _READ_BATCH)
        if not found:
            return
        for message in found:
            if message.id > until:
                return
            last = message.id
            if stream_filter.takes(message):
                yield frame(message.type, message.id, message.data)
