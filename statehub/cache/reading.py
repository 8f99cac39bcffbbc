"""Read indexable files into the rows the indexer writes: one file for a refresh, a repo for a rebuild.

:func:`consider` compares a scanned file's stat identity (size, mtime, ctime,
inode: ADR-003, ADR-030) with what the cache recorded, reads only a file whose
identity moved, parses it only when its git blob sha differs, and gathers its
rows, its source-file record or its file error into a :class:`Pending`. Files are
read only through statehub.repofiles (ADR-022); a path refused unread records the
``REFUSED_SHA`` so a later stat change brings it back for another look.

:func:`gather_repo` reads, parses and judges a whole repo for a rebuild into a
:class:`Gathered`, writing nothing (``statehub.cache.indexer.write_gathered``
writes it). Nothing here loads SQLAlchemy (a test holds it so): a rebuild's worker
forks before the process imports it, and gathers while it does (canon/ADR-043).
"""

from __future__ import annotations

import hashlib
import stat as stat_mode
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from statehub.cache import fleet_rows as fleet_rows  # registers registry/fleet.toml and its tables
from statehub.cache.prefixes import claim_problem, holders_by_prefix
from statehub.cache.scope import Scope
from statehub.cache.sources import CANON, SOURCE_KINDS, TASKS, WORKPLANS, ScannedFile, scan_sources
from statehub.cache.sqlite_rows import Batch, encode
from statehub.gitfiles import head_commit
from statehub.repofiles import FileLimits, RepoPathError, count_task_tables, read_repo_file
from workplans import MANIFEST_PATH, FileProblem, FormatError, RepoManifest, parse_manifest
from workplans._fields import KeyLines
from workplans.front_matter import split_front_matter

__all__ = [
    "MISSING_TREE",
    "REFUSED_SHA",
    "Gathered",
    "IndexReport",
    "Pending",
    "blob_sha",
    "consider",
    "declared_prefixes",
    "gather_repo",
    "missing_pending",
    "missing_tree",
    "problem",
]

_DEFAULT_LIMITS = FileLimits()


def blob_sha(data: bytes) -> str:
    """The sha git gives this content as a blob; equals the index's sha for a clean file."""
    digest = hashlib.sha1(b"blob %d\0" % len(data), usedforsecurity=False)
    digest.update(data)
    return digest.hexdigest()


REFUSED_SHA = "-"
"""The sha recorded for a path that was refused unread (a link, a special file, too large):
a later stat change brings it back for another look, and its removal clears its error."""


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
class Pending:
    """Rows gathered for one repo before they are written in one go."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    """Table name -> rows (``statehub.cache.sources.Rows``)."""
    sources: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    replaced: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    """kind -> paths whose old rows must go."""
    manifest: RepoManifest | None = None
    manifest_seen: bool = False
    declared: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Every repo's declared prefixes, this repo's as its manifest says now (cache.prefixes)."""
    limits: FileLimits = _DEFAULT_LIMITS
    by_prefix: dict[str, list[str]] | None = None
    """``declared`` turned round (``cache.prefixes.holders_by_prefix``), made when first needed."""


def consider(
    pending: Pending,
    report: IndexReport,
    slug: str,
    root: Path,
    path: str,
    stat: ScannedFile,
    known: Any,
    full: bool,
) -> None:
    """Gather ``path``'s rows into ``pending`` unless its stat identity is the one ``known`` (its
    ``source_file`` row, None when unknown) recorded; ``full`` says its old rows go anyway."""
    if (
        known is not None
        and known.mtime_ns == stat.mtime_ns
        and known.size == stat.size
        and known.ctime_ns == stat.ctime_ns
        and known.inode == stat.inode
        and (known.sha == REFUSED_SHA) == (stat.error is not None)
    ):
        return
    source: dict[str, Any] = {"repo": slug, "path": path, "kind": stat.kind, "sha": REFUSED_SHA}
    source |= {"mtime_ns": stat.mtime_ns, "size": stat.size, "ctime_ns": stat.ctime_ns, "inode": stat.inode}
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
        problem(pending, report, slug, FileProblem(path, None, f"cannot read file: {error.strerror}"))
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
        problem(
            pending,
            report,
            slug,
            FileProblem(path, None, f"file is not valid UTF-8 (byte {error.start})"),
        )
        return
    max_tasks = pending.limits.workplan_tasks
    if stat.kind == "workplan" and (count := count_task_tables(text)) > max_tasks:
        problem(pending, report, slug, _too_many(path, count, max_tasks))
        return
    try:
        rows = SOURCE_KINDS[stat.kind].rows(slug, path, text)
        if stat.kind == "manifest":
            pending.manifest_seen = True
            pending.manifest = parse_manifest(text, path)
    except FormatError as error:
        if stat.kind == "manifest":
            pending.manifest_seen = True
        for found in error.problems:
            problem(pending, report, slug, found)
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
    pending: Pending, report: IndexReport, slug: str, path: str, text: str, rows: dict[str, list[Any]]
) -> bool:
    """Whether a parsed workplan's rows may be served: within the task limit and its repo's prefixes."""
    tasks = len(rows.get(TASKS, ()))
    if tasks > pending.limits.workplan_tasks:  # tasks written as an inline array escape the pre-count
        problem(pending, report, slug, _too_many(path, tasks, pending.limits.workplan_tasks))
        return False
    if pending.by_prefix is None:
        pending.by_prefix = holders_by_prefix(pending.declared)
    for plan in rows.get(WORKPLANS, ()):
        said = claim_problem(slug, plan["id"], pending.declared, pending.by_prefix)
        if said is not None:
            problem(pending, report, slug, FileProblem(path, _id_line(text), said), origin="prefix")
            return False
    return True


