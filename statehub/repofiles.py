"""Reading and writing files inside a repo, and nowhere else (ADR-022).

Repo contents are untrusted: whoever can push to a registered repo controls its
files and symlinks. Every path the hub reads or writes inside a repo goes
through this module, which walks the path one component at a time from the
repo root with ``O_NOFOLLOW`` directory handles (``openat``), so neither a
symlink at any level nor a rename racing the walk can lead the hub outside the
root. A symlink anywhere on the path, a path that climbs out (``..``, an
absolute path) or anything but a regular file at the end is refused with
:class:`RepoPathError` before a byte is read or written.

    RepoPathError (statehub.errors.BadRequest, 400 / exit 2)
    └── FileTooLarge      the file or the data is over the size limit
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from statehub.errors import BadRequest

__all__ = [
    "IS_SYMLINK",
    "OUTSIDE",
    "FileTooLarge",
    "RepoPathError",
    "check_repo_path",
    "read_repo_file",
    "write_repo_file",
]

IS_SYMLINK = "is a symbolic link"
OUTSIDE = "resolves outside the repo"
NOT_REGULAR = "is not a regular file"

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


def check_repo_path(root: Path, rel: str) -> None:
    """RepoPathError unless ``rel`` names a regular file inside ``root``, or nothing yet.

    Used where a caller hands the path to another program (git) rather than
    reading it here.
    """
    try:
        with _parent_dir(root, rel) as (fd, name):
            try:
                mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
            except FileNotFoundError:
                return
            if stat.S_ISLNK(mode):
                raise RepoPathError(rel, IS_SYMLINK)
            if not stat.S_ISREG(mode):
                raise RepoPathError(rel, NOT_REGULAR)
    except FileNotFoundError:
        return


def read_repo_file(root: Path, rel: str, limit: int) -> bytes:
    """The bytes of the regular file ``rel`` inside ``root``, at most ``limit`` bytes.

    Raises RepoPathError (a symlink on the way, outside the repo, not a regular
    file), FileTooLarge, or FileNotFoundError / OSError as ``open`` would.
    """
    with _parent_dir(root, rel) as (dir_fd, name):
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise RepoPathError(rel, IS_SYMLINK) from None
            raise
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise RepoPathError(rel, NOT_REGULAR)
            if info.st_size > limit:
                raise FileTooLarge(rel, info.st_size, limit)
            data = handle.read(limit + 1)
            if len(data) > limit:
                raise FileTooLarge(rel, len(data), limit)
            return data


def write_repo_file(
    root: Path, rel: str, data: bytes, *, make_dirs: bool = False, mode: int | None = None
) -> None:
    """Atomically replace (or create) the regular file ``rel`` inside ``root`` with ``data``.

    A temp file in the same directory is written, fsynced and renamed over the
    target, then the directory is fsynced. The existing file's permission bits
    are kept (``mode`` when it is new, default 0o644). ``make_dirs`` creates
    missing directories inside the repo. Raises RepoPathError before anything is
    written when the path or any directory on it is a symlink or not inside the
    repo; on any failure the temp file is removed and the target is untouched.
    """
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
        temp = f".{name}.{os.getpid()}.{os.urandom(4).hex()}.statehub"
        fd = os.open(
            temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, keep, dir_fd=dir_fd
        )
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fchmod(handle.fileno(), keep)
                os.fsync(handle.fileno())
            os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=dir_fd)
            raise
        os.fsync(dir_fd)
