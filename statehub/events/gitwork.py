"""The git reads of write-back: open a registered work tree, find our trailers.

Commits are made by :mod:`statehub.gitcommit` (the one commit path, for events
and saves). Every command runs through :mod:`statehub.gitrepo` (hardened: the
repo's hooks, filters and helpers never run, ADR-022). Trailers are read with
git's own trailer parser (``%(trailers:key=...)``), so a line in a commit's
body that merely looks like ``Statehub-Event: KEY`` is not proof that the
event was applied.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING

import git

from statehub import gitrepo

if TYPE_CHECKING:
    from statehub.gitrepo import HubRepo

__all__ = ["TRAILER", "checkout_of", "open_repo", "trailer_keys", "trailers_by_commit"]

TRAILER = "Statehub-Event"
_SEP = "\x1f"
_LOG_FORMAT = f"--format=%H%x00%(trailers:key={TRAILER},valueonly=true,unfold=true,separator=%x1f)%x00"


def checkout_of(repo: git.Repo) -> str:
    """``<host>:<work tree>``: which checkout a write-back record belongs to. Replicas on one host
    share their checkouts and so their records; replicas on several hosts keep their own clones
    (canon/ADR-053) and each resolves only what it left behind."""
    return f"{socket.gethostname()}:{Path(repo.working_tree_dir or '.').resolve()}"


def open_repo(root: Path) -> HubRepo:
    """The registered work tree at ``root``, hardened (:func:`statehub.gitrepo.open_repo`)."""
    return gitrepo.open_repo(root)


def trailer_keys(repo: git.Repo, since: str | None, until: str = "HEAD") -> dict[str, str]:
    """Event keys named by ``Statehub-Event`` trailers in commits after ``since`` up to ``until``
    (a commit or ref), with their commit.

    Read by git's trailer parser: only the trailer block at the end of a message
    counts, never a line in its body.
    """
    revision = f"{since}..{until}" if since else until
    try:
        log = repo.git.log(revision, _LOG_FORMAT)
    except git.GitCommandError:  # ``since`` is gone (history rewritten): look at recent history
        try:
            log = repo.git.log("-n", "1000", until, _LOG_FORMAT)
        except git.GitCommandError:
            return {}
    found: dict[str, str] = {}
    parts = log.split("\0")
    for sha, values in zip(parts[0::2], parts[1::2], strict=False):
        for key in values.split(_SEP):
            if key.strip():
                found.setdefault(key.strip(), sha.strip())
    return found


def trailers_by_commit(repo: git.Repo, revision: str) -> list[tuple[str, frozenset[str]]]:
    """Each commit of ``revision`` (``a..b``), oldest first, merges left out, with the event keys its
    ``Statehub-Event`` trailers name (empty for a person's commit or a save)."""
    log = repo.git.log("--reverse", "--no-merges", revision, _LOG_FORMAT)
    parts = log.split("\0")
    return [
        (sha.strip(), frozenset(key.strip() for key in values.split(_SEP) if key.strip()))
        for sha, values in zip(parts[0::2], parts[1::2], strict=False)
    ]