def _id_line(text: str) -> int | None:
    front = split_front_matter(text)
    return KeyLines(front.toml, front.first_line).key("id") if front is not None else None


def _refuse(
    pending: Pending,
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
    problem(pending, report, slug, FileProblem(error.path, None, f"{error.reason}; {advice}"))


def problem(
    pending: Pending, report: IndexReport, slug: str, found: FileProblem, origin: str = "parse"
) -> None:
    """Record ``found`` as a file error of ``slug`` (``origin`` as FileErrorRow.origin says)."""
    report.errors.append(found)
    pending.errors.append(
        {
            "repo": slug,
            "path": found.path,
            "line": found.line,
            "message": found.message,
            "origin": origin,
        }
    )


MISSING_TREE = "work-tree"
"""The file-error origin (path ``.``) of a registered work tree that is missing."""


def missing_tree(root: Path) -> str | None:
    """Why ``root`` holds no work tree to index (a sentence), or None when it is a directory.

    Only the path itself is looked at; registration stored it resolved, so a
    link there is one a person put since, and it is followed as a directory is.
    """
    try:
        info = root.stat()
    except FileNotFoundError:
        return f"the work tree {root} is missing (moved away or deleted)"
    except OSError as error:
        return f"the work tree {root} cannot be looked up: {error.strerror}"
    if not stat_mode.S_ISDIR(info.st_mode):
        return f"the work tree {root} is not a directory"
    return None


def missing_pending(report: IndexReport, why: str, limits: FileLimits) -> Pending:
    """What a missing work tree leaves to write: one file error saying so (origin
    :data:`MISSING_TREE`), and no manifest."""
    slug = report.repo
    pending = Pending(limits=limits, manifest_seen=True)  # the repo row loses its manifest's values
    message = (
        f"{why}; its workplans and canon are not served until it is back there. Put it back, or "
        f"register it where it is now (statehub repos add PATH) and remove this one "
        f"(statehub repos remove {slug})"
    )
    problem(pending, report, slug, FileProblem(".", None, message), origin=MISSING_TREE)
    return pending


@dataclass(slots=True)
class Gathered:
    """One repo's files read, parsed and judged for a rebuild, nothing written yet: what
    :func:`gather_repo` gives and ``statehub.cache.indexer.write_gathered`` writes. It may come
    from another process (``statehub.cache.gathering``), so it holds plain data: rows by table
    name, or, from a worker gathering for a SQLite cache, ``batches`` ready for the driver (its
    rows, sources and errors, in that order, and those three left empty)."""

    report: IndexReport
    root: Path
    prefixes: tuple[str, ...]
    missing: bool
    rows: dict[str, list[dict[str, Any]]]
    sources: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    manifest: RepoManifest | None
    commit: str | None
    """HEAD of the work tree when it was read (``statehub.cache.indexed``)."""
    batches: list[Batch] = field(default_factory=list)

    def encoded(self) -> Gathered:
        """This repo with its rows, sources and errors as SQLite batches
        (``statehub.cache.sqlite_rows``): the driver's tuples pickle in a fraction of the time
        dicts do, and the process writing them only executes them."""
        tables = [*self.rows.items(), ("source_file", self.sources), ("file_error", self.errors)]
        batches = [encode(name, rows) for name, rows in tables if rows]
        return replace(self, rows={}, sources=[], errors=[], batches=self.batches + batches)


def gather_repo(
    slug: str, root: Path, declared: dict[str, tuple[str, ...]], limits: FileLimits = _DEFAULT_LIMITS
) -> Gathered:
    """Read, parse and judge every indexable file of ``slug`` for a rebuild, as ``index_repo``
    (``statehub.cache.indexer``) does into an empty cache, without the cache: ``declared`` holds
    every registered repo's prefixes (:func:`declared_prefixes`, this repo's included), so each
    workplan's claim is judged once against all of them, which is what ``index_repo`` repo by
    repo and ``recheck_claims`` after each repo's prefixes arrive end with."""
    report = IndexReport(slug)
    gone = missing_tree(root)
    if gone is not None:
        pending = missing_pending(report, gone, limits)
        return Gathered(report, root, (), True, {}, [], pending.errors, None, None)
    scanned = scan_sources(root)
    report.files = len(scanned)
    pending = Pending(declared=declared, limits=limits)
    for path, stat in scanned.items():
        consider(pending, report, slug, root, path, stat, None, True)
    report.scope.workplan_ids.update(row["id"] for row in pending.rows.get(WORKPLANS, ()))
    report.scope.canon.update((slug, row["id"]) for row in pending.rows.get(CANON, ()))
    return Gathered(
        report,
        root,
        declared.get(slug, ()),
        False,
        dict(pending.rows),
        pending.sources,
        pending.errors,
        pending.manifest,
        head_commit(root),
    )


def declared_prefixes(root: Path, limits: FileLimits = _DEFAULT_LIMITS) -> tuple[str, ...]:
    """The prefixes ``root``'s manifest declares now; none when it is absent, refused or broken."""
    try:
        text = read_repo_file(root, MANIFEST_PATH, limits.manifest_bytes).decode("utf-8")
        return tuple(parse_manifest(text).prefixes)
    except (OSError, RepoPathError, UnicodeDecodeError, FormatError):
        return ()
