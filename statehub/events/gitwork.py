"""The git steps of write-back: is a path clean, commit a few paths, find our trailers.

Every command runs through :mod:`statehub.gitrepo` (hardened: the repo's hooks,
filters and helpers never run, ADR-022). ``git commit --only -- <paths>``
commits exactly the files the hub wrote, so a person's staged work on other
files is never swept into a hub commit. The message goes through stdin
(``-F -``), never the argument list, so its size is not bounded by ``ARG_MAX``.
Trailers are read with git's own trailer parser (``%(trailers:key=...)``), so a
line in a commit's body that merely looks like ``Statehub-Event: KEY`` is not
proof that the event was applied.
"""

from __future__ import annotations

import tempfile
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

import git

from statehub import gitrepo

__all__ = [
    "HUB_EMAIL",
    "HUB_NAME",
    "TRAILER",
    "commit_paths",
    "dirty_paths",
    "head_sha",
    "identity_problem",
    "restore_path",
    "trailer_keys",
]

HUB_NAME = "State Hub"
HUB_EMAIL = "statehub@statehub.invalid"
TRAILER = "Statehub-Event"
_SEP = "\x1f"
_LOG_FORMAT = f"--format=%H%x00%(trailers:key={TRAILER},valueonly=true,unfold=true,separator=%x1f)%x00"


def open_repo(root: Path) -> git.Repo:
    """The registered work tree at ``root``, hardened (:func:`statehub.gitrepo.open_repo`)."""
    return gitrepo.open_repo(root)


def identity_problem(name: str) -> str | None:
    """Why ``name`` cannot be a git author name or email, or None (ADR-022).

    One line, no ``<`` or ``>``, no control, format or line-separator characters,
    not empty: git writes identities into the commit header, where any of those
    would let the name forge trailers or other header fields.
    """
    if not name.strip():
        return "an author name cannot be empty"
    for char in name:
        if char in "<>":
            return f"an author name cannot contain {char!r}"
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            return f"an author name must be one line of printable text (found U+{ord(char):04X})"
    return None


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
    out = repo.git.status(
        "--porcelain", "-z", "--untracked-files=all", "--ignore-submodules=all", "--", *wanted
    )
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
    """Commit exactly ``paths`` with the actor as author and the hub as committer; return the sha.

    The message goes through stdin. Raises ValueError for an actor that cannot be
    a git identity (:func:`identity_problem`), GitCommandError when git fails.
    """
    problem = identity_problem(actor)
    if problem:
        raise ValueError(problem)
    env = {
        "GIT_AUTHOR_NAME": actor,
        "GIT_AUTHOR_EMAIL": f"{actor}@statehub.invalid",
        "GIT_COMMITTER_NAME": HUB_NAME,
        "GIT_COMMITTER_EMAIL": HUB_EMAIL,
    }
    with tempfile.TemporaryFile() as handle:
        handle.write(message.encode("utf-8"))
        handle.seek(0)
        repo.git.commit(
            "--no-verify",
            "--quiet",
            "--cleanup=verbatim",
            "--no-gpg-sign",
            "-F",
            "-",
            "--only",
            "--",
            *paths,
            env=env,
            istream=handle,
        )
    sha = head_sha(repo)
    assert sha is not None
    return sha


def trailer_keys(repo: git.Repo, since: str | None) -> dict[str, str]:
    """Event keys named by ``Statehub-Event`` trailers in commits after ``since``, with their commit.

    Read by git's trailer parser: only the trailer block at the end of a message
    counts, never a line in its body.
    """
    revision = f"{since}..HEAD" if since else "HEAD"
    try:
        log = repo.git.log(revision, _LOG_FORMAT)
    except git.GitCommandError:  # ``since`` is gone (history rewritten): look at recent history
        try:
            log = repo.git.log("-n", "1000", "HEAD", _LOG_FORMAT)
        except git.GitCommandError:
            return {}
    found: dict[str, str] = {}
    parts = log.split("\0")
    for sha, values in zip(parts[0::2], parts[1::2], strict=False):
        for key in values.split(_SEP):
            if key.strip():
                found.setdefault(key.strip(), sha.strip())
    return found


def restore_path(repo: git.Repo, path: str) -> None:
    """Put the committed version of ``path`` back in the work tree."""
    repo.git.checkout("HEAD", "--", path)
