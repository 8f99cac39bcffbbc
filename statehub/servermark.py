"""Which server runs on this hub home: ``<data dir>/server.json``, written while ``statehub serve`` runs.

The server writes it when it starts (its pid, when, whether it watches the files)
and removes it when it stops; a server killed leaves it, and a mark whose process
is gone counts as no server. ``statehub doctor`` reads it to say whether a
watcher keeps the cache in step with the files (the CLI has no other way to see
into the server's process).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from statehub.settings import Settings

__all__ = ["SERVER_FILE", "ServerMark", "mark_server", "running_server"]

SERVER_FILE = "server.json"


class ServerMark(msgspec.Struct, frozen=True):
    """A running server: its pid, when it started (UTC, to the second), whether it watches files, and
    where it answers (``http://host:port``; ``statehub watch`` connects there; None in a mark written
    before State Hub recorded it)."""

    pid: int
    started_at: str
    watch: bool
    url: str | None = None


def _path(settings: Settings) -> Path:
    return settings.data_dir / SERVER_FILE


@contextlib.contextmanager
def mark_server(settings: Settings, *, watch: bool) -> Iterator[ServerMark]:
    """Mark this process as the hub's server for the block; the mark goes when the block ends
    (unless another server has marked the home since)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(settings.host, settings.host)  # noqa: S104
    url = f"http://[{host}]:{settings.port}" if ":" in host else f"http://{host}:{settings.port}"
    mark = ServerMark(os.getpid(), dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), watch, url)
    path = _path(settings)
    from statehub.atomic import atomic_write

    atomic_write(path, msgspec.json.encode(mark).decode())
    try:
        yield mark
    finally:
        with contextlib.suppress(OSError, msgspec.DecodeError):
            if msgspec.json.decode(path.read_bytes(), type=ServerMark).pid == mark.pid:
                path.unlink()


def running_server(settings: Settings) -> ServerMark | None:
    """The server running on this hub home, or None (no mark, or its process is gone)."""
    try:
        mark = msgspec.json.decode(_path(settings).read_bytes(), type=ServerMark)
    except (OSError, msgspec.DecodeError):
        return None
    try:
        os.kill(mark.pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return mark  # alive, another user's
    return mark
