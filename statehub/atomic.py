"""Replacing a file atomically: the one way the hub writes a file.

:func:`replace_in_dir` is the core: a fresh temp file in the target's own
directory is written, fsynced and renamed over the target, then the directory
is fsynced, so after a crash the name holds the old bytes or the new ones,
never a mix, and a rename that returned is on disk. On any failure the temp
file is removed and the target is untouched.

Two doors use it: :func:`atomic_write` for the hub's own files (keys, the
revocation list, ``hub.toml``, sweep reports), and
:func:`statehub.repofiles.write_repo_file` for files inside a registered repo,
which first walks to the directory without following links.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
from pathlib import Path

from statehub.errors import Conflict

__all__ = ["FileChanged", "atomic_write", "content_sha", "remove_stale_temps", "replace_in_dir"]

_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_MODE = 0o644
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.(?P<pid>[0-9]+)\.[0-9a-f]{8}\.statehub")
"""``.<name>.<pid>.<8 hex>.statehub``: what :func:`replace_in_dir` names its temp files."""


class FileChanged(Conflict):
    """The file is not the one the writer read (``expected_sha``): someone changed it meanwhile."""


def content_sha(data: bytes) -> str:
    """The hash ``atomic_write`` compares with ``expected_sha``: SHA-256 of the bytes, in hex."""
    return hashlib.sha256(data).hexdigest()


def replace_in_dir(dir_fd: int, name: str, data: bytes, mode: int) -> None:
    """Replace (or create) ``name`` in the directory open as ``dir_fd`` with ``data``, mode bits
    ``mode`` whatever the umask: temp file, fsync, rename, fsync of the directory."""
    temp = f".{name}.{os.getpid()}.{os.urandom(4).hex()}.statehub"
    fd = os.open(temp, _TEMP_FLAGS, mode, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=dir_fd)
        raise
    os.fsync(dir_fd)


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
        if expected_sha is not None:
            _check_unchanged(dir_fd, path, expected_sha)
        if mode is None:
            mode = stat.S_IMODE(existing.st_mode) if existing is not None else _NEW_FILE_MODE
        replace_in_dir(dir_fd, path.name, raw, mode)
    finally:
        os.close(dir_fd)


def _check_unchanged(dir_fd: int, path: Path, expected_sha: str) -> None:
    try:
        fd = os.open(path.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        raise FileChanged(f"{path} is gone since it was read; read it again and redo the change") from None
    with os.fdopen(fd, "rb") as handle:
        current = content_sha(handle.read())
    if current != expected_sha:
        raise FileChanged(f"{path} changed since it was read; read it again and redo the change")


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
