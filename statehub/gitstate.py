"""The state a registered work tree's git is in, and what of it stops the hub's writes (ADR-029).

Read-only, and no code of the repo runs. :func:`stops` reads files under the git
directory only (no git process): the write-back asks it before every pass, the
commit path under the index lock, health for every repo. :func:`inspect` adds
what only git can say (``git status``, ``git rev-list``, ``git config --file
.gitmodules``, and with ``probe`` a bounded ``git ls-remote``), every command run
through :mod:`statehub.gitrepo` (hardened, ADR-022; ``GIT_OPTIONAL_LOCKS=0``, so
``git status`` never writes the index).

What stops writes (events wait with the problem's sentence, saves are refused 409):

- an operation in progress (rebase, am, merge, cherry-pick, revert, bisect): a
  hub commit now would be folded into the person's operation, rewritten or
  dropped when it ends;
- a detached HEAD: a commit there is on no branch, and the next checkout drops it;
- HEAD on a branch other than the one the repo tracks (``default_branch`` in
  statehub.toml, when it declares one);
- the branch checked out (or being rebased) in another worktree too: moving it
  leaves that worktree's index behind, and its next commit would undo the change;
- an ``index.lock`` someone other than the hub has held for at least
  :data:`LOCK_BUSY_AFTER` seconds (a git command running, or one that died);
- refs kept in the reftable format (``git init --ref-format=reftable``, git
  2.45+): the hub reads and publishes refs as files, so it would misread HEAD
  (git writes ``refs/heads/.invalid`` there) and write a ref git never reads.

Everything else (an unborn branch, a shallow clone, a linked worktree, a
submodule, no remote, an unreachable or diverged remote, uncommitted changes)
lets the hub commit; docs/format.md ("Git states") has the table of what
indexing, write-back and the sweep do in each.
"""

from __future__ import annotations

import os
import re
import time
from enum import StrEnum
from pathlib import Path

import git
import msgspec

from statehub.answers import Problem
from statehub.gitfiles import HeadState, read_head
from statehub.gitfiles import read_text as _text
from statehub.gitfiles import resolve_ref as _resolve
from statehub.gitrepo import GitDirs, HubRepo, git_dirs, git_in, open_repo, upload_pack_args

__all__ = [
    "HUB_LOCK_MARK",
    "LOCK_BUSY_AFTER",
    "PROBE_TIMEOUT",
    "GitState",
    "HeadState",
    "IndexLock",
    "Operation",
    "index_lock",
    "inspect",
    "lock_problem",
    "operation",
    "read_head",
    "reftable_problem",
    "stops",
    "upstream",
]

LOCK_BUSY_AFTER = 1.0
"""Seconds someone else's ``index.lock`` must be held before it counts as stopping writes: as long
as ``statehub.gitcommit.publish`` waits for it (a person's ``git status`` holds it for less)."""

PROBE_TIMEOUT = 10.0
"""Seconds ``inspect(probe=True)`` gives ``git ls-remote`` to reach the remote."""

HUB_LOCK_MARK = b"statehub index lock, pid "
"""How an ``index.lock`` the hub holds starts (``statehub.gitcommit``); the pid follows."""

_DIRTY_LISTED = 100
_CREDENTIALS = re.compile(r"(?<=://)[^/@]*@")


class Operation(StrEnum):
    """A git operation a person has in progress in the work tree."""

    REBASE = "rebase"
    AM = "am"
    MERGE = "merge"
    CHERRY_PICK = "cherry-pick"
    REVERT = "revert"
    BISECT = "bisect"


class IndexLock(msgspec.Struct, frozen=True):
    """``index.lock`` in the work tree's git dir: who holds it, for how long."""

    path: str
    age_s: float
    """Seconds since it was made, to 0.1 s."""
    hub_pid: int | None
    """The State Hub process holding it (the hub's own commit in progress), else None: a git
    command, or one that stopped and left it."""


