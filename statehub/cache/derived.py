"""Facts that span files: ids claimed twice, dependency cycles, and which tasks are ready.

Recomputed after every index change, in the same transaction, so readers never
see a half-updated answer. A rebuild recomputes everything; a refresh passes a
:class:`Scope` (the workplan ids, task refs and canon ids its changed files held
before and after) and only the rows those can affect are touched, so a one-file
refresh costs the same in a 70-repo hub as in a one-repo hub (ADR-003).

Ready (ADR-004): a task is ready when it is not done or cancelled, its workplan
id is not claimed twice, it is in no dependency cycle, and every
``depends_on`` names an existing, unconflicted task whose status is done.
Readiness depends only on direct dependencies' status, never on their
readiness, so one level of dependents is all a change can reach.

Cycles (docs/format.md, "Dependency cycles"): the dependency graph has a node
per task reference and an edge per ``depends_on`` entry, across workplans and
repos. Every task in a strongly connected component with more than one task,
or depending on itself, is ``cyclic``, and each file holding one gets a file
error (origin ``cycle``) naming one cycle as a path, ``T01 -> T02 -> T01``.
A new cycle must run through a task of a changed file, and a cycle that ends
must have held a task flagged before, so a scoped recompute searches from
those tasks only, following dependencies forward: it finds every cycle there
is, and the old ``cycle`` rows are replaced wholesale.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, bindparam, delete, select, text, true, tuple_, update

from statehub.cache.generation import bump_generation
from statehub.cache.schema import CANON, DEPENDENCIES, FILE_ERRORS, TASKS, WORKPLANS
from statehub.cache.scope import Scope

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["Scope", "recompute_derived"]


# One expression, used by the full and the scoped recompute alike.
_READY = """(
    task.status NOT IN ('done', 'cancelled')
    AND task.conflicted = :no
    AND task.cyclic = :no
    AND NOT EXISTS (
        SELECT 1 FROM task_dependency AS d
        WHERE d.repo = task.repo AND d.path = task.path AND d.task_id = task.task_id
        AND NOT EXISTS (
            SELECT 1 FROM task AS dep
            WHERE dep.ref = d.depends_on AND dep.status = 'done' AND dep.conflicted = :no
        )
    )
)"""
_FULL_READY = text(f"UPDATE task SET ready = {_READY} WHERE ready != {_READY}")  # noqa: S608 - _READY is a constant expression
# The same question for PostgreSQL, worded as joins. Inside ``SET ready = (... AND NOT EXISTS ...)``
# PostgreSQL cannot turn the correlated NOT EXISTS into an anti-join and probes a hashed subplan per
# row: 1.4 s of a 74-repo rebuild's 4 s (bench/pg_rebuild.py). Here the tasks with a dependency not
# done are one hash anti-join, and only the rows whose flag flips are written. SQLite keeps the
# form above, which it answers through ix_task_ref_status (bench/rebuild.py).
_FULL_READY_POSTGRES = text(
    """UPDATE task SET ready = NOT task.ready
