"""``GET /state/health``: is the hub up, which profile, how many repos, cache state."""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.di import NamedDependency
from sqlalchemy import Connection, func, select

from statehub.cache import SCHEMA_VERSION
from statehub.cache.schema import REPOS
from statehub.events import EventDesk
from statehub.hub import Hub


@get("/state/health", sync_to_thread=False)
def health(
    hub: NamedDependency[Hub], conn: NamedDependency[Connection], events: NamedDependency[EventDesk]
) -> dict[str, Any]:
    repos = conn.execute(select(func.count()).select_from(REPOS)).scalar_one()
    return {
        "status": "ok",
        "profile": hub.settings.profile,
        "repos": repos,
        "cache": {"backend": hub.engine.dialect.name, "schema_version": SCHEMA_VERSION},
        "buffer": events.buffer.counts(),
    }
