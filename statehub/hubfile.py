"""``hub.toml``: which repos are registered, kept in the config dir, never only in the cache.

Delete the cache and restart: this file is what brings every repo back.
Written with tomlkit so a person's comments in it survive; read with tomllib, and tomlkit
is loaded only to write (a read command does not load it; canon/ADR-033).

A file the hub cannot read is a :class:`HubFileBroken`, a
:class:`~statehub.errors.SetupError`: a hub or command started on it stops with
exit 3. A file a person leaves unreadable (a half-saved edit, a typo) while a
hub runs does not stop it: :meth:`HubFile.repos` keeps answering the list it
last read, and :attr:`HubFile.broken` says why the file is not read; registering
or removing a repo then refuses with :class:`HubFileBroken` (409) rather than
overwrite the person's edit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from statehub.errors import SetupError
from workplans.errors import FormatError
from workplans.lines import BOM

if TYPE_CHECKING:
    import tomlkit

__all__ = ["HubFile", "HubFileBroken", "RegisteredRepo"]


class HubFileBroken(SetupError):
    """hub.toml cannot be read: its TOML or its ``[[repos]]`` tables are wrong, or it is no regular file.

    Exit 3 (setup) for a command or a hub started on it; 409 for a registration refused while a
    running hub serves the list it last read.
    """

    status_code = 409


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
        self._bom = ""
        """The byte order mark the file opened with when last loaded for an edit, kept on writing it."""
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
        from workplans._toml import load_toml

        if not self.path.is_file():  # a directory; a FIFO, whose read would block every request
            raise HubFileBroken(f"cannot read the list of registered repos: {self.path} is no regular file")
        try:
            text = self.path.read_text(encoding="utf-8").removeprefix(BOM)  # an editor's byte order mark
            data = load_toml(text, str(self.path))
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
        import tomlkit
        from tomlkit.items import AoT

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
        import tomlkit
        from tomlkit.items import AoT, Table

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
        import tomlkit
        from tomlkit.exceptions import ParseError as TomlkitParseError

        if not self.path.exists():
            doc = tomlkit.document()
            doc.add(tomlkit.comment("Repos registered with this State Hub. The cache is rebuilt from these."))
            return doc
        self._parse()  # HubFileBroken: never write over a person's unreadable edit
        text = self.path.read_text(encoding="utf-8")
        self._bom = BOM if text.startswith(BOM) else ""
        try:
            return tomlkit.parse(text.removeprefix(BOM))
        except TomlkitParseError as error:
            raise HubFileBroken(f"cannot read the list of registered repos: {self.path}: {error}") from None

    def _write(self, doc: tomlkit.TOMLDocument) -> None:
        import tomlkit

        from statehub.atomic import atomic_write

        atomic_write(self.path, self._bom + tomlkit.dumps(doc))
        self.repos()  # what was written is the list last read, kept if a later edit leaves it unreadable
