"""The token contract: the Datalog fact names a token carries and the ones the hub supplies.

Anyone holding the root private key can mint a token the hub accepts, with any
Biscuit library, by following this contract (docs/deployment.md, "Tokens"):

Authority block (signed with the root key)

    actor("agt-codex");          exactly one: who acts; an event's actor must equal it, and both
                                 follow one rule (``ACTOR``: 1 to 128 of letters, digits, . _ @ + -)
    right("write");              read | write | edit | admin; each includes the ones before it
    check if time($t), $t <= 2026-11-24T08:00:00Z;                  optional expiry
    check if operation("read") or repo($r), ["ops"].contains($r);   optional repo scope

Attenuation blocks (appended by anyone, offline): checks only. Facts in them are
ignored, so a block can narrow a token but never widen it.

    check if operation($op), ["read", "write"].contains($op);

Facts the hub supplies for every request

    time(<now, UTC>)             the current time, timezone-aware
    operation("write")           the right this request needs
    repo("ops")                  the repo the request acts on, when it names one

and its one policy: allow if the authority block's right ranks at or above the
operation (``rank`` facts below), with every check of every block passing.
"""

from __future__ import annotations

from workplans.events import ACTOR, ACTOR_RULE, is_actor

__all__ = [
    "ACTOR",
    "ACTOR_RULE",
    "AUTHORIZER_CODE",
    "RIGHTS",
    "includes",
    "is_actor",
    "rights_up_to",
]

RIGHTS = ("read", "write", "edit", "admin")
"""Each right includes the ones before it: admin can edit, edit can write, write can read."""


AUTHORIZER_CODE = (
    "\n".join(f'rank("{right}", {level});' for level, right in enumerate(RIGHTS, start=1))
    + """
allow if actor($actor), right($right), operation($op), rank($right, $have), rank($op, $need), $have >= $need;
"""
)


def includes(held: str, needed: str) -> bool:
    return RIGHTS.index(held) >= RIGHTS.index(needed)


def rights_up_to(right: str) -> list[str]:
    return list(RIGHTS[: RIGHTS.index(right) + 1])
