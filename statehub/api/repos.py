"""Registration: ``/repos`` and ``/repos/{slug}``."""

from __future__ import annotations

import msgspec
from litestar import Controller, delete, get, post
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from statehub.answers import Page, Removed, with_freshness
from statehub.api.deps import HubDep, SlugPath
from statehub.api.errorshape import WRITE_STATUSES, error_responses
from statehub.cache import queries
from statehub.cache.answers import IndexedRepo, RepoDetail, RepoItem
from statehub.hub import sent_path

__all__ = ["RegisterRepo", "RepoController"]


class RegisterRepo(msgspec.Struct, frozen=True):
    """``POST /repos``' body."""

    path: str
    """The work tree's absolute path (or ``~/...``) on the hub's machine."""


class RepoController(Controller):
    path = "/repos"
    tags = ["repos"]

    @get("/", sync_to_thread=False, responses=error_responses())
    def list_repos(self, hub: HubDep) -> Page[RepoItem]:
        """Every registered repo by slug, with file errors and workplans counted."""
        with hub.reads.connect() as conn:
            page = queries.list_repos(conn)
        return with_freshness(page, hub.freshness())

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        sync_to_thread=True,
        responses=error_responses(409, 422, *WRITE_STATUSES),
    )
    def register(self, hub: HubDep, data: JSONBody[RegisterRepo]) -> IndexedRepo:
        """Register the git work tree at ``path`` and index it (``statehub.hub.sent_path`` checks the path).

        400 when the path is relative, cannot be looked up or is not a git work
        tree; 409 when its slug is another path's.
        """
        report = hub.register(sent_path(data.path))
        with hub.reads.connect() as conn:
            return queries.indexed_repo(conn, report)

    @get("/{slug:str}", sync_to_thread=False, responses=error_responses(404))
    def get_repo(self, hub: HubDep, slug: SlugPath) -> RepoDetail:
        """One repo: manifest fields, counts, every file error."""
        with hub.reads.connect() as conn:
            repo = queries.get_repo(conn, slug)
        return msgspec.structs.replace(repo, freshness=hub.freshness([slug]))

    @delete(
        "/{slug:str}",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        responses=error_responses(404, 409, *WRITE_STATUSES),
    )
    def remove(self, hub: HubDep, slug: SlugPath) -> Removed:
        """Unregister the repo and drop its cache rows; its files are untouched."""
        hub.remove(slug)
        return Removed(slug)

    @post(
        "/{slug:str}/refresh",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        responses=error_responses(404, *WRITE_STATUSES),
    )
    def refresh(self, hub: HubDep, slug: SlugPath) -> IndexedRepo:
        """Re-index the repo's files whose git blob sha changed."""
        report = hub.refresh(slug)[0]
        with hub.reads.connect() as conn:
            return queries.indexed_repo(conn, report)
