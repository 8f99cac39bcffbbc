"""Time ``Hub.rebuild`` on SQLite and PostgreSQL side by side, over one synthetic corpus.

Usage: .venv/bin/python bench/pg_rebuild.py [--repos 20] [--workplans 40] [--rounds 3]
       [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

The other benches can take ``--database-url`` the same way through bench/_databases.py.

The corpus is written once as real git work trees in a temp dir; each backend gets
a fresh cache (a temp SQLite file; a freshly created PostgreSQL database, dropped
afterwards). Prints the median rebuild time per backend and PostgreSQL's ratio to
SQLite. The foundation's rebuild target (<= 1.5x a bare sqlite3 floor) is measured
by bench/rebuild.py; this script answers "what does the fleet backend cost?".
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _databases import DEFAULT_POSTGRES_URL, cache_url
from sqlalchemy import func, select

from statehub.cache.schema import CANON, TASKS, WORKPLANS
from statehub.hub import Hub
from statehub.settings import Settings

STATUSES = ["todo", "in-progress", "blocked", "done", "done", "done"]


def write_corpus(root: Path, repos: int, workplans: int, seed: int = 6) -> list[Path]:
    """Real git work trees with workplans (1..12 tasks, local and cross-plan dependencies) and canon."""
    rng = random.Random(seed)
    paths = []
    for r in range(repos):
        repo = root / f"repo-{r:03d}"
        prefix = f"R{r:03d}"
        (repo / "workplans").mkdir(parents=True)
        (repo / "canon").mkdir()
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        (repo / "statehub.toml").write_text(
            f'[repo]\nslug = "repo-{r:03d}"\ntitle = "Repo {r}"\nprefixes = ["{prefix}"]\n', encoding="utf-8"
        )
        for w in range(workplans):
            plan_id = f"{prefix}-WP-{w:04d}"
            lines = ["+++", f'id = "{plan_id}"', f'title = "Plan {w}"', 'status = "active"', 'owner = "ops"']
            for t in range(1, rng.randint(1, 12) + 1):
                lines += ["", "[[tasks]]", f'id = "T{t:02d}"', f'title = "Task {t}"']
                lines.append(f'status = "{rng.choice(STATUSES)}"')
                lines.append(f'owner = "agent-{rng.randint(0, 9)}"')
                if t > 1:
                    lines.append(f'depends_on = ["T{t - 1:02d}"]')
            lines += ["+++", "", f"# {plan_id}", "", "Body text.", ""]
            (repo / "workplans" / f"{plan_id}.md").write_text("\n".join(lines), encoding="utf-8")
        for c in range(5):
            (repo / "canon" / f"ADR-{c:03d}.md").write_text(
                f'+++\nid = "ADR-{c:03d}"\ntitle = "Decision {c}"\nkind = "adr"\nstatus = "accepted"\n'
                f"date = 2026-11-23\n+++\nBody.\n",
                encoding="utf-8",
            )
        (repo / "workplans" / "broken.md").write_text("+++\nid = 'nope\n+++\n", encoding="utf-8")
        paths.append(repo)
    return paths


def time_backend(
    name: str, url: str, home: Path, corpus: list[Path], rounds: int
) -> tuple[float, dict[str, int]]:
    settings = Settings.from_env({"STATEHUB_HOME": str(home / name)}).with_overrides(
        database_url=url, watch=False
    )
    hub = Hub(settings)
    try:
        for repo in corpus:
            hub.register(repo)
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            hub.rebuild()
            times.append(time.perf_counter() - start)
        with hub.engine.connect() as conn:
            counts = {
                t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (WORKPLANS, TASKS, CANON)
            }
    finally:
        hub.close()
    return statistics.median(times), counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=20)
    parser.add_argument("--workplans", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="statehub-bench-") as tmp:
        home = Path(tmp)
        corpus = write_corpus(home / "corpus", args.repos, args.workplans)
        results = {}
        for name, server in (("sqlite", None), ("postgresql", args.postgres_url)):
            with cache_url(server, home) as url:
                results[name] = time_backend(name, url, home, corpus, args.rounds)

    counts = results["sqlite"][1]
    if results["postgresql"][1] != counts:
        sys.exit(f"backends disagree: sqlite {counts} vs postgresql {results['postgresql'][1]}")
    print(
        f"corpus: {args.repos} repos, {counts['workplan']} workplans, {counts['task']} tasks, "
        f"{counts['canon']} canon documents; median of {args.rounds} rebuilds"
    )
    for name, (seconds, _) in results.items():
        print(f"  {name:<10} rebuild {seconds * 1000:8.1f} ms")
    ratio = results["postgresql"][0] / results["sqlite"][0]
    print(f"  postgresql / sqlite: {ratio:.2f}x")


if __name__ == "__main__":
    main()
