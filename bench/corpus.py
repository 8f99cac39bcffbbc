"""A synthetic corpus of real git repos, shaped like the team's workspace (74 repos x 40 workplans).

Deterministic for a seed, so two runs (and the floor and the hub in one run)
index exactly the same bytes. Run it alone to write a corpus somewhere:

    .venv/bin/python bench/corpus.py /tmp/corpus
"""

from __future__ import annotations

import random
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Corpus", "build_corpus"]

OWNERS = ("codex", "claude", "custodian", "ops-lead", "atm-railiance01", "agt-codex", "dana", "lee")
TASK_STATUSES = ("todo", "todo", "in-progress", "blocked", "done", "done", "done", "cancelled")
PLAN_STATUSES = ("draft", "active", "active", "active", "blocked", "done", "cancelled")
BROKEN = (
    # bad TOML
    '+++\nid = "{id}"\ntitle = \n+++\n',
    # bad status and a duplicate task id
    '+++\nid = "{id}"\ntitle = "Broken"\nstatus = "finished"\n\n[[tasks]]\nid = "T01"\ntitle = "a"\n\n'
    '[[tasks]]\nid = "T01"\ntitle = "b"\n+++\n',
    # no front matter
    "# Just notes\n\nNo front matter here.\n",
)


@dataclass
class Corpus:
    root: Path
    repos: list[Path] = field(default_factory=list)
    workplans: int = 0
    tasks: int = 0
    canon: int = 0
    broken: int = 0


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _prefix(index: int) -> str:
    return f"R{index:03d}"


def _workplan(rng: random.Random, repo: int, number: int, repos: int, plans: int, max_tasks: int) -> str:
    plan_id = f"{_prefix(repo)}-WP-{number:04d}"
    count = rng.randint(1, max_tasks)
    lines = [
        "+++",
        f'id = "{plan_id}"',
        f'title = "Workplan {number} of repo {repo}: move the {rng.choice(["api", "db", "relay", "ui"])}"',
        f'status = "{rng.choice(PLAN_STATUSES)}"',
        f'owner = "{rng.choice(OWNERS)}"',
        f'related = ["ADR-001", "{_prefix(rng.randrange(repos))}-WP-{rng.randint(1, plans):04d}"]',
    ]
    for t in range(1, count + 1):
        lines += [
            "",
            "[[tasks]]",
            f'id = "T{t:02d}"',
            f'title = "Step {t} of {plan_id}"',
            f'status = "{rng.choice(TASK_STATUSES)}"',
        ]
        if rng.random() < 0.8:
            lines.append(f'owner = "{rng.choice(OWNERS)}"')
        deps: list[str] = []
        if t > 1 and rng.random() < 0.5:
            deps.append(f"T{rng.randint(1, t - 1):02d}")
        if rng.random() < 0.15:  # cross-workplan, often cross-repo; some point at nothing
            other = f"{_prefix(rng.randrange(repos))}-WP-{rng.randint(1, plans + 2):04d}"
            deps.append(f"{other}-T{rng.randint(1, max_tasks):02d}")
        if deps:
            lines.append("depends_on = [" + ", ".join(f'"{d}"' for d in deps) + "]")
    lines += ["+++", "", f"# {plan_id}", "", "Free text for people.", "", "## Progress", ""]
    return "\n".join(lines) + "\n"


def _canon(number: int, repo: int) -> str:
    return (
        f'+++\nid = "ADR-{number:03d}"\ntitle = "Decision {number} of repo {repo}"\nkind = "adr"\n'
        f'status = "accepted"\ndate = 2026-05-{number % 28 + 1:02d}\nsupersedes = []\n+++\n\nBody.\n'
    )


def build_corpus(
    root: Path,
    *,
    repos: int = 74,
    workplans: int = 40,
    max_tasks: int = 12,
    canon: int = 3,
    broken_every: int = 10,
    seed: int = 20261123,
) -> Corpus:
    """Write ``repos`` git repos under ``root``, each with one initial commit."""
    rng = random.Random(seed)
    corpus = Corpus(root)
    for r in range(repos):
        repo = root / f"repo-{r:03d}"
        (repo / "workplans").mkdir(parents=True)
        (repo / "canon").mkdir()
        (repo / "statehub.toml").write_text(
            f'[repo]\nslug = "repo-{r:03d}"\ntitle = "Repo {r}"\nprefixes = ["{_prefix(r)}"]\n'
            'default_branch = "main"\n',
            encoding="utf-8",
        )
        (repo / "workplans" / "README.md").write_text("# Workplans\n", encoding="utf-8")
        for n in range(1, workplans + 1):
            text = _workplan(rng, r, n, repos, workplans, max_tasks)
            (repo / "workplans" / f"{_prefix(r)}-WP-{n:04d}.md").write_text(text, encoding="utf-8")
            corpus.workplans += 1
            corpus.tasks += text.count("[[tasks]]")
        for n in range(1, canon + 1):
            (repo / "canon" / f"ADR-{n:03d}.md").write_text(_canon(n, r), encoding="utf-8")
            corpus.canon += 1
        if broken_every and r % broken_every == 0:
            template = BROKEN[(r // broken_every) % len(BROKEN)]
            broken = template.format(id=f"{_prefix(r)}-WP-9999")
            (repo / "workplans" / "broken.md").write_text(broken, encoding="utf-8")
            corpus.broken += 1
        _git(repo, "init", "-q", "-b", "main")
        _git(repo, "add", "-A")
        _git(
            repo,
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@statehub.invalid",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "-m",
            "corpus",
        )
        corpus.repos.append(repo)
    return corpus


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/.out/corpus")
    if target.exists() and any(target.iterdir()):
        sys.exit(f"{target} is not empty; give an empty or new directory")
    built = build_corpus(target)
    print(
        f"{len(built.repos)} repos, {built.workplans} workplans, {built.tasks} tasks, "
        f"{built.canon} canon documents, {built.broken} broken files under {target}"
    )
