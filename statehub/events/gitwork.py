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
(``cp -r``), or names an id someone planted here, and is left to that copy
(:meth:`Checkout.owns`). The file is the repo's, so it is untrusted input: it is
read without following a link, at most a few bytes, and anything but an id the
hub could have written stops the write-back with a sentence saying what to do.
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

    def owns(self, checkout: str, place: str) -> bool:
        """Whether a record naming ``checkout`` (one of :attr:`names`, or ``""``) made at ``place``
        is this checkout's to resolve: yes, unless it names this id and was made at another place
        on this host whose git dir holds this very id now, a copy of the clone or a clone this one's
        id was planted from (it is that one's record). Made on another host, or at a place that is
        gone or holds another id: this clone was moved or its host renamed since."""
        if checkout != self.id or not place or place == self.place:
            return True
        host, _, git_dir = place.partition(":")
        if host != socket.gethostname() or not Path(git_dir).is_absolute():
            return True
        try:
            return _read_id(Path(git_dir)) != self.id
        except (Conflict, OSError):
            return True


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
