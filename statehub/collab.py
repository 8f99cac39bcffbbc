"""The hub's side of rooms: reading a manifest into a room, and saving one (ADR-022).

The room (``sync.rooms``) decides *when* to save and *who* edited; this module
owns the hub's side:

- :class:`ManifestFiles`, the room's loader: the file is read only through
  :mod:`statehub.repofiles` (no symlink anywhere on the path, nothing outside
  the repo, a regular file of at most :data:`MANIFEST_LIMIT` bytes, UTF-8),
  so a ``statehub.toml`` committed as a symlink to the hub's key file is
  refused with the reason and not one byte of the target is sent.
- :class:`ManifestSaver`, the room's saver: the size limit, the schema check
  (:mod:`statehub.manifests`), the rules events obey (a fleet registry edit
  adds no violation and passes the checks its events would, ADR-010; a repo
  manifest's slug and prefixes clash with no other registered repo), who the
  author is, the write guarded by the text the room last read (a concurrent
  human edit is detected, never overwritten), one commit through the hub's one
  commit path (:mod:`statehub.gitcommit`: built from the saved bytes, the file
  replaced only if it still holds what was read, the branch moved by compare
  and swap) with a ``Co-authored-by:`` trailer per other editor, then
  ``Hub.refresh``. A save that fails leaves the file, the index and the branch
  as they were, and answers with a short reason.

Who authors a save: the saver the room names (the token's actor on a hub
with tokens, or an admin token's chosen author; a ``?user=`` or awareness
name on an open hub); on an open hub a save without a name is authored by
the repo's git identity (``git config user.name`` / ``user.email``), as
``git commit`` on that laptop would be. Every name and email is one line
without ``<``, ``>`` or control characters (``sync.saving.identity_problem``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from typing import TYPE_CHECKING

import git

from registry import check_edit
from statehub import gitcommit
from statehub.atomic import FileChanged
from statehub.cache import blob_sha, queries
from statehub.changes import Change
from statehub.errors import HubError
from statehub.gitcommit import Blob, FileWrite, Head, HeadMoved, IndexBusy, NewCommit
from statehub.gitrepo import HubRepo, open_work_tree
from statehub.manifests import resolve_doc, validate
from statehub.repofiles import FileTooLarge, RepoPathError, check_repo_path, read_repo_file
from statehub.state_stores import ROOM_STORE_FILE, open_room_store
from sync.room_bus import room_bus
from sync.rooms import TEXT_LIMIT, Rooms, RoomState
from sync.saving import (
    LoadedFile,
    Person,
    RoomError,
    RoomFileError,
    RoomInputError,
    SaveOutcome,
    SaveRequest,
    Stamp,
)
from workplans import FLEET_PATH, MANIFEST_PATH, FleetRegistry, FormatError, parse_fleet, parse_manifest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from statehub.hub import Hub

__all__ = [
    "MANIFEST_LIMIT",
    "ROOM_STORE_FILE",
    "ManifestFiles",
    "ManifestSaver",
    "RoomAnnouncer",
    "commit_message",
    "git_identity",
    "open_rooms",
    "read_manifest",
]

log = logging.getLogger(__name__)

MANIFEST_LIMIT = TEXT_LIMIT
"""Bytes of a manifest the editor opens or saves (the room's text limit)."""


@contextlib.asynccontextmanager
async def open_rooms(hub: Hub, *, poll_interval: float = 0.25) -> AsyncIterator[Rooms]:
    """The hub's rooms, with their pending edits in ``<data dir>/rooms.sqlite3`` (or the PostgreSQL
    state schema, statehub.state_stores, where the rooms of one document on several replicas are
    joined by its bus: canon/ADR-051), open for the block.

    Leaving it stops the rooms' work, then closes the store. StoreTooNew when
    the store was written by a newer State Hub (nothing is left open then).
    """
    with open_room_store(hub.settings) as store:
        async with Rooms(
            store,
            ManifestFiles(hub),
            ManifestSaver(hub),
            poll_interval=poll_interval,
            on_change=RoomAnnouncer(hub),
            bus=room_bus(store),
        ) as rooms:
            yield rooms


class RoomAnnouncer:
    """Puts a ``room.changed`` on the change stream for each room that changed (canon/ADR-038):
    someone joined or left, a draft appeared or was saved, the room closed. The dashboard lists
    open rooms and drafts from ``GET /sync`` and follows these."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def __call__(self, states: list[RoomState]) -> None:
        changes = []
        for state in states:
            slug, _, path = state.doc.partition("/")
            data = {"doc": state.doc, "path": path, "open": state.open, "people": list(state.people)}
            changes.append(Change("room.changed", {**data, "unsaved": state.unsaved}, repo=slug))
        await asyncio.to_thread(self.hub.announce, changes)


# reading -----------------------------------------------------------------------------------------


def _stamp(root: Path, rel: str) -> Stamp | None:
    try:
        info = os.lstat(root / rel)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino, info.st_mode)


def read_manifest(root: Path, rel: str) -> LoadedFile:
    """The manifest ``rel`` of the repo at ``root`` as text; RoomFileError saying why it may not be read.

    Refused (ADR-022): a symlink anywhere on the path, a path resolving
    outside the repo, anything but a regular file (a FIFO, a directory),
    more than :data:`MANIFEST_LIMIT` bytes (status 413), bytes that are not
    UTF-8. A missing file is ``LoadedFile(None, None)``.
    """
    stamp = _stamp(root, rel)
    try:
        data = read_repo_file(root, rel, MANIFEST_LIMIT)
    except FileTooLarge as error:
        raise RoomFileError(
            f"{rel} is {error.size:,} bytes, over the editor's limit of {error.limit:,} bytes; "
            "edit it with a text editor and commit it",
            413,
        ) from None
    except RepoPathError as error:
        raise RoomFileError(
            f"{error.path} {error.reason}: the editor opens only regular files inside the repo", 400
        ) from None
    except FileNotFoundError:
        return LoadedFile(None, None)
    except IsADirectoryError:
        raise RoomFileError(f"{rel} is not a regular file: the editor opens only regular files") from None
    except OSError as error:
        raise RoomFileError(f"{rel} cannot be read: {error.strerror or error}", 400) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RoomFileError(
            f"{rel} is not UTF-8 text (byte {error.start} is 0x{data[error.start]:02x}); the editor opens "
            "UTF-8 TOML only: save the file as UTF-8, then open it again",
            400,
        ) from None
    return LoadedFile(text, stamp)


class ManifestFiles:
    """The :class:`sync.saving.FileLoader` the hub gives its rooms: ``<slug>/<path>`` read by repofiles."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def locate(self, doc: str) -> tuple[Path, str]:
        """The repo root and the repo-relative path of ``doc``; RoomFileError if it names no manifest."""
        try:
            manifest = resolve_doc(self.hub, doc)
        except HubError as error:
            raise RoomFileError(error.message, error.status_code) from None
        return manifest.repo.path, manifest.path

    def __call__(self, doc: str) -> LoadedFile:
        return read_manifest(*self.locate(doc))

    def stamp(self, doc: str) -> Stamp | None:
        return _stamp(*self.locate(doc))

    def problem(self, doc: str) -> tuple[bool, str | None]:
        """Whether the file exists, and why the editor would refuse it (None: it would open it)."""
        root, rel = self.locate(doc)
        try:
            check_repo_path(root, rel)
        except RepoPathError as error:
            return True, f"{error.path} {error.reason}"
        info = _stamp(root, rel)
        if info is not None and info[2] > MANIFEST_LIMIT:
            return True, f"{rel} is over the editor's limit of {MANIFEST_LIMIT:,} bytes"
        return info is not None, None


# saving ------------------------------------------------------------------------------------------


def commit_message(request: SaveRequest, author: Person) -> str:
    """The commit message of a save; every name in it passed ``identity_problem`` (one line, no <>)."""
    path = request.doc.partition("/")[2]
    lines = [
        f"Edit {path} together in the web editor",
        "",
        f"Saved by {author.name} from room {request.doc}.",
    ]
    coauthors = [p for p in request.coauthors if p.name != author.name]
    if coauthors:
        lines.append("")
        lines += [f"Co-authored-by: {p.signature()}" for p in coauthors]
    return "\n".join(lines) + "\n"


def git_identity(repo: git.Repo) -> Person | None:
    """``user.name`` / ``user.email`` as ``git commit`` in this repo would use them; None if unset.

    Reading config runs no code. RoomInputError when a value cannot be a git
    identity (a line break, ``<``, ...).
    """

    def value(key: str) -> str | None:
        try:
            found = str(repo.git.config("--get", key)).strip()
        except git.GitCommandError:
            return None
        return found or None

    name = value("user.name")
    if name is None:
        return None
    try:
        return Person(name, value("user.email"))
    except RoomInputError as error:
        raise RoomInputError(f"the repo's git identity cannot author a save: {error.message}") from None


class _Refused(Exception):
    def __init__(self, outcome: SaveOutcome) -> None:
        self.outcome = outcome


def _saved(doc: str, slug: str, rel: str, commit: str, author: str) -> Change:
    """The ``room.saved`` of a save that committed (canon/ADR-038)."""
    return Change("room.saved", {"doc": doc, "path": rel, "commit": commit, "author": author}, repo=slug)


def _refuse(message: str, status: int, errors: list[dict[str, object]] | None = None) -> _Refused:
    return _Refused(SaveOutcome(False, message, list(errors or []), status=status))


class ManifestSaver:
    """The :data:`sync.saving.Saver` the hub gives its rooms."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def __call__(self, request: SaveRequest) -> SaveOutcome:
        return await asyncio.to_thread(self.save, request)

    def save(self, request: SaveRequest) -> SaveOutcome:
        """Check, write and commit ``request``; a refusal is an outcome with its reason, never a raise."""
        try:
            return self._save(request)
        except _Refused as refused:
            return refused.outcome
        except RoomError as error:
            return SaveOutcome(False, f"not saved: {error.message}", status=error.status)
        except HubError as error:
            return SaveOutcome(False, f"not saved: {error.message}", status=error.status_code)
        except git.GitCommandError as error:
            return SaveOutcome(False, f"not saved: {_git_reason(error)}", status=409)

    def _save(self, request: SaveRequest) -> SaveOutcome:
        try:
            manifest = resolve_doc(self.hub, request.doc)
        except HubError as error:
            raise _refuse(error.message, error.status_code) from None
        root, rel = manifest.repo.path, manifest.path
        size = len(request.text.encode("utf-8"))
        if size > MANIFEST_LIMIT:
            raise _refuse(
                f"{rel} not saved: the text is {size:,} bytes, over the limit of {MANIFEST_LIMIT:,} bytes; "
                "nothing was written",
                413,
            )
        errors = validate(rel, request.text)
        if errors:
            count = f"{len(errors)} problem" + ("s" if len(errors) > 1 else "")
            raise _refuse(f"{rel} not saved: {count}; nothing was written", 422, errors)
        with self.hub.write_lock:
            repo = open_work_tree(root)
            try:
                committed = read_manifest(root, rel).text
                on_disk = committed or ""
                if on_disk != request.base_text:
                    raise _refuse(
                        f"{rel} changed on disk while saving; the room merges that change, then save again",
                        409,
                    )
                head = gitcommit.read_head(repo)
                blob = gitcommit.committed_blobs(repo, head, [rel]).get(rel)
                if _dirty(committed, blob):
                    raise _refuse(
                        f"{rel} has uncommitted changes in its repo; the hub never commits over them: "
                        "commit or discard them there, then save again",
                        409,
                    )
                reasons = self._rule_refusals(manifest.repo.slug, rel, committed, request.text)
                if reasons:
                    raise _refuse(
                        f"{rel} not saved: " + "; ".join(reasons),
                        422,
                        [{"line": None, "column": None, "message": r} for r in reasons],
                    )
                if request.text == on_disk and committed is not None:
                    return SaveOutcome(True, "nothing changed since the file was last read or saved")
                author = request.saver or git_identity(repo)
                if author is None:
                    raise _refuse(
                        "say who you are to save: connect with ?user=NAME, or set user.name in the repo's "
                        "git config",
                        400,
                    )
                sha = _commit_save(repo, rel, head, blob, committed, request, author)
            finally:
                repo.close()
            try:  # in the same hold of the lock: the watcher finds the save indexed (canon/ADR-048)
                self.hub.refresh(manifest.repo.slug, cause="save")
            except Exception:  # saved and committed; the watcher or the next refresh re-indexes it
                log.exception("re-indexing %s after a save failed", manifest.repo.slug)
        self.hub.announce([_saved(request.doc, manifest.repo.slug, rel, sha, author.name)])
        return SaveOutcome(True, f"saved {rel} as commit {sha[:10]}", commit=sha, by=author.name)

    def _rule_refusals(self, slug: str, rel: str, committed: str | None, text: str) -> list[str]:
        """What the rules events obey refuse in this edit (ADR-010, ADR-022); empty when it may be saved."""
        if rel == FLEET_PATH:
            try:
                before = parse_fleet(committed, rel) if committed else FleetRegistry()
            except FormatError:
                before = FleetRegistry()  # a broken committed file: every violation is new
            return check_edit(before, parse_fleet(text, rel))
        if rel == MANIFEST_PATH:
            return self._manifest_clashes(slug, committed, text)
        return []

    def _manifest_clashes(self, slug: str, committed: str | None, text: str) -> list[str]:
        """A slug or prefix this save takes from another registered repo (clashes it had already stay)."""
        new = parse_manifest(text)
        try:
            old_prefixes = set(parse_manifest(committed).prefixes) if committed else set()
        except FormatError:
            old_prefixes = set()
        reasons = []
        others = [r for r in self.hub.repos() if r.slug != slug]
        for other in others:
            if new.slug is not None and new.slug == other.slug:
                reasons.append(
                    f"slug {new.slug!r} is already registered for another repo ({other.path}); choose another"
                )
        with self.hub.engine.connect() as conn:
            declared = {
                prefix: item.slug
                for item in queries.list_repos(conn).items
                if item.slug != slug
                for prefix in item.prefixes
            }
        for prefix in new.prefixes:
            if prefix in declared and prefix not in old_prefixes:
                reasons.append(
                    f"prefix {prefix!r} is already declared by repo {declared[prefix]!r}; a workplan id "
                    "belongs to one repo's prefixes: choose another prefix"
                )
        return reasons


def _dirty(committed: str | None, blob: Blob | None) -> bool:
    """Whether the file (its text, None when absent) differs from its HEAD blob (None when absent)."""
    if committed is None or blob is None:
        return (committed is None) != (blob is None)
    return blob_sha(committed.encode("utf-8")) != blob.sha


def _git_reason(error: git.GitCommandError) -> str:
    """A short reason from git's own words: never the command line, at most one line."""
    stderr = re.sub(r"update_ref failed for ref '[^'\n]*': ", "", str(error.stderr or ""))
    if "index.lock" in stderr:
        return (
            "git could not lock the repo's index: another git command is running there, or one stopped "
            "and left .git/index.lock behind (remove it once no git command is running)"
        )
    match = re.search(r"(?:fatal|error): ([^\n']+)", stderr)
    return f"git refused the commit: {match.group(1).strip()[:200]}" if match else "git refused the commit"


def _commit_save(
    repo: HubRepo,
    rel: str,
    head: Head,
    blob: Blob | None,
    committed: str | None,
    request: SaveRequest,
    author: Person,
) -> str:
    """Write ``rel`` and commit only it through the one commit path, authored by ``author``; the sha.

    Built from the saved bytes (a person's other staged work stays staged); the file is
    replaced only if it still holds the text read. On any failure the file, the index
    and the branch are as they were and a ``_Refused`` with a short reason is raised.
    """
    data = request.text.encode("utf-8")
    read = committed.encode("utf-8") if committed is not None else None
    try:
        change = NewCommit(author, commit_message(request, author), {rel: data})
        chain = gitcommit.build_chain(repo, head, [change], {rel: blob})
        gitcommit.publish(repo, chain, [FileWrite(rel, read, data)])
    except IndexBusy:
        reason = (
            "git could not lock the repo's index: another git command is running there, or one stopped "
            "and left .git/index.lock behind (remove it once no git command is running)"
        )
        raise _refuse(f"{rel} not saved: {reason}; the file is as it was", 409) from None
    except HeadMoved as error:
        raise _refuse(f"{rel} not saved: {error.message} while saving; save again", 409) from None
    except FileChanged:
        raise _refuse(
            f"{rel} changed on disk while saving; the room merges that change, then save again", 409
        ) from None
    except git.GitCommandError as error:
        raise _refuse(f"{rel} not saved: {_git_reason(error)}; the file is as it was", 409) from None
    except RepoPathError as error:
        raise _refuse(f"{rel} not saved: {error.path} {error.reason}; nothing was written", 400) from None
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise _refuse(
            f"{rel} not saved: it could not be written ({reason}); the file is as it was", 409
        ) from None
    return chain.tip
