"""Replacing a file atomically: the one way the hub writes a file.

:func:`replace_in_dir` is the core: a fresh temp file in the target's own
directory is written, fsynced and renamed over the target, then the directory
is fsynced, so after a crash the name holds the old bytes or the new ones,
never a mix, and a rename that returned is on disk. On any failure the temp
file is removed and the target is untouched.

With ``expected_sha`` it replaces only the bytes the writer read (the hub never
replaces bytes it did not read, ADR-028): the file is opened and compared
immediately before the replace, and the replace itself is an exchange
(``renameat2(RENAME_EXCHANGE)``, Linux 3.15+) that hands back whatever the name
held at that instant: if that is not the very file compared, unchanged, the
exchange is undone and :class:`FileChanged` raised. Where the exchange is not
supported, a plain rename is followed by the same check on the file compared
(someone writing into it meanwhile gets their bytes put back). ``NO_FILE`` as
``expected_sha`` means "there must be no file": the new one is linked into
place without replacing anything (``RENAME_NOREPLACE``).

Two doors use it: :func:`atomic_write` for the hub's own files (keys, the
revocation list, ``hub.toml``, sweep reports), and
:func:`statehub.repofiles.write_repo_file` for files inside a registered repo,
which first walks to the directory without following links.
:func:`move_into_place` renames a file the hub prepared itself (a git index
built beside the real one) over its target.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import re
import stat
from typing import TYPE_CHECKING

from statehub.errors import Conflict

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "NO_FILE",
    "FileChanged",
    "atomic_write",
    "content_sha",
    "move_into_place",
    "remove_in_dir",
    "remove_stale_temps",
    "replace_in_dir",
]

_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_MODE = 0o644
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.(?P<pid>[0-9]+)\.[0-9a-f]{8}\.statehub")
"""``.<name>.<pid>.<8 hex>.statehub``: what :func:`replace_in_dir` names its temp files."""


NO_FILE = "no-file"
"""``expected_sha`` for a file the writer found absent: it must still be absent (never a content sha)."""

_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


class FileChanged(Conflict):
    """The file is not the one the writer read (``expected_sha``): someone changed it meanwhile."""

    def __init__(self, message: str, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)


def content_sha(data: bytes) -> str:
    """The hash ``atomic_write`` compares with ``expected_sha``: SHA-256 of the bytes, in hex."""
    return hashlib.sha256(data).hexdigest()


def _rename2(dir_fd: int, source: str, target: str, flags: int) -> bool:
    """``renameat2`` within ``dir_fd``; False where the kernel, libc or file system lacks it."""
    if _renameat2 is None:
        return False
    if _renameat2(dir_fd, os.fsencode(source), dir_fd, os.fsencode(target), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), target)


def _temp_file(dir_fd: int, name: str, data: bytes, mode: int) -> str:
    temp = f".{name}.{os.getpid()}.{os.urandom(4).hex()}.statehub"
    fd = os.open(temp, _TEMP_FLAGS, mode, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=dir_fd)
        raise
    return temp


def replace_in_dir(
    dir_fd: int, name: str, data: bytes, mode: int, *, expected_sha: str | None = None, label: str = ""
) -> None:
    """Replace (or create) ``name`` in the directory open as ``dir_fd`` with ``data``, mode bits
    ``mode`` whatever the umask: temp file, fsync, rename, fsync of the directory.

    ``expected_sha`` (:func:`content_sha` of the bytes read, or :data:`NO_FILE`): replace
    only exactly those bytes, else raise :class:`FileChanged` (409) with nothing
    written (see the module docstring). ``label`` names the file in that message.
    """
    label = label or name
    if expected_sha is None:
        temp = _temp_file(dir_fd, name, data, mode)
        try:
            os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=dir_fd)
            raise
    elif expected_sha == NO_FILE:
        _create_new(dir_fd, name, data, mode, label)
    else:
        _replace_read(dir_fd, name, data, mode, expected_sha, label)
    os.fsync(dir_fd)


def _create_new(dir_fd: int, name: str, data: bytes, mode: int, label: str) -> None:
    """Put ``data`` at ``name`` only if nothing is there (RENAME_NOREPLACE, else a hard link)."""
    temp = _temp_file(dir_fd, name, data, mode)
    try:
        if not _rename2(dir_fd, temp, name, _RENAME_NOREPLACE):
            os.link(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    except FileExistsError:
        raise FileChanged(
            f"{label} appeared since it was read; read it again and redo the change", label
        ) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=dir_fd)


def _same_file(fd: int, before: os.stat_result, expected_sha: str) -> bool:
    """Whether the open file ``fd`` still holds the expected bytes, unwritten since ``before``
    (size and mtime; a rename changes the ctime, not these)."""
    now = os.fstat(fd)
    if (now.st_size, now.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        return False
    return content_sha(os.pread(fd, now.st_size + 1, 0)) == expected_sha


def _replace_read(dir_fd: int, name: str, data: bytes, mode: int, expected_sha: str, label: str) -> None:
    """Replace ``name`` only if it still holds the bytes read; see the module docstring."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        raise FileChanged(
            f"{label} is gone since it was read; read it again and redo the change", label
        ) from None
    changed = FileChanged(f"{label} changed since it was read; read it again and redo the change", label)
    try:
        before = os.fstat(fd)
        if (
            not stat.S_ISREG(before.st_mode)
            or content_sha(os.pread(fd, before.st_size + 1, 0)) != expected_sha
        ):
            raise changed
        temp = _temp_file(dir_fd, name, data, mode)
        try:
            try:
                exchanged = _rename2(dir_fd, temp, name, _RENAME_EXCHANGE)
            except FileNotFoundError:  # removed since it was compared
                raise FileChanged(
                    f"{label} is gone since it was read; read it again and redo the change", label
                ) from None
            if exchanged:
                # ``temp`` now names what ``name`` held at the exchange: the file compared, unchanged?
                swapped = os.stat(temp, dir_fd=dir_fd, follow_symlinks=False)
                if (swapped.st_dev, swapped.st_ino) != (before.st_dev, before.st_ino) or not _same_file(
                    fd, before, expected_sha
                ):
                    _rename2(dir_fd, temp, name, _RENAME_EXCHANGE)  # theirs back at the name
                    raise changed
                os.unlink(temp, dir_fd=dir_fd)
            else:
                os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            if not _same_file(fd, before, expected_sha):
                # Someone who had the file open wrote into it while it was replaced: their bytes
                # are only in the file we still hold open. They go back at the name.
                theirs = os.pread(fd, os.fstat(fd).st_size + 1, 0)
                with contextlib.suppress(FileChanged):
                    _replace_read(dir_fd, name, theirs, mode, content_sha(data), label)
                raise changed
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=dir_fd)
    finally:
        os.close(fd)


