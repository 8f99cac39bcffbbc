"""Index a repo's files into the cache: a full build, or a refresh of what changed.

A refresh stats every indexable file; only files whose stat identity (size,
mtime, ctime, inode) moved are read, and only those whose git blob sha differs
from the indexed one are parsed again (statehub.cache.reading). A file that
fails to parse is recorded as a file error and skipped.

A registered work tree that is missing (moved away, deleted, or no directory)
holds no files: its rows go, its repo row stays with no prefixes, and one file
error of origin ``work-tree`` at path ``.`` says so, until it is back (ADR-030).
That is what a rebuild finds too, so refresh and rebuild agree.

Trust boundary (ADR-022): files are read only through statehub.repofiles, so a
symbolic link at any level, a path leading outside the repo, a special file or
a file over its size limit is a file error and never read; a workplan whose id
belongs to another repo's prefixes (statehub.cache.prefixes) is a file error on
that file alone and gives no rows, so nothing served or written back can reach
it. When a repo's declared prefixes change, the claims of every other repo that
the change can affect are checked again in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, and_, delete, or_, select, update

from statehub.cache import fleet_index as fleet_index  # registers registry/fleet.toml and its tables
from statehub.cache.bulk import insert_rows
from statehub.cache.derived import Scope, recompute_derived
from statehub.cache.generation import bump_generation
from statehub.cache.indexed import forget_indexed, indexed_row, record_indexed
from statehub.cache.reading import (
    MISSING_TREE,
    Gathered,
    IndexReport,
    Pending,
    blob_sha,
    consider,
    declared_prefixes,
    gather_repo,
    missing_pending,
    missing_tree,
)
from statehub.cache.schema import CANON, FILE_ERRORS, META, REPOS, SOURCE_FILES, TASKS, WORKPLANS, metadata
from statehub.cache.sources import SOURCE_KINDS, scan_sources
from statehub.repofiles import FileLimits
from workplans import RepoManifest

__all__ = [
    "MISSING_TREE",
    "Gathered",
    "IndexReport",
    "blob_sha",
    "declared_prefixes",
    "gather_repo",
    "index_repo",
    "missing_tree",
    "remove_repo_rows",
    "write_gathered",
]

_DEFAULT_LIMITS = FileLimits()

BeforeChange = Callable[[Connection, str], None]
"""Called with the transaction and a repo slug just before the indexer changes that repo's rows
(once or more per repo): the change log reads the rows there (``statehub.changes.Tracker``)."""


def index_repo(
    conn: Connection,
    slug: str,
    root: Path,
    *,
    full: bool = False,
    derive: bool = True,
    empty: bool = False,
    limits: FileLimits = _DEFAULT_LIMITS,
    before_change: BeforeChange | None = None,
) -> IndexReport:
    """Bring the cache rows of one repo in line with its files, inside the caller's transaction.

    ``before_change(conn, slug)`` is called before any row of a repo changes (this one, or
    another whose claims a prefix change re-judges); a refresh that finds nothing to re-read
    does not call it.

    ``full`` re-parses every file; ``empty`` says the cache holds no rows of this
    repo (a rebuild just reset it), so there is nothing to look up or delete.
    ``limits`` bound what is read (ADR-022). When the repo's declared prefixes
    changed, every file of it is parsed again and other repos' claims the change
    can affect are re-indexed too (their ids and refs join ``report.scope``).
    """
    report = IndexReport(slug)
    bump_generation(conn)  # first: every cache writer takes this row's lock before any other
    stored = conn.execute(select(REPOS.c.slug, REPOS.c.prefixes)).all()
    declared = {row.slug: tuple(row.prefixes or ()) for row in stored if row.slug != slug}
    old_prefixes = next((tuple(row.prefixes or ()) for row in stored if row.slug == slug), None)
    gone = missing_tree(root)
    if gone is not None:
        if before_change is not None:
            before_change(conn, slug)
        return _index_missing(
            conn,
            report,
            root,
            gone,
            old_prefixes,
            derive=derive,
            empty=empty,
            limits=limits,
            before_change=before_change,
        )
    if not empty:  # back (or never gone): no note of it missing (by repo and path: indexed)
        conn.execute(
            delete(FILE_ERRORS).where(
                and_(
                    FILE_ERRORS.c.repo == slug,
                    FILE_ERRORS.c.path == ".",
                    FILE_ERRORS.c.origin == MISSING_TREE,
                )
            )
        )
    prefixes = declared_prefixes(root, limits)
    declared[slug] = prefixes
    if old_prefixes is not None and old_prefixes != prefixes:
        full = True  # this repo's own claims are judged anew
    full = full or empty
    scanned = scan_sources(root)
    report.files = len(scanned)
    known: dict[str, Any] = {}
    if not full:
        known = {
            row.path: row
            for row in conn.execute(
                select(
                    SOURCE_FILES.c.path,
                    SOURCE_FILES.c.kind,
                    SOURCE_FILES.c.sha,
                    SOURCE_FILES.c.mtime_ns,
                    SOURCE_FILES.c.size,
                    SOURCE_FILES.c.ctime_ns,
                    SOURCE_FILES.c.inode,
                ).where(SOURCE_FILES.c.repo == slug)
            )
        }
    pending = Pending(declared=declared, limits=limits)
    for path, stat in scanned.items():
        consider(pending, report, slug, root, path, stat, known.get(path), full)
    for path, row in known.items():
        if path not in scanned:
            pending.replaced[row.kind].append(path)
            report.removed += 1
    changing = full or any(pending.replaced.values()) or pending.errors or (old_prefixes or ()) != prefixes
    if before_change is not None and (changing or any(pending.rows.values())):
        before_change(conn, slug)
    if not empty:
        report.scope = _old_scope(conn, slug, None if full else pending.replaced)
    _write(conn, slug, pending, full, empty)
    _update_repo_row(conn, slug, root, pending, empty, prefixes)
    report.scope.workplan_ids.update(row["id"] for row in pending.rows.get(WORKPLANS.name, ()))
    report.scope.canon.update((slug, row["id"]) for row in pending.rows.get(CANON.name, ()))
    if (old_prefixes or ()) != prefixes:
        report.scope.merge(recheck_claims(conn, slug, old_prefixes or (), prefixes, limits, before_change))
    if derive:
        recompute_derived(conn, report.scope)
    record_indexed(conn, slug, root)
    return report


def _index_missing(
    conn: Connection,
    report: IndexReport,
    root: Path,
    why: str,
    old_prefixes: tuple[str, ...] | None,
    *,
    derive: bool,
    empty: bool,
    limits: FileLimits,
    before_change: BeforeChange | None = None,
) -> IndexReport:
    """A missing work tree: no rows, the repo row kept with no prefixes, one file error saying so."""
    slug = report.repo
    if not empty:
        report.scope = _old_scope(conn, slug, None)
        report.removed = len(
            conn.execute(select(SOURCE_FILES.c.path).where(SOURCE_FILES.c.repo == slug)).all()
        )
        remove_repo_rows(conn, slug, keep_repo_row=True)
    pending = missing_pending(report, why, limits)
    insert_rows(conn, FILE_ERRORS, pending.errors)
    _update_repo_row(conn, slug, root, pending, empty, ())
    if old_prefixes:
        report.scope.merge(recheck_claims(conn, slug, old_prefixes, (), limits, before_change))
    if derive:
        recompute_derived(conn, report.scope)
    record_indexed(conn, slug, root)
    return report


def write_gathered(
    conn: Connection, repos: Iterable[Gathered], progress: Callable[[str], None] | None = None
) -> list[IndexReport]:
    """Write the rows of ``repos`` into a cache a rebuild just emptied, inside its transaction, and
    give their reports: the rows ``index_repo(..., derive=False, empty=True)`` writes for each in
    turn, in the same order within each table. ``progress`` is called with each repo's slug.

    On SQLite each repo is written as it comes, so a rebuild writes the repos it gathered itself
    while its worker still gathers the rest (``statehub.cache.gathering``); on PostgreSQL, where a
    statement costs a round trip, every table's rows are written at the end in one bulk insert."""
    bump_generation(conn)
    each = conn.dialect.name == "sqlite"
    rows: dict[Table, list[dict[str, Any]]] = {}
    reports: list[IndexReport] = []
    for repo in repos:
        slug = repo.report.repo
        for batch in repo.batches:  # encoded by a worker for a SQLite cache (Gathered.encoded)
            conn.exec_driver_sql(batch.statement, batch.params)
        for name, table_rows in repo.rows.items():
            rows.setdefault(metadata.tables[name], []).extend(table_rows)
        rows.setdefault(SOURCE_FILES, []).extend(repo.sources)
        rows.setdefault(FILE_ERRORS, []).extend(repo.errors)
        manifest = repo.manifest or RepoManifest()
        repo_row = {
            "slug": slug,
            "path": str(repo.root),
            "title": manifest.title,
            "prefixes": list(repo.prefixes),
            "default_branch": manifest.default_branch,
        }
        rows.setdefault(REPOS, []).append(repo_row)
        rows.setdefault(META, []).append(indexed_row(slug, repo.commit))
        reports.append(repo.report)
        if each:
            _insert_all(conn, rows)
        if progress is not None:
            progress(slug)
    if not each:
        _guess_ready(rows.get(TASKS, ()))
    _insert_all(conn, rows)
    return reports


