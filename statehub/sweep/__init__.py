"""Consistency sweeps: keep every registered repo in step with its remote and its events."""

from statehub.sweep.findings import Finding
from statehub.sweep.run import (
    RepoSweep,
    SweepReport,
    SweepTotals,
    SweptEvents,
    latest_sweep,
    sweep,
    sweep_repo,
)

__all__ = [
    "Finding",
    "RepoSweep",
    "SweepReport",
    "SweepTotals",
    "SweptEvents",
    "latest_sweep",
    "sweep",
    "sweep_repo",
]
