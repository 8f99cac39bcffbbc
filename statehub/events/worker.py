"""The server's applier: a thread that applies pending events soon after they are accepted.

A thread rather than an asyncio task because every step (SQLite, file writes,
git) blocks. It wakes when the API accepts events, and polls once a second
for events a CLI command left in the shared buffer. Each repo is applied under
its own applier lock; a repo whose lock another process (a CLI command, a sweep,
another replica) holds is skipped, not waited for, and looked at again at the
next poll (canon/ADR-054).

A repo whose write-back fails is retried with backoff (``Applier.due``), not on
every wake-up; meanwhile its pending events, new ones too, carry the reason. With
forge sync on, a repo whose commits the forge has not taken is retried with
backoff too (``Forge.due``), even when no event waits for it.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from statehub.events.service import EventDesk

__all__ = ["ApplierWorker"]

log = logging.getLogger(__name__)


class ApplierWorker:
    def __init__(self, desk: EventDesk, poll: float = 1.0, gather: float = 0.02) -> None:
        self.desk = desk
        self.poll = poll
        self.gather = gather
        """After a wake-up, wait this long so a burst of requests lands in one pass."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="statehub-applier", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.desk.accepted.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            woke = self.desk.accepted.wait(self.poll)
            if self._stop.is_set():
                return
            if woke:
                self._stop.wait(self.gather)
            self.desk.accepted.clear()
            try:
                pending = self.desk.buffer.pending_repos()
                due = [slug for slug in pending if self.desk.applier.due(slug)]
                for slug in pending:
                    if slug not in due:
                        self.desk.applier.hold(slug)
                if (forge := self.desk.applier.forge) is not None:  # commits left unpushed (ADR-053)
                    due += [
                        slug for slug in forge.due() if slug not in pending and self.desk.applier.due(slug)
                    ]
                if due:  # a repo another process is applying is handed over (ADR-054)
                    self.desk.apply_pending(due, timeout=0)
            except Exception:  # the worker must outlive any one bad repo or file
                log.exception("applying pending events failed; retrying")
                self._stop.wait(self.poll)