def _guess_ready(tasks: Iterable[dict[str, Any]]) -> None:
    """Set each of ``tasks`` (every task of a rebuild, before they are written) ``ready`` as
    ``statehub.cache.derived`` will find it unless a claim is duplicated or a cycle runs through it:
    not done or cancelled, and every dependency names a done task.

    A guess, not the answer: the full recompute after the load still judges every task and writes
    each flag it finds wrong (the tasks of a duplicated workplan or a cycle). On PostgreSQL a row it
    writes is a new row version, its stored ``tsvector`` worked out again and its dead version
    left for the index builds to skip: every ready task written ``False`` by the gathering (a third
    of the 74-repo corpus's) cost about 0.1 s of a rebuild that spends 0.8 s after gathering
    (ADR-047). SQLite writes each repo as it comes and keeps the recompute's own writes."""
    listed = tasks if isinstance(tasks, list) else list(tasks)
    done = {task["ref"] for task in listed if task["status"] == "done"}
    closed = ("done", "cancelled")
    for task in listed:
        task["ready"] = task["status"] not in closed and all(d in done for d in task["depends_on"])


def _insert_all(conn: Connection, rows: dict[Table, list[dict[str, Any]]]) -> None:
    """Insert and forget every table's rows (each table's in their order)."""
    for table, table_rows in rows.items():
        insert_rows(conn, table, table_rows)
    rows.clear()


