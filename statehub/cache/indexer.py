"""Index a repo's files into the cache: a full build, or a refresh of what changed.

A refresh stats every indexable file; only files whose size or mtime moved are
read, and only those whose git blob sha differs from the indexed one are parsed
again. A file that fails to parse is recorded as a file error and skipped.

Trust boundary (ADR-022): files are read only through statehub.repofiles, so a
symbolic link at any level, a path leading outside the repo, a special file or
a file over its size limit is a file error and never read; a workplan whose id
belongs to another repo's prefixes (statehub.cache.prefixes) is a file error on
that file alone and gives no rows, so nothing served or written back can reach
it. When a repo's declared prefixes change, the claims of every other repo that
the change can affect are checked again in the same transaction.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, and_, delete, or_, select, update

from statehub.cache import fleet_index as fleet_index  # registers registry/fleet.toml and its tables
from statehub.cache.bulk import insert_rows
from statehub.cache.derived import Scope, recompute_derived
from statehub.cache.indexed import forget_indexed, record_indexed
from statehub.cache.prefixes import claim_problem
from statehub.cache.scan import ScannedFile, scan_sources
from statehub.cache.schema import CANON, FILE_ERRORS, REPOS, SOURCE_FILES, TASKS, WORKPLANS
from statehub.cache.sources import SOURCE_KINDS
from statehub.repofiles import FileLimits, RepoPathError, count_task_tables, read_repo_file
from workplans import MANIFEST_PATH, FileProblem, FormatError, RepoManifest, parse_manifest
from workplans._fields import KeyLines
from workplans.front_matter import split_front_matter

__all__ = ["IndexReport", "blob_sha", "declared_prefixes", "index_repo", "remove_repo_rows"]

REFUSED_SHA = "-"
"""The sha recorded for a path that was refused unread (a link, a special file, too large):
a later stat change brings it back for another look, and its removal clears its error."""

_DEFAULT_LIMITS = FileLimits()


def blob_sha(data: bytes) -> str:
    """The sha git gives this content as a blob; equals the index's sha for a clean file."""
    digest = hashlib.sha1(b"blob %d\0" % len(data), usedforsecurity=False)
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
    declared: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Every repo's declared prefixes, this repo's as its manifest says now (cache.prefixes)."""
    limits: FileLimits = _DEFAULT_LIMITS


def index_repo(
    conn: Connection,
    slug: str,
    root: Path,
    *,
    full: bool = False,
    derive: bool = True,
    empty: bool = False,
    limits: FileLimits = _DEFAULT_LIMITS,
) -> IndexReport:
    """Bring the cache rows of one repo in line with its files, inside the caller's transaction.

    ``full`` re-parses every file; ``empty`` says the cache holds no rows of this
    repo (a rebuild just reset it), so there is nothing to look up or delete.
    ``limits`` bound what is read (ADR-022). When the repo's declared prefixes
    changed, every file of it is parsed again and other repos' claims the change
    can affect are re-indexed too (their ids and refs join ``report.scope``).
    """
    report = IndexReport(slug)
    stored = conn.execute(select(REPOS.c.slug, REPOS.c.prefixes)).all()
    declared = {row.slug: tuple(row.prefixes or ()) for row in stored if row.slug != slug}
    old_prefixes = next((tuple(row.prefixes or ()) for row in stored if row.slug == slug), None)
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
                ).where(SOURCE_FILES.c.repo == slug)
            )
        }
    pending = _Pending(declared=declared, limits=limits)
    for path, stat in scanned.items():
        _consider(pending, report, slug, root, path, stat, known.get(path), full)
    for path, row in known.items():
        if path not in scanned:
            pending.replaced[row.kind].append(path)
            report.removed += 1
    if not empty:
        report.scope = _old_scope(conn, slug, None if full else pending.replaced)
    _write(conn, slug, pending, full, empty)
    _update_repo_row(conn, slug, root, pending, empty, prefixes)
    report.scope.workplan_ids.update(row["id"] for row in pending.rows.get(WORKPLANS, ()))
    report.scope.canon.update((slug, row["id"]) for row in pending.rows.get(CANON, ()))
    if (old_prefixes or ()) != prefixes:
        report.scope.merge(recheck_claims(conn, slug, old_prefixes or (), prefixes, limits))
    if derive:
        recompute_derived(conn, report.scope)
    record_indexed(conn, slug, root)
    return report


def declared_prefixes(root: Path, limits: FileLimits = _DEFAULT_LIMITS) -> tuple[str, ...]:
    """The prefixes ``root``'s manifest declares now; none when it is absent, refused or broken."""
    try:
        text = read_repo_file(root, MANIFEST_PATH, limits.manifest_bytes).decode("utf-8")
        return tuple(parse_manifest(text).prefixes)
    except (OSError, RepoPathError, UnicodeDecodeError, FormatError):
        return ()