class GitState(msgspec.Struct, frozen=True, kw_only=True):
    """Everything about a work tree's git that decides what the hub may do there (:func:`inspect`)."""

    work_tree: str
    branch: str | None
    """The branch HEAD names (also on an unborn branch); None when detached."""
    head: str | None
    """HEAD's commit; None on an unborn branch."""
    detached: bool
    unborn: bool
    tracked: str | None
    """The branch the hub commits to: ``default_branch`` from statehub.toml, else the branch HEAD
    names (None when detached and none is declared)."""
    operation: Operation | None
    """A rebase, am, merge, cherry-pick, revert or bisect in progress."""
    lock: IndexLock | None
    conflicted: list[str]
    """Paths with unmerged entries in the index."""
    dirty: list[str]
    """Tracked paths whose work tree or index differs from HEAD (the first 100; untracked files are
    not looked at)."""
    dirty_count: int
    remote: str | None
    """The remote the branch follows (its upstream, else ``origin`` or the first remote); None
    without a remote."""
    remote_url: str | None
    """Its fetch URL, any user name or password removed."""
    upstream: str | None
    """``<remote>/<branch>`` the sweep integrates with and pushes to."""
    ahead: int | None
    """Commits on HEAD not on the upstream as last fetched; None without one."""
    behind: int | None
    """Commits on the upstream (as last fetched) not on HEAD; None without one."""
    remote_reachable: bool | None
    """Whether ``git ls-remote`` reached the remote; None when not asked (``probe``) or no remote."""
    remote_error: str | None
    """Why it could not be reached (git's own words)."""
    shallow: bool
    linked_worktree: bool
    """A worktree made by ``git worktree add``: its own HEAD, index and lock, refs shared."""
    submodule_of: str | None
    """The superproject's work tree when this work tree is a submodule."""
    submodules: list[str]
    """Paths of the submodules ``.gitmodules`` declares (the hub never enters or updates them)."""
    problems: list[Problem]
    """What stops writes (``stops_writes``) and what else a person should look at."""


# reading files under .git ----------------------------------------------------------------------


def _names(directory: str) -> frozenset[str]:
    try:
        return frozenset(os.listdir(directory))
    except OSError:
        return frozenset()


def operation(git_dir: Path, names: frozenset[str] | None = None) -> tuple[Operation, str | None] | None:
    """The operation in progress in the work tree whose git dir is ``git_dir``, and the branch it
    works on (None when it does not say); None when there is none. Read as git's own prompt
    script does, from the files the operation leaves in the git dir (``names``: its entries,
    when the caller listed them already)."""
    base = os.fspath(git_dir)
    names = _names(base) if names is None else names
    for name in ("rebase-merge", "rebase-apply"):
        if name in names:
            state = os.path.join(base, name)
            kind = Operation.AM if os.path.exists(os.path.join(state, "applying")) else Operation.REBASE
            head = _text(os.path.join(state, "head-name"))
            branch = head.removeprefix("refs/heads/") if head and head.startswith("refs/") else None
            return kind, branch
    if "MERGE_HEAD" in names:
        return Operation.MERGE, None
    if "CHERRY_PICK_HEAD" in names:
        return Operation.CHERRY_PICK, None
    if "REVERT_HEAD" in names:
        return Operation.REVERT, None
    if "sequencer" in names:
        todo = _text(os.path.join(base, "sequencer", "todo")) or ""
        return (Operation.REVERT if todo.startswith("revert") else Operation.CHERRY_PICK), None
    if "BISECT_START" in names:
        return Operation.BISECT, _text(os.path.join(base, "BISECT_START")) or None
    return None


def index_lock(git_dir: Path, now: float | None = None) -> IndexLock | None:
    """``git_dir/index.lock`` when it exists: its age and, when a State Hub process holds it, the
    pid. None when there is none."""
    path = os.path.join(git_dir, "index.lock")
    try:
        info = os.stat(path)
    except OSError:
        return None
    hub_pid: int | None = None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            head = os.read(fd, 256)
        finally:
            os.close(fd)
    except OSError:
        head = b""
    if head.startswith(HUB_LOCK_MARK):
        pid = head[len(HUB_LOCK_MARK) :].split(b" ", 1)[0]
        hub_pid = int(pid) if pid.isdigit() else None
    age = max(0.0, (time.time() if now is None else now) - info.st_mtime)
    return IndexLock(path, round(age, 1), hub_pid)


def _elsewhere(dirs: GitDirs, ref: str) -> str | None:
    """Another work tree that has ``ref`` checked out, or is rebasing it (read only when the repo
    has linked worktrees at all)."""
    common = os.fspath(dirs.common_dir)
    linked = sorted(_names(os.path.join(common, "worktrees")))
    if not linked:
        return None
    others: list[tuple[str, str]] = []
    if dirs.common_dir.name == ".git":  # the main work tree (a bare repo's worktrees have none)
        others.append((os.path.dirname(common), common))
    for name in linked:
        state = os.path.join(common, "worktrees", name)
        link = _text(os.path.join(state, "gitdir"))
        if link:
            others.append((os.path.dirname(link), state))
    mine = os.path.realpath(dirs.git_dir)
    for work_tree, git_dir in others:
        if os.path.realpath(git_dir) == mine:
            continue
        if _text(os.path.join(git_dir, "HEAD")) == f"ref: {ref}":
            return work_tree
        for name in ("rebase-merge", "rebase-apply"):
            if _text(os.path.join(git_dir, name, "head-name")) == ref:
                return work_tree
    return None


