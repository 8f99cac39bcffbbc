"""Reading and writing files inside a repo, and nowhere else (ADR-022).

Repo contents are untrusted: whoever can push to a registered repo controls its
files and symlinks. Every path the hub reads or writes inside a repo goes
through this module, which walks the path one component at a time from the
repo root with ``O_NOFOLLOW`` directory handles (``openat``), so neither a
symlink at any level nor a rename racing the walk can lead the hub outside the
root. A symlink anywhere on the path, a path that climbs out (``..``, an
absolute path) or anything but a regular file at the end is refused with
:class:`RepoPathError` before a byte is read or written; a file with more than
one hard link is never read (its other name may be outside the repo).

Directory trees (``workplans/``, ``canon/``) are listed by :func:`scan_repo_tree`
the same way: directories are opened without following links, and every
symbolic link or special file met on the way is reported, never followed.

Files also have limits (:class:`FileLimits`): bytes per kind of file and tasks
per workplan. A file over its limit is a file error naming the limit and the
size; it is never parsed, and write-back never grows a file past it.

    RepoPathError (statehub.errors.BadRequest, 400 / exit 2)
    ├── FileTooLarge      the file or the data is over the size limit (413)
    └── TooManyTasks      a workplan with more tasks than the limit (413)
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from statehub.errors import BadRequest

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from pathlib import Path

__all__ = [
    "HARD_LINKED",
    "IS_SYMLINK",
    "NOT_REGULAR",
    "OUTSIDE",
    "FileLimits",
    "FileTooLarge",
    "RepoPathError",
    "TooManyTasks",
    "TreeEntry",
    "check_repo_path",
    "count_task_tables",
    "lstat_repo_path",
    "read_repo_file",
    "remove_repo_file",
    "remove_stale_repo_temps",
    "scan_repo_tree",
    "write_repo_file",
]

IS_SYMLINK = "is a symbolic link"
OUTSIDE = "resolves outside the repo"
NOT_REGULAR = "is not a regular file"
HARD_LINKED = "has other hard links (it may be a file outside the repo)"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class RepoPathError(BadRequest):
    """A repo-relative ``path`` the hub must not read or write, and why (``reason``)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class FileTooLarge(RepoPathError):
    """413-sized: the file at ``path`` (or the data for it) is over ``limit`` bytes."""

    status_code = 413

    def __init__(self, path: str, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(path, f"is {size:,} bytes, over the limit of {limit:,} bytes")


class TooManyTasks(RepoPathError):
    """413-sized: the workplan at ``path`` holds ``count`` tasks, over ``limit``."""

    status_code = 413

    def __init__(self, path: str, count: int, limit: int) -> None:
        self.count = count
        self.limit = limit
        super().__init__(
            path, f"has {count:,} tasks, over the limit of {limit:,} tasks; split it into several workplans"
        )


MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class FileLimits:
    """Size limits of the files the hub reads from a repo (ADR-022).

    Bytes per kind of file (``workplan``, ``canon``, ``manifest``, ``fleet``;
    any other kind gets ``other_bytes``) and tasks per workplan. Defaults keep
    one write-back of a workplan under about a quarter of a second (tomlkit
    edits cost ~0.25 ms a task); ``STATEHUB_MAX_<KIND>_BYTES`` and
    ``STATEHUB_MAX_WORKPLAN_TASKS`` override them (statehub.settings).
    """

    workplan_bytes: int = MiB
    workplan_tasks: int = 1000
    canon_bytes: int = MiB
    manifest_bytes: int = 64 * 1024
    fleet_bytes: int = MiB
    other_bytes: int = MiB

    def bytes_for(self, kind: str) -> int:
        """The byte limit of a file of ``kind`` (a cache source kind name)."""
        value = getattr(self, f"{kind}_bytes", None)
        return value if isinstance(value, int) else self.other_bytes

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FileLimits:
        """``STATEHUB_MAX_{WORKPLAN,CANON,MANIFEST,FLEET}_BYTES``, ``STATEHUB_MAX_WORKPLAN_TASKS``;
        ValueError naming the variable for anything but a whole number of at least 1."""
        values: dict[str, int] = {}
        for field in ("workplan_bytes", "workplan_tasks", "canon_bytes", "manifest_bytes", "fleet_bytes"):
            name = f"STATEHUB_MAX_{field.upper()}"
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            if not raw.isdigit() or int(raw) < 1 or len(raw) > 15:
                raise ValueError(f"{name}={raw!r}: give a whole number of at least 1")
            values[field] = int(raw)
        return cls(**values)


_TASK_TABLE = re.compile(r"^[ \t]*\[\[[ \t]*(?:tasks|\"tasks\"|'tasks')[ \t]*\]\]", re.MULTILINE)


def count_task_tables(text: str) -> int:
    """How many ``[[tasks]]`` headers ``text`` holds: a count made without parsing the file.

    Cheap enough to run before any TOML parser, so a file with a million tasks
    is refused in milliseconds. Tasks written as an inline array are not
    counted here; callers check the parsed count as well.
    """
    if "[[" not in text:
        return 0
    return len(_TASK_TABLE.findall(text))


def _parts(rel: str) -> list[str]:
    """The components of a repo-relative POSIX path; RepoPathError if it could climb out."""
    if not rel or "\0" in rel:
        raise RepoPathError(repr(rel), "is not a file path")
    if rel.startswith("/") or "\\" in rel:
        raise RepoPathError(rel, OUTSIDE)
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise RepoPathError(rel, OUTSIDE)
    return parts


@contextlib.contextmanager
def _parent_dir(root: Path, rel: str, *, create: bool = False) -> Iterator[tuple[int, str]]:
    """An fd of the directory holding ``rel`` (walked without following links) and the file name."""
    parts = _parts(rel)
    fd = os.open(root, _DIR_FLAGS & ~os.O_NOFOLLOW)  # the registered root itself may be a link
    try:
        walked: list[str] = []
        for name in parts[:-1]:
            walked.append(name)
            try:
                next_fd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(name, 0o777, dir_fd=fd)
                next_fd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.ENOTDIR):
                    if _is_link(fd, name):
                        raise RepoPathError("/".join(walked), IS_SYMLINK) from None
                    raise RepoPathError("/".join(walked), "is not a directory") from None
                raise
            os.close(fd)
            fd = next_fd
        yield fd, parts[-1]
    finally:
        os.close(fd)


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def lstat_repo_path(root: Path, rel: str) -> os.stat_result | None:
    """The stat of the regular file ``rel`` inside ``root`` (links not followed), None if absent.

    RepoPathError when ``rel`` or a directory on the way is a symbolic link, climbs
    out of ``root``, or is not a regular file (a FIFO, a device, a directory).
    """
    try:
        with _parent_dir(root, rel) as (fd, name):
            try:
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return None
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        raise RepoPathError(rel, IS_SYMLINK)
    if not stat.S_ISREG(info.st_mode):
        raise RepoPathError(rel, NOT_REGULAR)
    return info


