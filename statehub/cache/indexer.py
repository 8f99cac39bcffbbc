"""Index a repo's files into the cache: a full build, or a refresh of what changed.

A refresh stats every indexable file; only files whose size or mtime moved are
read, and only those whose git blob sha differs from the indexed one are parsed
again. A file that fails to parse is recorded as a file error and skipped.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, and_, delete, select, update

from statehub.cache.bulk import insert_rows
from statehub.cache.derived import Scope, recompute_derived
from statehub.cache.schema import CANON, FILE_ERRORS, REPOS, SOURCE_FILES, TASKS, WORKPLANS
from statehub.cache.sources import SOURCE_KINDS, ScannedFile, scan_sources
from workplans import FileProblem, FormatError, RepoManifest, parse_manifest

__all__ = ["IndexReport", "blob_sha", "index_repo", "remove_repo_rows"]


def blob_sha(data: bytes) -> str:
    """The sha git gives this content as a blob; equals the index's sha for a clean file."""
    digest = hashlib.sha1(b"blob %d\0" % len(data))
    digest.update(data)
    return digest.hexdigest()


@dataclass(slots=True)
class IndexReport:
    repo: str
    files: int = 0
    parsed: int = 0
    removed: int = 0
    errors: list[FileProblem] = field(default_factory=list)
    scope: Scope = field(default_factory=Scope)
    """What the changed files can affect beyond themselves (see derived.Scope)."""


@dataclass(slots=True)
class _Pending:
    """Rows gathered for one repo before they are written in one go."""

    rows: dict[Table, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    sources: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    replaced: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    """kind -> paths whose old rows must go."""
    manifest: RepoManifest | None = None
    manifest_seen: bool = False


def index_repo(
    conn: Connection,
    slug: str,
    root: Path,
    *,
    full: bool = False,
    derive: bool = True,
    empty: bool = False,
) -> IndexReport:
    """Bring the cache rows of one repo in line with its files, inside the caller's transaction.

    ``full`` re-parses every file; ``empty`` says the cache holds no rows of this
    repo (a rebuild just reset it), so there is nothing to look up or delete.
    """
    full = full or empty
    report = IndexReport(slug)
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
                ).where(SOURCE_FILES.c.repo == slug)
            )
        }
    pending = _Pending()
    for path, stat in scanned.items():
        _consider(pending, report, slug, root, path, stat, known.get(path), full)
    for path, row in known.items():
        if path not in scanned:
            pending.replaced[row.kind].append(path)
            report.removed += 1
    if not empty:
        report.scope = _old_scope(conn, slug, None if full else pending.replaced)
    _write(conn, slug, pending, full, empty)
    _update_repo_row(conn, slug, root, pending, empty)
    report.scope.workplan_ids.update(row["id"] for row in pending.rows.get(WORKPLANS, ()))
    report.scope.canon.update((slug, row["id"]) for row in pending.rows.get(CANON, ()))
    if derive:
        recompute_derived(conn, report.scope)
    return report


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


def _consider(
    pending: _Pending,
    report: IndexReport,
    slug: str,
    root: Path,
    path: str,
    stat: ScannedFile,
    known: Any,
    full: bool,
) -> None:
    if known is not None and known.mtime_ns == stat.mtime_ns and known.size == stat.size:
        return
    try:
        data = (root / path).read_bytes()
    except OSError as error:
        pending.replaced[stat.kind].append(path)
        _problem(pending, report, slug, FileProblem(path, None, f"cannot read file: {error.strerror}"))
        return
    sha = blob_sha(data)
    source = {
        "repo": slug,
        "path": path,
        "kind": stat.kind,
        "sha": sha,
        "mtime_ns": stat.mtime_ns,
        "size": stat.size,
    }
    if known is not None and known.sha == sha:
        pending.sources.append(source)  # touched but unchanged: remember the new stat only
        return
    pending.sources.append(source)
    if not full:
        pending.replaced[stat.kind].append(path)
    report.parsed += 1
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        _problem(
            pending,
            report,
            slug,
            FileProblem(path, None, f"file is not valid UTF-8 (byte {error.start})"),
        )
        return
    try:
        for table, rows in SOURCE_KINDS[stat.kind].rows(slug, path, text).items():
            pending.rows[table].extend(rows)
        if stat.kind == "manifest":
            pending.manifest_seen = True
            pending.manifest = parse_manifest(text, path)
    except FormatError as error:
        if stat.kind == "manifest":
            pending.manifest_seen = True
        for problem in error.problems:
            _problem(pending, report, slug, problem)


def _problem(pending: _Pending, report: IndexReport, slug: str, problem: FileProblem) -> None:
    report.errors.append(problem)
    pending.errors.append(
        {
            "repo": slug,
            "path": problem.path,
            "line": problem.line,
            "message": problem.message,
            "origin": "parse",
        }
    )


def _write(conn: Connection, slug: str, pending: _Pending, full: bool, empty: bool) -> None:
    if empty:
        pass
    elif full:
        remove_repo_rows(conn, slug, keep_repo_row=True)
    else:
        changed = [p for paths in pending.replaced.values() for p in paths]
        for kind, paths in pending.replaced.items():
            for table in SOURCE_KINDS[kind].tables:
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
    for table, rows in pending.rows.items():
        insert_rows(conn, table, rows)
    insert_rows(conn, SOURCE_FILES, pending.sources)
    insert_rows(conn, FILE_ERRORS, pending.errors)


def _update_repo_row(conn: Connection, slug: str, root: Path, pending: _Pending, empty: bool) -> None:
    manifest = pending.manifest or RepoManifest()
    values = {
        "path": str(root),
        "title": manifest.title,
        "prefixes": list(manifest.prefixes),
        "default_branch": manifest.default_branch,
    }
    if empty or conn.execute(select(REPOS.c.slug).where(REPOS.c.slug == slug)).first() is None:
        conn.execute(REPOS.insert(), [{"slug": slug, **values}])
    elif pending.manifest_seen or "manifest" in pending.replaced:
        conn.execute(update(REPOS).where(REPOS.c.slug == slug).values(**values))
    else:
        conn.execute(update(REPOS).where(REPOS.c.slug == slug).values(path=str(root)))


def remove_repo_rows(conn: Connection, slug: str, *, keep_repo_row: bool = False) -> None:
    tables = {t for kind in SOURCE_KINDS.values() for t in kind.tables} | {
        SOURCE_FILES,
        FILE_ERRORS,
    }
    for table in tables:
        conn.execute(delete(table).where(table.c.repo == slug))
    if not keep_repo_row:
        conn.execute(delete(REPOS).where(REPOS.c.slug == slug))


def _chunks(items: list[str], size: int = 500) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
