"""The git steps of write-back: is a path clean, commit a few paths, find our trailers.

Through gitpython's command wrapper: ``git commit --only -- <paths>`` commits
exactly the files the hub wrote, so a person's staged work on other files is
never swept into a hub commit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import git

__all__ = [
    "HUB_EMAIL",
    "HUB_NAME",
    "TRAILER",
    "commit_paths",
    "dirty_paths",
    "head_sha",
    "restore_path",
    "trailer_keys",
]

HUB_NAME = "State Hub"
HUB_EMAIL = "statehub@statehub.invalid"
TRAILER = "Statehub-Event"
_TRAILER_LINE = re.compile(rf"^{TRAILER}: (\S+)\s*$", re.MULTILINE)


def open_repo(root: Path) -> git.Repo:
    return git.Repo(root)


def head_sha(repo: git.Repo) -> str | None:
    try:
        return repo.head.commit.hexsha
    except ValueError:  # no commit yet
        return None


def dirty_paths(repo: git.Repo, paths: Iterable[str]) -> set[str]:
    """Which of ``paths`` differ from HEAD in the index or the work tree, or are untracked."""
    wanted = sorted(set(paths))
    if not wanted:
        return set()
    out = repo.git.status("--porcelain", "-z", "--untracked-files=all", "--", *wanted)
    dirty: set[str] = set()
    entries = out.split("\0")
    index = 0
    while index < len(entries):
        entry = entries[index]
        index += 1
        if len(entry) < 4:
            continue
        status, path = entry[:2], entry[3:]
        dirty.add(path)
        if "R" in status or "C" in status:
            index += 1  # the rename's source path follows
    return dirty


def commit_paths(repo: git.Repo, paths: Sequence[str], message: str, actor: str) -> str:
    """Commit exactly ``paths`` with the actor as author and the hub as committer; return the sha."""
    env = {"GIT_COMMITTER_NAME": HUB_NAME, "GIT_COMMITTER_EMAIL": HUB_EMAIL}
    repo.git.commit(
        "--no-verify",
        "--quiet",
        f"--author={actor} <{actor}@statehub.invalid>",
        "-m",
        message,
        "--only",
        "--",
        *paths,
        env=env,
    )
    sha = head_sha(repo)
    assert sha is not None
    return sha


def trailer_keys(repo: git.Repo, since: str | None) -> dict[str, str]:
    """Event keys named by ``Statehub-Event`` trailers in commits after ``since``, with their commit."""
    revision = f"{since}..HEAD" if since else "HEAD"
    try:
        log = repo.git.log(revision, "--format=%H%x00%B%x00")
    except git.GitCommandError:  # ``since`` is gone (history rewritten): look at recent history
        try:
            log = repo.git.log("-n", "1000", "HEAD", "--format=%H%x00%B%x00")
        except git.GitCommandError:
            return {}
    found: dict[str, str] = {}
    parts = log.split("\0")
    for sha, body in zip(parts[0::2], parts[1::2], strict=False):
        for key in _TRAILER_LINE.findall(body):
            found.setdefault(key, sha.strip())
    return found


def restore_path(repo: git.Repo, path: str) -> None:
    """Put the committed version of ``path`` back in the work tree."""
    repo.git.checkout("HEAD", "--", path)
