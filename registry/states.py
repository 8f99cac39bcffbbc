"""Workload states and the transitions between them.

    running -> draining -> migrated -> promoted -> retired
    running -> retired
    running -> promoted     only for a workload already on its target host

Anything else is refused with the reason, naming what is allowed instead.
"""

from __future__ import annotations

from workplans.fleet_models import Workload, WorkloadState

__all__ = ["NEXT_STATES", "transition_refusal"]

S = WorkloadState
NEXT_STATES: dict[WorkloadState, tuple[WorkloadState, ...]] = {
    S.RUNNING: (S.DRAINING, S.RETIRED, S.PROMOTED),
    S.DRAINING: (S.MIGRATED,),
    S.MIGRATED: (S.PROMOTED,),
    S.PROMOTED: (S.RETIRED,),
    S.RETIRED: (),
}


def transition_refusal(workload: Workload, new: WorkloadState) -> str | None:
    """Why ``workload`` may not go to ``new``; None when it may (staying put is always allowed)."""
    old = workload.state
    if new is old:
        return None
    allowed = NEXT_STATES[old]
    if new not in allowed:
        if not allowed:
            return f"workload {workload.name}: {old} is final; it cannot become {new}"
        options = ", ".join(s.value for s in allowed)
        return f"workload {workload.name}: cannot go from {old} to {new}; from {old} it may go to {options}"
    if old is S.RUNNING and new is S.PROMOTED and workload.target_host != workload.current_host:
        target = workload.target_host or "not set"
        return (
            f"workload {workload.name}: running -> promoted is only for a workload already on its "
            f"target host; it runs on {workload.current_host} and its target host is {target}, "
            "so drain and migrate it first"
        )
    return None