class TreeEntry(msgspec.Struct, frozen=True, gc=False):
    """One entry :func:`scan_repo_tree` met: a regular file with its stat, or a refusal.

    ``stat`` is the entry's own stat (links not followed); ``error`` is None for a
    regular file, else the reason it is refused (``IS_SYMLINK``, ``NOT_REGULAR``).
    """

    path: str
    stat: os.stat_result
    error: str | None = None


def scan_repo_tree(root: Path, top: str, suffix: str) -> Iterator[TreeEntry]:
    """Every regular file under directory ``top`` of ``root`` whose name ends with ``suffix``,
    and every entry the hub refuses there, walked without following links.

    Names starting with ``.`` are skipped, and so is a directory holding a
    ``.git`` (a submodule or a repo cloned inside this one): its files belong to
    that other repo, which is registered on its own if at all. A symbolic link (to a file or a
    directory, whatever its name) and a FIFO, socket or device named ``*suffix``
    are yielded with their ``error``; a symbolic link or special file at ``top``
    itself (or on the way to it) is yielded as one entry for ``top``. Nothing a
    link points at is ever opened or listed.
    """
    try:
        with _parent_dir(root, top) as (parent, name):
            try:
                own = os.stat(name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                return
            if stat.S_ISLNK(own.st_mode):
                yield TreeEntry(top, own, IS_SYMLINK)
                return
            if not stat.S_ISDIR(own.st_mode):
                return  # a plain file called workplans holds no workplans
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        return
    except RepoPathError as error:
        yield TreeEntry(error.path, os.stat(root), error.reason)
        return
    yield from _walk_fd(fd, top, suffix)


def _entry_name(entry: os.DirEntry[str]) -> str:
    return entry.name


def _walk_fd(fd: int, rel_dir: str, suffix: str) -> Iterator[TreeEntry]:
    """Walk the directory open at ``fd`` (closed here); see :func:`scan_repo_tree`.

    The listing's own entry types (``d_type``; an ``lstat`` where the file system
    gives none) say which names are directories and links, so only the files
    named ``*suffix``, links and directories swapped meanwhile are stat'ed: one
    system call per source file, the least a stat identity needs (the CLI's
    read path walks every registered repo before each answer, canon/ADR-033).
    A directory listing a ``.git`` is the top of another work tree and yields
    nothing.
    """
    try:
        with os.scandir(fd) as entries:
            listed = sorted(entries, key=_entry_name)
        if any(entry.name == ".git" for entry in listed):
            return  # another work tree: its files are that repo's
        for entry in listed:
            name = entry.name
            if name[0] == ".":
                continue
            rel = f"{rel_dir}/{name}"
            try:
                if entry.is_dir(follow_symlinks=False):
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                elif entry.is_symlink():
                    yield TreeEntry(rel, entry.stat(follow_symlinks=False), IS_SYMLINK)
                    continue
                elif name.endswith(suffix):
                    info = entry.stat(follow_symlinks=False)
                    yield TreeEntry(rel, info, None if stat.S_ISREG(info.st_mode) else NOT_REGULAR)
                    continue
                else:
                    continue
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.ENOTDIR):  # a directory swapped for a link meanwhile
                    with contextlib.suppress(OSError):
                        yield TreeEntry(rel, entry.stat(follow_symlinks=False), IS_SYMLINK)
                continue  # gone since the listing
            yield from _walk_fd(child, rel, suffix)
    finally:
        os.close(fd)


