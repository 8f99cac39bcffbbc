"""``GET /state/health``: is the hub up, which profile, how many repos, cache state, relay state.

``status`` is ``"ok"``, or ``"degraded"`` while write-back fails in some repo
or the disk under the write buffer is full (events are answered 507 then);
``problems`` then holds one sentence per failing repo (and one for the full
disk) and ``writeback`` the details (reason, attempts, seconds failing, seconds
to the next retry).
"""

from __future__ import annotations

import time
from typing import Any

from litestar import get
from litestar.di import NamedDependency
from sqlalchemy import Connection, func, select

from statehub.cache import SCHEMA_VERSION
from statehub.cache.schema import REPOS
from statehub.events import EventDesk
from statehub.events.relaying import relay_status
from statehub.hub import Hub


@get("/state/health", sync_to_thread=False)
def health(
    hub: NamedDependency[Hub], conn: NamedDependency[Connection], events: NamedDependency[EventDesk]
) -> dict[str, Any]:
    repos = conn.execute(select(func.count()).select_from(REPOS)).scalar_one()
    now = time.monotonic()
    failing = dict(events.applier.failing)
    problems = [f"{slug}: {f.reason}" for slug, f in sorted(failing.items())]
    stores = [events.buffer, *([events.relay_queue] if events.relay_queue is not None else [])]
    problems += list(dict.fromkeys(p for store in stores if (p := store.space_problem()) is not None))
    return {
        "status": "degraded" if problems else "ok",
        "problems": problems,
        "writeback": {slug: f.as_dict(now) for slug, f in sorted(failing.items())},
        "profile": hub.settings.profile,
        "repos": repos,
        "cache": {"backend": hub.engine.dialect.name, "schema_version": SCHEMA_VERSION},
        "buffer": events.buffer.counts(),
        "relay": _relay(events),
    }


def _relay(events: EventDesk) -> dict[str, Any] | None:
    """Upstream reachable or not, pending (queued + sent), oldest pending age, parked count."""
    status = relay_status(events)
    if status is None:
        return None
    keep = (
        "upstream",
        "reachable",
        "paused",
        "last_error",
        "pending",
        "parked",
        "oldest_pending_age_s",
        "counts",
    )
    return {k: status.get(k) for k in keep}