def recheck_claims(
    conn: Connection,
    slug: str,
    old: tuple[str, ...],
    new: tuple[str, ...],
    limits: FileLimits = _DEFAULT_LIMITS,
    before_change: BeforeChange | None = None,
) -> Scope:
    """Re-index the files of other repos whose claims ``slug``'s prefix change (``old`` -> ``new``)
    can affect: files refused for their prefix, and workplans whose id starts with a changed prefix."""
    changed = set(old) ^ set(new)
    scope = Scope()
    if not changed:
        return scope
    affected: dict[str, set[str]] = {}
    refused = select(FILE_ERRORS.c.repo, FILE_ERRORS.c.path).where(
        and_(FILE_ERRORS.c.origin == "prefix", FILE_ERRORS.c.repo != slug)
    )
    claims = select(WORKPLANS.c.repo, WORKPLANS.c.path).where(
        and_(WORKPLANS.c.repo != slug, or_(*(WORKPLANS.c.id.like(f"{p}-%") for p in sorted(changed))))
    )
    for query in (refused, claims):
        for row in conn.execute(query):
            affected.setdefault(row.repo, set()).add(row.path)
    roots = {row.slug: row.path for row in conn.execute(select(REPOS.c.slug, REPOS.c.path))}
    for repo, paths in sorted(affected.items()):
        if repo not in roots or missing_tree(Path(roots[repo])) is not None:
            continue  # a missing work tree has no rows to judge (ADR-030)
        for chunk in _chunks(sorted(paths)):  # forget their stat: they are read and judged again
            conn.execute(
                delete(SOURCE_FILES).where(and_(SOURCE_FILES.c.repo == repo, SOURCE_FILES.c.path.in_(chunk)))
            )
        if before_change is not None:
            before_change(conn, repo)
        indexed = index_repo(
            conn, repo, Path(roots[repo]), derive=False, limits=limits, before_change=before_change
        )
        scope.merge(indexed.scope)
    return scope


