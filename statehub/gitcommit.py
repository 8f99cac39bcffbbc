"""The one way the hub commits, for events and saves alike (ADR-028).

A hub commit holds exactly the hub's change: it is built from the bytes the hub
computed, never from what the work tree or the index hold when it is made, and
the hub never replaces bytes it did not read. Two steps:

1. :func:`build_chain` makes the commits as objects only, in one ``git
   fast-import`` process however many there are: the first one's parent is the
   HEAD the hub read, each tree is its parent's with the hub's blobs put in,
   each commit has its author (a :class:`sync.saving.Person`, whose ``address``
   is the one author-email rule: the email given, else
   ``<name>@users.statehub.invalid``) and the hub as committer (:data:`HUB`).
   No ref, no index, no work tree is touched (the import's scratch branch is
   reset to nothing in the same stream, so it is never written).
2. :func:`publish` puts the chain on the branch under the repo's index lock
   (``.git/index.lock``, taken as git takes it, so a person's ``git commit`` or
   ``git add`` never interleaves with it; a lock held by someone else is waited
   for :data:`INDEX_LOCK_WAIT` seconds, then :class:`IndexBusy`):

   - HEAD must still be what the hub read, else :class:`HeadMoved` and nothing is written;
   - nothing in the git state may stop writes (:func:`statehub.gitstate.stops`: an operation
     in progress, a detached HEAD, a branch other than the tracked one, the branch checked
     out in another worktree), else :class:`WritesStopped` and nothing is written: a commit
     there could be lost, so the hub never makes one (ADR-029);
   - each file is replaced only if it still holds exactly the bytes the hub read
     (``write_repo_file(expected_sha=...)``), else ``statehub.atomic.FileChanged``;
   - a copy of the index gets the new blob for each path whose entry was the old
     HEAD's blob; any other entry is a person's staged work and stays as it is;
   - the branch moves with ``git update-ref <ref> <new> <old>`` (compare and swap:
     :class:`HeadMoved` if anything moved it meanwhile);
   - the new index replaces the old one and the lock is released.

   On any failure the files written are put back (where they still hold the
   hub's bytes) and the branch and the index are as they were.

Every git command runs through :func:`statehub.gitrepo.git_in` (hardened: no
hook, filter or helper of the repo runs; plumbing runs no hooks anyway). A hub
killed while holding the lock leaves a lock that names it; :func:`clear_stale`
removes such a lock (and a half-built index) once that process is gone, never a
lock of anyone else.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import git
from git.refs.symbolic import SymbolicReference

from statehub.atomic import NO_FILE, FileChanged, content_sha, move_into_place
from statehub.cache import blob_sha
from statehub.errors import Conflict
from statehub.gitrepo import GitDirs, HubRepo, git_in
from statehub.gitstate import HUB_LOCK_MARK, LOCK_BUSY_AFTER, index_lock, lock_problem, stops
from statehub.repofiles import RepoPathError, remove_repo_file, write_repo_file
from sync.saving import Person

if TYPE_CHECKING:
    from statehub.answers import Problem

__all__ = [
    "HUB",
    "INDEX_LOCK_WAIT",
    "Blob",
    "Chain",
    "FileWrite",
    "Head",
    "HeadMoved",
    "IndexBusy",
    "NewCommit",
    "WritesStopped",
    "blob_bytes",
    "build_chain",
    "clear_stale",
    "committed_blobs",
    "committed_tree",
    "dirs_of",
    "publish",
    "read_head",
    "repair_index",
]

log = logging.getLogger(__name__)

HUB = Person("State Hub", "statehub@statehub.invalid")
"""The committer of every hub commit (events and saves); the author is whoever acted."""

INDEX_LOCK_WAIT = LOCK_BUSY_AFTER
"""Seconds :func:`publish` waits for an index lock someone else holds (a person's git command);
a lock held longer counts as stopping writes (``statehub.gitstate``)."""

_SCRATCH = b"refs/statehub/chain"
_NO_SHA = "0" * 40
_LOCK_MARK = HUB_LOCK_MARK
_TEMP_INDEX = re.compile(r"statehub-index\.(?P<pid>[0-9]+)\.[0-9a-f]{8}")
_FILE_MODES = (b"100644", b"100755")


class HeadMoved(Conflict):
    """HEAD is not the commit (or branch) the hub read: someone committed, reset or switched meanwhile."""


class IndexBusy(Conflict):
    """The repo's ``.git/index.lock`` is held by someone else (a git command running, or a stale lock)."""


class WritesStopped(Conflict):
    """The work tree's git state stops writes (``statehub.gitstate.stops``): ``problem`` says what
    and the remedy; the message is its sentence."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.sentence())
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Head:
    """What HEAD is: the branch it names (``refs/heads/main``; None when detached) and its commit
    (None on an unborn branch)."""

    ref: str | None
    sha: str | None


@dataclass(frozen=True, slots=True)
class Blob:
    """A file as a tree holds it: its mode (``100644`` or ``100755``) and its blob sha."""

    mode: str
    sha: str


@dataclass(frozen=True, slots=True)
class NewCommit:
    """One commit to make: its author, its message, and the bytes of each file it changes
    (repo-relative path -> the whole file as it is after this commit)."""

    author: Person
    message: str
    files: Mapping[str, bytes]


@dataclass(frozen=True, slots=True)
class Chain:
    """Commits :func:`build_chain` made, not yet on any branch: ``commits`` oldest first."""

    base: Head
    commits: list[str]
    before: dict[str, Blob | None]
    """Each path the chain changes, as ``base`` holds it (None: not there)."""
    after: dict[str, Blob]
    """Each path the chain changes, as the last commit holds it."""

    @property
    def tip(self) -> str:
        return self.commits[-1]


@dataclass(frozen=True, slots=True)
class FileWrite:
    """A file :func:`publish` writes: ``data`` replaces exactly ``read`` (None: there was no file)."""

    path: str
    read: bytes | None
    data: bytes


# reading ----------------------------------------------------------------------------------------


def read_head(repo: HubRepo) -> Head:
    """HEAD as it is now, read from the ref files (no git process, not even gitpython's object
    reader)."""
    head = repo.head
    ref = None if head.is_detached else head.ref.path
    try:
        sha: str | None = SymbolicReference.dereference_recursive(repo, "HEAD")
    except ValueError:  # an unborn branch
        sha = None
    return Head(ref, sha)


def committed_blobs(repo: HubRepo, head: Head, paths: Iterable[str]) -> dict[str, Blob]:
    """The blob each of ``paths`` has in ``head``: regular files only (a path that is absent,
    a directory, a symlink or a submodule there is left out). Raises GitCommandError."""
    wanted = sorted(set(paths))
    if head.sha is None or not wanted:
        return {}
    out = git_in(repo, "ls-tree", "-z", "--full-tree", head.sha, "--", *wanted)
    found: dict[str, Blob] = {}
    for record in out.split(b"\0"):
        meta, _, path = record.partition(b"\t")
        fields = meta.split()
        if len(fields) == 3 and fields[1] == b"blob" and fields[0] in _FILE_MODES:
            found[path.decode("utf-8", "surrogateescape")] = Blob(fields[0].decode(), fields[2].decode())
    return found


def committed_tree(repo: HubRepo, head: Head, top: str) -> dict[str, Blob]:
    """Every regular file under the directory ``top`` in ``head``, with its blob (empty when
    ``head`` is unborn or has no such directory). Raises GitCommandError."""
    if head.sha is None:
        return {}
    out = git_in(repo, "ls-tree", "-r", "-z", "--full-tree", head.sha, "--", top.rstrip("/") + "/")
    found: dict[str, Blob] = {}
    for record in out.split(b"\0"):
        meta, _, path = record.partition(b"\t")
        fields = meta.split()
        if len(fields) == 3 and fields[1] == b"blob" and fields[0] in _FILE_MODES:
            found[path.decode("utf-8", "surrogateescape")] = Blob(fields[0].decode(), fields[2].decode())
    return found


def blob_bytes(repo: HubRepo, shas: Iterable[str]) -> dict[str, bytes]:
    """The bytes of each blob in ``shas``, read by one ``git cat-file --batch``; a sha the repo
    does not hold is left out. Raises GitCommandError."""
    wanted = list(dict.fromkeys(shas))
    if not wanted:
        return {}
    out = git_in(repo, "cat-file", "--batch", stdin="".join(f"{sha}\n" for sha in wanted).encode())
    found: dict[str, bytes] = {}
    at = 0
    while at < len(out):
        end = out.index(b"\n", at)
        header = out[at:end].split()
        at = end + 1
        if len(header) == 3:  # "<sha> <type> <size>", then the content; "<sha> missing" has none
            size = int(header[2])
            if header[1] == b"blob":
                found[header[0].decode()] = out[at : at + size]
            at += size + 1
    return found


# building ---------------------------------------------------------------------------------------


def _ident(kind: bytes, person: Person, when: int) -> bytes:
    return kind + f" {person.name} <{person.address}> {when} +0000\n".encode()


def _quoted(path: str) -> bytes:
    """``path`` as fast-import reads it: as is, or C-quoted when it starts with a quote or holds a
    line break or backslash-escapable character."""
    raw = path.encode("utf-8", "surrogateescape")
    if not raw.startswith(b'"') and not any(c < 0x20 or c == 0x7F for c in raw):
        return raw
    out = bytearray(b'"')
    for c in raw:
        if c in (0x22, 0x5C):
            out += b"\\" + bytes([c])
        elif c < 0x20 or c == 0x7F:
            out += b"\\%03o" % c
        else:
            out.append(c)
    return bytes(out + b'"')


def build_chain(
    repo: HubRepo, base: Head, commits: Sequence[NewCommit], before: Mapping[str, Blob | None]
) -> Chain:
    """Make ``commits`` as a chain on top of ``base`` (objects only; see the module docstring).

    ``before`` gives each path the commits change as ``base`` holds it (its mode is
    kept; a new file gets ``100644``). Raises GitCommandError when git fails.
    """
    if not commits:
        raise ValueError("a chain needs at least one commit")
    when = int(time.time())
    stream = bytearray(b"feature done\nreset " + _SCRATCH + b"\n\n")
    after: dict[str, Blob] = {}
    for number, commit in enumerate(commits, 1):
        message = commit.message.encode("utf-8")
        stream += b"commit " + _SCRATCH + b"\nmark :%d\n" % number
        stream += _ident(b"author", commit.author, when) + _ident(b"committer", HUB, when)
        stream += b"data %d\n" % len(message) + message + b"\n"
        if number == 1 and base.sha is not None:
            stream += b"from " + base.sha.encode() + b"\n"
        for path, data in commit.files.items():
            old = before.get(path)
            mode = old.mode if old is not None else "100644"
            stream += b"M " + mode.encode() + b" inline " + _quoted(path) + b"\n"
            stream += b"data %d\n" % len(data) + data + b"\n"
            after[path] = Blob(mode, blob_sha(data))
        stream += b"\n"
    stream += b"reset " + _SCRATCH + b"\nfrom " + _NO_SHA.encode() + b"\n\n"
    stream += b"".join(b"get-mark :%d\n" % n for n in range(1, len(commits) + 1))
    stream += b"done\n"
    out = git_in(repo, "fast-import", "--quiet", "--date-format=raw", stdin=bytes(stream))
    shas = out.decode().split()
    if len(shas) != len(commits):
        raise git.GitCommandError(["git", "fast-import"], 0, f"fast-import named {len(shas)} commits")
    return Chain(base, shas, {p: before.get(p) for p in after}, after)


# publishing -------------------------------------------------------------------------------------


def dirs_of(repo: HubRepo) -> GitDirs:
    """The git directories of an opened work tree (``statehub.gitrepo.GitDirs``)."""
    assert repo.working_tree_dir is not None
    return GitDirs(Path(repo.working_tree_dir), Path(repo.git_dir), Path(repo.common_dir))


def publish(
    repo: HubRepo,
    chain: Chain,
    writes: Sequence[FileWrite],
    *,
    tracked: str | None = None,
    on_written: Callable[[], None] | None = None,
    lock_wait: float = INDEX_LOCK_WAIT,
) -> None:
    """Write ``writes`` and put ``chain`` on the branch, all or nothing (see the module docstring).

    ``tracked`` is the branch the repo tracks (``default_branch`` in its statehub.toml;
    None: the branch HEAD names). ``on_written`` runs once the files are written and
    before the branch moves (fault injection). Raises IndexBusy, HeadMoved,
    WritesStopped, FileChanged (a person changed a file: nothing is published),
    RepoPathError, OSError or GitCommandError; in every case the files are put back
    and the branch and index are untouched.
    """
    dirs = dirs_of(repo)
    root, git_dir = dirs.work_tree, dirs.git_dir
    with _index_lock(root, git_dir, lock_wait):
        now = read_head(repo)
        if now != chain.base:
            raise HeadMoved(_moved(chain.base, now))
        stopped = stops(dirs, tracked, lock=False)
        if stopped:
            raise WritesStopped(stopped[0])
        done: list[tuple[FileWrite, list[str]]] = []
        index: Path | None = None
        try:
            for item in writes:
                expected = NO_FILE if item.read is None else content_sha(item.read)
                made = write_repo_file(
                    root, item.path, item.data, expected_sha=expected, make_dirs=item.read is None
                )
                done.append((item, made))
            if on_written is not None:
                on_written()
            index = _next_index(repo, git_dir, chain.before, chain.after)
            _move_branch(repo, chain)
        except BaseException:
            if index is not None:
                index.unlink(missing_ok=True)
            _put_back(root, done)
            raise
        if index is not None:
            move_into_place(index, git_dir / "index")


def _moved(base: Head, now: Head) -> str:
    if base.ref != now.ref:
        return f"HEAD moved from {base.ref or 'a detached commit'} to {now.ref or 'a detached commit'}"
    return f"{base.ref or 'HEAD'} moved from {(base.sha or 'nothing')[:10]} to {(now.sha or 'nothing')[:10]}"


def _put_back(root: Path, done: list[tuple[FileWrite, list[str]]]) -> None:
    """Undo the writes of a publish that failed, where the files still hold the hub's bytes."""
    for item, made in reversed(done):
        try:
            if item.read is None:
                remove_repo_file(root, item.path, content_sha(item.data), made)
            else:
                write_repo_file(root, item.path, item.read, expected_sha=content_sha(item.data))
        except (FileChanged, RepoPathError, OSError) as error:
            log.warning("not putting %s back after a failed commit: %s", item.path, error)


def _next_index(
    repo: HubRepo, git_dir: Path, before: Mapping[str, Blob | None], after: Mapping[str, Blob]
) -> Path | None:
    """A copy of the index where each path of ``after`` whose entry is its ``before`` blob (both
    absent for a new file) gets its ``after`` blob; any other entry (a person's staged work, a
    conflict) stays. None when no entry changes."""
    changed = sorted(p for p, blob in after.items() if blob != before.get(p))
    index = git_dir / "index"
    fresh = not index.exists()
    if not changed or (fresh and any(before.get(p) is not None for p in changed)):
        return None  # no index at all while HEAD has files: nothing of ours to keep in step
    temp = git_dir / f"statehub-index.{os.getpid()}.{os.urandom(4).hex()}"
    if not fresh:  # (a repo with no commit and no index yet gets one holding the new files)
        shutil.copyfile(index, temp)
    try:
        env = {"GIT_INDEX_FILE": str(temp), "GIT_LITERAL_PATHSPECS": "1"}
        staged: dict[str, list[tuple[Blob, bytes]]] = {}
        for record in git_in(repo, "ls-files", "-s", "-z", "--", *changed, env=env).split(b"\0"):
            meta, _, name = record.partition(b"\t")
            fields = meta.split()
            if len(fields) == 3:
                entry = Blob(fields[0].decode(), fields[1].decode())
                staged.setdefault(name.decode("utf-8", "surrogateescape"), []).append((entry, fields[2]))
        lines = bytearray()
        for path in changed:
            entries = staged.get(path, [])
            current = entries[0][0] if len(entries) == 1 and entries[0][1] == b"0" else None
            if (not entries and before.get(path) is None) or (
                current is not None and current == before.get(path)
            ):
                new = after[path]
                lines += f"{new.mode} {new.sha}\t".encode() + path.encode("utf-8", "surrogateescape") + b"\0"
        if not lines:
            temp.unlink(missing_ok=True)
            return None
        git_in(repo, "update-index", "-z", "--index-info", stdin=bytes(lines), env=env)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


def repair_index(
    repo: HubRepo, changes: Mapping[str, tuple[str, str]], lock_wait: float = INDEX_LOCK_WAIT
) -> None:
    """After a hub killed between moving the branch and replacing the index: each path of
    ``changes`` (path -> (blob before, blob after)) whose HEAD blob is the one after and whose
    index entry is still the one before gets the one after. Raises IndexBusy, GitCommandError."""
    head = read_head(repo)
    now = committed_blobs(repo, head, changes)
    before: dict[str, Blob | None] = {}
    after: dict[str, Blob] = {}
    for path, (old, new) in changes.items():
        blob = now.get(path)
        if blob is not None and blob.sha == new and old != new:
            before[path], after[path] = Blob(blob.mode, old), blob
    if not after:
        return
    dirs = dirs_of(repo)
    git_dir = dirs.git_dir
    with _index_lock(dirs.work_tree, git_dir, lock_wait):
        index = _next_index(repo, git_dir, before, after)
        if index is not None:
            move_into_place(index, git_dir / "index")


def _move_branch(repo: HubRepo, chain: Chain) -> None:
    """``git update-ref`` from the base to the tip, a compare and swap; HeadMoved if it lost."""
    head = ["--no-deref", "HEAD"] if chain.base.ref is None else [chain.base.ref]
    subject = "statehub: " + (f"{len(chain.commits)} commits" if len(chain.commits) > 1 else "commit")
    try:
        git_in(repo, "update-ref", "-m", subject, *head, chain.tip, chain.base.sha or _NO_SHA)
    except git.GitCommandError as error:
        said = str(error.stderr or "")
        if "but expected" in said or "already exists" in said:
            raise HeadMoved(_moved(chain.base, read_head(repo))) from None
        raise


# the index lock ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _index_lock(root: Path, git_dir: Path, wait: float) -> Iterator[None]:
    """Hold ``.git/index.lock`` as git does (created exclusively, removed when done); the lock
    says who holds it, so :func:`clear_stale` can tell a lock a killed hub left behind. IndexBusy
    when someone else holds it for ``wait`` seconds (the message says how long, and the remedy)."""
    lock = git_dir / "index.lock"
    token = _LOCK_MARK + f"{os.getpid()} {os.urandom(4).hex()}\n".encode()
    deadline = time.monotonic() + wait
    while True:
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            break
        except FileExistsError:
            if _clear_stale_lock(lock):
                continue
            if time.monotonic() >= deadline:
                held = index_lock(git_dir)
                if held is None:
                    continue  # released just now
                raise IndexBusy(lock_problem(root, held).sentence()) from None
            time.sleep(0.005)
    try:
        os.write(fd, token)
    finally:
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            if _read_small(lock) == token:
                lock.unlink()


def _read_small(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        return os.read(fd, 256)
    finally:
        os.close(fd)


def _dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _clear_stale_lock(lock: Path) -> bool:
    """Remove ``lock`` if a hub process that is gone wrote it; whether it did."""
    try:
        text = _read_small(lock)
    except OSError:
        return False
    if not text.startswith(_LOCK_MARK):
        return False
    pid = text[len(_LOCK_MARK) :].split(b" ", 1)[0]
    if not pid.isdigit() or not _dead(int(pid)):
        return False
    with contextlib.suppress(FileNotFoundError):
        lock.unlink()
    log.warning("removed %s: a killed State Hub process (pid %s) left it behind", lock, pid.decode())
    return True


def clear_stale(repo: HubRepo) -> list[str]:
    """Remove what a killed hub left in the repo's git dir: its index lock and half-built index
    copies, only those whose process is gone; the names removed."""
    git_dir = Path(repo.git_dir)
    removed = []
    if _clear_stale_lock(git_dir / "index.lock"):
        removed.append("index.lock")
    for path in git_dir.glob("statehub-index.*"):
        match = _TEMP_INDEX.fullmatch(path.name)
        if match is not None and _dead(int(match["pid"])):
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed
