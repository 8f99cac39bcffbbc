"""The hub's event desk: the write buffer, who may apply it, and the applier, opened together.

The server and every CLI command open the same buffer: its file in the data dir
(ADR-007), or on a fleet hub whose state is on PostgreSQL its tables in the state
schema, shared by every replica (canon/ADR-049). Whoever holds a repo's applier
lock applies that repo's events (canon/ADR-054): the server's worker thread takes
each repo's lock in turn and skips a repo whose lock another process holds (it
is applying there; the next pass looks again), a CLI command takes its repo's
lock briefly to apply its own event at once, and leaves the event to the server
(or another replica) when the lock is busy.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from statehub.cache import index_repo
from statehub.cache.derived import Scope, recompute_derived
from statehub.errors import NotFound
from statehub.events.intake import submit_events
from statehub.events.writeback import Applier, RepoApplied
from sync.applier_lock import applier_lock
from sync.buffer import EventResult, Said, WriteBuffer
from sync.errors import ApplierLockLost
from sync.leases import LeaseStore
from sync.relay_queue import RelayQueue

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import TracebackType

    from statehub.auth.event_policy import EventAuthoriser
    from statehub.hub import Hub
    from statehub.settings import Settings
    from sync._state_db import StateLocation

__all__ = ["EventDesk", "buffer_path"]

log = logging.getLogger(__name__)


BUFFER_FILE = "buffer.sqlite3"
APPLIER_LOCK_FILE = "applier.lock"


def buffer_path(settings: Settings) -> StateLocation:
    """Where the write buffer (with its relay queue and leases) lives: ``buffer.sqlite3`` in the data
    dir, never in the cache dir (a rebuild must not touch it), or the state schema
    (``statehub.state_stores.state_location``)."""
    from statehub.state_stores import state_location  # (it imports the rooms' store: pycrdt)

    return state_location(settings, BUFFER_FILE)


class EventDesk:
    """Open with ``with EventDesk(hub) as desk:``; leaving the block closes the buffer (not the hub)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        where = buffer_path(hub.settings)
        if not isinstance(where, Path):  # a hub moving to PostgreSQL: its buffer file moves in once
            from sync.buffer_move import move_buffer_file

            move_buffer_file(hub.settings.data_dir / BUFFER_FILE, where)
        self.buffer = WriteBuffer(where)
        from statehub.state_stores import state_location

        self.locks = applier_lock(state_location(hub.settings, APPLIER_LOCK_FILE))
        """One applier of a repo at a time in any process (or replica): ``sync.applier_lock``."""
        self.applier = Applier(hub, self.buffer, self.locks.check)
        self.accepted = threading.Event()
        """Set when events were accepted, so the worker wakes at once instead of at its next poll."""
        self.leases = LeaseStore(where)
        """Who holds which task until when (``statehub.claims``, ADR-032): the buffer file's lease table."""
        self.relay_queue = RelayQueue(where) if hub.settings.upstream else None
        """With an upstream, every event accepted from now on (here or by a CLI) is relayed."""
        self.on_accepted: list[Callable[[], None]] = []
        self.buffer.on_states.append(self._said)
        self.leases.on_states.append(self._said)
        if self.relay_queue is not None:
            self.relay_queue.on_states.append(self._said)

    def _said(self, said: list[Said]) -> None:
        """Event and claim states go to the hub's change log (``statehub.changes``, canon/ADR-038)."""
        from statehub.changes import Change

        self.hub.announce(
            [Change(s.type, s.data, s.repo, s.workplan, (s.actor,) if s.actor else ()) for s in said]
        )

    def close(self) -> None:
        if self.relay_queue is not None:
            self.relay_queue.close()
        self.leases.close()
        self.buffer.close()
        self.locks.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def known_repo(self, repo: str) -> None:
        """NotFound naming ``repo`` unless it is registered or the write buffer holds events for it:
        the rule of a ``repo`` filter on the event list (``GET /events?repo=``, ``statehub events
        --repo``). The buffer keeps events for a repo that is not (or no longer) registered,
        rejected ones included, and they must still be listed."""
        try:
            self.hub.repo(repo)
        except NotFound:
            if not self.buffer.list_events(repo=repo, limit=1, offset=0)[1]:
                raise

    def submit(self, body: Any, *, authorise: EventAuthoriser, each: bool = False) -> list[EventResult]:
        """Store events through intake (``submit_events``); ``authorise`` has no default, so every
        caller says who is asking: a token's ``event_authoriser``, ``OPEN_HUB`` or ``LOCAL_COMMAND``."""
        from statehub.claims import decide_relayed  # claims imports this package

        results = submit_events(
            self.hub,
            self.buffer,
            body,
            authorise=authorise,
            each=each,
            decide=lambda submissions: decide_relayed(self.leases, self.hub, submissions),
        )
        if (metrics := self.hub.metrics) is not None:
            for outcome in ("accepted", "duplicate", "rejected"):
                metrics.count_events(outcome, sum(r.result == outcome for r in results))
        if any(r.result == "accepted" for r in results):
            self.accepted.set()
            for callback in self.on_accepted:
                callback()
        return results

    def apply_pending(
        self, repos: Sequence[str] | None = None, timeout: float | None = None
    ) -> list[RepoApplied] | None:
        """Apply the pending events of ``repos`` (default: every repo with some), each repo under its
        own applier lock, waiting up to ``timeout`` seconds for it (None: for ever; 0: hand over at
        once). A repo whose lock another process held past that is skipped: the holder applies its
        events, or a later pass. The results of the repos applied here; None if some repo was
        skipped so (or its lock was lost, ``apply_locked``)."""
        targets = list(repos) if repos is not None else self.buffer.pending_repos()
        results: list[RepoApplied] = []
        skipped = False
        for slug in targets:
            if not self.locks.acquire(slug, timeout):
                skipped = True
                continue
            try:
                done = self.apply_locked([slug])
            finally:
                self.locks.release(slug)
            skipped = skipped or not done
            results += done
        return None if skipped else results

    def apply_locked(self, repos: Sequence[str]) -> list[RepoApplied]:
        """Apply the pending events of ``repos`` for a caller that holds each one's lock (the
        sweep; ``apply_pending``); the results. A repo whose lock was lost meanwhile
        (``ApplierLockLost``: its session ended) has no result: its pass stopped before anything
        more left the process, nothing of it is marked, and its events stay pending."""
        roots = {r.slug: r.path for r in self.hub.repos()}
        results = []
        for slug in repos:
            self.hub.changes.let_deliver()  # the fan-out first (ChangeLog.let_deliver)
            try:
                result = self._apply_repo(slug, roots)
                self.locks.check(slug)  # no event is marked by a replica that lost the lock
            except ApplierLockLost as lost:
                log.warning("write-back in %s stopped: %s", slug, lost)
                continue
            self._settle(result)
            results.append(result)
        return results

    def _apply_repo(self, slug: str, roots: dict[str, Path]) -> RepoApplied:
        """One repo's write-back and re-index (not yet marked: ``_settle``); a failure is the repo's
        waiting reason, never the end of the pass (ApplierLockLost is)."""
        try:
            # The hub's write lock, held from the first file written to the re-index that
            # records it: a CRDT save commits in these work trees too (two git commits at
            # once in one repo would fight over its index lock), and the file watcher, which
            # sees these very writes, finds them indexed already, with cause "event", and
            # reads nothing (canon/ADR-048).
            with self.hub.write_lock:
                started = time.perf_counter()
                result = self.applier.apply_repo(slug, roots.get(slug), reindex=False)
                if self.hub.metrics is not None:
                    self.hub.metrics.writeback_seconds.observe(time.perf_counter() - started)
                if result.changed and slug in roots:
                    self.hub.changes.let_deliver()
                    self._reindex([slug], roots)
        except ApplierLockLost:
            raise
        except Exception as error:  # one repo's git trouble must not hold up the others
            log.exception("write-back in %s failed", slug)
            reason = f"write-back failed, will retry: {type(error).__name__}: {error}"[:500]
            pending = self.buffer.pending(slug)
            self.buffer.wait([e.key for e in pending], reason)
            # (applied but the re-index failed: nothing of it is marked)
            return RepoApplied(slug, waiting=len(pending), reasons=[reason])
        return result

    def _settle(self, result: RepoApplied) -> None:
        """Mark the repo's events applied or rejected (``Applier.settle``), and count them."""
        applied, rejected = len(result.decided), len(result.refused)  # settle empties them
        self.applier.settle(result)
        if (metrics := self.hub.metrics) is not None:
            metrics.count_events("applied", applied)
            metrics.count_events("rejected", rejected)
            metrics.count_events("waited", result.waiting)

    def _reindex(self, slugs: list[str], roots: dict[str, Path]) -> None:
        """Re-index the repos a pass changed in one transaction; cross-file facts are derived once,
        where the changed files can reach (their merged ``Scope``, canon/ADR-003), not over the
        whole hub."""
        if not slugs:
            return
        with self.hub.write_lock:
            with self.hub.engine.begin() as conn:
                tracker = self.hub.tracker()
                reports = []
                scope = Scope()
                for slug in slugs:
                    self.hub.changes.let_deliver()
                    started = time.perf_counter()
                    reports.append(
                        index_repo(
                            conn,
                            slug,
                            roots[slug],
                            derive=False,
                            limits=self.hub.settings.file_limits,
                            before_change=tracker,
                        )
                    )
                    scope.merge(reports[-1].scope)
                    if self.hub.metrics is not None:
                        self.hub.metrics.index_seconds.labels(slug).observe(time.perf_counter() - started)
                self.hub.changes.let_deliver()
                recompute_derived(conn, scope)
                self.hub.changes.let_deliver()
                changes = self.hub.compare(conn, tracker.before, "event", reports)
            self.hub.announce(changes)
