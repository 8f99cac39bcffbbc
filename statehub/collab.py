"""Saving a room: validate the whole manifest, write it atomically, commit it, re-index.

The room (``sync.rooms``) decides *when* to save and *who* edited; this module
owns the hub's side: the schema check (:mod:`statehub.manifests`), the write
guarded by the text the room last read (a concurrent human edit is detected,
never overwritten), one git commit authored by the saver with a
``Co-authored-by:`` trailer per other editor, then ``Hub.refresh``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path

import git

from statehub.gitrepo import open_work_tree
from statehub.hub import Hub
from statehub.manifests import validate
from sync.room_store import RoomStore
from sync.rooms import Rooms
from sync.saving import SaveOutcome, SaveRequest

__all__ = ["ROOM_STORE_FILE", "ManifestSaver", "commit_message", "open_rooms"]

ROOM_STORE_FILE = "rooms.sqlite3"
COMMITTER = ("State Hub", "statehub@localhost")


def open_rooms(hub: Hub, *, poll_interval: float = 0.25) -> Rooms:
    """The hub's rooms, with their pending edits in ``<data dir>/rooms.sqlite3``."""
    store = RoomStore(hub.settings.data_dir / ROOM_STORE_FILE)
    return Rooms(store, ManifestSaver(hub), poll_interval=poll_interval)


def commit_message(request: SaveRequest) -> str:
    path = request.doc.partition("/")[2]
    lines = [
        f"Edit {path} together in the web editor",
        "",
        f"Saved by {request.saver.name} from room {request.doc}.",
    ]
    if request.coauthors:
        lines.append("")
        lines += [f"Co-authored-by: {p.signature()}" for p in request.coauthors]
    return "\n".join(lines) + "\n"


class ManifestSaver:
    """The :data:`sync.saving.Saver` the hub gives its rooms."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._written: dict[Path, str] = {}
        """Hash of what we last wrote per file: a dirty work tree holding exactly that is ours."""

    async def __call__(self, request: SaveRequest) -> SaveOutcome:
        path = request.doc.partition("/")[2]
        errors = validate(path, request.text)
        if errors:
            count = f"{len(errors)} problem" + ("s" if len(errors) > 1 else "")
            return SaveOutcome(False, f"{path} not saved: {count}; nothing was written", errors)
        if request.text == request.base_text:
            return SaveOutcome(True, "nothing changed since the file was last read or saved")
        return await asyncio.to_thread(self._write_and_commit, request, path)

    def _write_and_commit(self, request: SaveRequest, rel: str) -> SaveOutcome:
        slug = request.doc.partition("/")[0]
        with self.hub.write_lock:
            repo = open_work_tree(request.path.parent)
            try:
                refusal = self._refusal(repo, request, rel)
                if refusal:
                    return SaveOutcome(False, refusal)
                _atomic_write(request.path, request.text)
                self._written[request.path] = _digest(request.text)
                sha = _commit(repo, rel, request)
            finally:
                repo.close()
            self.hub.refresh(slug)
        return SaveOutcome(True, f"saved {rel} as commit {sha[:10]}", commit=sha)

    def _refusal(self, repo: git.Repo, request: SaveRequest, rel: str) -> str | None:
        on_disk = request.path.read_text(encoding="utf-8") if request.path.exists() else ""
        if on_disk != request.base_text:
            return f"{rel} changed on disk while saving; the room merges that change, then save again"
        if on_disk and _dirty(repo, rel) and self._written.get(request.path) != _digest(on_disk):
            return (
                f"{rel} has uncommitted changes in {request.path.parent}; the hub never commits over "
                "them: commit or discard them there, then save again"
            )
        return None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _dirty(repo: git.Repo, rel: str) -> bool:
    return bool(repo.git.status("--porcelain", "--", rel).strip())


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _commit(repo: git.Repo, rel: str, request: SaveRequest) -> str:
    """Commit only ``rel`` (other staged work stays staged), authored by the saver."""
    env = {
        "GIT_AUTHOR_NAME": request.saver.name,
        "GIT_AUTHOR_EMAIL": request.saver.address,
        "GIT_COMMITTER_NAME": COMMITTER[0],
        "GIT_COMMITTER_EMAIL": COMMITTER[1],
    }
    repo.git.add("--", rel)
    with repo.git.custom_environment(**env):
        repo.git.commit("--no-verify", "--only", "-m", commit_message(request), "--", rel)
    return str(repo.head.commit.hexsha)
