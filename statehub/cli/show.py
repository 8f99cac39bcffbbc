"""``statehub show REF`` and ``statehub next``: one thing in full, and what to take up next.

Read commands: answered from the cache at once (``statehub.cli._reading``,
canon/ADR-033), ``--json`` in the envelope with the answer's freshness.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from statehub.cache.answers import (
    CanonShown,
    Dependency,
    NextTask,
    TaskShown,
    WorkplanProgress,
    WorkplanShown,
)
from statehub.cli._context import handle_errors
from statehub.cli._options import actor_option, json_option
from statehub.cli._output import clean, print_json, print_table
from statehub.cli._reading import open_reader
from statehub.errors import BadRequest, Conflict
from statehub.settings import default_actor
from sync.lease_bounds import DEFAULT_LEASE_S, MAX_LEASE_S
from workplans.ids import is_task_ref, is_workplan_id

if TYPE_CHECKING:
    from statehub.answers import Freshness
    from statehub.cache.answers import TaskItem, WorkplanDetail
    from statehub.claims import NextClaimed
    from statehub.cli._reading import Reader
    from workplans.enums import WorkplanStatus

__all__ = ["choose_next", "next_", "progress_of", "show", "show_ref"]

_MAX_REF = 200
"""The longest reference ``show`` looks up (ids are far shorter; ADR-022 bounds every input)."""


def _line(*parts: object) -> None:
    sys.stdout.write(clean(" ".join(str(p) for p in parts if p not in (None, ""))) + "\n")


def progress_of(plan: WorkplanDetail) -> WorkplanProgress:
    """A workplan's tasks counted by status (:meth:`WorkplanProgress.of`)."""
    return WorkplanProgress.of(plan.tasks)


def show_ref(reader: Reader, ref: str, repo: str | None = None) -> TaskShown | WorkplanShown | CanonShown:
    """What ``ref`` names: a task reference, a workplan id, else a canon id (``repo`` settles a canon
    id two repos use). NotFound or Conflict as the single lookups raise them."""
    if not ref or len(ref) > _MAX_REF:
        raise BadRequest(f"give a task reference, workplan id or canon id of 1 to {_MAX_REF} characters")
    if is_task_ref(ref):
        task = reader.get_task(ref)
        found = reader.tasks_by_ref(task.depends_on)
        return TaskShown(
            task=task,
            dependencies=[Dependency(d, found.get(d)) for d in task.depends_on],
            dependents=reader.dependents(ref),
        )
    if is_workplan_id(ref):
        plan = reader.get_workplan(ref)
        return WorkplanShown(workplan=plan, progress=progress_of(plan))
    try:
        return CanonShown(canon=reader.get_canon(ref, repo))
    except Conflict as error:  # the library's sentence names the API's ?repo=; say the option here
        raise Conflict(error.message.replace("ask again with ?repo=<slug>", "add --repo SLUG")) from None


def _repos_of(shown: TaskShown | WorkplanShown | CanonShown) -> list[str]:
    if isinstance(shown, TaskShown):
        linked = [d.task for d in shown.dependencies if d.task is not None] + shown.dependents
        return [shown.task.repo, *(t.repo for t in linked)]
    if isinstance(shown, WorkplanShown):
        return [shown.workplan.repo]
    return [shown.canon.repo]


@click.command()
@click.argument("ref")
@click.option("--repo", help="The repo (slug) of a canon id that two repos use.")
@json_option("{kind, task|workplan|canon, ...}")
@handle_errors
def show(ref: str, repo: str | None, as_json: bool) -> None:
    """Show one task (with its dependencies and dependents), workplan (with its tasks and progress)
    or canon document.

    Example: statehub show OPS-WP-0001-T02
    """
    with open_reader() as reading:
        shown = show_ref(reading.reader, ref, repo)
        fresh = reading.freshness(_repos_of(shown))
    if as_json:
        print_json(shown, fresh)
    elif isinstance(shown, TaskShown):
        _print_task(shown)
    elif isinstance(shown, WorkplanShown):
        _print_workplan(shown)
    else:
        _print_canon(shown)
    if not as_json and fresh.stale:
        changed = ", ".join(r.repo for r in fresh.repos if r.changed_since is not False)
        _line(f"note: {changed} changed since last indexed (or cannot be read); this may be out of date")


