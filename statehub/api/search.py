"""``/search``: ranked full-text hits over workplans, tasks, Progress notes and canon (ADR-034)."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, get
from litestar.openapi.spec import Example
from litestar.params import FromQuery, QueryParameter

from statehub.answers import Page, with_freshness
from statehub.api.deps import PRINTABLE, HubDep, Limit, Offset, RepoFilter
from statehub.api.errorshape import error_responses
from statehub.cache.answers import SearchHit
from statehub.cache.search import MAX_QUERY_CHARS, search

__all__ = ["SearchController"]

Query = Annotated[
    str,
    QueryParameter(
        pattern=PRINTABLE,
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        description="Words that must all occur in a hit (case, accents and English endings folded); "
        "quotes and operators are ordinary separators.",
        examples=[Example(value="tunnel drain")],
    ),
]


class SearchController(Controller):
    path = "/search"
    tags = ["search"]

    @get("/", sync_to_thread=False, responses=error_responses(400, 404))
    def search(
        self,
        hub: HubDep,
        q: Query,
        repo: RepoFilter = None,
        kind: FromQuery[Literal["workplan", "task", "canon"] | None] = None,
        limit: Limit = 20,
        offset: Offset = 0,
    ) -> Page[SearchHit]:
        """Hits best first, each with a snippet; 400 for a ``q`` with no word or over 16 words.
        ``freshness`` says how current the cache is for the repos searched (``repo``, else all)."""
        with hub.reads.connect() as conn:
            page = search(conn, q, repo=repo, kind=kind, limit=limit, offset=offset)
        return with_freshness(page, hub.freshness([repo] if repo else None))
