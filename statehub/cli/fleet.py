"""``statehub fleet ...``: the fleet registry, drain plans and readiness, from the cache."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from statehub.cache import fleet_queries
from statehub.cli._context import handle_errors, open_hub
from statehub.cli._options import fleet_repo_option, json_option
from statehub.cli._output import print_json, print_table, say
from statehub.cli.fleet_changes import gate, place, promote, set_role, set_state
from workplans import WorkloadState

if TYPE_CHECKING:
    from statehub.cache.answers import Readiness, WorkloadItem


@click.group()
def fleet() -> None:
    """Machines, workloads and lanes of the fleet registry, and the plans drawn from it.

    Example: statehub fleet drain-plan coulombcore
    """


def _blockers(blockers: list[str]) -> str:
    return "\n".join(blockers)


@fleet.command()
@fleet_repo_option
@json_option("the answer")
@handle_errors
def status(repo: str | None, as_json: bool) -> None:
    """Show machines, workloads, lane risks and readiness in one view.

    Example: statehub fleet status --json
    """
    with open_hub() as hub, hub.engine.connect() as conn:
        machines = fleet_queries.list_machines(conn, repo)
        workloads = fleet_queries.list_workloads(conn, repo)
        lanes = fleet_queries.list_lanes(conn, repo)
        ready = fleet_queries.fleet_readiness(conn, repo)
        broken = fleet_queries.fleet_violations(conn, repo)
    if as_json:
        print_json(
            {
                "machines": machines,
                "workloads": workloads,
                "lanes": lanes,
                "readiness": ready,
                "violations": broken,
            }
        )
        return
    print_table(
        f"Machines ({machines.repo})",
        ["name", "role", "runs", "rule"],
        [(m.name, m.role.value, ", ".join(m.workloads), m.rule) for m in machines.items],
    )
    print_table(
        "Workloads",
        ["wave", "name", "state", "on", "target", "gate"],
        [
            (w.wave, w.name, w.state.value, w.current_host, w.target_host, _gate_cell(w))
            for w in workloads.items
        ],
    )
    risky = [(lane.name, r.machine, r.role.value, r.position) for lane in lanes.items for r in lane.risks]
    if risky:
        print_table("Lane risks", ["lane", "machine", "role", "position"], risky)
    if broken.items:
        rows = [(v.subject, v.message) for v in broken.items]
        print_table("Rules the file breaks", ["what", "rule"], rows)
    _print_readiness(ready)


def _gate_cell(workload: WorkloadItem) -> str:
    if workload.state is WorkloadState.RETIRED:
        return ""
    return f"{len(workload.gate_unmet)} unmet" if workload.gate_unmet else "ok"


def _print_readiness(ready: Readiness) -> None:
    if ready.ready:
        say(("ready", "green"), ": production runs with every temporary-dev machine switched off")
        return
    off = ", ".join(ready.switched_off)
    say(("not ready", "red"), f": production still needs {off}")
    for blocker in ready.blockers:
        say(f"  {blocker.kind} {blocker.name}: {blocker.reason}")


@fleet.command("drain-plan")
@click.argument("machine")
@fleet_repo_option
@json_option("the answer")
@handle_errors
def drain_plan(machine: str, repo: str | None, as_json: bool) -> None:
    """Show what must leave MACHINE, wave by wave, with each next step and its blockers.

    Example: statehub fleet drain-plan coulombcore
    """
    with open_hub() as hub, hub.engine.connect() as conn:
        plan = fleet_queries.drain_plan(conn, machine, repo)
    if as_json:
        print_json(plan)
        return
    rows = [
        (
            "-" if wave.wave is None else wave.wave,
            step.workload,
            step.state.value,
            step.target_host,
            step.next_step,
            _blockers(step.blockers),
        )
        for wave in plan.waves
        for step in wave.steps
    ]
    title = f"Drain plan for {plan.machine} ({plan.role.value})" + (" - drained" if plan.drained else "")
    print_table(title, ["wave", "workload", "state", "target", "next step", "blockers"], rows)


@fleet.command()
@fleet_repo_option
@json_option("the answer")
@handle_errors
def readiness(repo: str | None, as_json: bool) -> None:
    """Answer: can production run with every temporary-dev machine switched off? Exits 1 when not.

    Example: statehub fleet readiness || echo "the laptop is still in the path"
    """
    with open_hub() as hub, hub.engine.connect() as conn:
        ready = fleet_queries.fleet_readiness(conn, repo)
    if as_json:
        print_json(ready)
    else:
        _print_readiness(ready)
    if not ready.ready:
        raise click.exceptions.Exit(1)


for _command in (promote, place, set_state, gate, set_role):
    fleet.add_command(_command)
