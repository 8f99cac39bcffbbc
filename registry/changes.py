"""Checking a fleet change before it is written: an empty list means it may go ahead.

The same four changes that arrive as events (``fleet.workload.state``,
``fleet.workload.place``, ``fleet.workload.gate``, ``fleet.machine.role``) are
checked here against the parsed registry, so the API, the CLI and the events
applier refuse the same things with the same reasons.
"""

from __future__ import annotations

from dataclasses import replace

from registry.roles import policy
from registry.rules import added_violations
from registry.states import transition_refusal
from workplans.fleet_events import (
    FleetChange,
    PlaceWorkload,
    SetGateFields,
    SetMachineRole,
    SetWorkloadState,
)
from workplans.fleet_models import FleetRegistry, Gate, Workload, WorkloadState

__all__ = ["apply_to_registry", "changes_between", "check_change", "check_edit"]

_PLACEABLE = (WorkloadState.RUNNING, WorkloadState.DRAINING)
_GATE_DEFAULTS = Gate()


def _gate_with(gate: Gate | None, fields: dict[str, object]) -> Gate | None:
    if gate is None and all(v is None for v in fields.values()):
        return None  # clearing fields of a gate that does not exist writes nothing
    current = gate or Gate()
    values = {k: getattr(_GATE_DEFAULTS, k) if v is None else v for k, v in fields.items()}
    return replace(current, **values)  # type: ignore[arg-type]


def _lookup(registry: FleetRegistry, change: FleetChange) -> list[str]:
    names = ", ".join(m.name for m in registry.machines) or "none"
    if isinstance(change, SetMachineRole):
        if registry.machine(change.machine) is None:
            return [f"no machine named {change.machine!r} in the fleet registry (machines: {names})"]
        return []
    if registry.workload(change.workload) is None:
        known = ", ".join(w.name for w in registry.workloads) or "none"
        return [f"no workload named {change.workload!r} in the fleet registry (workloads: {known})"]
    if isinstance(change, PlaceWorkload) and registry.machine(change.target_host) is None:
        return [f"no machine named {change.target_host!r} in the fleet registry (machines: {names})"]
    return []


def apply_to_registry(registry: FleetRegistry, change: FleetChange) -> FleetRegistry:
    """The registry as it would be after ``change`` (names must exist: see ``check_change``)."""
    if isinstance(change, SetMachineRole):
        machines = tuple(
            replace(m, role=change.role) if m.name == change.machine else m for m in registry.machines
        )
        return replace(registry, machines=machines)

    def changed(workload: Workload) -> Workload:
        if isinstance(change, SetWorkloadState):
            return replace(workload, state=change.state)
        if isinstance(change, PlaceWorkload):
            return replace(workload, target_host=change.target_host)
        return replace(workload, gate=_gate_with(workload.gate, change.fields))

    workloads = tuple(changed(w) if w.name == change.workload else w for w in registry.workloads)
    return replace(registry, workloads=workloads)


def _specific(registry: FleetRegistry, change: FleetChange) -> list[str]:
    if isinstance(change, SetMachineRole | SetGateFields):
        return []
    workload = registry.workload(change.workload)
    assert workload is not None
    if isinstance(change, PlaceWorkload):
        if workload.state not in _PLACEABLE:
            return [
                f"workload {workload.name} is {workload.state}: only a running or draining workload "
                "can get a new target host"
            ]
        return []
    refusal = transition_refusal(workload, change.state)
    if refusal is not None:
        return [refusal]
    if change.state is WorkloadState.PROMOTED:
        host = workload.target_host or workload.current_host
        machine = registry.machine(host)
        assert machine is not None
        if not policy(machine.role).accepts_promotion:
            return [f"workload {workload.name}: cannot be promoted on {host}, a {machine.role} machine"]
    return []


def check_change(registry: FleetRegistry, change: FleetChange) -> list[str]:
    """Every reason ``change`` is refused; empty when it is allowed or already reflected."""
    reasons = _lookup(registry, change)
    if reasons:
        return reasons
    after = apply_to_registry(registry, change)
    if after == registry:
        return []
    reasons = _specific(registry, change)
    reasons.extend(str(v) for v in added_violations(registry, after))
    return list(dict.fromkeys(reasons))


def changes_between(before: FleetRegistry, after: FleetRegistry) -> list[FleetChange]:
    """The event-shaped changes a whole-file edit makes to names both versions hold, in file order.

    A machine whose role differs is a ``SetMachineRole``; a workload whose
    target host differs is a ``PlaceWorkload``, whose state differs a
    ``SetWorkloadState``. Added or removed entries and other fields have no
    event of their own: only the whole-registry rules (``violations``) apply to them.
    """
    found: list[FleetChange] = []
    for machine in after.machines:
        old = before.machine(machine.name)
        if old is not None and old.role is not machine.role:
            found.append(SetMachineRole(machine.name, machine.role))
    for workload in after.workloads:
        was = before.workload(workload.name)
        if was is None:
            continue
        if workload.target_host != was.target_host and workload.target_host is not None:
            found.append(PlaceWorkload(workload.name, workload.target_host))
        if workload.state is not was.state:
            found.append(SetWorkloadState(workload.name, workload.state))
    return found


def check_edit(before: FleetRegistry, after: FleetRegistry) -> list[str]:
    """Every reason a whole-file edit from ``before`` to ``after`` is refused; empty when allowed.

    The editor's counterpart of :func:`check_change` (ADR-010, ADR-022): each
    event-shaped change in the edit (see :func:`changes_between`) must pass the
    checks its event would (a state transition, a placement of a workload that
    may move, a promotion on a machine that accepts one), and the edited
    registry must add no violation the committed one did not have (a target on
    a frozen-legacy host, an unmet promotion gate, ...). The reasons are the
    ones ``statehub fleet place`` / ``promote`` / ``set-role`` give.
    """
    reasons: list[str] = []
    for change in changes_between(before, after):
        if not _lookup(before, change) and not _lookup(after, change):
            reasons.extend(_specific(before, change))
    reasons.extend(str(v) for v in added_violations(before, after))
    return list(dict.fromkeys(reasons))