def _old_scope(conn: Connection, slug: str, replaced: dict[str, list[str]] | None) -> Scope:
    """The ids and refs the rows about to be replaced hold (all of the repo's when ``replaced`` is None)."""
    scope = Scope()
    if replaced is None:
        chunks: list[list[str] | None] = [None]
    else:
        chunks = list(_chunks([p for paths in replaced.values() for p in paths]))
        if not chunks:
            return scope
    for chunk in chunks:

        def where(table: Table, chunk: list[str] | None = chunk) -> Any:
            repo = table.c.repo == slug
            return repo if chunk is None else and_(repo, table.c.path.in_(chunk))

        scope.workplan_ids.update(conn.execute(select(WORKPLANS.c.id).where(where(WORKPLANS))).scalars())
        scope.refs.update(conn.execute(select(TASKS.c.ref).where(where(TASKS))).scalars())
        scope.canon.update((slug, i) for i in conn.execute(select(CANON.c.id).where(where(CANON))).scalars())
    return scope


def _write(conn: Connection, slug: str, pending: Pending, full: bool, empty: bool) -> None:
    if empty:
        pass
    elif full:
        remove_repo_rows(conn, slug, keep_repo_row=True)
    else:
        changed = [p for paths in pending.replaced.values() for p in paths]
        for kind, paths in pending.replaced.items():
            for table in map(metadata.tables.__getitem__, SOURCE_KINDS[kind].tables):
                for chunk in _chunks(paths):
                    conn.execute(delete(table).where(and_(table.c.repo == slug, table.c.path.in_(chunk))))
        for chunk in _chunks(changed):
            conn.execute(  # both origins: a changed file's duplicate claims are re-derived
                delete(FILE_ERRORS).where(and_(FILE_ERRORS.c.repo == slug, FILE_ERRORS.c.path.in_(chunk)))
            )
            conn.execute(
                delete(SOURCE_FILES).where(and_(SOURCE_FILES.c.repo == slug, SOURCE_FILES.c.path.in_(chunk)))
            )
        touched = [s["path"] for s in pending.sources]
        for chunk in _chunks(touched):
            conn.execute(
                delete(SOURCE_FILES).where(and_(SOURCE_FILES.c.repo == slug, SOURCE_FILES.c.path.in_(chunk)))
            )
    for name, rows in pending.rows.items():
        insert_rows(conn, metadata.tables[name], rows)
    insert_rows(conn, SOURCE_FILES, pending.sources)
    insert_rows(conn, FILE_ERRORS, pending.errors)


def _update_repo_row(
    conn: Connection, slug: str, root: Path, pending: Pending, empty: bool, prefixes: tuple[str, ...]
) -> None:
    manifest = pending.manifest or RepoManifest()
    values = {
        "path": str(root),
        "title": manifest.title,
        "prefixes": list(prefixes),
        "default_branch": manifest.default_branch,
    }
    if empty or conn.execute(select(REPOS.c.slug).where(REPOS.c.slug == slug)).first() is None:
        conn.execute(REPOS.insert(), [{"slug": slug, **values}])
    elif pending.manifest_seen or "manifest" in pending.replaced:
        conn.execute(update(REPOS).where(REPOS.c.slug == slug).values(**values))
    else:
        conn.execute(
            update(REPOS).where(REPOS.c.slug == slug).values(path=str(root), prefixes=list(prefixes))
        )


def remove_repo_rows(
    conn: Connection, slug: str, *, keep_repo_row: bool = False, limits: FileLimits = _DEFAULT_LIMITS
) -> None:
    """Drop a repo's rows; dropping its repo row too frees its prefixes, so the claims of
    other repos they held off are judged again (recheck_claims)."""
    tables = {metadata.tables[name] for kind in SOURCE_KINDS.values() for name in kind.tables} | {
        SOURCE_FILES,
        FILE_ERRORS,
    }
    bump_generation(conn)
    for table in tables:
        conn.execute(delete(table).where(table.c.repo == slug))
    if not keep_repo_row:
        forget_indexed(conn, slug)
        held = conn.execute(select(REPOS.c.prefixes).where(REPOS.c.slug == slug)).scalar()
        conn.execute(delete(REPOS).where(REPOS.c.slug == slug))
        if held:
            recheck_claims(conn, slug, tuple(held), (), limits)


def _chunks(items: list[str], size: int = 500) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
