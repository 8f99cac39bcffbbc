"""A refresh recomputes only what its changed files can reach; the answers must equal a full rebuild's."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from statehub.cache.schema import CANON, FILE_ERRORS, TASKS, WORKPLANS
from tests.gitfixtures import GitRepo, workplan_text

if TYPE_CHECKING:
    from collections.abc import Callable

    from statehub.hub import Hub

STATUSES = ["todo", "in-progress", "blocked", "done", "cancelled"]


def _snapshot(hub: Hub) -> dict[str, Any]:
    with hub.engine.connect() as conn:
        return {
            "tasks": sorted(
                conn.execute(
                    select(
                        TASKS.c.repo,
                        TASKS.c.path,
                        TASKS.c.ref,
                        TASKS.c.ready,
                        TASKS.c.conflicted,
                        TASKS.c.cyclic,
                    )
                ).all()
            ),
            "workplans": sorted(
                conn.execute(select(WORKPLANS.c.repo, WORKPLANS.c.path, WORKPLANS.c.conflicted)).all()
            ),
            "canon": sorted(conn.execute(select(CANON.c.repo, CANON.c.path, CANON.c.conflicted)).all()),
            "errors": sorted(
                conn.execute(
                    select(
                        FILE_ERRORS.c.repo, FILE_ERRORS.c.path, FILE_ERRORS.c.origin, FILE_ERRORS.c.message
                    )
                ).all()
            ),
        }


def _random_plan(rng: random.Random, plan_id: str) -> str:
    tasks = []
    for n in range(1, rng.randint(0, 4) + 1):
        deps = []
        if n > 1 and rng.random() < 0.5:
            deps.append(f"T{rng.randint(1, n - 1):02d}")
        if rng.random() < 0.15:  # any task of the plan, itself included: a cycle in the plan
            deps.append(f"T{rng.randint(1, 4):02d}")
        if rng.random() < 0.4:
            deps.append(f"{rng.choice(['A', 'B'])}-WP-{rng.randint(1, 3):04d}-T{rng.randint(1, 4):02d}")
        tasks.append(
            {"id": f"T{n:02d}", "title": f"t{n}", "status": rng.choice(STATUSES), "depends_on": deps}
        )
    return workplan_text(plan_id, tasks)


@pytest.mark.parametrize("seed", range(8))
def test_refresh_after_random_edits_equals_a_rebuild(
    hub: Hub, make_repo: Callable[[str], GitRepo], seed: int
) -> None:
    rng = random.Random(seed)
    repos = {"a": make_repo("a"), "b": make_repo("b")}
    for name, repo in repos.items():
        for n in range(1, 4):
            repo.write(f"workplans/{n}.md", _random_plan(rng, f"{name.upper()}-WP-{n:04d}"))
        repo.write(
            "canon/one.md", '+++\nid = "ADR-001"\ntitle = "t"\nkind = "adr"\nstatus = "accepted"\n+++\n'
        )
        repo.commit()
        hub.register(repo.root)
    for _step in range(12):
        name = rng.choice(["a", "b"])
        repo = repos[name]
        n = rng.randint(1, 4)
        action = rng.random()
        if action < 0.6:  # rewrite, sometimes under another repo's id (a duplicate claim)
            owner = name if rng.random() < 0.8 else rng.choice(["a", "b"])
            repo.write(f"workplans/{n}.md", _random_plan(rng, f"{owner.upper()}-WP-{rng.randint(1, 3):04d}"))
        elif action < 0.75:
            (repo.root / "workplans" / f"{n}.md").unlink(missing_ok=True)
        elif action < 0.85:
            repo.write(f"workplans/{n}.md", "+++\nbroken = \n+++\n")
        else:
            repo.write(
                f"canon/{n}.md", '+++\nid = "ADR-001"\ntitle = "t"\nkind = "adr"\nstatus = "accepted"\n+++\n'
            )
        hub.refresh(name)
        refreshed = _snapshot(hub)
        hub.rebuild()
        assert refreshed == _snapshot(hub)