def recheck_claims(
    conn: Connection,
    slug: str,
    old: tuple[str, ...],
    new: tuple[str, ...],
    limits: FileLimits = _DEFAULT_LIMITS,
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
        if repo not in roots or not Path(roots[repo]).is_dir():
            continue  # a work tree gone missing keeps its rows until it is back (Hub.reconcile)
        for chunk in _chunks(sorted(paths)):  # forget their stat: they are read and judged again
            conn.execute(
                delete(SOURCE_FILES).where(and_(SOURCE_FILES.c.repo == repo, SOURCE_FILES.c.path.in_(chunk)))
            )
        scope.merge(index_repo(conn, repo, Path(roots[repo]), derive=False, limits=limits).scope)
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
    if (
        known is not None
        and known.mtime_ns == stat.mtime_ns
        and known.size == stat.size
        and (known.sha == REFUSED_SHA) == (stat.error is not None)
    ):
        return
    source: dict[str, Any] = {"repo": slug, "path": path, "kind": stat.kind, "sha": REFUSED_SHA}
    source |= {"mtime_ns": stat.mtime_ns, "size": stat.size}
    if stat.error is not None:
        _refuse(pending, report, slug, source, RepoPathError(path, stat.error), full)
        return
    try:
        data = read_repo_file(root, path, pending.limits.bytes_for(stat.kind))
    except RepoPathError as error:
        _refuse(pending, report, slug, source, error, full)
        return
    except OSError as error:
        pending.replaced[stat.kind].append(path)
        _problem(pending, report, slug, FileProblem(path, None, f"cannot read file: {error.strerror}"))
        return
    sha = blob_sha(data)
    source["sha"] = sha
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
    max_tasks = pending.limits.workplan_tasks
    if stat.kind == "workplan" and (count := count_task_tables(text)) > max_tasks:
        _problem(pending, report, slug, _too_many(path, count, max_tasks))
        return
    try:
        rows = SOURCE_KINDS[stat.kind].rows(slug, path, text)
        if stat.kind == "manifest":
            pending.manifest_seen = True
            pending.manifest = parse_manifest(text, path)
    except FormatError as error:
        if stat.kind == "manifest":
            pending.manifest_seen = True
        for problem in error.problems:
            _problem(pending, report, slug, problem)
        return
    if stat.kind == "workplan" and not _may_claim(pending, report, slug, path, text, rows):
        return
    for table, table_rows in rows.items():
        pending.rows[table].extend(table_rows)


def _too_many(path: str, count: int, limit: int) -> FileProblem:
    return FileProblem(
        path,
        None,
        f"has {count:,} tasks, over the limit of {limit:,} tasks (STATEHUB_MAX_WORKPLAN_TASKS); "
        "it is not read: split it into several workplans",
    )


def _may_claim(
    pending: _Pending, report: IndexReport, slug: str, path: str, text: str, rows: dict[Table, list[Any]]
) -> bool:
    """Whether a parsed workplan's rows may be served: within the task limit and its repo's prefixes."""
    tasks = len(rows.get(TASKS, ()))
    if tasks > pending.limits.workplan_tasks:  # tasks written as an inline array escape the pre-count
        _problem(pending, report, slug, _too_many(path, tasks, pending.limits.workplan_tasks))
        return False
    for plan in rows.get(WORKPLANS, ()):
        said = claim_problem(slug, plan["id"], pending.declared)
        if said is not None:
            _problem(pending, report, slug, FileProblem(path, _id_line(text), said), origin="prefix")
            return False
    return True


def _id_line(text: str) -> int | None:
    front = split_front_matter(text)
    return KeyLines(front.toml, front.first_line).key("id") if front is not None else None


def _refuse(
    pending: _Pending,
    report: IndexReport,
    slug: str,
    source: dict[str, Any],
    error: RepoPathError,
    full: bool,
) -> None:
    """A path refused unread (ADR-022): one file error, and its stat, so a change is noticed."""
    path = source["path"]
    pending.sources.append(source)
    if not full:
        pending.replaced[source["kind"]].append(path)
    limit_env = f"STATEHUB_MAX_{source['kind'].upper()}_BYTES"
    advice = {
        "is a symbolic link": "the hub never follows links in a repo; commit the file itself",
        "is not a regular file": "the hub reads only regular files",
        "resolves outside the repo": "the hub reads only files inside the repo",
    }.get(error.reason, f"it is not read ({limit_env})")
    _problem(pending, report, slug, FileProblem(error.path, None, f"{error.reason}; {advice}"))


def _problem(
    pending: _Pending, report: IndexReport, slug: str, problem: FileProblem, origin: str = "parse"
) -> None:
    report.errors.append(problem)
    pending.errors.append(
        {
            "repo": slug,
            "path": problem.path,
            "line": problem.line,
            "message": problem.message,
            "origin": origin,
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


def _update_repo_row(
    conn: Connection, slug: str, root: Path, pending: _Pending, empty: bool, prefixes: tuple[str, ...]
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
    tables = {t for kind in SOURCE_KINDS.values() for t in kind.tables} | {
        SOURCE_FILES,
        FILE_ERRORS,
    }
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
