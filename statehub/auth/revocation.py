"""Revoked tokens: ids in a text file in the config dir, reloaded by the hub when it changes.

One revocation id a line (hex, as ``statehub token inspect`` prints them),
optionally followed by ``# a note``. A token is refused when any of its blocks'
ids is listed, so revoking a parent also revokes every token narrowed from it.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from typing import TYPE_CHECKING

from statehub.atomic import FileChanged, atomic_write, content_sha
from statehub.errors import BadRequest

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["RevocationList", "add_revocation", "check_revocation_id"]

_ID = re.compile(r"^[0-9a-f]{128}$")


def check_revocation_id(value: str) -> str:
    revocation_id = value.strip().lower()
    if not _ID.match(revocation_id):
        raise BadRequest(
            "not a revocation id: expected 128 hex digits, as listed by 'statehub token inspect TOKEN' "
            "(pass the id, not the token)"
        )
    return revocation_id


def _read_ids(path: Path) -> frozenset[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return frozenset()
    ids = set()
    for line in text.splitlines():
        value = line.split("#", 1)[0].strip().lower()
        if _ID.match(value):
            ids.add(value)
    return frozenset(ids)


def add_revocation(path: Path, revocation_id: str, note: str = "") -> bool:
    """Add an id (atomically: a hub reading concurrently sees the old or the new file); False if listed.

    Guarded by the content read: an id another command added meanwhile is read again, never lost.
    """
    revocation_id = check_revocation_id(revocation_id)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    comment = f"  # revoked {stamp}" + (f": {' '.join(note.split())}" if note.strip() else "")
    attempts = 0
    while True:
        if revocation_id in _read_ids(path):
            return False
        try:
            raw: bytes | None = path.read_bytes()
        except FileNotFoundError:
            raw = None
        old = raw.decode("utf-8") if raw else ""
        if old and not old.endswith("\n"):
            old += "\n"
        expected = content_sha(raw) if raw is not None else None
        try:
            atomic_write(path, old + revocation_id + comment + "\n", expected_sha=expected)
        except FileChanged:
            attempts += 1
            if attempts == _WRITE_ATTEMPTS:
                raise
            continue
        return True


_WRITE_ATTEMPTS = 5


class RevocationList:
    """The revoked ids, re-read whenever the file's size, mtime or inode changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._ids: frozenset[str] = frozenset()

    def ids(self) -> frozenset[str]:
        try:
            stat = self.path.stat()
            stamp: tuple[int, int, int] | None = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                self._ids = _read_ids(self.path) if stamp else frozenset()
                self._stamp = stamp
            return self._ids

    def revoked(self, revocation_ids: list[str]) -> str | None:
        """The first of ``revocation_ids`` that is revoked, if any."""
        listed = self.ids()
        return next((rid for rid in revocation_ids if rid.lower() in listed), None)
