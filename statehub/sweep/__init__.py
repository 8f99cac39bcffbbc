"""Consistency sweeps: keep every registered repo in step with its remote and its events."""

from statehub.sweep.run import latest_sweep, sweep, sweep_repo

__all__ = ["latest_sweep", "sweep", "sweep_repo"]