def remove_in_dir(dir_fd: int, name: str, expected_sha: str, *, label: str = "") -> None:
    """Remove ``name`` from the directory open as ``dir_fd`` only if it holds exactly the bytes
    hashed as ``expected_sha``: it is renamed aside first (whatever is there at that instant),
    checked, and renamed back without replacing anything if it is not those bytes
    (:class:`FileChanged`). A file already gone is fine."""
    label = label or name
    aside = f".{name}.{os.getpid()}.{os.urandom(4).hex()}.statehub"
    try:
        os.rename(name, aside, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except FileNotFoundError:
        return
    try:
        fd = os.open(aside, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        fd = -1
    try:
        ours = fd >= 0 and content_sha(os.pread(fd, os.fstat(fd).st_size + 1, 0)) == expected_sha
    finally:
        if fd >= 0:
            os.close(fd)
    if ours:
        os.unlink(aside, dir_fd=dir_fd)
        os.fsync(dir_fd)
        return
    if not _rename2(dir_fd, aside, name, _RENAME_NOREPLACE):
        os.link(aside, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        os.unlink(aside, dir_fd=dir_fd)
    raise FileChanged(f"{label} changed since it was written; it is left as it is", label)


def move_into_place(source: Path, target: Path) -> None:
    """Rename ``source`` (a file the hub prepared and fsynced) over ``target`` in the same
    directory, then fsync the directory: readers see the old file or the new one."""
    dir_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.replace(source.name, target.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write(
    path: Path, data: bytes | str, expected_sha: str | None = None, mode: int | None = None
) -> None:
    """Atomically replace (or create) the hub's own file ``path`` with ``data`` (str: UTF-8, newlines
    as given); missing directories are created.

    ``expected_sha`` (see :func:`content_sha`) guards against a concurrent edit: when
    given, the file must still hold exactly those bytes, else :class:`FileChanged`
    (409) and nothing is written; a file that is gone does not match. ``mode`` sets
    the permission bits (e.g. ``0o600`` for a private key); by default an existing
    file keeps its own and a new one gets ``0o644``.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            existing: os.stat_result | None = os.stat(path.name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if mode is None:
            mode = stat.S_IMODE(existing.st_mode) if existing is not None else _NEW_FILE_MODE
        replace_in_dir(dir_fd, path.name, raw, mode, expected_sha=expected_sha, label=str(path))
    finally:
        os.close(dir_fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale_temps(dir_fd: int) -> list[str]:
    """Remove the temp files a killed writer left in the directory open as ``dir_fd``; their names.

    Only names :func:`replace_in_dir` makes, only regular files, only when the
    process that made them is gone (a live writer's temp file is left alone).
    """
    removed = []
    for name in os.listdir(dir_fd):
        match = _TEMP_NAME.fullmatch(name)
        if match is None or _alive(int(match["pid"])):
            continue
        with contextlib.suppress(OSError):
            if stat.S_ISREG(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                os.unlink(name, dir_fd=dir_fd)
                removed.append(name)
    return removed