def check_repo_path(root: Path, rel: str) -> None:
    """RepoPathError unless ``rel`` names a regular file inside ``root`` with no other hard
    link, or nothing yet (:func:`lstat_repo_path`'s rules, plus the link count).

    Used where a caller hands the path to another program (git) rather than
    reading it here.
    """
    info = lstat_repo_path(root, rel)
    if info is not None and info.st_nlink > 1:
        raise RepoPathError(rel, HARD_LINKED)  # git would commit the other name's bytes


def read_repo_file(root: Path, rel: str, limit: int) -> bytes:
    """The bytes of the regular file ``rel`` inside ``root``, at most ``limit`` bytes.

    Raises RepoPathError (a symlink on the way, outside the repo, not a regular
    file, a file with more than one hard link), FileTooLarge, or
    FileNotFoundError / OSError as ``open`` would.

    A hard link is a regular file whose bytes may be a file anywhere else on the
    same file system (the hub's root key, another repo's work), and nothing on
    the path says so; git never makes one in a work tree, so a file with more
    than one link is refused like a symlink (ADR-022). Writes replace the file
    (a new inode), so they never reach the other name.
    """
    with _parent_dir(root, rel) as (dir_fd, name):
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise RepoPathError(rel, IS_SYMLINK) from None
            raise
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise RepoPathError(rel, NOT_REGULAR)
            if info.st_nlink > 1:
                raise RepoPathError(rel, HARD_LINKED)
            if info.st_size > limit:
                raise FileTooLarge(rel, info.st_size, limit)
            # Reads of the size the file has (and one byte more, to see it grow), never a buffer of
            # ``limit`` bytes: a buffered read(limit + 1) allocated a MiB for every file.
            chunks: list[bytes] = []
            total = 0
            want = info.st_size + 1
            while chunk := os.read(fd, want):
                chunks.append(chunk)
                total += len(chunk)
                if total > limit:
                    raise FileTooLarge(rel, total, limit)
                want = min(limit + 1 - total, max(want, 64 * 1024))
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        finally:
            os.close(fd)


