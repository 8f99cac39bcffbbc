"""The git reads of write-back: open a registered work tree, find our trailers, name the checkout.

Commits are made by :mod:`statehub.gitcommit` (the one commit path, for events
and saves). Every command runs through :mod:`statehub.gitrepo` (hardened: the
repo's hooks, filters and helpers never run, ADR-022). Trailers are read with
git's own trailer parser (``%(trailers:key=...)``), so a line in a commit's
body that merely looks like ``Statehub-Event: KEY`` is not proof that the
event was applied.

A write-back record names its checkout (canon/ADR-053, both addenda) by the id
the hub keeps in the clone itself, ``<git dir>/statehub-checkout`` (32 lowercase
hex digits and a newline, minted on the first write-back and never changed): it
goes with the clone when the work tree is moved and does not care what the host
is called. Records also say where the clone was, ``<host>:<git dir>``
(:attr:`Checkout.place`); a record with this checkout's id made at another place
on this host whose git dir still holds that id was made by a copy of the clone
(``cp -r``), or names an id someone planted here, and is left to that copy while
the hub still uses it (it is registered in hub.toml); one no longer registered
is taken over, as after a move (:meth:`Checkout.left_to`). The file is the
repo's, so it is untrusted input: it is read without following a link, at most a
few bytes, and anything but an id the hub could have written stops the
write-back with a sentence saying what to do.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import git

from statehub import gitrepo
from statehub.atomic import NO_FILE, FileChanged, replace_in_dir
from statehub.errors import Conflict

if TYPE_CHECKING:
    from collections.abc import Iterable

    from statehub.gitrepo import HubRepo

__all__ = [
    "CHECKOUT_FILE",
    "TRAILER",
    "Checkout",
    "checkout_of",
    "open_repo",
    "trailer_keys",
    "trailers_by_commit",
]

TRAILER = "Statehub-Event"
_SEP = "\x1f"
_LOG_FORMAT = f"--format=%H%x00%(trailers:key={TRAILER},valueonly=true,unfold=true,separator=%x1f)%x00"


CHECKOUT_FILE = "statehub-checkout"
"""The file in a clone's git dir (per worktree) that keeps the clone's checkout id."""
_ID = re.compile(rb"[0-9a-f]{32}\n?")
_ID_MAX = 34
"""The most bytes of :data:`CHECKOUT_FILE` read: an id and a newline (and one more, to see it is too long)."""


@dataclass(frozen=True, slots=True)
class Checkout:
    """Which checkout a write-back record belongs to (canon/ADR-053)."""

    id: str | None
    """The id kept in the clone (None until its first write-back)."""
    place: str
    """``<host>:<git dir>``: where the clone is now."""
    before: str
    """``<host>:<work tree>``: what records named it before ids (buffer layout 3)."""

    @property
    def names(self) -> tuple[str, ...]:
        """What a record of this checkout may name it (``sync.buffer.WriteBuffer.writebacks``)."""
        return (self.id, self.before) if self.id is not None else (self.before,)

    def left_to(self, checkout: str, place: str, registered: Iterable[Path]) -> Path | None:
        """The work tree of the other clone a record naming ``checkout`` (one of :attr:`names`, or
        ``""``) made at ``place`` is left to; None when it is this checkout's to resolve.

        It is left only when it names this id and was made at another place on this host whose git
        dir holds this very id now (a copy of the clone, ``cp -r``, or a clone this one's id was
        planted from) and that clone is still in use: it is the work tree of one of ``registered``
        (the repos in the hub's hub.toml, which replicas on one host share). Made on another host,
        or at a place that is gone, holds another id or is no longer registered: this clone was
        moved, copied or its host renamed since, and it takes the record over."""
        if checkout != self.id or not place or place == self.place:
            return None
        host, _, git_dir = place.partition(":")
        if host != socket.gethostname() or not Path(git_dir).is_absolute():
            return None
        try:
            if _read_id(Path(git_dir)) != self.id:
                return None
        except (Conflict, OSError):
            return None
        made_at = Path(git_dir).resolve()
        for root in registered:
            if _git_dir_of(root) == made_at:
                return root
        return None


def _git_dir_of(root: Path) -> Path | None:
    """The git dir of the work tree at ``root`` (``.git``, or where a linked worktree's ``.git``
    file points), resolved; None when it has none that can be read (a ``.git`` that is neither a
    directory nor a regular file: a fifo is not waited on)."""
    dot_git = root / ".git"
    try:
        if dot_git.is_dir():
            return dot_git.resolve()
        # Without blocking (a fifo would hold the applier for ever; the repo's owner writes it),
        # and only a regular file.
        fd = os.open(dot_git, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            line = os.read(fd, 4096).split(b"\n", 1)[0].strip()
        finally:
            os.close(fd)
    except OSError:
        return None
    if not line.startswith(b"gitdir:"):
        return None
    return (root / os.fsdecode(line[len(b"gitdir:") :].strip())).resolve()


def checkout_of(repo: git.Repo, *, mint: bool = False) -> Checkout:
    """The checkout of ``repo``; with ``mint``, its id is made (and kept in the clone) if it has none.
    Conflict (the write-back waits with the sentence) when the id file is unusable or cannot be made."""
    git_dir = Path(repo.git_dir).resolve()
    host = socket.gethostname()
    found = _read_id(git_dir)
    if found is None and mint:
        found = _mint(git_dir)
    return Checkout(found, f"{host}:{git_dir}", f"{host}:{Path(repo.working_tree_dir or '.').resolve()}")


def _unusable(git_dir: Path, why: str) -> Conflict:
    return Conflict(
        f"{git_dir / CHECKOUT_FILE} {why}; it keeps the id State Hub names this clone by in its write-back "
        "records: put back the id it held, or remove it and the hub makes a new one (a pass killed before "
        "then is not resolved here: a file it half-wrote waits for a person)"
    )


def _read_id(git_dir: Path) -> str | None:
    """The id in ``git_dir``'s :data:`CHECKOUT_FILE`, None when there is none; Conflict when the name
    holds anything but an id the hub could have written (a link, a directory, a fifo, other bytes)."""
    dir_fd = os.open(git_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = os.open(
                CHECKOUT_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
            )
        except FileNotFoundError:
            return None
        except OSError as error:  # ELOOP: a symbolic link
            raise _unusable(git_dir, f"cannot be opened as a file ({error.strerror})") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise _unusable(git_dir, "is not a regular file")
            data = os.read(fd, _ID_MAX + 1)
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)
    if not _ID.fullmatch(data):
        raise _unusable(git_dir, "does not hold a checkout id (32 lowercase hex digits)")
    return data[:32].decode("ascii")


def _mint(git_dir: Path) -> str:
    """A new random id, kept in ``git_dir`` unless another process kept one there first (then that)."""
    made = secrets.token_hex(16)
    try:
        dir_fd = os.open(git_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            replace_in_dir(dir_fd, CHECKOUT_FILE, f"{made}\n".encode(), 0o644, expected_sha=NO_FILE)
        finally:
            os.close(dir_fd)
    except FileChanged:  # another replica sharing this clone made it meanwhile
        found = _read_id(git_dir)
        if found is None:
            raise _unusable(git_dir, "appeared and vanished while the hub made it") from None
        return found
    except OSError as error:
        raise Conflict(
            f"cannot keep this clone's checkout id in {git_dir / CHECKOUT_FILE} ({error.strerror}): "
            "State Hub needs to write in the repo's git directory; make it writable and the events apply"
        ) from None
    return made


def open_repo(root: Path) -> HubRepo:
    """The registered work tree at ``root``, hardened (:func:`statehub.gitrepo.open_repo`)."""
    return gitrepo.open_repo(root)


def trailer_keys(repo: git.Repo, since: str | None, until: str = "HEAD") -> dict[str, str]:
    """Event keys named by ``Statehub-Event`` trailers in commits after ``since`` up to ``until``
    (a commit or ref), with their commit.

    Read by git's trailer parser: only the trailer block at the end of a message
    counts, never a line in its body.
    """
    revision = f"{since}..{until}" if since else until
    try:
        log = repo.git.log(revision, _LOG_FORMAT)
    except git.GitCommandError:  # ``since`` is gone (history rewritten): look at recent history
        try:
            log = repo.git.log("-n", "1000", until, _LOG_FORMAT)
        except git.GitCommandError:
            return {}
    found: dict[str, str] = {}
    parts = log.split("\0")
    for sha, values in zip(parts[0::2], parts[1::2], strict=False):
        for key in values.split(_SEP):
            if key.strip():
                found.setdefault(key.strip(), sha.strip())
    return found


def trailers_by_commit(repo: git.Repo, revision: str) -> list[tuple[str, frozenset[str]]]:
    """Each commit of ``revision`` (``a..b``), oldest first, merges left out, with the event keys its
    ``Statehub-Event`` trailers name (empty for a person's commit or a save)."""
    log = repo.git.log("--reverse", "--no-merges", revision, _LOG_FORMAT)
    parts = log.split("\0")
    return [
        (sha.strip(), frozenset(key.strip() for key in values.split(_SEP) if key.strip()))
        for sha, values in zip(parts[0::2], parts[1::2], strict=False)
    ]
