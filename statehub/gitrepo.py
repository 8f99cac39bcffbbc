"""Git access for registered work trees (gitpython)."""

from __future__ import annotations

from pathlib import Path

import git

from statehub.errors import NotAGitRepo

__all__ = ["open_work_tree", "work_tree_root"]


def open_work_tree(path: Path) -> git.Repo:
    """Open the git work tree at or above ``path``, or say plainly why we cannot."""
    if not path.exists():
        raise NotAGitRepo(f"{path} does not exist")
    if not path.is_dir():
        raise NotAGitRepo(f"{path} is not a directory")
    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise NotAGitRepo(
            f"{path} is not inside a git work tree; run 'git init' there or register a clone"
        ) from None
    if repo.bare or repo.working_tree_dir is None:
        raise NotAGitRepo(f"{path} is a bare git repository; register a clone with a work tree instead")
    return repo


def work_tree_root(path: Path) -> Path:
    repo = open_work_tree(path)
    try:
        assert repo.working_tree_dir is not None
        return Path(repo.working_tree_dir).resolve()
    finally:
        repo.close()
