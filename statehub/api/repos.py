"""Registration: ``/repos`` and ``/repos/{slug}``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlalchemy import Connection

from statehub.cache import queries
from statehub.cache.indexer import IndexReport
from statehub.errors import BadRequest
from statehub.hub import Hub


@dataclass
class RegisterRepo:
    path: str
    """Local path of a git work tree."""


def _report(hub: Hub, report: IndexReport) -> dict[str, Any]:
    with hub.engine.connect() as conn:
        repo = queries.get_repo(conn, report.repo)
    return repo | {"files": report.files, "parsed": report.parsed, "removed": report.removed}


def _repo_path(text: str) -> Path:
    try:
        path = Path(text).expanduser()
    except RuntimeError:  # ~user for a user this machine does not know
        path = Path(text)
    if not path.is_absolute():
        raise BadRequest(
            f"{text!r} is not an absolute path; give the work tree's full path on the hub's machine"
        )
    try:
        path.stat()
    except FileNotFoundError:
        pass  # registration says it is not a git work tree
    except OSError as error:
        raise BadRequest(f"cannot look up {text[:200]!r}: {error.strerror}") from None
    return path


class RepoController(Controller):
    path = "/repos"
    tags = ["repos"]

    @get("/", sync_to_thread=False)
    def list_repos(self, conn: NamedDependency[Connection]) -> dict[str, Any]:
        page = queries.list_repos(conn)
        return {"items": page.items, "total": page.total}

    @post("/", status_code=HTTP_201_CREATED, sync_to_thread=True)
    def register(self, hub: NamedDependency[Hub], data: JSONBody[RegisterRepo]) -> dict[str, Any]:
        """Register the git work tree at ``path``: absolute (or ``~/...``), as the hub's machine sees it.

        A relative path is 400: it would name a directory under the server's
        working directory, not the client's. A path the system cannot look up
        (too long, a loop) is 400 with the system's reason (ADR-022).
        """
        return _report(hub, hub.register(_repo_path(data.path)))

    @get("/{slug:str}", sync_to_thread=False)
    def get_repo(self, conn: NamedDependency[Connection], slug: FromPath[str]) -> dict[str, Any]:
        return queries.get_repo(conn, slug)

    @delete("/{slug:str}", status_code=HTTP_200_OK, sync_to_thread=True)
    def remove(self, hub: NamedDependency[Hub], slug: FromPath[str]) -> dict[str, Any]:
        hub.remove(slug)
        return {"removed": slug}

    @post("/{slug:str}/refresh", status_code=HTTP_200_OK, sync_to_thread=True)
    def refresh(self, hub: NamedDependency[Hub], slug: FromPath[str]) -> dict[str, Any]:
        return _report(hub, hub.refresh(slug)[0])