def write_repo_file(
    root: Path,
    rel: str,
    data: bytes,
    *,
    make_dirs: bool = False,
    mode: int | None = None,
    expected_sha: str | None = None,
) -> list[str]:
    """Atomically replace (or create) the regular file ``rel`` inside ``root`` with ``data``;
    the repo-relative directories it had to create (``make_dirs``), outermost first.

    A temp file in the same directory is written, fsynced and renamed over the
    target, then the directory is fsynced (``statehub.atomic.replace_in_dir``, the
    one core every writer of the hub shares). The existing file's permission bits
    are kept (``mode`` when it is new, default 0o644). ``make_dirs`` creates
    missing directories inside the repo. ``expected_sha`` (``statehub.atomic.content_sha``
    of the bytes read, or ``statehub.atomic.NO_FILE``) replaces only exactly the
    bytes read: anything else raises ``statehub.atomic.FileChanged`` (409) with
    nothing written (ADR-028). Raises RepoPathError before anything is written
    when the path or any directory on it is a symlink or not inside the repo; on
    any failure the temp file is removed and the target is untouched.
    """
    made = _missing_dirs(root, rel) if make_dirs else []
    with _parent_dir(root, rel, create=make_dirs) as (dir_fd, name):
        try:
            existing = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            keep = mode if mode is not None else 0o644
        else:
            if stat.S_ISLNK(existing.st_mode):
                raise RepoPathError(rel, IS_SYMLINK)
            if not stat.S_ISREG(existing.st_mode):
                raise RepoPathError(rel, NOT_REGULAR)
            keep = stat.S_IMODE(existing.st_mode)
        from statehub.atomic import replace_in_dir

        replace_in_dir(dir_fd, name, data, keep, expected_sha=expected_sha, label=rel)
    return made


def _missing_dirs(root: Path, rel: str) -> list[str]:
    """The directories on the way to ``rel`` that do not exist yet, outermost first."""
    parts = _parts(rel)[:-1]
    missing: list[str] = []
    for depth in range(1, len(parts) + 1):
        path = "/".join(parts[:depth])
        if missing or not os.path.lexists(root / path):
            missing.append(path)
    return missing


def remove_repo_file(root: Path, rel: str, expected_sha: str, dirs: Sequence[str] = ()) -> None:
    """Remove ``rel`` inside ``root`` if it still holds exactly the bytes hashed as ``expected_sha``
    (``statehub.atomic.remove_in_dir``; FileChanged otherwise, nothing removed), then each of the
    directories ``dirs`` that is empty, innermost first (the list :func:`write_repo_file` returned)."""
    with _parent_dir(root, rel) as (dir_fd, name):
        from statehub.atomic import remove_in_dir

        remove_in_dir(dir_fd, name, expected_sha, label=rel)
    for path in reversed(dirs):
        with contextlib.suppress(OSError), _parent_dir(root, path) as (dir_fd, name):
            os.rmdir(name, dir_fd=dir_fd)


def remove_stale_repo_temps(root: Path, rel: str) -> list[str]:
    """Remove temp files a killed hub left beside ``rel`` inside ``root`` (see
    :func:`statehub.atomic.remove_stale_temps`); the repo-relative paths removed.

    The directory is walked as every other path here is; a refused or missing
    directory removes nothing.
    """
    try:
        with _parent_dir(root, rel) as (dir_fd, _name):
            from statehub.atomic import remove_stale_temps

            names = remove_stale_temps(dir_fd)
    except (OSError, RepoPathError):
        return []
    parent = rel.rpartition("/")[0]
    return [f"{parent}/{n}" if parent else n for n in names]