def _task_row(task: TaskItem) -> tuple[str, str, str | None, str, str]:
    return (task.ref, task.status.value, task.owner, "yes" if task.ready else "", task.title)


def _print_task(shown: TaskShown) -> None:
    task = shown.task
    _line(f"{task.ref}  {task.title}")
    _line(f"status {task.status.value}, owner {task.owner or '-'}, ready {'yes' if task.ready else 'no'}")
    _line(f"workplan {task.workplan} in {task.repo}/{task.path}")
    columns = ["ref", "status", "owner", "ready", "title"]
    if shown.dependencies:
        rows = [
            _task_row(d.task) if d.task else (d.ref, "missing", None, "", "(names no task)")
            for d in shown.dependencies
        ]
        print_table(f"Depends on ({len(rows)})", columns, rows)
    else:
        _line("Depends on nothing")
    if shown.dependents:
        print_table(f"Needed by ({len(shown.dependents)})", columns, [_task_row(t) for t in shown.dependents])
    else:
        _line("Needed by nothing")


def _print_workplan(shown: WorkplanShown) -> None:
    plan, progress = shown.workplan, shown.progress
    _line(f"{plan.id}  {plan.title}")
    _line(f"status {plan.status.value}, owner {plan.owner or '-'}, in {plan.repo}/{plan.path}")
    counts = ", ".join(f"{n} {status}" for status, n in progress.by_status.items() if n)
    done = f"progress {progress.done}/{progress.total} done ({progress.percent}%)"
    _line(f"{done}: {counts}" if counts else done)
    print_table(
        f"Tasks ({len(plan.tasks)})",
        ["ref", "status", "owner", "ready", "title"],
        [_task_row(t) for t in plan.tasks],
    )
    if plan.body.strip():
        sys.stdout.write("\n" + clean(plan.body.strip()) + "\n")


def _print_canon(shown: CanonShown) -> None:
    doc = shown.canon
    _line(f"{doc.id}  {doc.title}")
    _line(f"{doc.kind.value}, {doc.status.value}, {doc.date or 'no date'}, in {doc.repo}/{doc.path}")
    if doc.supersedes:
        _line("supersedes", ", ".join(doc.supersedes))
    if doc.body.strip():
        sys.stdout.write("\n" + clean(doc.body.strip()) + "\n")


# next --------------------------------------------------------------------------------------------


def _owner_rank(task: TaskItem, actor: str) -> int:
    if task.owner == actor:
        return 0
    return 1 if task.owner is None else 2


def ranked_next(
    reader: Reader, actor: str, repo: str | None = None, limit: int = 1
) -> tuple[list[tuple[TaskItem, WorkplanStatus]], int, str]:
    """The best ``limit`` tasks ``actor`` can take now, best first (``NextTask`` says how they are
    ranked), each with its workplan's status; how many there are in all; and the words naming where
    they were looked for."""
    best, total = reader.next_candidates(actor, repo, limit)
    return best, total, f" in {repo}" if repo else ""


def _why(task: TaskItem, actor: str, plan_status: WorkplanStatus, ready: int, where: str) -> str:
    whose = ("yours", "unowned", f"owned by {task.owner}")[_owner_rank(task, actor)]
    return f"{whose}, ready, in {plan_status.value} workplan {task.workplan}; {ready} ready{where}"


def choose_next(reader: Reader, actor: str, repo: str | None = None) -> NextTask:
    """The best task ``actor`` can take now (``NextTask`` says how it is chosen)."""
    best, total, where = ranked_next(reader, actor, repo)
    if not best:
        return NextTask(actor, None, f"no task{where} is todo with every dependency done", 0)
    task, plan_status = best[0]
    return NextTask(actor, task, _why(task, actor, plan_status, total, where), total)


