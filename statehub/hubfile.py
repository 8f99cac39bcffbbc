"""``hub.toml``: which repos are registered, kept in the config dir, never only in the cache.

Delete the cache and restart: this file is what brings every repo back.
Written with tomlkit so a person's comments in it survive.

A file a person leaves unreadable (a half-saved edit, a typo) while a hub runs
does not stop it: :meth:`HubFile.repos` keeps answering the list it last read,
and :attr:`HubFile.broken` says why the file is not read; registering or removing
a repo then refuses with :class:`HubFileBroken` (409) rather than overwrite the
person's edit. Read unreadable with no list read before, it raises.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import tomlkit
from tomlkit.items import AoT, Table

from statehub.atomic import atomic_write
from statehub.errors import Conflict
from workplans import FormatError
from workplans._toml import load_toml

__all__ = ["HubFile", "HubFileBroken", "RegisteredRepo"]


class HubFileBroken(Conflict, ValueError):
    """hub.toml cannot be read (409, exit 5): its TOML or its ``[[repos]]`` tables are wrong.

    A ValueError too, as every caller that started a hub on an unreadable file expects.
    """


log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RegisteredRepo:
    slug: str
    path: Path


class HubFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._read: tuple[tuple[int, ...], list[RegisteredRepo]] | None = None
        """The repos as last read, with the file's stat then: every event intake asks for them."""
        self._broken_at: tuple[int, ...] | None = None
        """The file's stat when last found unreadable: it is not parsed again until it changes."""
        self.broken: str | None = None
        """Why hub.toml cannot be read now, while the repos it last listed are served; None when it can."""

    def repos(self) -> list[RegisteredRepo]:
        """The registered repos; read again whenever the file changed (its stat), so a CLI command
        registering a repo is seen by a running server at once."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return []
        stamp = (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        read = self._read
        if read is not None and (read[0] == stamp or self._broken_at == stamp):
            return list(read[1])
        try:
            repos = self._parse()
        except HubFileBroken as error:
            if read is None:
                raise
            self._broken_at, self.broken = stamp, error.message
            log.warning("%s; serving the repos it listed before", error.message)
            return list(read[1])
        self._read = (stamp, repos)
        self._broken_at, self.broken = None, None
        return list(repos)

    def _parse(self) -> list[RegisteredRepo]:
        if not self.path.is_file():  # a directory; a FIFO, whose read would block every request
            raise HubFileBroken(f"cannot read the list of registered repos: {self.path} is no regular file")
        try:
            data = load_toml(self.path.read_text(encoding="utf-8"), str(self.path))
        except (FormatError, OSError, UnicodeDecodeError) as error:
            raise HubFileBroken(f"cannot read the list of registered repos: {error}") from None
        entries = data.get("repos", [])
        if not isinstance(entries, list) or not all(
            isinstance(r, dict) and isinstance(r.get("slug"), str) and isinstance(r.get("path"), str)
            for r in entries
        ):
            raise HubFileBroken(
                f"cannot read the list of registered repos: {self.path} must hold [[repos]] tables "
                'each with slug = "..." and path = "..."'
            )
        return [RegisteredRepo(r["slug"], Path(r["path"])) for r in entries]

    def add(self, repo: RegisteredRepo) -> None:
        doc = self._load()
        repos = doc.get("repos")
        if not isinstance(repos, AoT):
            repos = tomlkit.aot()
            doc["repos"] = repos
        for table in repos:
            if table["slug"] == repo.slug:
                table["path"] = str(repo.path)
                break
        else:
            entry = tomlkit.table()
            entry["slug"] = repo.slug
            entry["path"] = str(repo.path)
            repos.append(entry)
        self._write(doc)

    def remove(self, slug: str) -> None:
        doc = self._load()
        repos = doc.get("repos")
        if isinstance(repos, AoT):
            keep = [t for t in repos if isinstance(t, Table) and t["slug"] != slug]
            fresh = tomlkit.aot()
            for table in keep:
                fresh.append(table)
            doc["repos"] = fresh
        self._write(doc)

    def _load(self) -> tomlkit.TOMLDocument:
        if not self.path.exists():
            doc = tomlkit.document()
            doc.add(tomlkit.comment("Repos registered with this State Hub. The cache is rebuilt from these."))
            return doc
        self._parse()  # HubFileBroken: never write over a person's unreadable edit
        return tomlkit.parse(self.path.read_text(encoding="utf-8"))

    def _write(self, doc: tomlkit.TOMLDocument) -> None:
        atomic_write(self.path, tomlkit.dumps(doc))
        self.repos()  # what was written is the list last read, kept if a later edit leaves it unreadable