FROM (
    SELECT t.repo, t.path, t.task_id FROM task AS t
    LEFT JOIN (
        SELECT DISTINCT d.repo, d.path, d.task_id FROM task_dependency AS d
        WHERE NOT EXISTS (
            SELECT 1 FROM task AS dep
            WHERE dep.ref = d.depends_on AND dep.status = 'done' AND dep.conflicted = :no
        )
    ) AS blocked ON blocked.repo = t.repo AND blocked.path = t.path AND blocked.task_id = t.task_id
    WHERE t.ready != (
        t.status NOT IN ('done', 'cancelled')
        AND t.conflicted = :no
        AND t.cyclic = :no
        AND blocked.task_id IS NULL
    )
) AS flip
WHERE task.repo = flip.repo AND task.path = flip.path AND task.task_id = flip.task_id"""
)
_READY_BY_WORKPLAN = text(
    f"UPDATE task SET ready = {_READY} WHERE workplan_id IN :ids AND ready != {_READY}"  # noqa: S608 - _READY is a constant expression
).bindparams(bindparam("ids", expanding=True))
_READY_BY_KEY = text(
    f"UPDATE task SET ready = {_READY} WHERE repo = :repo AND path = :path AND task_id = :task_id"  # noqa: S608 - _READY is a constant expression
)


def recompute_derived(conn: Connection, scope: Scope | None = None) -> None:
    """Everything (``scope`` None), or only what ``scope`` can reach (nothing for an empty scope)."""
    bump_generation(conn)
    if scope is None:
        _full_duplicates(conn)
        _mark_cycles(conn, _edges(conn, None))
        postgres = conn.dialect.name == "postgresql"
        conn.execute(_FULL_READY_POSTGRES if postgres else _FULL_READY, {"no": False})
        return
    if not scope:
        return
    _scoped_workplan_duplicates(conn, scope.workplan_ids)
    _scoped_canon_duplicates(conn, scope.canon)
    flipped = _mark_cycles(conn, _edges(conn, _cycle_starts(conn, scope)))
    _scoped_ready(conn, scope, flipped)


def _chunks(items: Iterable[Any], size: int = 500) -> list[list[Any]]:
    listed = sorted(items)
    return [listed[i : i + size] for i in range(0, len(listed), size)]


# duplicates --------------------------------------------------------------------------------------


def _full_duplicates(conn: Connection) -> None:
    conn.execute(delete(FILE_ERRORS).where(FILE_ERRORS.c.origin == "duplicate"))
    conn.execute(update(WORKPLANS).where(WORKPLANS.c.conflicted).values(conflicted=False))
    conn.execute(update(TASKS).where(TASKS.c.conflicted).values(conflicted=False))
    conn.execute(update(CANON).where(CANON.c.conflicted).values(conflicted=False))
    dup_plans = text("SELECT id FROM workplan GROUP BY id HAVING count(*) > 1")
    _mark_workplans(conn, [r.id for r in conn.execute(dup_plans)])
    dup_canon = text("SELECT repo, id FROM canon GROUP BY repo, id HAVING count(*) > 1")
    _mark_canon(conn, {(r.repo, r.id) for r in conn.execute(dup_canon)})


def _scoped_workplan_duplicates(conn: Connection, ids: set[str]) -> None:
    if not ids:
        return
    claims: list[Any] = []
    for chunk in _chunks(ids):
        claims += conn.execute(
            select(WORKPLANS.c.id, WORKPLANS.c.repo, WORKPLANS.c.path).where(WORKPLANS.c.id.in_(chunk))
        ).all()
    _clear_duplicate_errors(conn, [(c.repo, c.path) for c in claims])
    counts: dict[str, int] = {}
    for claim in claims:
        counts[claim.id] = counts.get(claim.id, 0) + 1
    for chunk in _chunks(ids):
        conn.execute(update(WORKPLANS).where(WORKPLANS.c.id.in_(chunk)).values(conflicted=False))
        conn.execute(update(TASKS).where(TASKS.c.workplan_id.in_(chunk)).values(conflicted=False))
    _mark_workplans(conn, [i for i, n in counts.items() if n > 1])


def _scoped_canon_duplicates(conn: Connection, pairs: set[tuple[str, str]]) -> None:
    if not pairs:
        return
    claims: list[Any] = []
    for chunk in _chunks(pairs):
        match = tuple_(CANON.c.repo, CANON.c.id).in_(chunk)
        claims += conn.execute(select(CANON.c.repo, CANON.c.id, CANON.c.path).where(match)).all()
        conn.execute(update(CANON).where(match).values(conflicted=False))
    _clear_duplicate_errors(conn, [(c.repo, c.path) for c in claims])
    counts: dict[tuple[str, str], int] = {}
    for claim in claims:
        counts[(claim.repo, claim.id)] = counts.get((claim.repo, claim.id), 0) + 1
    _mark_canon(conn, {pair for pair, n in counts.items() if n > 1})


def _clear_duplicate_errors(conn: Connection, files: list[tuple[str, str]]) -> None:
    for chunk in _chunks(set(files)):
        conn.execute(
            delete(FILE_ERRORS).where(
                and_(
                    FILE_ERRORS.c.origin == "duplicate",
                    tuple_(FILE_ERRORS.c.repo, FILE_ERRORS.c.path).in_(chunk),
                )
            )
        )


def _mark_workplans(conn: Connection, duplicated: list[str]) -> None:
    if not duplicated:
        return
    conn.execute(update(WORKPLANS).where(WORKPLANS.c.id.in_(duplicated)).values(conflicted=True))
    conn.execute(update(TASKS).where(TASKS.c.workplan_id.in_(duplicated)).values(conflicted=True))
    claims = conn.execute(
        select(WORKPLANS.c.id, WORKPLANS.c.repo, WORKPLANS.c.path)
        .where(WORKPLANS.c.id.in_(duplicated))
        .order_by(WORKPLANS.c.repo, WORKPLANS.c.path)
    ).all()
    _report_claims(conn, "workplan", [(r.id, r.id, r.repo, r.path) for r in claims])


def _mark_canon(conn: Connection, pairs: set[tuple[str, str]]) -> None:
    """Canon ids are unique within a repo; two repos may each have their own ADR-001."""
    if not pairs:
        return
    match = tuple_(CANON.c.repo, CANON.c.id).in_(sorted(pairs))
    conn.execute(update(CANON).where(match).values(conflicted=True))
    claims = conn.execute(
        select(CANON.c.id, CANON.c.repo, CANON.c.path).where(match).order_by(CANON.c.repo, CANON.c.path)
    ).all()
    # canon ids are scoped by repo: group claims by (repo, id)
    _report_claims(conn, "canon document", [((r.repo, r.id), r.id, r.repo, r.path) for r in claims])


def _report_claims(conn: Connection, what: str, claims: list[tuple[Any, str, str, str]]) -> None:
    """One error per claiming file, naming the others; claims are (group key, id, repo, path)."""
    by_key: dict[Any, tuple[str, list[tuple[str, str]]]] = {}
    for key, doc_id, repo, path in claims:
        by_key.setdefault(key, (doc_id, []))[1].append((repo, path))
    errors: list[dict[str, Any]] = []
    for doc_id, places in by_key.values():
        for repo, path in places:
            others = ", ".join(f"{r}/{p}" for r, p in places if (r, p) != (repo, path))
            errors.append(
                {
                    "repo": repo,
                    "path": path,
                    "line": None,
                    "origin": "duplicate",
                    "message": f"{what} id {doc_id} is also claimed by {others}; "
                    "ids must be unique, so neither file is served until one is renamed",
                }
            )
    if errors:
        conn.execute(FILE_ERRORS.insert(), errors)


# ready -------------------------------------------------------------------------------------------


def _scoped_ready(conn: Connection, scope: Scope, flipped: set[tuple[str, str, str]]) -> None:
    """Ready again for the scope's workplans, the dependents of its refs, and ``flipped`` task keys."""
    refs = set(scope.refs)
    for chunk in _chunks(scope.workplan_ids):
        conn.execute(_READY_BY_WORKPLAN, {"ids": chunk, "no": False})
        refs.update(conn.execute(select(TASKS.c.ref).where(TASKS.c.workplan_id.in_(chunk))).scalars())
    dependents: set[tuple[str, str, str]] = set(flipped)
    for chunk in _chunks(refs):
        dependents.update(
            (row.repo, row.path, row.task_id)
            for row in conn.execute(
                select(DEPENDENCIES.c.repo, DEPENDENCIES.c.path, DEPENDENCIES.c.task_id).where(
                    DEPENDENCIES.c.depends_on.in_(chunk)
                )
            )
        )
    if dependents:
        conn.execute(
            _READY_BY_KEY,
            [{"repo": r, "path": p, "task_id": t, "no": False} for r, p, t in sorted(dependents)],
        )


