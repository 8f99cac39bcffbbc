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

Registering and removing are a read-modify-write of the file, so two of them
(a CLI command beside the server, two terminals) must not interleave, nor one
overwrite a person's save that lands between its read and its write: each holds
an advisory lock on ``hub.toml.lock`` beside the file for the whole update, and
replaces only the bytes it read (``atomic_write`` with ``expected_sha``); a
person's save meanwhile makes it read again and apply its change on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from statehub.errors import Conflict, SetupError
from workplans.errors import FormatError
from workplans.lines import BOM

if TYPE_CHECKING:
    from collections.abc import Callable

    import tomlkit

__all__ = ["HubFile", "HubFileBroken", "RegisteredRepo"]


class HubFileBroken(SetupError):
    """hub.toml cannot be read: its TOML or its ``[[repos]]`` tables are wrong, or it is no regular file.

    Exit 3 (setup) for a command or a hub started on it; 409 for a registration refused while a
    running hub serves the list it last read.
    """

    status_code = 409


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
            import logging  # here: a CLI read of a sound hub.toml never logs

            logging.getLogger(__name__).warning("%s; serving the repos it listed before", error.message)
            return list(read[1])
        self._read = (stamp, repos)
        self._broken_at, self.broken = None, None
        return list(repos)

    def _parse(self) -> list[RegisteredRepo]:
        return self._repos_in(self._read_bytes())

    def _read_bytes(self) -> bytes:
        if not self.path.is_file():  # a directory; a FIFO, whose read would block every request
            raise HubFileBroken(f"cannot read the list of registered repos: {self.path} is no regular file")
        try:
            return self.path.read_bytes()
        except OSError as error:
            raise HubFileBroken(f"cannot read the list of registered repos: {error}") from None

    def _repos_in(self, raw: bytes) -> list[RegisteredRepo]:
        from workplans._toml import load_toml

        try:
            text = raw.decode("utf-8").removeprefix(BOM)  # an editor's byte order mark
            data = load_toml(text, str(self.path))
        except (FormatError, UnicodeDecodeError) as error:
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
        seen: dict[str, str] = {}
        for entry in entries:  # registration never writes a slug twice; a hand edit may
            slug, path = entry["slug"], entry["path"]
            if slug in seen:
                raise HubFileBroken(
                    f"cannot read the list of registered repos: slug {slug!r} is listed twice in "
                    f"{self.path} ({seen[slug]} and {path}); keep one [[repos]] table for it"
                )
            seen[slug] = path
        return [RegisteredRepo(r["slug"], Path(r["path"])) for r in entries]

    def add(self, repo: RegisteredRepo) -> None:
        """Register ``repo``; nothing changes when it is listed already.

        Raises :class:`~statehub.errors.Conflict` (409) when the slug is listed for another path
        (decided under the lock, so two registrations racing for one slug cannot both win) and
        :class:`HubFileBroken` when the file cannot be read.
        """
        import tomlkit
        from tomlkit.items import AoT

        def change(doc: tomlkit.TOMLDocument) -> None:
            repos = doc.get("repos")
            if not isinstance(repos, AoT):
                repos = tomlkit.aot()
                doc["repos"] = repos
            for table in repos:
                if table["slug"] == repo.slug:
                    if Path(str(table["path"])) != repo.path:
                        raise Conflict(
                            f"slug {repo.slug!r} is already registered for {table['path']}; set a "
                            "different [repo] slug in its manifest or remove the other repo first"
                        )
                    return
            entry = tomlkit.table()
            entry["slug"] = repo.slug
            entry["path"] = str(repo.path)
            repos.append(entry)

        self._update(change)

    def remove(self, slug: str) -> None:
        """Unregister ``slug`` (nothing to do when it is not listed); errors as :meth:`add`."""
        import tomlkit
        from tomlkit.items import AoT, Table

        def change(doc: tomlkit.TOMLDocument) -> None:
            repos = doc.get("repos")
            if isinstance(repos, AoT):
                keep = [t for t in repos if isinstance(t, Table) and t["slug"] != slug]
                fresh = tomlkit.aot()
                for table in keep:
                    fresh.append(table)
                doc["repos"] = fresh

        self._update(change)

    _RETRIES = 5
    """How many times an update reads the file again after a person's save landed mid-update."""

    def _update(self, change: Callable[[tomlkit.TOMLDocument], None]) -> None:
        """Apply ``change`` to the file under the lock, replacing only the bytes read."""
        import tomlkit

        from statehub.atomic import FileChanged, atomic_write
        from sync.applier_lock import ApplierLock

        with ApplierLock(self.path.with_name(self.path.name + ".lock")):
            for attempt in range(self._RETRIES):
                doc, expected = self._load()
                change(doc)
                try:
                    atomic_write(self.path, self._bom + tomlkit.dumps(doc), expected_sha=expected)
                except FileChanged:
                    if attempt + 1 == self._RETRIES:
                        raise
                    continue
                break
        self.repos()  # what was written is the list last read, kept if a later edit leaves it unreadable

    def _load(self) -> tuple[tomlkit.TOMLDocument, str]:
        """The file as a tomlkit document, and the ``expected_sha`` that replaces exactly it."""
        import tomlkit
        from tomlkit.exceptions import ParseError as TomlkitParseError

        from statehub.atomic import NO_FILE, content_sha

        if not self.path.exists() and not self.path.is_symlink():
            doc = tomlkit.document()
            doc.add(tomlkit.comment("Repos registered with this State Hub. The cache is rebuilt from these."))
            return doc, NO_FILE
        data = self._read_bytes()
        self._repos_in(data)  # HubFileBroken: never write over a person's unreadable edit
        text = data.decode("utf-8")
        self._bom = BOM if text.startswith(BOM) else ""
        try:
            return tomlkit.parse(text.removeprefix(BOM)), content_sha(data)
        except TomlkitParseError as error:
            raise HubFileBroken(f"cannot read the list of registered repos: {self.path}: {error}") from None
