"""Keep a work tree in step with its remote: fetch, integrate, push, never losing a commit.

Integration fast-forwards when the hub has nothing unpushed, and otherwise
rebases the local unpushed commits onto the remote branch. A local commit whose
events the remote's side already records (every ``Statehub-Event`` trailer it
carries is there: the same events applied on both sides) is left out, so each
event keeps exactly one trailer; any other commit whose change the remote
already has is kept as an empty one, so its trailers stay. It never
force-pushes and never resets, so no local or remote commit can be dropped. When
it cannot go ahead (a rebase that conflicts, uncommitted changes in the way, a
shallow history that does not reach the shared commit) nothing is changed (a
conflicting rebase is aborted) and the problem names the files and what a person
does; git's own advice about an operation the hub already undid is never quoted.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import git

from statehub.events.gitwork import trailer_keys, trailers_by_commit
from statehub.gitrepo import HubRepo, git_said, rebase_with_todo, receive_pack_args, upload_pack_args
from statehub.gitstate import upstream

__all__ = [
    "REMOTE_TIMEOUT",
    "Integration",
    "PushResult",
    "fetch",
    "integrate",
    "push",
    "push_commit",
    "remote_tip",
    "upstream",
]

REMOTE_TIMEOUT = 300.0
"""Seconds a fetch or push may take before it is killed: a remote that hangs (a server that accepts
and never answers) must not hold the repo's applier lock, and with it every write there, for ever."""


@dataclass(slots=True)
class Integration:
    """What integrating the remote branch did: commits pulled, whether it rebased, and when it
    could not, why (``problem``) and the files in the way (``conflicts``)."""

    pulled: int = 0
    rebased: bool = False
    problem: str | None = None
    conflicts: list[str] = field(default_factory=list)


@dataclass(slots=True)
class PushResult:
    """Whether the push went through; when not, why, and the files a rebase after a rejected push
    conflicted in."""

    pushed: bool
    reason: str | None = None
    attempts: int = 0
    conflicts: list[str] = field(default_factory=list)


def _root(repo: git.Repo) -> Path:
    return Path(repo.working_tree_dir or ".")


