"""The hub's health: up, which profile, how many repos, the cache, the write buffer, the relay.

``status`` is ``"ok"``, or ``"degraded"`` while write-back fails in some repo
or the disk under the write buffer is full (events are answered 507 then);
``problems`` then holds one sentence per failing repo (and one for the full
disk) and ``writeback`` the details (reason, attempts, seconds failing, seconds to the next retry). What
``GET /state/health`` answers.
"""

from __future__ import annotations

import time
from typing import Literal

import msgspec
from msgspec import UnsetType
from sqlalchemy import func, select

from statehub.cache import SCHEMA_VERSION
from statehub.cache.schema import REPOS
from statehub.events import EventDesk
from statehub.events.relaying import relay_status
from sync.buffer import BufferCounts
from sync.relay_queue import RelayCounts, RelayStatus

__all__ = ["CacheInfo", "Health", "RelayHealth", "WritebackFailure", "health"]


class WritebackFailure(msgspec.Struct, frozen=True):
    """A repo whose write-back fails (``statehub.events.writeback.Failing``)."""

    reason: str
    attempts: int
    failing_for_s: float
    """Seconds since the first failure, to 0.1 s."""
    retry_in_s: float
    """Seconds to the next attempt, to 0.1 s."""


class CacheInfo(msgspec.Struct, frozen=True):
    backend: str
    """``sqlite`` or ``postgresql``."""
    schema_version: int


class RelayHealth(msgspec.Struct, frozen=True):
    """The relay to the upstream hub (``sync.relay``); reachable None until it has tried."""

    upstream: str | None
    reachable: bool | None
    paused: str | None
    """Why relaying is paused (the upstream refused the token), else None."""
    last_error: str | None
    pending: int
    """Queued plus sent, not yet confirmed."""
    parked: int
    oldest_pending_age_s: float | None
    counts: RelayCounts


class Health(msgspec.Struct, frozen=True):
    status: Literal["ok", "degraded"]
    problems: list[str]
    writeback: dict[str, WritebackFailure]
    """By repo slug, the repos whose write-back fails."""
    profile: str
    """``dev`` or ``fleet``."""
    repos: int
    """Registered repos."""
    cache: CacheInfo
    buffer: BufferCounts
    relay: RelayHealth | None
    """None without an upstream."""


def health(desk: EventDesk) -> Health:
    """The hub's health now (reads the cache once and the buffer's counts)."""
    hub = desk.hub
    with hub.engine.connect() as conn:
        repos = int(conn.execute(select(func.count()).select_from(REPOS)).scalar_one())
    now = time.monotonic()
    failing = sorted(dict(desk.applier.failing).items())
    problems = [f"{slug}: {f.reason}" for slug, f in failing]
    stores = [desk.buffer, *([desk.relay_queue] if desk.relay_queue is not None else [])]
    problems += list(dict.fromkeys(p for store in stores if (p := store.space_problem()) is not None))
    return Health(
        status="degraded" if problems else "ok",
        problems=problems,
        writeback={slug: msgspec.convert(f.as_dict(now), WritebackFailure) for slug, f in failing},
        profile=hub.settings.profile,
        repos=repos,
        cache=CacheInfo(backend=hub.engine.dialect.name, schema_version=SCHEMA_VERSION),
        buffer=desk.buffer.counts(),
        relay=_relay(relay_status(desk)),
    )


def _relay(status: RelayStatus | None) -> RelayHealth | None:
    if status is None:
        return None
    return RelayHealth(
        upstream=status.upstream,
        reachable=status.reachable,
        paused=status.paused,
        last_error=None if isinstance(status.last_error, UnsetType) else status.last_error,
        pending=status.pending,
        parked=status.parked,
        oldest_pending_age_s=status.oldest_pending_age_s,
        counts=status.counts,
    )
