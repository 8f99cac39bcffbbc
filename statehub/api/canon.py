"""``/canon``: ADRs, standards, runbooks and notes of every repo, and one with its body."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.params import FromQuery, QueryParameter

from statehub.answers import Page, with_freshness
from statehub.api.deps import CanonIdPath, Descending, HubDep, Limit, Offset, RepoFilter
from statehub.api.errorshape import error_responses
from statehub.cache import queries
from statehub.cache.answers import CanonDetail, CanonItem
from workplans import CanonKind, CanonStatus

__all__ = ["CanonController"]

CanonSortQuery = Annotated[
    queries.CanonSort | None,
    QueryParameter(description="Sort by this field, then by id and repo (the default)."),
]


class CanonController(Controller):
    path = "/canon"
    tags = ["canon"]

    @get("/", sync_to_thread=False, responses=error_responses(404))
    def list_canon(
        self,
        hub: HubDep,
        repo: RepoFilter = None,
        kind: FromQuery[CanonKind | None] = None,
        status: FromQuery[CanonStatus | None] = None,
        sort: CanonSortQuery = None,
        desc: Descending = False,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Page[CanonItem]:
        """Canon documents by id, then repo (or by ``sort``); ``total`` counts every match."""
        with hub.reads.connect() as conn:
            page = queries.list_canon(
                conn,
                repo=repo,
                kind=kind,
                status=status,
                sort=sort or "id",
                descending=desc,
                limit=limit,
                offset=offset,
            )
        return with_freshness(page, hub.freshness([repo] if repo else None))

    @get("/{doc_id:str}", sync_to_thread=False, responses=error_responses(404, 409))
    def get_canon(self, hub: HubDep, doc_id: CanonIdPath, repo: RepoFilter = None) -> CanonDetail:
        """One document with its body; 409 when two repos use the id and ``?repo=`` does not say which."""
        with hub.reads.connect() as conn:
            doc = queries.get_canon(conn, doc_id, repo)
        return msgspec.structs.replace(doc, freshness=hub.freshness([doc.repo]))