def _listed(paths: list[str], most: int = 10) -> str:
    shown = ", ".join(paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")


def _said(error: git.GitCommandError, timeout: float | None = None) -> str:
    """What git said (:func:`git_said`), or that the remote did not answer in time: gitpython's
    own words for a killed command quote the command line."""
    text = error.stderr if isinstance(error.stderr, str) else ""
    if "Timeout: the command" in text:
        waited = REMOTE_TIMEOUT if timeout is None else timeout
        return f"the remote did not answer within {waited:g} s, so the hub stopped waiting"
    return git_said(error)


def fetch(repo: git.Repo, remote: str, timeout: float | None = None) -> str | None:
    """Fetch the remote, waiting at most ``timeout`` seconds (None: :data:`REMOTE_TIMEOUT`); the reason
    when it could not be reached."""
    try:
        repo.git.fetch(
            *upload_pack_args(),
            "--quiet",
            remote,
            kill_after_timeout=REMOTE_TIMEOUT if timeout is None else timeout,
        )
    except git.GitCommandError as error:
        return (
            f"fetch from {remote} failed: {_said(error, timeout)}; nothing was integrated or pushed: "
            f"check the remote's URL (git -C {_root(repo)} remote get-url {remote}), the network and "
            "the credentials"
        )
    return None


def remote_tip(repo: git.Repo, remote: str, branch: str) -> str | None:
    """The commit ``<remote>/<branch>`` named at the last fetch or push, None when it has none."""
    return _rev(repo, f"{remote}/{branch}")


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


def _changed(repo: git.Repo) -> list[str]:
    """Tracked paths with uncommitted changes (work tree or index)."""
    out = repo.git.status("--porcelain=v1", "-z", "--untracked-files=no", "--ignore-submodules=all")
    records = iter(out.split("\0"))
    found = []
    for record in records:
        if len(record) > 3:
            found.append(record[3:])
            if record[0] in "RC":
                next(records, None)  # a rename's or copy's original path follows
    return found


def _overwritten(error: git.GitCommandError) -> list[str]:
    """The files git names after 'would be overwritten by merge:' (tab-indented lines)."""
    text = error.stderr if isinstance(error.stderr, str) else ""
    return [line.strip() for line in text.splitlines() if line.startswith("\t") and line.strip()]


def integrate(repo: git.Repo, remote: str, branch: str) -> Integration:
    """Bring the remote branch's commits into the local branch (fast-forward or rebase)."""
    root, upstream_name = _root(repo), f"{remote}/{branch}"
    theirs = _rev(repo, upstream_name)
    ours = _rev(repo, "HEAD")
    if theirs is None or ours is None or _is_ancestor(repo, theirs, ours):
        return Integration()
    count = int(repo.git.rev_list("--count", f"HEAD..{theirs}"))
    if _is_ancestor(repo, ours, theirs):
        try:
            repo.git.merge("--ff-only", "--quiet", theirs)
        except git.GitCommandError as error:
            files = _overwritten(error)
            if files:
                return Integration(
                    problem=f"fast-forwarding to {upstream_name} would overwrite uncommitted changes in "
                    f"{_listed(files)}; nothing was changed: commit or stash them, then sweep again",
                    conflicts=files,
                )
            return Integration(problem=f"fast-forward to {upstream_name} failed: {git_said(error)}")
        return Integration(pulled=count)
    ahead = int(repo.git.rev_list("--count", f"{theirs}..HEAD"))
    changed = _changed(repo)
    if changed:
        return Integration(
            problem=f"the {ahead} local commits and {upstream_name} diverged and uncommitted changes in "
            f"{_listed(changed)} are in the way of a rebase; nothing was changed: commit or stash them, "
            "then sweep again",
            conflicts=changed,
        )
    try:
        base = repo.git.merge_base(ours, theirs)
    except git.GitCommandError:
        if (Path(repo.common_dir) / "shallow").is_file():
            return Integration(
                problem=f"the clone is shallow and its history does not reach the commit it shares with "
                f"{upstream_name}, so the {ahead} local commits cannot be rebased; nothing was changed: "
                f"deepen it (git -C {root} fetch --unshallow {remote}), then sweep again"
            )
        return Integration(
            problem=f"the local branch and {upstream_name} share no history; nothing was changed: "
            "a person must decide which one the repo follows"
        )
    try:
        _rebase(repo, base, ours, theirs)
    except git.GitCommandError as error:
        conflicts: list[str] = []
        with contextlib.suppress(git.GitCommandError):
            conflicts = [p for p in repo.git.diff("--name-only", "--diff-filter=U", "-z").split("\0") if p]
        with contextlib.suppress(git.GitCommandError):
            repo.git.rebase("--abort")
        if conflicts:
            return Integration(
                problem=f"rebasing the {ahead} local commits onto {upstream_name} conflicts in "
                f"{_listed(conflicts)}; the rebase was aborted and nothing was changed: rebase by hand "
                f"(git -C {root} pull --rebase {remote} {branch}), resolve those files, push, "
                "then sweep again",
                conflicts=conflicts,
            )
        return Integration(
            problem=f"rebasing the {ahead} local commits onto {upstream_name} failed ({git_said(error)}); "
            "the rebase was aborted and nothing was changed"
        )
    return Integration(pulled=count, rebased=True)


def _rebase(repo: git.Repo, base: str, ours: str, theirs: str) -> None:
    """Rebase ``base..ours`` onto ``theirs``: each event keeps exactly one ``Statehub-Event`` trailer
    (canon/ADR-053). A commit whose every trailer ``base..theirs`` already carries (the same events,
    applied on the other side) is dropped; one without trailers that ``git cherry`` finds upstream
    too is dropped, as git would; every other commit is kept, empty if its change is there already
    (it may carry an event's only trailer). The todo list is the hub's own
    (:func:`statehub.gitrepo.rebase_with_todo`)."""
    known = set(trailer_keys(repo, base, theirs))
    commits = trailers_by_commit(repo, f"{base}..{ours}")
    cherry = repo.git.cherry(theirs, ours, base).splitlines()
    equivalent = {line[2:].strip() for line in cherry if line[:2] == "- "}
    dropped = {sha for sha, keys in commits if (keys and keys <= known) or (not keys and sha in equivalent)}
    options = ("--quiet", "--reapply-cherry-picks", "--empty=keep")
    if not dropped:
        repo.git.rebase(*options, theirs)
        return
    assert isinstance(repo, HubRepo), "a work tree the hub opened (hardened)"
    todo = [("drop" if sha in dropped else "pick", sha) for sha, _ in commits]
    rebase_with_todo(repo, theirs, todo, *options)


def _receive_pack(repo: git.Repo, remote: str) -> list[str]:
    """The receive-pack to push with: never the repo's; none of the remote's hooks on this machine
    (ADR-022)."""
    try:
        urls = repo.git.remote("get-url", "--push", "--all", remote).splitlines()
    except git.GitCommandError:
        urls = []
    return receive_pack_args(urls)


def push_commit(
    repo: git.Repo, remote: str, branch: str, commit: str = "HEAD", timeout: float | None = None
) -> str | None:
    """Push ``commit`` (and the commits under it) to ``refs/heads/<branch>`` on ``remote``, never
    with ``--force``: the remote takes it only as a fast-forward. None when it went through, else
    what git said (a rejection, a hook's refusal, an unreachable remote, ``timeout`` run out)."""
    try:
        repo.git.push(
            *_receive_pack(repo, remote),
            "--quiet",
            remote,
            f"{commit}:refs/heads/{branch}",
            kill_after_timeout=REMOTE_TIMEOUT if timeout is None else timeout,
        )
    except git.GitCommandError as error:
        return _push_said(error, timeout)
    return None


def _push_said(error: git.GitCommandError, timeout: float | None) -> str:
    """Why a push failed: the remote's own words (``remote:`` lines, a hook's message) and the
    refused ref's status (``! [remote rejected] ... (pre-receive hook declined)``), then git's."""
    text = error.stderr if isinstance(error.stderr, str) else ""
    told = []
    for line in text.splitlines():
        cleaned = line.strip().removeprefix("stderr:").strip(" '")
        if cleaned.startswith("remote:") and cleaned.removeprefix("remote:").strip():
            told.append(cleaned.removeprefix("remote:").strip())
        elif cleaned.startswith("! ["):
            told.append(cleaned.removeprefix("! ").strip())
    said = _said(error, timeout)
    return ("; ".join([*told[:5], said]))[:600] if told else said


def push(
    repo: git.Repo, remote: str, branch: str, attempts: int = 3, timeout: float | None = None
) -> PushResult:
    """Push local commits; when the remote moved meanwhile, fetch, rebase and try again."""
    reason: str | None = None
    for attempt in range(1, attempts + 1):
        theirs = _rev(repo, f"{remote}/{branch}")
        ahead = int(repo.git.rev_list("--count", f"{theirs}..HEAD" if theirs else "HEAD"))
        if ahead == 0:
            return PushResult(False, "nothing to push", attempt - 1)
        reason = push_commit(repo, remote, branch, "HEAD", timeout)
        if reason is not None:
            problem = fetch(repo, remote, timeout)
            if problem is None and _rev(repo, f"{remote}/{branch}") == theirs:
                said = (
                    f"push to {remote} refused ({reason}); the remote's {branch} did not move, so "
                    "trying again would not help: the commits stay here until the remote takes them"
                )
                return PushResult(False, said, attempt)
            merged = Integration() if problem else integrate(repo, remote, branch)
            problem = problem or merged.problem
            if problem is not None:
                said = f"push to {remote} rejected ({reason}); then {problem}"
                return PushResult(False, said, attempt, merged.conflicts)
            continue
        return PushResult(True, None, attempt)
    return PushResult(False, f"push rejected {attempts} times, the remote keeps moving: {reason}", attempts)
