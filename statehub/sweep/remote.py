"""Keep a work tree in step with its remote: fetch, integrate, push, never losing a commit.

Integration fast-forwards when the hub has nothing unpushed, and otherwise
rebases the local unpushed commits onto the remote branch. It never
force-pushes and never resets, so no local or remote commit can be dropped; when
a rebase conflicts it is aborted and the repo is reported as needing a person.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import git

from statehub.gitrepo import receive_pack_args, upload_pack_args

__all__ = ["Integration", "PushResult", "fetch", "integrate", "push", "upstream"]


@dataclass(slots=True)
class Integration:
    pulled: int = 0
    rebased: bool = False
    problem: str | None = None


@dataclass(slots=True)
class PushResult:
    pushed: bool
    reason: str | None = None
    attempts: int = 0


def _error(error: git.GitCommandError) -> str:
    text = (error.stderr or error.stdout or str(error)).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip() and "stderr:" not in line]
    return " ".join(lines)[-400:] or str(error)


def upstream(repo: git.Repo) -> tuple[str, str] | None:
    """(remote, branch) the current branch follows; ``origin`` and the same name if none is set."""
    if not repo.remotes:
        return None
    try:
        branch = repo.active_branch
    except TypeError:  # detached HEAD
        return None
    tracking = branch.tracking_branch()
    if tracking is not None:
        return tracking.remote_name, tracking.remote_head
    names = [r.name for r in repo.remotes]
    return ("origin" if "origin" in names else names[0]), branch.name


def fetch(repo: git.Repo, remote: str) -> str | None:
    """Fetch the remote; the reason when it could not be reached."""
    try:
        repo.git.fetch(*upload_pack_args(), "--quiet", remote)
    except git.GitCommandError as error:
        return f"fetch from {remote} failed: {_error(error)}"
    return None


def _rev(repo: git.Repo, ref: str) -> str | None:
    try:
        return repo.git.rev_parse("--verify", "--quiet", f"{ref}^{{commit}}") or None
    except git.GitCommandError:
        return None


def _is_ancestor(repo: git.Repo, older: str, newer: str) -> bool:
    try:
        repo.git.merge_base("--is-ancestor", older, newer)
    except git.GitCommandError:
        return False
    return True


def integrate(repo: git.Repo, remote: str, branch: str) -> Integration:
    """Bring the remote branch's commits into the local branch (fast-forward or rebase)."""
    theirs = _rev(repo, f"{remote}/{branch}")
    ours = _rev(repo, "HEAD")
    if theirs is None or ours is None or _is_ancestor(repo, theirs, ours):
        return Integration()
    count = int(repo.git.rev_list("--count", f"HEAD..{theirs}"))
    if _is_ancestor(repo, ours, theirs):
        try:
            repo.git.merge("--ff-only", "--quiet", theirs)
        except git.GitCommandError as error:
            return Integration(problem=f"fast-forward to {remote}/{branch} failed: {_error(error)}")
        return Integration(pulled=count)
    if repo.git.status("--porcelain", "--untracked-files=no", "--ignore-submodules=all"):
        return Integration(
            problem=f"local commits and {remote}/{branch} diverged and the work tree has uncommitted "
            "changes; commit or stash them and sweep again"
        )
    try:
        repo.git.rebase("--quiet", theirs)
    except git.GitCommandError as error:
        with contextlib.suppress(git.GitCommandError):
            repo.git.rebase("--abort")
        return Integration(
            problem=f"rebasing local commits onto {remote}/{branch} conflicts ({_error(error)}); "
            "nothing was changed, resolve it by hand"
        )
    return Integration(pulled=count, rebased=True)


def _receive_pack(repo: git.Repo, remote: str) -> list[str]:
    """The receive-pack to push with: never the repo's; none of the remote's hooks on this machine
    (ADR-022)."""
    try:
        urls = repo.git.remote("get-url", "--push", "--all", remote).splitlines()
    except git.GitCommandError:
        urls = []
    return receive_pack_args(urls)


def push(repo: git.Repo, remote: str, branch: str, attempts: int = 3) -> PushResult:
    """Push local commits; when the remote moved meanwhile, fetch, rebase and try again."""
    reason: str | None = None
    for attempt in range(1, attempts + 1):
        theirs = _rev(repo, f"{remote}/{branch}")
        ahead = int(repo.git.rev_list("--count", f"{theirs}..HEAD" if theirs else "HEAD"))
        if ahead == 0:
            return PushResult(False, "nothing to push", attempt - 1)
        try:
            repo.git.push(*_receive_pack(repo, remote), "--quiet", remote, f"HEAD:refs/heads/{branch}")
        except git.GitCommandError as error:
            reason = _error(error)
            problem = fetch(repo, remote) or integrate(repo, remote, branch).problem
            if problem is not None:
                return PushResult(False, f"push rejected ({reason}); then {problem}", attempt)
            continue
        return PushResult(True, None, attempt)
    return PushResult(False, f"push rejected {attempts} times, the remote keeps moving: {reason}", attempts)
