"""Read one indexable file into the rows a refresh writes: the per-file half of the indexer.

:func:`consider` compares a scanned file's stat identity (size, mtime, ctime,
inode: ADR-003, ADR-030) with what the cache recorded, reads only a file whose
identity moved, parses it only when its git blob sha differs, and gathers its
rows, its source-file record or its file error into a :class:`Pending`. Files are
read only through statehub.repofiles (ADR-022); a path refused unread records the
``REFUSED_SHA`` so a later stat change brings it back for another look.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table

from statehub.cache.derived import Scope
from statehub.cache.prefixes import claim_problem, holders_by_prefix
from statehub.cache.schema import TASKS, WORKPLANS
from statehub.cache.sources import SOURCE_KINDS, ScannedFile
from statehub.repofiles import FileLimits, RepoPathError, count_task_tables, read_repo_file
from workplans import FileProblem, FormatError, RepoManifest, parse_manifest
from workplans._fields import KeyLines
from workplans.front_matter import split_front_matter

if TYPE_CHECKING:
    from pathlib import Path


__all__ = ["REFUSED_SHA", "IndexReport", "Pending", "blob_sha", "consider", "problem"]

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
    pending: Pending, report: IndexReport, slug: str, path: str, text: str, rows: dict[Table, list[Any]]
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