# cycles ------------------------------------------------------------------------------------------

Graph = dict[str, set[str]]
"""Task reference -> the references it depends on (existing tasks or not)."""

_EDGES = select(TASKS.c.ref, DEPENDENCIES.c.depends_on).select_from(
    DEPENDENCIES.join(
        TASKS,
        and_(
            TASKS.c.repo == DEPENDENCIES.c.repo,
            TASKS.c.path == DEPENDENCIES.c.path,
            TASKS.c.task_id == DEPENDENCIES.c.task_id,
        ),
    )
)


def _cycle_starts(conn: Connection, scope: Scope) -> set[str]:
    """Refs any cycle that appeared or ended must run through: changed files' tasks, tasks flagged before."""
    starts: set[str] = set()
    for chunk in _chunks(scope.workplan_ids):
        starts.update(conn.execute(select(TASKS.c.ref).where(TASKS.c.workplan_id.in_(chunk))).scalars())
    starts.update(conn.execute(select(TASKS.c.ref).where(TASKS.c.cyclic == true())).scalars())
    return starts


def _edges(conn: Connection, starts: set[str] | None) -> Graph:
    """Every edge (``starts`` None), or the edges reachable from ``starts`` along dependencies."""
    graph: Graph = {}
    if starts is None:
        for ref, dependency in conn.execute(_EDGES):
            graph.setdefault(ref, set()).add(dependency)
        return graph
    seen = set(starts)
    frontier = starts
    while frontier:
        found: set[str] = set()
        for chunk in _chunks(frontier):
            for ref, dependency in conn.execute(_EDGES.where(TASKS.c.ref.in_(chunk))):
                graph.setdefault(ref, set()).add(dependency)
                if dependency not in seen:
                    found.add(dependency)
        seen |= found
        frontier = found
    return graph


def _knots(graph: Graph) -> list[list[str]]:
    """The strongly connected components that hold a cycle (Tarjan's algorithm, without recursion).

    Only refs with dependencies of their own can be on a cycle, so edges to
    others are dropped first; on a plan graph that leaves little to walk.
    """
    succ = {ref: [d for d in deps if d in graph] for ref, deps in graph.items()}
    _prune(succ)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    knots: list[list[str]] = []
    for root, root_deps in succ.items():
        if root in index or not root_deps:
            continue
        work = [(root, iter(root_deps))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            step = next(successors, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(succ[step])))
                elif step in on_stack and index[step] < low[node]:
                    low[node] = index[step]
                continue
            work.pop()
            if work and low[node] < low[work[-1][0]]:
                low[work[-1][0]] = low[node]
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    knots.append(sorted(component))
    return knots


