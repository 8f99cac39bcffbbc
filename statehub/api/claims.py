"""``/tasks/{ref}/claim | heartbeat | release``: take a task under a lease, keep it, give it back (ADR-032).

Handlers run in Litestar's worker threads (``sync_to_thread``): concurrent
claims meet in the lease store, which decides those that queue together in one
transaction (group commit, ``sync.leases``). Each handler authenticates through
the token guard (``PER_EVENT``: the route needs a token when the hub has
tokens) and authorises its one item with the token's event policy, as
``POST /events`` does each event: a token acts as its own actor, or as anyone
when it is admin on the task's repo. The rules and answers are
:mod:`statehub.claims`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK

from statehub import claims
from statehub.api.deps import DeskDep, TaskRefPath
from statehub.api.errorshape import WRITE_STATUSES, error_responses
from statehub.auth import PER_EVENT, token_of
from statehub.auth.event_policy import event_authoriser
from workplans.events import ACTOR
from workplans.models import TaskStatus

__all__ = ["ClaimBody", "ClaimController", "HeartbeatBody", "ReleaseBody"]

Actor = Annotated[str, msgspec.Meta(pattern=f"^{ACTOR.pattern}$", description="Who acts, e.g. agt-codex.")]
LeaseSeconds = Annotated[
    int, msgspec.Meta(ge=1, le=claims.MAX_LEASE_S, description="Seconds the lease lasts (1-86400).")
]


Note = Annotated[
    str,
    msgspec.Meta(
        max_length=2000,
        pattern=r"^(?![\s\S]*[\r\n])(?!.*-->).*\S.*$",
        description="One line for ## Progress: not blank, no '-->', at most 2000 characters.",
    ),
]


class ClaimBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /tasks/{ref}/claim``' body. A field it does not take is 400, not ignored (a
    mistyped ``lease`` or ``notes`` would otherwise be dropped without a word), as in ``POST
    /events`` and the MCP tools."""

    actor: Actor
    lease_s: LeaseSeconds = claims.DEFAULT_LEASE_S


class HeartbeatBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /tasks/{ref}/heartbeat``' body; ``lease_s`` left out: the lease's own length."""

    actor: Actor
    lease_s: LeaseSeconds | None = None


class ReleaseBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /tasks/{ref}/release``' body: the status the task gets (todo | done | blocked) and an
    optional note for ``## Progress``."""

    actor: Actor
    status: Literal["todo", "done", "blocked"]
    """What the task becomes (``workplans.events.RELEASE_STATUSES``)."""
    note: Note | None = None


class ClaimController(Controller):
    path = "/tasks"
    tags = ["claims"]

    @post(
        "/{ref:str}/claim",
        status_code=HTTP_200_OK,
        opt=PER_EVENT,
        sync_to_thread=True,
        responses=error_responses(404, 409, *WRITE_STATUSES),
    )
    def claim(
        self, request: Request[Any, Any, Any], desk: DeskDep, ref: TaskRefPath, data: JSONBody[ClaimBody]
    ) -> claims.Claim:
        """Claim the task for ``actor`` for ``lease_s`` seconds; the holder claiming again renews.

        200: the claim is yours until ``lease_expires_at`` (its ``task.claim``
        event, ``key``, goes to the file: owner := actor, status := in-progress).
        409: someone else holds it (who, until when), a dependency is open
        (which), the status is not todo, or the upstream refused this hub's claim;
        ``details.reason`` says which. 404: no such task.
        """
        authorise = event_authoriser(token_of(request))
        return claims.claim(desk, ref, data.actor, data.lease_s, authorise=authorise)

    @post(
        "/{ref:str}/heartbeat",
        status_code=HTTP_200_OK,
        opt=PER_EVENT,
        sync_to_thread=True,
        responses=error_responses(404, 409, *WRITE_STATUSES),
    )
    def heartbeat(
        self,
        request: Request[Any, Any, Any],
        desk: DeskDep,
        ref: TaskRefPath,
        data: JSONBody[HeartbeatBody],
    ) -> claims.Claim:
        """Extend the actor's live lease to now + ``lease_s`` (no event, no commit); 409 when the
        actor holds no live lease on the task."""
        authorise = event_authoriser(token_of(request))
        return claims.heartbeat(desk, ref, data.actor, data.lease_s, authorise=authorise)

    @post(
        "/{ref:str}/release",
        status_code=HTTP_200_OK,
        opt=PER_EVENT,
        sync_to_thread=True,
        responses=error_responses(404, 409, *WRITE_STATUSES),
    )
    def release(
        self, request: Request[Any, Any, Any], desk: DeskDep, ref: TaskRefPath, data: JSONBody[ReleaseBody]
    ) -> claims.Released:
        """End the actor's claim with a ``task.release`` event: the status given, the owner from
        before the claim, the note to Progress. 409 when the actor holds no live lease on it."""
        authorise = event_authoriser(token_of(request))
        return claims.release(desk, ref, data.actor, TaskStatus(data.status), data.note, authorise=authorise)

    @get("/{ref:str}/claim", sync_to_thread=True, responses=error_responses(404, 409))
    def claim_state(self, desk: DeskDep, ref: TaskRefPath) -> claims.ClaimState:
        """Who holds the task and until when, whether it is contested (a dev hub whose relayed claim
        the upstream refused), and whether a new claim would win now."""
        return claims.claim_state(desk, ref)
