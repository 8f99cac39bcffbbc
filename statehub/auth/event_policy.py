"""Who may store which event: the one policy every intake path asks, item by item (ADR-016, ADR-021, ADR-022).

Every way an event reaches the write buffer goes through
``statehub.events.intake.submit_events``, and that function takes an
``EventAuthoriser`` with no default: ``POST /events`` with and without
``?each=true``, resends of stored events, in-batch duplicates, a dev hub's
relayed batches, fleet events, and the CLI's ``statehub event`` and
``statehub fleet`` commands. It asks ``check(repo, actor, kind)`` for every
item (for a key already stored, also for the stored event) before anything is
stored or answered; one refusal refuses the whole request.

The policy for a token (``TokenAuthoriser``):

- ``fleet.machine.role`` (``ADMIN_KINDS``) changes what a machine may host and
  always needs ``admin`` on the event's repo;
- an event whose actor is the token's actor needs ``write`` on its repo;
- an event for another actor needs ``admin`` on its repo: a dev hub relays its
  people's events with their own actor (ADR-021).

Without a token nothing is checked, and the caller says why by passing one of
the two ``Trusted`` authorisers: ``OPEN_HUB`` (a hub configured without tokens,
which only listens on loopback) or ``LOCAL_COMMAND`` (a CLI command on the
hub's host, run by someone who can write the repos and the buffer file anyway).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol

from statehub.auth.verify import VerifiedToken, authorize
from statehub.errors import Forbidden, HubError

__all__ = [
    "ADMIN_KINDS",
    "LOCAL_COMMAND",
    "OPEN_HUB",
    "EventAuthoriser",
    "TokenAuthoriser",
    "Trusted",
    "event_authoriser",
]

ADMIN_KINDS = frozenset({"fleet.machine.role"})
"""Event kinds that change what a machine may host: they need the admin right, not only write."""


class EventAuthoriser(Protocol):
    """May the sender store an event of ``kind`` for ``repo`` as ``actor``?"""

    def check(self, repo: str, actor: str, kind: str) -> None:
        """Return if allowed; raise Unauthorized (401) or Forbidden (403) with the reason otherwise."""


@dataclass(frozen=True, slots=True)
class Trusted:
    """Allows every event. ``why`` says whose trust stands in for a token (shown in logs and reprs)."""

    why: str

    def check(self, repo: str, actor: str, kind: str) -> None:  # noqa: ARG002 - the EventPolicy protocol
        return None


OPEN_HUB = Trusted("an open hub: configured without tokens, it listens on a loopback address only")
LOCAL_COMMAND = Trusted("a command on the hub's host: whoever runs it can write the repos and the buffer")


@dataclass(slots=True)
class TokenAuthoriser:
    """The policy above for one verified token, judged at one moment (``now``, default: when made).

    Answers are remembered per (right, repo), so a 5,000-event batch costs one
    Biscuit authorisation per repo and right, not per event.
    """

    token: VerifiedToken
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    _seen: dict[tuple[str, str], HubError | None] = field(default_factory=dict, repr=False)

    def check(self, repo: str, actor: str, kind: str) -> None:
        if kind in ADMIN_KINDS:
            self._require("admin", repo)
            return
        if actor == self.token.actor:
            self._require("write", repo)
            return
        if self._refusal("admin", repo) is None:
            return  # an admin on the repo sends for anyone: a relaying dev hub (ADR-021)
        self._require("write", repo)  # say first what the token does not cover, if anything
        raise Forbidden(
            f"the event's actor {actor!r} is not this token's actor {self.token.actor!r}: send events as "
            f"{self.token.actor!r}, or use a token minted for {actor!r} (only an admin token on repo "
            f"{repo!r} may send events for others)"
        )

    def _require(self, right: str, repo: str) -> None:
        refusal = self._refusal(right, repo)
        if refusal is not None:
            raise refusal

    def _refusal(self, right: str, repo: str) -> HubError | None:
        if (right, repo) not in self._seen:
            try:
                authorize(self.token, right, repo, self.now)
                self._seen[(right, repo)] = None
            except HubError as error:
                self._seen[(right, repo)] = error
        return self._seen[(right, repo)]


def event_authoriser(token: VerifiedToken | None, now: dt.datetime | None = None) -> EventAuthoriser:
    """The authoriser for a request's token (``token_of``): None means the hub is open (``OPEN_HUB``)."""
    if token is None:
        return OPEN_HUB
    return TokenAuthoriser(token, now or dt.datetime.now(dt.UTC))
