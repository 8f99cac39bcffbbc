"""What moves state between places: the durable write buffer (and later its relay and rooms)."""

from sync.applier_lock import ApplierLock
from sync.buffer import BufferedEvent, EventState, KeyConflict, Outcome, Submission, WriteBuffer, Writeback

__all__ = [
    "ApplierLock",
    "BufferedEvent",
    "EventState",
    "KeyConflict",
    "Outcome",
    "Submission",
    "WriteBuffer",
    "Writeback",
]
