"""Sending one event from a command: build it, submit it, apply it at once, say what happened.

Every command that changes files goes through ``send_event`` (``statehub event
...``, ``statehub fleet promote | place | set-state | gate | set-role``). The
event goes into the same write buffer a running server uses, with the rules
``POST /events`` applies, and is applied at once unless another process holds
the applier lock (ADR-007); then that process applies it within a second.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from statehub.auth.event_policy import LOCAL_COMMAND
from statehub.cli._context import open_desk
from statehub.cli._output import print_json, say
from statehub.errors import Unprocessable
from statehub.events import EventDesk, new_event_key
from statehub.events.intake import default_actor
from sync.buffer import EventRecord, EventState

__all__ = ["APPLY_WAIT", "SentEvent", "send_event"]

APPLY_WAIT = 5.0
"""Seconds a command waits for another applier (a running server) before leaving the event to it."""


class SentEvent(EventRecord, frozen=True):
    """What a command that sends an event prints with ``--json``: the stored event, what intake
    said of it (accepted | duplicate) and whether this command applied it (False: a running hub will)."""

    result: str
    applied_here: bool


Body = Mapping[str, Any] | Callable[[EventDesk], Mapping[str, Any]]
"""The event's fields, or a function of the open desk that returns them (when building the
event must read the cache or the buffer: the next free task id, the fleet registry's repo)."""


def send_event(
    body: Body,
    *,
    actor: str | None,
    key: str | None,
    as_json: bool,
    refuse_rejected: bool = False,
) -> None:
    """Send one event as the local user and apply it in its repo.

    Fields that are None are left out; ``key`` and ``actor`` default to a fresh key and
    ``default_actor()``. ``refuse_rejected`` turns a rejection at apply time into exit 6
    (Unprocessable) with the reason, for commands whose callers must not read on.
    """
    with open_desk() as desk:
        fields = body(desk) if callable(body) else body
        event = {k: v for k, v in fields.items() if v is not None}
        event |= {"key": key or new_event_key(), "actor": actor or default_actor()}
        result = desk.submit(event, authorise=LOCAL_COMMAND)[0]
        stored = desk.buffer.get(event["key"])
        assert stored is not None  # submit stored it, or found it stored under this key
        applied = desk.apply_pending([stored.repo], timeout=APPLY_WAIT)
        record = desk.buffer.get(event["key"])
    assert record is not None
    rejected = record.state is EventState.REJECTED
    if as_json:
        print_json(
            SentEvent(
                **msgspec.structs.asdict(record), result=result.result, applied_here=applied is not None
            )
        )
    else:
        line = f"{result.result} {record.key} ({record.kind}): {record.state.value}"
        if record.commit:
            line += f" in commit {record.commit[:10]}"
        elif record.state is EventState.APPLIED:
            line += " (the file already said so; no commit)"
        if record.reason and not (rejected and refuse_rejected):
            line += f"; {record.reason}"
        if applied is None and record.state is EventState.PENDING:
            line += "; another hub process is applying, it will pick this up"
        say(line)
    if rejected and refuse_rejected:
        raise Unprocessable(f"the change was rejected when applied: {record.reason}")
