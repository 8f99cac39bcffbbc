"""Which files of a repo the hub indexes, and the cache rows each kind of file becomes.

Each kind owns the tables its rows go to, keyed by (repo, path), so a changed
file is re-indexed by deleting its rows and inserting the new ones.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table

from statehub.cache.schema import CANON, DEPENDENCIES, TASKS, WORKPLANS
from statehub.repofiles import IS_SYMLINK, NOT_REGULAR, RepoPathError, lstat_repo_path, scan_repo_tree
from workplans import MANIFEST_PATH, parse_canon, parse_manifest, parse_workplan

if TYPE_CHECKING:
    import os
    from pathlib import Path

__all__ = [
    "SOURCE_KINDS",
    "Rows",
    "ScannedFile",
    "SourceKind",
    "json_safe",
    "kind_of",
    "may_hold_sources",
    "scan_sources",
]

Rows = dict[Table, list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class SourceKind:
    name: str
    tables: tuple[Table, ...]
    rows: Callable[[str, str, str], Rows]
    """(repo slug, repo-relative path, text) -> rows per table; raises FormatError."""


def json_safe(value: Any) -> Any:
    """Unknown TOML keys may hold dates; the cache stores them as ISO strings."""
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _workplan_rows(repo: str, path: str, text: str) -> Rows:
    plan = parse_workplan(text, path)
    if plan is None:
        return {}
    tasks: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    for position, task in enumerate(plan.tasks):
        depends_on = [plan.resolve_dependency(d) for d in task.depends_on]
        tasks.append(
            {
                "repo": repo,
                "path": path,
                "task_id": task.id,
                "ref": task.ref(plan.id),
                "workplan_id": plan.id,
                "position": position,
                "title": task.title,
                "status": task.status.value,
                "owner": task.owner,
                "depends_on": depends_on,
                "extra": json_safe(task.extra) if task.extra else {},
                "ready": False,
                "conflicted": False,
                "cyclic": False,
            }
        )
        edges.extend(
            {"repo": repo, "path": path, "task_id": task.id, "depends_on": d}
            for d in dict.fromkeys(depends_on)
        )
    plan_row = {
        "repo": repo,
        "path": path,
        "id": plan.id,
        "title": plan.title,
        "status": plan.status.value,
        "owner": plan.owner,
        "related": list(plan.related),
        "body": plan.body,
        "extra": json_safe(plan.extra),
        "task_count": len(plan.tasks),
        "conflicted": False,
    }
    return {WORKPLANS: [plan_row], TASKS: tasks, DEPENDENCIES: edges}


def _canon_rows(repo: str, path: str, text: str) -> Rows:
    doc = parse_canon(text, path)
    if doc is None:
        return {}
    row = {
        "repo": repo,
        "path": path,
        "id": doc.id,
        "title": doc.title,
        "kind": doc.kind.value,
        "status": doc.status.value,
        "date": doc.date.isoformat() if doc.date else None,
        "supersedes": list(doc.supersedes),
        "body": doc.body,
        "extra": json_safe(doc.extra),
        "conflicted": False,
    }
    return {CANON: [row]}


def _manifest_rows(repo: str, path: str, text: str) -> Rows:  # noqa: ARG001 - SourceKind.rows signature
    parse_manifest(text, path)  # the repo row is updated by the indexer; this validates
    return {}


WORKPLAN_FILES = SourceKind("workplan", (WORKPLANS, TASKS, DEPENDENCIES), _workplan_rows)
CANON_FILES = SourceKind("canon", (CANON,), _canon_rows)
MANIFEST_FILE = SourceKind("manifest", (), _manifest_rows)

SOURCE_KINDS: dict[str, SourceKind] = {k.name: k for k in (WORKPLAN_FILES, CANON_FILES, MANIFEST_FILE)}

_MARKDOWN_DIRS = {"workplans": "workplan", "canon": "canon"}
_SINGLE_FILES = {MANIFEST_PATH: "manifest"}


def register_kind(kind: SourceKind, single_file: str | None = None) -> None:
    """Let another part of the hub index one more kind of file (e.g. the fleet registry)."""
    SOURCE_KINDS[kind.name] = kind
    if single_file is not None:
        _SINGLE_FILES[single_file] = kind.name


def kind_of(path: str) -> str | None:
    if path in _SINGLE_FILES:
        return _SINGLE_FILES[path]
    top, _, rest = path.partition("/")
    if rest and top in _MARKDOWN_DIRS and path.endswith(".md"):
        return _MARKDOWN_DIRS[top]
    return None


def may_hold_sources(path: str) -> bool:
    """Whether a change at repo-relative POSIX ``path`` can change what the hub indexes of the repo.

    ``path`` is a file or a directory, created, changed, moved or gone (a watcher
    cannot tell which once it is gone): the repo root itself (``""``), a source
    file (:func:`kind_of`), anything under ``workplans/`` or ``canon/`` (a
    directory renamed, moved in or out, deleted), or a directory on the way to a
    single source file (``registry`` for ``registry/fleet.toml``). A name starting
    with ``.`` (an editor's swap or temp file) is never indexed and changes nothing.
    """
    if path in ("", "."):
        return True
    if path.rpartition("/")[2].startswith("."):
        return False
    if kind_of(path) is not None or path.partition("/")[0] in _MARKDOWN_DIRS:
        return True
    return any(single.startswith(path + "/") for single in _SINGLE_FILES)


def _signed64(value: int) -> int:
    """An unsigned 64-bit stat field (an inode number) as the signed BIGINT the cache stores."""
    return value - (1 << 64) if value >= 1 << 63 else value


@dataclass(frozen=True, slots=True)
class ScannedFile:
    """An indexable path: its kind, its own stat (links not followed), and why it is refused.

    ``error`` is None for a regular file inside the repo; otherwise the path is a
    file error and is never read (ADR-022): ``is a symbolic link``, ``is not a
    regular file``. The path may be a directory (``workplans``, ``registry``)
    when that directory is a link. The stat identity is size, mtime, ctime and
    inode (nanoseconds; the inode as a signed 64-bit number): an editor's
    atomic-rename save with the same size and mtime still puts a new inode and
    ctime at the path (ADR-030).
    """

    kind: str
    mtime_ns: int
    size: int
    ctime_ns: int
    inode: int
    error: str | None = None

    @classmethod
    def of(cls, kind: str, info: os.stat_result, error: str | None = None) -> ScannedFile:
        return cls(kind, info.st_mtime_ns, info.st_size, info.st_ctime_ns, _signed64(info.st_ino), error)


def scan_sources(root: Path) -> dict[str, ScannedFile]:
    """Every indexable path under ``root`` with its stat, keyed by repo-relative POSIX path.

    Walked from the root without following links (statehub.repofiles): a symbolic
    link at any level, or a special file where a source file belongs, is listed
    with its ``error`` instead of being followed or skipped.
    """
    found: dict[str, ScannedFile] = {}
    for rel, kind in _SINGLE_FILES.items():
        try:
            info = lstat_repo_path(root, rel)
        except RepoPathError as error:
            if error.reason not in (IS_SYMLINK, NOT_REGULAR):
                continue  # e.g. a plain file called "registry": it holds no registry/fleet.toml
            if error.path != rel:  # a directory on the way: stat the link itself
                try:
                    info = (root / error.path).lstat()
                except OSError:
                    continue
            else:
                info = (root / rel).lstat()
            found[error.path] = ScannedFile.of(kind, info, error.reason)
            continue
        except OSError:
            continue
        if info is not None:
            found[rel] = ScannedFile.of(kind, info)
    for top, kind in _MARKDOWN_DIRS.items():
        for entry in scan_repo_tree(root, top, ".md"):
            found[entry.path] = ScannedFile.of(kind, entry.stat, entry.error)
    return found
