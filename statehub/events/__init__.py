"""Events on the hub side: intake against the cache, write-back to files and git, the worker."""

from statehub.events.intake import InvalidEvents, new_event_key, submit_events
from statehub.events.service import EventDesk, buffer_path
from statehub.events.worker import ApplierWorker
from statehub.events.writeback import Applier, RepoApplied

__all__ = [
    "Applier",
    "ApplierWorker",
    "EventDesk",
    "InvalidEvents",
    "RepoApplied",
    "buffer_path",
    "new_event_key",
    "submit_events",
]
