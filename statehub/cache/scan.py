"""Which paths of a repo the hub indexes, and their stat: the walk a refresh starts with.

Kept apart from ``statehub.cache.sources`` (which turns files into rows and
needs SQLAlchemy and the parsers) so the CLI's read path can ask "did anything
change since the last index?" with a stat walk and nothing else (canon/ADR-033).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from statehub.repofiles import IS_SYMLINK, NOT_REGULAR, RepoPathError, lstat_repo_path, scan_repo_tree

if TYPE_CHECKING:
    import os
    from pathlib import Path

__all__ = ["ScannedFile", "kind_of", "may_hold_sources", "scan_sources"]

_MARKDOWN_DIRS = {"workplans": "workplan", "canon": "canon"}
_SINGLE_FILES = {"statehub.toml": "manifest", "registry/fleet.toml": "fleet"}
"""Single files by path: the manifest (``workplans.MANIFEST_PATH``), and the fleet registry
(``workplans.FLEET_PATH``; written out here so a read loads neither parser, and a test holds
them equal) (its kind and tables are
``statehub.cache.fleet_rows``, registered whenever files are read for the cache)."""


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


class ScannedFile(msgspec.Struct, frozen=True, gc=False):
    """An indexable path: its kind, its own stat (links not followed), and why it is refused.

    ``error`` is None for a regular file inside the repo; otherwise the path is a
    file error and is never read (ADR-022): ``is a symbolic link``, ``is not a
    regular file``. The path may be a directory (``workplans``, ``registry``)
    when that directory is a link. The stat identity is size, mtime, ctime and
    inode (nanoseconds; the inode as a signed 64-bit number): an editor's
    atomic-rename save with the same size and mtime still puts a new inode and
    ctime at the path (ADR-030). A Struct, not a dataclass: the CLI's read path
    makes one per source file of every repo before each answer (canon/ADR-033).
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