MAX_CLAIM_TRIES = 20
"""``next --claim`` tries at most this many candidates, best first, before saying none was won."""


def claim_next(actor: str, repo: str | None, lease_s: float) -> tuple[NextClaimed, Freshness]:
    """Claim the best task ``actor`` can take now: candidates best first, each tried with a claim
    until one wins (at most :data:`MAX_CLAIM_TRIES`); a claim another agent wins first is passed over."""
    from statehub import claims
    from statehub.auth.event_policy import LOCAL_COMMAND
    from statehub.claims import NextClaimed
    from statehub.cli._context import open_desk
    from statehub.cli._sending import APPLY_WAIT

    with open_reader() as reading:
        reading.require_repo(repo)
        candidates, total, where = ranked_next(reading.reader, actor, repo, MAX_CLAIM_TRIES)
        fresh = reading.freshness([repo] if repo else None)
    passed: list[str] = []
    with open_desk() as desk:
        for task, plan_status in candidates:
            try:
                won = claims.claim(desk, task.ref, actor, lease_s, authorise=LOCAL_COMMAND)
            except Conflict as lost:
                passed.append(f"{task.ref}: {lost.message}")
                continue
            desk.apply_pending(timeout=APPLY_WAIT)
            why = _why(task, actor, plan_status, total, where)
            return NextClaimed(actor, task, won, f"claimed: {why}", total, passed), fresh
    if not candidates:
        reason = f"no task{where} is todo with every dependency done"
    else:
        reason = f"no claim won among the best {len(passed)} of {total} ready{where}"
    return NextClaimed(actor, None, None, reason, total, passed), fresh


@click.command("next")
@click.option("--repo", help="Only tasks in this repo (slug).")
@click.option("--claim", "take", is_flag=True, help="Claim it too: the best task a claim wins (ADR-032).")
@click.option(
    "--lease-s",
    "lease_s",
    type=click.IntRange(1, MAX_LEASE_S),
    default=DEFAULT_LEASE_S,
    show_default=True,
    help="With --claim: seconds the lease lasts.",
)
@actor_option
@json_option("{actor, task, reason, candidates} (with --claim also claim, passed_over)")
@handle_errors
def next_(repo: str | None, take: bool, lease_s: int, actor: str | None, as_json: bool) -> None:
    """The best task the actor can take now: todo, every dependency done, theirs or unowned first.

    With --claim, claim it as well: candidates are tried best first and one
    another agent wins meanwhile is passed over; exit 5 when no claim is won.

    Example: statehub next --repo ops --claim --json
    """
    who = actor or default_actor()
    if take:
        claimed, fresh = claim_next(who, repo, lease_s)
        if claimed.task is None or claimed.claim is None:
            # one envelope on stdout with --json: the error's (handle_errors prints it)
            raise Conflict(
                f"nothing claimed for {who}: {claimed.reason}",
                details={
                    "reason": claimed.reason,
                    "candidates": claimed.candidates,
                    "passed_over": claimed.passed_over,
                },
            )
        if as_json:
            print_json(claimed, fresh)
            return
        print_table("Next", ["ref", "status", "owner", "ready", "title"], [_task_row(claimed.task)])
        _line(f"claimed as {who} until {claimed.claim.lease_expires_at} (claim {claimed.claim.key})")
        _line(claimed.reason)
        return
    with open_reader() as reading:
        reading.require_repo(repo)
        found = choose_next(reading.reader, who, repo)
        fresh = reading.freshness([repo] if repo else None)
    if as_json:
        print_json(found, fresh)
        return
    if found.task is None:
        _line(f"nothing to take for {who}: {found.reason}")
        return
    print_table("Next", ["ref", "status", "owner", "ready", "title"], [_task_row(found.task)])
    _line(found.reason)
