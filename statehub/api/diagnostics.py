"""``GET /state/diagnostics``: why is it stuck? What ``statehub doctor`` says, over HTTP.

Needs ``read``; a token scoped to some repos (``statehub token mint --repo``) sees
only those (``statehub.auth.verify.repos_in_scope``) and the hub's own part (watcher,
disk, relay); 403 for ``?repo=`` outside its scope. The diagnosis is
``statehub.diagnostics.diagnose``; the drafts come from the rooms and the watcher is
this server's.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from litestar import Controller, Request, get
from litestar.params import FromQuery

from statehub.api.deps import DeskDep, RepoFilter, RoomsDep
from statehub.api.errorshape import error_responses
from statehub.auth import token_of
from statehub.auth.verify import repos_in_scope
from statehub.diagnostics import Diagnostics, WatcherState, diagnose
from statehub.errors import Forbidden, unknown_repo
from statehub.settings import Settings
from statehub.watcher import RepoWatcher

__all__ = ["DiagnosticsController"]


def _watcher(watcher: RepoWatcher, settings: Settings) -> WatcherState:
    if not settings.watch:
        return WatcherState(False, f"this server (pid {os.getpid()}) does not watch files (STATEHUB_WATCH=0)")
    if watcher.alive:
        return WatcherState(True, f"this server (pid {os.getpid()}) watches the files")
    return WatcherState(False, f"the watcher of this server (pid {os.getpid()}) stopped; restart the server")


class DiagnosticsController(Controller):
    path = "/state"
    tags = ["health"]

    @get("/diagnostics", responses=error_responses(404))
    async def get_diagnostics(
        self,
        request: Request[Any, Any, Any],
        desk: DeskDep,
        rooms: RoomsDep,
        repo: RepoFilter = None,
        probe: FromQuery[bool] = True,
    ) -> Diagnostics:
        """Every problem of the hub and of each repo (or ``?repo=``), each with a one-line remedy.

        Per repo: git state, last index, file errors, events waiting and why, relay events
        parked, the last sweep, unsaved drafts; for the hub: watcher, disk, relay, and whether
        this server leads the run-once work (``hub.leader``, canon/ADR-052).
        ``status`` is ``degraded`` while a problem stops writes. ``probe=false`` does not ask
        the remotes whether they answer (``git ls-remote``, at most 10 s). 403 when a
        repo-scoped token names a repo outside its scope.
        """
        token = token_of(request)
        hub = desk.hub
        registered = [r.slug for r in hub.repos()]
        wanted = [repo] if repo is not None else registered
        scope = registered if token is None else repos_in_scope(token, registered)
        shown = [slug for slug in wanted if slug in scope]
        if repo is not None and repo not in registered:
            raise unknown_repo(repo)
        if repo is not None and not shown and token is not None:
            raise Forbidden(
                f"the token for {token.actor} is not scoped to repo {repo!r}, so it does not see its "
                "diagnostics; ask for a token minted with --repo " + repo
            )
        drafts = await rooms.drafts()
        watcher = _watcher(request.app.state.watcher, hub.settings)
        return await asyncio.to_thread(
            diagnose,
            desk,
            repos=None if shown == registered else shown,
            watcher=watcher,
            drafts=drafts,
            probe=probe,
            leader=request.app.state.leader.status(),
        )
