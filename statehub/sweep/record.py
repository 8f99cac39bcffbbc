"""The last sweep of each repo, kept in the data dir (``sweeps/repos.json``), whoever ran it.

``sweeps/latest.json`` holds the last sweep's whole report, which names only the
repos that sweep covered; this file keeps one entry per repo, so a sweep of one
repo does not hide when the others were last swept. Diagnostics show an entry as
the repo's ``last_sweep``; the metrics read ``last_in_step_at`` from it.

An entry is written by the sweep of that repo while it holds the applier lock
(``statehub.sweep.run``), so the server and a CLI command never write the file at
once (a read, a change, an atomic write).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import msgspec

from statehub.atomic import atomic_write
from statehub.sweep.findings import Finding

if TYPE_CHECKING:
    from statehub.settings import Settings

__all__ = ["MAX_RECORDED_FINDINGS", "LastSweep", "last_sweeps", "record_sweep"]

log = logging.getLogger(__name__)

MAX_RECORDED_FINDINGS = 50
"""Findings kept per repo (the first, in the sweep's stable order); ``findings_total`` counts all."""


class LastSweep(msgspec.Struct, frozen=True, kw_only=True):
    """The last sweep of one repo: when, by which sweep, whether it left the repo in step, what it
    found. ``last_in_step_at`` is when a sweep last left it in step (None: never, as far as the
    data dir remembers)."""

    sweep: str | None = None
    """The sweep's id (``GET /sweeps/{id}`` while the hub that ran it keeps it)."""
    started_at: str
    finished_at: str
    in_step: bool
    problems: list[str]
    error: str | None
    findings: list[Finding] = []
    """The first :data:`MAX_RECORDED_FINDINGS` findings."""
    findings_total: int = 0
    last_in_step_at: str | None = None


_DECODER = msgspec.json.Decoder(dict[str, LastSweep])


def last_sweeps(settings: Settings) -> dict[str, LastSweep]:
    """Every repo's last sweep by slug (empty before the first, or when the file has another shape:
    a State Hub of another version wrote it, and the next sweep of each repo replaces its entry)."""
    path = settings.data_dir / "sweeps" / "repos.json"
    try:
        return _DECODER.decode(path.read_bytes())
    except FileNotFoundError:
        return {}
    except msgspec.DecodeError as error:  # ValidationError included
        log.warning("not showing %s: %s; the next sweep of each repo replaces its entry", path, error)
        return {}


def record_sweep(settings: Settings, repo: str, entry: LastSweep) -> LastSweep:
    """Keep ``entry`` as ``repo``'s last sweep (carrying ``last_in_step_at`` forward when this sweep
    did not leave it in step); the caller holds the applier lock. Answers the entry kept."""
    kept = last_sweeps(settings)
    if entry.in_step:
        entry = msgspec.structs.replace(entry, last_in_step_at=entry.finished_at)
    elif (before := kept.get(repo)) is not None:
        entry = msgspec.structs.replace(entry, last_in_step_at=before.last_in_step_at)
    kept[repo] = entry
    atomic_write(settings.data_dir / "sweeps" / "repos.json", msgspec.json.encode(kept).decode())
    return entry
