"""How read commands open the cache: at once when it is current, through the hub when it is not.

``statehub tasks | workplans | canon | show | next | repos list`` used to open the
hub (SQLAlchemy, the indexer, the parsers) and reconcile every repo before
answering: 1-3 s a command. Now (canon/ADR-033):

1. read hub.toml (tomllib) and, for a SQLite cache, open its file with sqlite3;
2. compare each registered repo's indexable files with what the cache recorded
   of them (a stat walk, ``statehub.cache.freshness``);
3. if the cache holds exactly the registered repos and none changed, answer from
   the file (``statehub.cache.fastread``) -- the common case, with no SQLAlchemy;
4. otherwise open the hub, which reconciles as every read did before, then answer.

A PostgreSQL cache is always read through the hub (``HubReader``, the API's
queries). Either way the answer carries its :class:`statehub.answers.Freshness`.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from statehub.answers import RepoFreshness
from statehub.cache.fastread import open_sqlite_reader
from statehub.cache.freshness import freshness, read_index_state, repo_freshness, utc_now
from statehub.cli._context import load_settings, open_hub, setup_error
from statehub.hubfile import HubFile
from statehub.servermark import running_server
from statehub.settings import sqlite_path

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence
    from pathlib import Path

    from statehub.answers import Freshness, Page
    from statehub.cache.answers import (
        CanonDetail,
        CanonItem,
        RepoItem,
        TaskItem,
        WorkplanDetail,
        WorkplanItem,
    )
    from statehub.hub import Hub
    from workplans.enums import CanonKind, CanonStatus, TaskStatus, WorkplanStatus

__all__ = ["HubReader", "Reader", "Reading", "open_reader"]


class Reader(Protocol):
    """The questions read commands ask of the cache (``SqliteReader`` or ``HubReader``)."""

    def close(self) -> None: ...
    def execute(self, sql: str) -> Sequence[Sequence[Any]]: ...
    def list_repos(self) -> Page[RepoItem]: ...
    def list_tasks(
        self,
        *,
        repo: str | None = None,
        workplan: str | None = None,
        status: TaskStatus | None = None,
        owner: str | None = None,
        ready: bool | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[TaskItem]: ...
    def list_workplans(
        self,
        *,
        repo: str | None = None,
        status: WorkplanStatus | None = None,
        owner: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[WorkplanItem]: ...
    def list_canon(
        self,
        *,
        repo: str | None = None,
        kind: CanonKind | None = None,
        status: CanonStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[CanonItem]: ...
    def get_task(self, ref: str) -> TaskItem: ...
    def tasks_by_ref(self, refs: Sequence[str]) -> dict[str, TaskItem]: ...
    def dependents(self, ref: str) -> list[TaskItem]: ...
    def get_workplan(self, workplan_id: str) -> WorkplanDetail: ...
    def get_canon(self, doc_id: str, repo: str | None = None) -> CanonDetail: ...
    def next_candidates(
        self, actor: str, repo: str | None = None, limit: int = 1
    ) -> tuple[list[tuple[TaskItem, WorkplanStatus]], int]: ...


class HubReader:
    """The same questions through the hub's SQLAlchemy engine and ``statehub.cache.queries`` (a
    PostgreSQL cache); one connection for the command."""

    def __init__(self, hub: Hub) -> None:
        from statehub.cache import queries

        self.queries = queries
        self.conn = hub.engine.connect()

    def close(self) -> None:
        self.conn.close()

    def execute(self, sql: str) -> Sequence[Sequence[Any]]:
        return self.conn.exec_driver_sql(sql).all()

    def list_repos(self) -> Page[RepoItem]:
        return self.queries.list_repos(self.conn)

    def list_tasks(self, **filters: Any) -> Page[TaskItem]:
        return self.queries.list_tasks(self.conn, **filters)

    def list_workplans(self, **filters: Any) -> Page[WorkplanItem]:
        return self.queries.list_workplans(self.conn, **filters)

    def list_canon(self, **filters: Any) -> Page[CanonItem]:
        return self.queries.list_canon(self.conn, **filters)

    def get_task(self, ref: str) -> TaskItem:
        return self.queries.get_task(self.conn, ref)

    def tasks_by_ref(self, refs: Sequence[str]) -> dict[str, TaskItem]:
        return self.queries.tasks_by_ref(self.conn, refs)

    def dependents(self, ref: str) -> list[TaskItem]:
        return self.queries.dependents(self.conn, ref)

    def get_workplan(self, workplan_id: str) -> WorkplanDetail:
        return self.queries.get_workplan(self.conn, workplan_id)

    def get_canon(self, doc_id: str, repo: str | None = None) -> CanonDetail:
        return self.queries.get_canon(self.conn, doc_id, repo)

    def next_candidates(
        self, actor: str, repo: str | None = None, limit: int = 1
    ) -> tuple[list[tuple[TaskItem, WorkplanStatus]], int]:
        return self.queries.next_candidates(self.conn, actor, repo, limit)


@dataclass(frozen=True, slots=True)
class Reading:
    """An open reader and how fresh the cache is for each registered repo."""

    reader: Reader
    repos: dict[str, RepoFreshness]
    """By slug, every registered repo, in hub.toml's order."""
    watching: bool
    checked_at: str

    def freshness(self, slugs: Iterable[str] | None = None) -> Freshness:
        """The freshness of an answer drawn from ``slugs`` (None: every registered repo)."""
        wanted = list(self.repos) if slugs is None else list(dict.fromkeys(slugs))
        found = [self.repos[slug] for slug in wanted if slug in self.repos]
        return freshness(found, watching=self.watching, checked_at=self.checked_at)

    def require_repo(self, slug: str | None) -> None:
        """Raise :class:`~statehub.errors.NotFound` (exit 4, as the API's 404) when ``slug`` names no
        registered repo: a filter on an unknown repo is an error, not an empty list."""
        if slug is not None and slug not in self.repos:
            from statehub.errors import unknown_repo

            raise unknown_repo(slug)