# what stops writes -----------------------------------------------------------------------------

_FINISH = {
    Operation.REBASE: ("rebase", "rebase --continue"),
    Operation.AM: ("git am", "am --continue"),
    Operation.MERGE: ("merge", "commit"),
    Operation.CHERRY_PICK: ("cherry-pick", "cherry-pick --continue"),
    Operation.REVERT: ("revert", "revert --continue"),
}
"""What the person calls the operation, and the git command that finishes it."""


def _operation_problem(root: Path, kind: Operation, branch: str | None, conflicted: list[str]) -> Problem:
    git_c = f"git -C {root}"
    if kind is Operation.BISECT:
        back = f" (HEAD goes back to {branch})" if branch else ""
        return Problem(
            "operation",
            f"a bisect is in progress in {root}: HEAD is wherever the bisect put it, so writes wait",
            f"end it with {git_c} bisect reset{back}",
            True,
        )
    name, finish = _FINISH[kind]
    on = f" of {branch}" if branch else ""
    where = f", with conflicts in {_paths(conflicted)}" if conflicted else ""
    abort = {Operation.AM: "am", Operation.MERGE: "merge"}.get(kind, str(kind))
    return Problem(
        "operation",
        f"a {name}{on} is in progress in {root}{where}: a hub commit now would be rewritten or lost "
        "when it ends, so writes wait",
        f"finish it (resolve any conflicts, git add them, then {git_c} {finish}) or undo it "
        f"({git_c} {abort} --abort)",
        True,
    )


