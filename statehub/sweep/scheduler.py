"""The server's sweeps: requested ones run in the background, scheduled ones every interval.

One thread (``statehub-sweeper``) runs the sweeps in the order they were asked
for, one at a time; each sweeps its repos one at a time holding the applier lock
(``statehub.sweep.run``), so no repo is ever swept twice at once. A request for
repos that a queued or running sweep has not reached yet joins that sweep and
gets its id (``requests`` counts them); any other request queues a new sweep,
at most :data:`MAX_QUEUED` waiting (then :class:`~statehub.errors.Unavailable`).

With an interval (``STATEHUB_SWEEP_INTERVAL``), the same thread queues a sweep
of every registered repo (those a waiting sweep has not reached yet are left to
it) after each wait of the interval times a random factor from ``1 - JITTER``
to ``1 + JITTER``, the first one too: hubs started together drift apart. The
wait is counted from when the previous scheduled sweep was queued, so a long
sweep is not followed by a burst of scheduled ones (they join the running one).

The hub keeps the last :data:`KEEP` sweeps (``GET /sweeps``): in memory while
they run here, and as records (:mod:`statehub.sweep.records`, in the data dir or
the PostgreSQL state schema) that every replica reads, so ``GET /sweeps/{id}``
answers on any replica and after a restart. With replicas on PostgreSQL only
the leader queues scheduled sweeps (:meth:`Sweeper._leads`, canon/ADR-052); a
sweep someone asks for runs on the replica asked (a request joins a sweep queued
on the same replica only). A record that cannot be written (the database does
not answer) is logged, never fails the sweep.
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import logging
import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import msgspec

from statehub.errors import NotFound, Unavailable
from statehub.sweep.run import RepoSweep, SweepTotals, new_sweep_id, sweep, totals_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from statehub.events import EventDesk
    from statehub.sweep.records import SweepRecords
    from sync.leader import Leader

__all__ = ["JITTER", "KEEP", "MAX_QUEUED", "Schedule", "SweepList", "SweepRun", "Sweeper"]

log = logging.getLogger(__name__)

JITTER = 0.1
"""Each scheduled wait is the interval times a factor drawn uniformly from 0.9 to 1.1."""
KEEP = 100
"""Sweeps kept to answer ``GET /sweeps`` and ``GET /sweeps/{id}``, the newest."""
MAX_QUEUED = 20
"""Sweeps waiting at most; one more request that cannot join one is refused with 503."""

SweepState = Literal["queued", "running", "finished", "failed"]
Trigger = Literal["request", "schedule"]


class SweepRun(msgspec.Struct, frozen=True, kw_only=True):
    """A sweep the server runs (``POST /sweeps``, ``GET /sweeps/{id}``); times UTC, to the second.

    ``state``: ``queued``, ``running``, ``finished`` (every target swept; ``totals.not_in_step``
    says how many need a person) or ``failed`` (stopped before the end: ``error`` says why).
    ``repos`` holds each swept repo's result as soon as it is done, in order; ``totals`` sums them.
    """

    id: str
    state: SweepState
    trigger: Trigger
    requested_by: str | None
    """The actor of the token that asked first (None: the schedule, or an open hub)."""
    requests: int
    """Requests this sweep answers: the first, and each that joined it."""
    targets: list[str]
    """The repos it sweeps, in order."""
    sweeping: str | None
    """The repo it is sweeping (or waiting for the applier lock to sweep) now."""
    queued_at: str
    started_at: str | None
    finished_at: str | None
    repos: list[RepoSweep]
    totals: SweepTotals
    error: str | None
    replica: str
    """The server process that runs it (``<host>:<pid>``, as ``hub.leader`` and diagnostics name it):
    every replica answers for every sweep (canon/ADR-052)."""


class Schedule(msgspec.Struct, frozen=True):
    """The schedule: ``interval_s`` None when off (``STATEHUB_SWEEP_INTERVAL``); ``next_at`` when
    the next scheduled sweep is queued (None when off or the hub is stopping)."""

    interval_s: float | None
    jitter: float
    next_at: str | None


class SweepList(msgspec.Struct, frozen=True):
    """``GET /sweeps``: the schedule and the newest sweeps first."""

    schedule: Schedule
    sweeps: list[SweepRun]


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Run:
    """A sweep as the scheduler tracks it (changed under the scheduler's lock only)."""

    id: str
    trigger: Trigger
    actor: str | None
    targets: list[str]
    replica: str
    queued_at: str = field(default_factory=_now)
    state: SweepState = "queued"
    requests: int = 1
    reached: set[str] = field(default_factory=set)
    sweeping: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    repos: list[RepoSweep] = field(default_factory=list)
    error: str | None = None

    def waiting(self) -> set[str]:
        """Targets it has not reached yet (none once it ended)."""
        if self.state not in ("queued", "running"):
            return set()
        return set(self.targets) - self.reached

    def answer(self) -> SweepRun:
        return SweepRun(
            id=self.id,
            state=self.state,
            trigger=self.trigger,
            requested_by=self.actor,
            requests=self.requests,
            targets=list(self.targets),
            sweeping=self.sweeping,
            queued_at=self.queued_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            repos=list(self.repos),
            totals=totals_of(self.repos),
            error=self.error,
            replica=self.replica,
        )


class Sweeper:
    """Open with ``start()``, close with ``stop()`` (the app's lifespan does both).

    ``interval_s`` None turns the schedule off; ``draw`` gives the jitter's random
    numbers from 0 to 1 (a test may fix it); ``leader`` decides which replica queues the
    scheduled sweeps (None: this process always does; canon/ADR-052); ``records`` keeps each
    sweep where every replica reads it (None: in this process's memory only).
    """

    def __init__(
        self,
        desk: EventDesk,
        interval_s: float | None,
        draw: Callable[[], float] = random.random,
        leader: Leader | None = None,
        records: SweepRecords | None = None,
    ) -> None:
        from sync.leader import replica_name

        self.desk = desk
        self.interval_s = interval_s
        self.leader = leader
        self.records = records
        self.replica = leader.replica if leader is not None else replica_name()
        self._draw = draw
        self._lock = threading.Condition()
        self._queue: collections.deque[_Run] = collections.deque()
        self._runs: collections.OrderedDict[str, _Run] = collections.OrderedDict()
        self._stopping = False
        self._next: float | None = None
        """When (``time.monotonic``) the next scheduled sweep is queued; None: off."""
        self._thread = threading.Thread(target=self._work, name="statehub-sweeper", daemon=True)

    def start(self) -> None:
        self._end_orphans()
        with self._lock:
            self._next = self._after_wait(time.monotonic())
        self._thread.start()

    def _end_orphans(self) -> None:
        """End as ``failed`` the records that a process of this host which is gone left queued or
        running (killed, or its container restarted); never a live process's."""
        if self.records is None:
            return
        host = self.replica.rpartition(":")[0]
        try:
            for _sweep_id, replica, data in self.records.unfinished():
                if not _gone(replica, host, self.replica):
                    continue
                run = msgspec.json.decode(data, type=SweepRun)
                ended = msgspec.structs.replace(
                    run,
                    state="failed",
                    sweeping=None,
                    finished_at=_now(),
                    error=run.error or "the server running this sweep stopped before it ended",
                )
                self.records.save(run.id, run.queued_at, "failed", self.replica, msgspec.json.encode(ended))
        except Exception:  # the records are a view: the sweeper runs without them
            log.exception("ending the sweep records of an earlier server failed")

    def _keep(self, run: _Run) -> None:
        """Write ``run``'s record (under the scheduler's lock, so a sweep's records are written in
        the order its states change); a failure is logged, never stops the sweep."""
        if self.records is None:
            return
        try:
            self.records.save(
                run.id, run.queued_at, run.state, self.replica, msgspec.json.encode(run.answer())
            )
        except Exception as error:  # noqa: BLE001 - a view of the sweep: it goes on, said in the log
            log.warning("writing the record of sweep %s failed: %s", run.id, error)

    def stop(self, timeout: float = 60) -> None:
        """Stop after the repo being swept (if any); every sweep not finished is ``failed``."""
        with self._lock:
            self._stopping = True
            self._next = None
            self._lock.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        with self._lock:
            for run in self._queue:
                self._end(run, "failed", "the hub stopped before this sweep began")
            self._queue.clear()

    def request(self, targets: list[str], actor: str | None) -> SweepRun:
        """Queue a sweep of ``targets`` (registered slugs, checked by the caller), or join one that
        has not reached any of them yet; Unavailable when :data:`MAX_QUEUED` wait already."""
        with self._lock:
            if self._stopping:
                raise Unavailable("the hub is stopping; ask again once it is back")
            run = self._joinable(targets)
            if run is not None:
                run.requests += 1
                self._keep(run)
                return run.answer()
            if len(self._queue) >= MAX_QUEUED:
                raise Unavailable(
                    f"{MAX_QUEUED} sweeps are waiting already; follow one of them (GET /sweeps) "
                    "or ask again once they ran"
                )
            return self._queue_run(targets, "request", actor).answer()

    def get(self, sweep_id: str) -> SweepRun:
        """The sweep: this process's own while it runs here, else its record (any replica's)."""
        with self._lock:
            run = self._runs.get(sweep_id)
            if run is not None:
                return run.answer()
        data = self.records.get(sweep_id) if self.records is not None else None
        if data is None:
            kept = "the hub keeps" if self.records is not None else "this server keeps, since it started,"
            raise NotFound(
                f"no sweep {sweep_id!r}: {kept} the last {KEEP} sweeps (GET /sweeps lists them); "
                "GET /sweeps/latest reads the last sweep's report"
            )
        return msgspec.json.decode(data, type=SweepRun)

    def recent(self, limit: int) -> SweepList:
        """The newest ``limit`` sweeps, newest first: this process's (as they are now) and the
        records of every replica's."""
        with self._lock:
            runs = [run.answer() for run in itertools.islice(reversed(self._runs.values()), limit)]
            schedule = self._schedule()
        if self.records is not None:
            mine = {run.id for run in runs}
            runs += [
                msgspec.json.decode(data, type=SweepRun)
                for sweep_id, _queued_at, data in self.records.newest(limit)
                if sweep_id not in mine
            ]
            runs.sort(key=lambda run: run.queued_at, reverse=True)  # stable: same second, as they were
        return SweepList(schedule=schedule, sweeps=runs[:limit])

    def _schedule(self) -> Schedule:
        next_at = None
        if self._next is not None:
            later = dt.timedelta(seconds=max(0.0, self._next - time.monotonic()))
            next_at = (dt.datetime.now(dt.UTC) + later).strftime("%Y-%m-%dT%H:%M:%SZ")
        return Schedule(interval_s=self.interval_s, jitter=JITTER, next_at=next_at)

    def _joinable(self, targets: list[str]) -> _Run | None:
        wanted = set(targets)
        if not wanted:
            return None
        for run in self._runs.values():
            if wanted <= run.waiting():
                return run
        return None

    def _registered(self) -> set[str]:
        return {repo.slug for repo in self.desk.hub.repos()}

    def _queue_run(self, targets: list[str], trigger: Trigger, actor: str | None) -> _Run:
        run = _Run(new_sweep_id(), trigger, actor, list(targets), self.replica)
        while run.id in self._runs:  # the same second and the same 8 hex digits: draw again
            run.id = new_sweep_id()
        self._queue.append(run)
        self._runs[run.id] = run
        self._keep(run)
        while len(self._runs) > KEEP:
            oldest = next(iter(self._runs.values()))
            if oldest.state in ("queued", "running"):
                break  # never forget a sweep someone may still follow (at most MAX_QUEUED + 1)
            self._runs.popitem(last=False)
        self._lock.notify_all()
        return run

    def _after_wait(self, now: float) -> float | None:
        if self.interval_s is None:
            return None
        return now + self.interval_s * (1 - JITTER + 2 * JITTER * self._draw())

    def _leads(self) -> bool:
        """Whether this process runs the schedule: always, while one process serves the hub; with
        replicas on PostgreSQL, the one holding the leader's advisory lock (canon/ADR-052). Every
        replica keeps its own jittered clock; a follower's tick queues nothing."""
        return self.leader is None or self.leader.is_leader

    def _tick(self) -> None:
        """Queue the scheduled sweep (under the lock): every registered repo not waiting already."""
        self._next = self._after_wait(time.monotonic())
        if not self._leads():
            return
        registered = sorted(self._registered())
        waiting: set[str] = set()
        for run in self._runs.values():
            waiting |= run.waiting()
        targets = [slug for slug in registered if slug not in waiting]
        if targets and len(self._queue) < MAX_QUEUED:
            self._queue_run(targets, "schedule", None)

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    due = self._next
                    if due is not None and time.monotonic() >= due:
                        try:
                            self._tick()
                        except Exception:  # an unreadable hub.toml: the next tick tries again
                            log.exception("queueing the scheduled sweep failed")
                        continue
                    self._lock.wait(None if due is None else max(0.0, due - time.monotonic()))
                if self._stopping:
                    return
                run = self._queue.popleft()
                run.state, run.started_at = "running", _now()
                self._keep(run)
            try:
                self._run(run)
            except Exception:  # the sweeper must outlive any one sweep
                log.exception("ending sweep %s failed", run.id)
                with self._lock:
                    self._end(run, "failed", "the sweep failed; the hub's log says why")

    def _run(self, run: _Run) -> None:
        started = time.monotonic()
        follower = _Following(self, run)
        try:
            sweep(self.desk, run.targets, sweep_id=run.id, follower=follower)
        except Exception as error:
            log.exception("sweep %s failed", run.id)
            failure: str | None = f"the sweep failed: {type(error).__name__}: {error}"[:500]
        else:
            failure = None
        with self._lock:
            run.sweeping = None
            done = {result.repo for result in run.repos}
            left = [slug for slug in run.targets if slug not in done]
            if failure is None and left:
                failure = f"the hub stopped before sweeping {', '.join(left)}"
            self._end(run, "failed" if failure else "finished", failure)
        if (metrics := self.desk.hub.metrics) is not None:
            metrics.count_sweep(run.state, time.monotonic() - started)

    def _end(self, run: _Run, state: SweepState, error: str | None) -> None:
        run.state, run.error, run.finished_at = state, error, _now()
        self._keep(run)


def _gone(replica: str, host: str, me: str) -> bool:
    """Whether the process named ``replica`` (``<host>:<pid>``) is known gone: on this ``host``, and
    either this very name (a starting process has run nothing yet: its pid was an earlier
    process's) or no process has that pid now."""
    name, _, pid = replica.rpartition(":")
    if name != host or not pid.isdigit():
        return False
    if replica == me:
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, another user's
        return False
    return False


class _Following:
    """Tells the scheduler what a running sweep reached and did; stops it when the hub stops."""

    def __init__(self, sweeper: Sweeper, run: _Run) -> None:
        self.sweeper = sweeper
        self.run = run

    def starting(self, slug: str) -> bool:
        with self.sweeper._lock:
            if self.sweeper._stopping:
                return False
            self.run.reached.add(slug)
            self.run.sweeping = slug
            self.sweeper._keep(self.run)
            return True

    def swept(self, result: RepoSweep) -> None:
        with self.sweeper._lock:
            self.run.repos.append(result)
            self.run.sweeping = None
            self.sweeper._keep(self.run)

    def stopping(self) -> bool:
        with self.sweeper._lock:
            return self.sweeper._stopping