def _survey(reader: Reader, registered: list[tuple[str, Path]]) -> tuple[dict[str, RepoFreshness], bool]:
    """Each registered repo's freshness, and whether the cache is in step: it holds no repo hub.toml
    does not list, every repo whose work tree is there is indexed and unchanged since, and every repo
    whose work tree is gone has had its rows dropped (``Hub.reconcile`` notes a missing tree so)."""
    state = read_index_state(reader.execute)
    found = {slug: repo_freshness(slug, root, state) for slug, root in registered}
    cached = {str(row[0]) for row in reader.execute("SELECT slug FROM repo")}
    in_step = cached <= found.keys() and all(
        r.changed_since is False
        or (r.changed_since is None and not state.files.get(slug))  # gone, and its rows dropped (ADR-030)
        for slug, r in found.items()
    )
    return found, in_step


@contextmanager
def open_reader() -> Iterator[Reading]:
    """Open the cache for a read command (see the module docstring); closed when the block ends."""
    settings = load_settings()
    try:
        registered = [(r.slug, r.path) for r in HubFile(settings.hub_file).repos()]
    except ValueError as error:  # an unreadable hub.toml
        raise setup_error(error) from None
    mark = running_server(settings)
    watching = mark is not None and mark.watch
    path = sqlite_path(settings.database_url)
    with ExitStack() as stack:
        reader: Reader | None = open_sqlite_reader(path) if path is not None else None
        if reader is not None:
            stack.callback(reader.close)
            repos, in_step = _survey(reader, registered)
            if in_step:
                yield Reading(reader, repos, watching, utc_now())
                return
            stack.close()
        hub = stack.enter_context(open_hub())  # reconciles: the cache catches up with the files
        reader = open_sqlite_reader(path) if path is not None else None
        if reader is None:
            reader = HubReader(hub)
        stack.callback(reader.close)
        repos, _ = _survey(reader, registered)
        yield Reading(reader, repos, watching, utc_now())
