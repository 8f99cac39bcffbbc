"""Consistency sweeps: keep every registered repo in step with its remote and its events."""

from statehub.sweep.findings import Finding
from statehub.sweep.record import LastSweep, last_sweeps
from statehub.sweep.run import (
    Follower,
    RepoSweep,
    SweepReport,
    SweepTotals,
    SweptEvents,
    latest_sweep,
    new_sweep_id,
    sweep,
    sweep_repo,
    totals_of,
)

__all__ = [
    "Finding",
    "Follower",
    "LastSweep",
    "RepoSweep",
    "SweepReport",
    "SweepTotals",
    "SweptEvents",
    "last_sweeps",
    "latest_sweep",
    "new_sweep_id",
    "sweep",
    "sweep_repo",
    "totals_of",
]
