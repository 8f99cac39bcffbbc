"""``/sweeps``: start a consistency sweep in the background, follow it, list the recent ones.

``POST /sweeps`` answers 202 at once with the sweep (its ``id``, ``Location: /sweeps/{id}``);
the server's sweeper (``statehub.sweep.scheduler``) runs it. Sweeping pushes commits, so it
needs the ``admin`` right on every repo it names (all of them when it names none): a token
scoped to some repos sweeps those. A token scoped to some repos reads the sweeps' results of
those repos only, as it reads their diagnostics: they name work trees and remotes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.openapi.spec import Operation, RequestBody
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED

from statehub.api.deps import MAX_NAME, DeskDep
from statehub.api.errorshape import WRITE_STATUSES, error_responses
from statehub.auth import AUTHENTICATED, authorize, token_of
from statehub.auth.verify import token_scope
from statehub.errors import NotFound
from statehub.sweep import SweepReport, latest_sweep, totals_of
from statehub.sweep.scheduler import KEEP, SweepList, SweepRun

if TYPE_CHECKING:
    from statehub.auth.verify import VerifiedToken
    from statehub.hub import Hub
    from statehub.sweep.scheduler import Sweeper

__all__ = ["MAX_SWEEP_REPOS", "SweepController", "SweepRequest"]

MAX_SWEEP_REPOS = 1000
"""Repos one request may name."""


class SweepRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /sweeps``' body (optional); a field other than ``repos`` is 400 (a misspelt ``repo``
    would otherwise sweep every repo)."""

    repos: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=MAX_NAME)]], msgspec.Meta(max_length=MAX_SWEEP_REPOS)
    ] = []
    """Slugs to sweep (at most 1000); empty means every registered repo."""


SweepId = Annotated[
    str,
    PathParameter(
        pattern=r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$",
        max_length=25,
        description="A sweep's id, as POST /sweeps answered it (``20261201T161500Z-0a1b2c3d``).",
    ),
]
Limit = Annotated[
    int, QueryParameter(ge=1, le=KEEP, description=f"The newest this many sweeps (at most {KEEP}).")
]


@dataclass
class OptionalBody(Operation):
    """The operation of a route whose JSON body may be left out: Litestar marks every body required."""

    def __post_init__(self) -> None:
        if isinstance(self.request_body, RequestBody):
            self.request_body.required = False


def _sweeper(request: Request[Any, Any, Any]) -> Sweeper:
    sweeper: Sweeper = request.app.state.sweeper
    return sweeper


def _targets(hub: Hub, named: list[str]) -> list[str]:
    """The named repos (each registered, else 404; repeats once), or every registered one."""
    if not named:
        return [repo.slug for repo in hub.repos()]
    for slug in named:
        hub.repo(slug)
    return list(dict.fromkeys(named))


def _scope(token: VerifiedToken | None) -> set[str] | None:
    """The repos whose results ``token`` reads (None: all). The guard allowed it to read hub-wide,
    which a repo-scoped token may (ADR-016); it sees the results of the repos it is scoped to."""
    return None if token is None else token_scope(token)


def _shown(run: SweepRun, scope: set[str] | None) -> SweepRun:
    """``run`` as a token of ``scope`` may read it: its repos' targets and results only; the repo being
    swept and the error only when they name none of the others."""
    if scope is None or scope.issuperset(run.targets):
        return run
    repos = [r for r in run.repos if r.repo in scope]
    hidden = [t for t in run.targets if t not in scope]
    error = run.error
    if error is not None and any(slug in error for slug in hidden):  # it names a repo out of scope
        error = "the sweep stopped before its end; a token of every repo it sweeps reads why"
    return msgspec.structs.replace(
        run,
        targets=[t for t in run.targets if t in scope],
        sweeping=run.sweeping if run.sweeping in scope else None,
        repos=repos,
        totals=totals_of(repos),
        error=error,
    )


class SweepController(Controller):
    path = "/sweeps"
    tags = ["sweeps"]

    @post(
        "/",
        status_code=HTTP_202_ACCEPTED,
        sync_to_thread=True,
        opt=AUTHENTICATED,  # the right is checked here, per repo the body names
        responses=error_responses(404, 503, *WRITE_STATUSES),
        operation_class=OptionalBody,
    )
    def start_sweep(
        self, request: Request[Any, Any, Any], desk: DeskDep, data: JSONBody[SweepRequest | None] = None
    ) -> Response[SweepRun]:
        """Sweep in the background: 202 with the sweep to follow (``Location: /sweeps/{id}``).

        Body ``{"repos": [...]}`` (empty or left out: every registered repo); needs ``admin`` on
        each repo it names, or hub-wide when it names none. A request for repos a queued or
        running sweep has not reached yet joins that sweep and answers it (``requests`` counts
        them); 503 when 20 sweeps wait already.
        """
        named = data.repos if data else []
        token = token_of(request)
        if token is not None:
            scopes: list[str | None] = list(named) or [None]  # None: hub-wide
            for slug in scopes:
                authorize(token, "admin", slug)
        targets = _targets(desk.hub, named)
        run = _sweeper(request).request(targets, token.actor if token is not None else None)
        return Response(
            _shown(run, _scope(token)),
            status_code=HTTP_202_ACCEPTED,
            headers={"Location": f"/sweeps/{run.id}"},
        )

    @get("/", sync_to_thread=False, responses=error_responses())
    def list_sweeps(self, request: Request[Any, Any, Any], limit: Limit = 20) -> SweepList:
        """The schedule and the newest sweeps first, every replica's (the hub keeps the last 100)."""
        listed = _sweeper(request).recent(limit)
        scope = _scope(token_of(request))
        return msgspec.structs.replace(listed, sweeps=[_shown(run, scope) for run in listed.sweeps])

    @get("/{sweep_id:str}", sync_to_thread=False, responses=error_responses(404))
    def get_sweep(self, request: Request[Any, Any, Any], sweep_id: SweepId) -> SweepRun:
        """One sweep: state (queued, running, finished, failed), each swept repo's result, totals."""
        return _shown(_sweeper(request).get(sweep_id), _scope(token_of(request)))

    @get("/latest", sync_to_thread=True, responses=error_responses(404))
    def last_sweep(self, request: Request[Any, Any, Any], desk: DeskDep) -> SweepReport:
        """The last sweep's report, whoever ran it (the server, ``statehub sweep``); 404 before the first."""
        report = latest_sweep(desk.hub.settings)
        if report is None:
            raise NotFound("no sweep has run yet; POST /sweeps or run 'statehub sweep'")
        scope = _scope(token_of(request))
        if scope is None:
            return report
        repos = [r for r in report.repos if r.repo in scope]
        return msgspec.structs.replace(report, repos=repos, totals=totals_of(repos))
