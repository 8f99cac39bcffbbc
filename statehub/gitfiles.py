"""Where a work tree's git keeps things and what its HEAD is, read from the files under ``.git``
only: no git process, and no gitpython, so indexing (which notes each repo's HEAD) does not load
it (canon/ADR-033). ``statehub.gitrepo`` and ``statehub.gitstate`` export these names too."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import msgspec

from statehub.errors import NotAGitRepo

__all__ = [
    "GitDirs",
    "HeadState",
    "find_git",
    "git_dirs",
    "head_commit",
    "read_head",
    "read_text",
    "resolve_ref",
]

_PACKED_LINE = re.compile(r"^([0-9a-f]{40,64}) (\S+)$")


def find_git(path: Path) -> tuple[Path, Path]:
    """(work tree, git dir) of the work tree at or above ``path``, found without running git."""
    for candidate in (path, *path.parents):
        dot = candidate / ".git"
        if dot.is_dir():
            return candidate, dot
        if dot.is_file():
            text = dot.read_text(encoding="utf-8", errors="replace").strip()
            if not text.startswith("gitdir:"):
                raise NotAGitRepo(f"{dot} is not a git link file ('gitdir: <path>')")
            target = Path(text[len("gitdir:") :].strip())
            return candidate, (target if target.is_absolute() else candidate / target).resolve()
        if all((candidate / part).exists() for part in ("HEAD", "objects", "refs")):
            raise NotAGitRepo(f"{path} is a bare git repository; register a clone with a work tree instead")
    raise NotAGitRepo(f"{path} is not inside a git work tree; run 'git init' there or register a clone")


@dataclass(frozen=True, slots=True)
class GitDirs:
    """Where a work tree's git keeps things: ``git_dir`` holds its HEAD, index and the state of an
    operation in progress (``.git``, or ``<common>/worktrees/<name>`` for a linked worktree,
    ``<super>/.git/modules/<name>`` for a submodule); ``common_dir`` holds refs, objects, config
    and ``shallow`` (the same as ``git_dir`` but for a linked worktree)."""

    work_tree: Path
    git_dir: Path
    common_dir: Path


def git_dirs(root: Path) -> GitDirs:
    """The git directories of the work tree at ``root``, found by reading files only (no git
    process). Raises NotAGitRepo as ``statehub.gitrepo.open_work_tree``."""
    work_tree, git_dir = find_git(root.resolve())
    common = git_dir
    commondir = git_dir / "commondir"
    if commondir.is_file():
        common = (git_dir / commondir.read_text(encoding="utf-8").strip()).resolve()
    return GitDirs(work_tree, git_dir, common)


class HeadState(msgspec.Struct, frozen=True):
    """What HEAD is: the branch it names (``refs/heads/main``; None when detached) and its
    commit (None on an unborn branch)."""

    ref: str | None
    sha: str | None

    @property
    def branch(self) -> str | None:
        return self.ref.removeprefix("refs/heads/") if self.ref is not None else None


def read_text(path: str) -> str | None:
    """The stripped text of the file at ``path`` (bad UTF-8 replaced), None when it cannot be read."""
    try:
        with open(path, "rb") as file:
            return file.read().decode("utf-8", "replace").strip()
    except OSError:
        return None


def resolve_ref(dirs: GitDirs, ref: str) -> str | None:
    """The commit ``ref`` points to (loose ref files, then packed-refs), following symbolic refs."""
    common, own = os.fspath(dirs.common_dir), os.fspath(dirs.git_dir)
    for _ in range(5):
        found = None
        if own != common and not ref.startswith("refs/heads/"):  # per-worktree refs (refs/bisect)
            found = read_text(os.path.join(own, ref))
        if found is None:
            found = read_text(os.path.join(common, ref))
        if found is None:
            for line in (read_text(os.path.join(common, "packed-refs")) or "").splitlines():
                match = _PACKED_LINE.match(line.strip())
                if match is not None and match.group(2) == ref:
                    return match.group(1)
            return None
        if not found.startswith("ref:"):
            return found or None
        ref = found[4:].strip()
    return None


def read_head(dirs: GitDirs) -> HeadState:
    """HEAD of the work tree, read from the files (no git process)."""
    text = read_text(os.path.join(dirs.git_dir, "HEAD")) or ""
    if text.startswith("ref:"):
        ref = text[4:].strip()
        return HeadState(ref, resolve_ref(dirs, ref))
    return HeadState(None, text or None)


def head_commit(root: Path) -> str | None:
    """HEAD of the work tree at ``root``; None when it is no git work tree or cannot be read."""
    try:
        return read_head(git_dirs(root)).sha
    except (NotAGitRepo, OSError):
        return None