def _prune(succ: dict[str, list[str]]) -> None:
    """Drop from ``succ`` every ref no cycle can hold: one whose dependencies all lead to a dead end
    (Kahn's algorithm on the reversed graph). On a plan graph without cycles nothing is left."""
    waiting = {ref: len(deps) for ref, deps in succ.items()}
    needed_by: dict[str, list[str]] = {}
    for ref, deps in succ.items():
        for dependency in deps:
            needed_by.setdefault(dependency, []).append(ref)
    done = [ref for ref, count in waiting.items() if not count]
    for ref in done:
        for dependent in needed_by.get(ref, ()):
            waiting[dependent] -= 1
            if not waiting[dependent]:
                done.append(dependent)
    for ref in done:
        del succ[ref]
    for ref, deps in succ.items():
        succ[ref] = [d for d in deps if d in succ]


def _cycle_path(graph: Graph, knot: list[str]) -> list[str]:
    """A shortest cycle through the knot's first (smallest) ref, as a path that ends where it starts."""
    start, members = knot[0], set(knot)
    previous: dict[str, str] = {}
    queue = [start]
    for node in queue:
        for step in sorted(graph.get(node, ())):
            if step == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [start, *reversed(path[:-1]), start] if node != start else [start, start]
            if step in members and step not in previous:
                previous[step] = node
                queue.append(step)
    raise AssertionError(f"{start} is in a knot without a cycle through it")  # Tarjan says otherwise


def _describe_cycle(path: list[str], size: int) -> str:
    """How a cycle reads in a file error: local task ids when it stays in one workplan."""
    workplans = {ref.rsplit("-", 1)[0] for ref in path}
    names = [ref.rsplit("-", 1)[1] for ref in path] if len(workplans) == 1 else path
    if len(path) == 2:
        where = f" in {path[0].rsplit('-', 1)[0]}" if len(workplans) == 1 else ""
        return (
            f"task {names[0]}{where} depends on itself ({names[0]} -> {names[0]}), so it can never be ready; "
            "remove it from its depends_on"
        )
    more = f" ({size} tasks depend on each other in this knot)" if size > len(path) - 1 else ""
    return (
        f"dependency cycle {' -> '.join(names)}{more}: no task in it can become ready until one "
        "depends_on entry along it is removed"
    )


def _mark_cycles(conn: Connection, graph: Graph) -> set[tuple[str, str, str]]:
    """Flag every task of every cycle ``graph`` holds, replace the ``cycle`` file errors, and
    return the (repo, path, task_id) keys whose flag flipped."""
    knots = _knots(graph)
    cyclic: dict[str, list[str]] = {}  # ref -> the path of its knot's cycle
    messages: dict[str, str] = {}
    for knot in knots:
        path = _cycle_path(graph, knot)
        message = _describe_cycle(path, len(knot))
        for ref in knot:
            cyclic[ref] = path
            messages[ref] = message
    key = (TASKS.c.repo, TASKS.c.path, TASKS.c.task_id)
    before = {tuple(row) for row in conn.execute(select(*key).where(TASKS.c.cyclic == true()))}
    rows: list[Any] = []
    for chunk in _chunks(cyclic):
        rows += conn.execute(select(*key, TASKS.c.ref).where(TASKS.c.ref.in_(chunk))).all()
    after = {(row.repo, row.path, row.task_id) for row in rows}
    for repo, path, task_id in sorted(before - after):
        conn.execute(
            update(TASKS)
            .where(and_(TASKS.c.repo == repo, TASKS.c.path == path, TASKS.c.task_id == task_id))
            .values(cyclic=False)
        )
    for repo, path, task_id in sorted(after - before):
        conn.execute(
            update(TASKS)
            .where(and_(TASKS.c.repo == repo, TASKS.c.path == path, TASKS.c.task_id == task_id))
            .values(cyclic=True)
        )
    conn.execute(delete(FILE_ERRORS).where(FILE_ERRORS.c.origin == "cycle"))
    errors: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: (r.repo, r.path, r.ref)):
        message = messages[row.ref]
        errors.setdefault(
            (row.repo, row.path, message),
            {"repo": row.repo, "path": row.path, "line": None, "origin": "cycle", "message": message},
        )
    if errors:
        conn.execute(FILE_ERRORS.insert(), list(errors.values()))
    return before ^ after