def _paths(paths: list[str], most: int = 5) -> str:
    shown = ", ".join(paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


def stops(
    dirs: GitDirs,
    tracked: str | None = None,
    *,
    now: float | None = None,
    conflicted: list[str] | None = None,
    lock: bool = True,
) -> list[Problem]:
    """What in the work tree's git state stops the hub's writes now (empty: it may write).

    ``tracked`` is ``default_branch`` from the repo's statehub.toml (None: the branch
    HEAD names); ``lock=False`` leaves out someone else's index lock (the commit path
    waits for it itself). Reads files under the git dir only; see the module docstring.
    """
    root = dirs.work_tree
    if os.path.isdir(os.path.join(dirs.common_dir, "reftable")):
        return [reftable_problem(root)]
    found: list[Problem] = []
    head = read_head(dirs)
    names = _names(os.fspath(dirs.git_dir))
    doing = operation(dirs.git_dir, names)
    if doing is not None:
        found.append(_operation_problem(root, doing[0], doing[1], conflicted or []))
    elif head.ref is None:
        where = f"at {head.sha[:10]}" if head.sha else "with no commit"
        note = _submodule_note(dirs)
        tracked = tracked or _left_branch(os.fspath(dirs.git_dir))
        found.append(
            Problem(
                "detached-head",
                f"HEAD in {root} is detached {where}, on no branch{note}: a commit there would be lost "
                "at the next checkout, so writes wait",
                f"switch to the branch the repo tracks: git -C {root} switch {tracked or '<branch>'} "
                "(first git switch -c <name> to keep commits made on the detached HEAD)",
                True,
            )
        )
    elif tracked is not None and head.ref != f"refs/heads/{tracked}":
        found.append(
            Problem(
                "other-branch",
                f"HEAD in {root} is on branch {head.branch}, and the repo tracks {tracked} (default_branch "
                f"in statehub.toml): the hub commits only to {tracked}, so writes wait",
                f"git -C {root} switch {tracked}, or set default_branch = {head.branch!r} in statehub.toml",
                True,
            )
        )
    if head.ref is not None and doing is None:
        other = _elsewhere(dirs, head.ref)
        if other is not None:
            found.append(
                Problem(
                    "branch-checked-out-elsewhere",
                    f"branch {head.branch} is also checked out in {other}: a hub commit would leave that "
                    "work tree's index behind and its next commit would undo the change, so writes wait",
                    f"switch one of them to another branch (git -C {other} switch --detach), or remove that "
                    f"worktree (git -C {root} worktree remove {other})",
                    True,
                )
            )
    held = index_lock(dirs.git_dir, now) if lock and "index.lock" in names else None
    if held is not None and held.hub_pid is None and held.age_s >= LOCK_BUSY_AFTER:
        found.append(lock_problem(root, held))
    return found


def reftable_problem(root: Path) -> Problem:
    """A work tree whose refs are in the reftable format (its common git dir holds ``reftable/``)."""
    return Problem(
        "git-error",
        f"{root} keeps its refs in the reftable format, which the hub does not read or write (it reads "
        "refs as files): writes wait",
        f"convert it to the files format (git -C {root} refs migrate --ref-format=files, git 2.46 or "
        "newer), or register a clone made without --ref-format=reftable",
        True,
    )


def lock_problem(root: Path, held: IndexLock) -> Problem:
    """An index lock in the work tree at ``root`` as a problem (however young: the commit path
    says so when it gave up waiting for it)."""
    if held.hub_pid is not None:
        return Problem(
            "index-lock",
            f"git is busy in {root}: {held.path} has been held for {_age(held.age_s)} by State Hub "
            f"process {held.hub_pid}, so writes wait",
            "it goes when that process's commit ends; a lock of a process that is gone is removed at "
            "the next write-back pass",
            True,
        )
    return Problem(
        "index-lock",
        f"git is busy in {root}: {held.path} has been held for {_age(held.age_s)} by a git command "
        "(not the hub), so writes wait",
        f"if no git command is running there, remove it: rm {held.path}",
        True,
    )


_CHECKOUT = re.compile(r"\tcheckout: moving from (\S+) to ")
_SHA = re.compile(r"^[0-9a-f]{40,64}$")


def _left_branch(git_dir: str) -> str | None:
    """The branch HEAD was last checked out from, as HEAD's reflog says (its last 16 KiB)."""
    try:
        with open(os.path.join(git_dir, "logs", "HEAD"), "rb") as file:
            file.seek(max(0, os.fstat(file.fileno()).st_size - 16384))
            tail = file.read().decode("utf-8", "replace")
    except OSError:
        return None
    for line in reversed(tail.splitlines()):
        match = _CHECKOUT.search(line)
        if match is not None and not _SHA.match(match.group(1)):
            return match.group(1)
    return None


def _submodule_note(dirs: GitDirs) -> str:
    return " (a submodule: git submodule update checks it out detached)" if _superproject(dirs) else ""


def _superproject(dirs: GitDirs) -> str | None:
    """The superproject's work tree when ``dirs`` is a submodule's (its git dir under
    ``<super>/.git/modules/``)."""
    if dirs.git_dir != dirs.common_dir or not (dirs.work_tree / ".git").is_file():
        return None
    parts = dirs.git_dir.parts
    if "modules" not in parts:
        return None
    index = len(parts) - 1 - parts[::-1].index("modules")
    super_git = Path(*parts[:index])
    return str(super_git.parent if super_git.name == ".git" else super_git)


# the full reading ------------------------------------------------------------------------------


def upstream(repo: HubRepo) -> tuple[str, str] | None:
    """(remote, branch) the current branch follows: its upstream, else the same name on ``origin``
    (or the first remote); None without a remote or when HEAD is detached."""
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


def _status(repo: HubRepo) -> tuple[list[str], list[str], int]:
    """(conflicted paths, dirty paths (at most 100), how many dirty) from ``git status``."""
    out = git_in(
        repo, "status", "--porcelain=v2", "-z", "--untracked-files=no", "--ignore-submodules=all", timeout=60
    )
    fields = out.split(b"\0")
    conflicted: list[str] = []
    dirty: list[str] = []
    count = 0
    at = 0
    while at < len(fields):
        record = fields[at].decode("utf-8", "surrogateescape")
        at += 1
        kind = record[:1]
        if kind == "1":
            path = record.split(" ", 8)[-1]
        elif kind == "2":
            path = record.split(" ", 9)[-1]
            at += 1  # the original path follows
        elif kind == "u":
            path = record.split(" ", 10)[-1]
            conflicted.append(path)
        else:
            continue
        count += 1
        if len(dirty) < _DIRTY_LISTED:
            dirty.append(path)
    return conflicted, dirty, count


def _counts(repo: HubRepo, head: str, ref: str) -> tuple[int | None, int | None]:
    try:
        out = git_in(repo, "rev-list", "--left-right", "--count", f"{head}...{ref}", "--").decode()
    except git.GitCommandError:
        return None, None
    ahead, _, behind = out.strip().partition("\t")
    return int(ahead), int(behind)


def _probe(repo: HubRepo, remote: str, timeout: float) -> str | None:
    """Why ``git ls-remote`` could not reach ``remote``, or None when it did."""
    try:
        git_in(repo, "ls-remote", *upload_pack_args(), "--heads", remote, timeout=timeout)
    except git.GitCommandError as error:
        said = [line.strip() for line in str(error.stderr or "").splitlines() if line.strip()]
        fatal = [line for line in said if line.startswith(("fatal:", "error:"))] or said
        return " ".join(fatal)[:300] or f"git ls-remote exited with status {error.status}"
    return None


def _submodules(repo: HubRepo, root: Path) -> list[str]:
    if not (root / ".gitmodules").is_file():
        return []
    try:
        out = git_in(
            repo, "config", "--file", ".gitmodules", "--null", "--get-regexp", r"^submodule\..*\.path$"
        )
    except git.GitCommandError:
        return []
    return sorted(
        record.partition(b"\n")[2].decode("utf-8", "surrogateescape") for record in out.split(b"\0") if record
    )


def inspect(
    root: Path, tracked: str | None = None, *, probe: bool = False, probe_timeout: float = PROBE_TIMEOUT
) -> GitState:
    """The git state of the work tree at ``root`` (see :class:`GitState`); ``tracked`` as for
    :func:`stops`; ``probe`` also asks the remote whether it is reachable (``git ls-remote``, at
    most ``probe_timeout`` seconds). Raises NotAGitRepo (no work tree there, config the hub
    refuses) or GitCommandError (git could not read the repo)."""
    dirs = git_dirs(root)
    repo = open_repo(root)
    try:
        head = read_head(dirs)
        doing = operation(dirs.git_dir)
        conflicted, dirty, dirty_count = _status(repo)
        problems = stops(dirs, tracked, conflicted=conflicted)
        follows = upstream(repo) if head.ref is not None else None
        remote = follows[0] if follows else (repo.remotes[0].name if len(repo.remotes) == 1 else None)
        url: str | None = None
        if remote is not None:
            try:
                url = _CREDENTIALS.sub("", git_in(repo, "remote", "get-url", remote).decode().strip())
            except git.GitCommandError:
                url = None
        ahead = behind = None
        if follows is not None and head.sha is not None:
            ref = f"refs/remotes/{follows[0]}/{follows[1]}"
            if _resolve(dirs, ref) is not None:
                ahead, behind = _counts(repo, head.sha, ref)
        reachable: bool | None = None
        remote_error: str | None = None
        if probe and remote is not None:
            remote_error = _probe(repo, remote, probe_timeout)
            reachable = remote_error is None
        upstream_name = f"{follows[0]}/{follows[1]}" if follows else None
        if remote_error is not None:
            problems.append(
                Problem(
                    "remote-unreachable",
                    f"the remote {remote} ({url}) cannot be reached: {remote_error}",
                    f"check its URL (git -C {dirs.work_tree} remote get-url {remote}), the network and the "
                    "credentials; events still apply here, and the next sweep pushes them",
                    False,
                )
            )
        if ahead and behind:
            problems.append(
                Problem(
                    "diverged",
                    f"{head.branch} and {upstream_name} have diverged ({ahead} commits here, {behind} there, "
                    "as last fetched)",
                    "a sweep (statehub sweep) rebases the commits made here onto the remote's; if that "
                    f"conflicts, rebase by hand: git -C {dirs.work_tree} pull --rebase",
                    False,
                )
            )
        return GitState(
            work_tree=str(dirs.work_tree),
            branch=head.branch,
            head=head.sha,
            detached=head.ref is None,
            unborn=head.ref is not None and head.sha is None,
            tracked=tracked or head.branch,
            operation=doing[0] if doing else None,
            lock=index_lock(dirs.git_dir),
            conflicted=conflicted,
            dirty=dirty,
            dirty_count=dirty_count,
            remote=remote,
            remote_url=url,
            upstream=upstream_name,
            ahead=ahead,
            behind=behind,
            remote_reachable=reachable,
            remote_error=remote_error,
            shallow=(dirs.common_dir / "shallow").is_file(),
            linked_worktree=dirs.git_dir != dirs.common_dir,
            submodule_of=_superproject(dirs),
            submodules=_submodules(repo, dirs.work_tree),
            problems=problems,
        )
    finally:
        repo.close()
