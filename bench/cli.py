# ruff: noqa: S608, E501 - the floors are constant SQL and scripts kept as strings, run as their own processes
"""How fast the CLI answers, whole-process, beside a bare-Python floor measured in the same run.

Each read command (``--help``, ``tasks``, ``workplans``, ``canon``, ``repos list``,
``show`` of a task and of a workplan, ``next``) runs as its own process against a
hub home holding the synthetic corpus (bench/corpus.py, 74 repos), alternating
with its floor: ``python -c`` that opens the SQLite cache with sqlite3, runs the
equivalent query and prints the rows as JSON. ``statehub rebuild --json`` runs
beside its floor: a script that reads the same files, splits and parses them with
tomllib and inserts the same rows with sqlite3 ``executemany`` into the same tables.
Medians of wall time, and of CPU time (user + system of the child), which is the
steadier figure on a shared machine.

Targets (issue 13): each read <= 150 ms; rebuild <= 1.5x its floor.

    .venv/bin/python bench/cli.py [--repos 74] [--runs 11] [--rebuild-runs 3] [--statehub-python PATH]
        [--only-rebuild]

``--statehub-python`` runs the commands with another checkout's interpreter (its
``.venv/bin/python``), e.g. to time main before a change against the same floors;
a command that checkout does not have is shown as n/a.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import build_corpus

READ_TARGET_MS = 150.0
REBUILD_TARGET = 1.5

_OPEN = (
    "import json, sqlite3, sys\ndb = sqlite3.connect(sys.argv[1])\ndb.execute('PRAGMA busy_timeout=5000')\n"
)

FLOORS = {
    "--help": "print('Usage: statehub [OPTIONS] COMMAND [ARGS]...')",
    "tasks": _OPEN + "n = db.execute('SELECT count(*) FROM task WHERE conflicted = 0').fetchone()[0]\n"
    "rows = db.execute('SELECT ref, workplan_id, task_id, repo, path, title, status, owner, depends_on, ready "
    "FROM task WHERE conflicted = 0 ORDER BY workplan_id, position LIMIT 100').fetchall()\n"
    "print(json.dumps({'items': rows, 'total': n}))",
    "workplans": _OPEN
    + "n = db.execute('SELECT count(*) FROM workplan WHERE conflicted = 0').fetchone()[0]\n"
    "rows = db.execute('SELECT id, repo, path, title, status, owner, related, task_count "
    "FROM workplan WHERE conflicted = 0 ORDER BY id LIMIT 100').fetchall()\n"
    "print(json.dumps({'items': rows, 'total': n}))",
    "canon": _OPEN + "n = db.execute('SELECT count(*) FROM canon WHERE conflicted = 0').fetchone()[0]\n"
    "rows = db.execute('SELECT id, repo, path, title, kind, status, date, supersedes "
    "FROM canon WHERE conflicted = 0 ORDER BY id, repo LIMIT 100').fetchall()\n"
    "print(json.dumps({'items': rows, 'total': n}))",
    "repos list": _OPEN
    + "e = dict(db.execute('SELECT repo, count(*) FROM file_error GROUP BY repo').fetchall())\n"
    "w = dict(db.execute('SELECT repo, count(*) FROM workplan GROUP BY repo').fetchall())\n"
    "rows = db.execute('SELECT slug, path, title, prefixes, default_branch FROM repo ORDER BY slug').fetchall()\n"
    "print(json.dumps([list(r) + [e.get(r[0], 0), w.get(r[0], 0)] for r in rows]))",
    "show task": _OPEN + "ref = 'R001-WP-0001-T02'\n"
    "cols = 'ref, workplan_id, task_id, repo, path, title, status, owner, depends_on, ready'\n"
    "t = db.execute(f'SELECT {cols} FROM task WHERE ref = ?', (ref,)).fetchone()\n"
    "deps = json.loads(t[8])\n"
    'd = db.execute(f\'SELECT {cols} FROM task WHERE ref IN ({",".join("?" * len(deps)) or "NULL"})\', '
    "deps).fetchall()\n"
    "u = db.execute('SELECT t.ref FROM task_dependency d JOIN task t ON t.repo = d.repo AND t.path = d.path "
    "AND t.task_id = d.task_id WHERE d.depends_on = ?', (ref,)).fetchall()\n"
    "print(json.dumps({'task': t, 'dependencies': d, 'dependents': u}))",
    "show workplan": _OPEN
    + "w = db.execute('SELECT id, repo, path, title, status, owner, related, task_count, body, extra "
    "FROM workplan WHERE id = ?', ('R001-WP-0001',)).fetchone()\n"
    "t = db.execute('SELECT ref, status, owner, title FROM task WHERE repo = ? AND path = ? ORDER BY position', "
    "(w[1], w[2])).fetchall()\n"
    "print(json.dumps({'workplan': w, 'tasks': t}))",
    "next": _OPEN
    + 'rows = db.execute("SELECT t.ref, t.owner, w.status FROM task t JOIN workplan w ON w.id = t.workplan_id '
    "WHERE t.conflicted = 0 AND t.ready = 1 AND t.status = 'todo' AND w.status IN ('active', 'draft', 'blocked') "
    'ORDER BY t.workplan_id, t.position").fetchall()\n'
    "rank = {'active': 0, 'draft': 1, 'blocked': 2}\n"
    "best = min(rows, key=lambda r: (r[1] != 'agt-codex', r[1] is not None, rank[r[2]]))\n"
    "print(json.dumps(best))",
}

COMMANDS = {
    "--help": ["--help"],
    "tasks": ["tasks", "--json"],
    "workplans": ["workplans", "--json"],
    "canon": ["canon", "--json"],
    "repos list": ["repos", "list", "--json"],
    "show task": ["show", "R001-WP-0001-T02", "--json"],
    "show workplan": ["show", "R001-WP-0001", "--json"],
    "next": ["next", "--json"],
}

REBUILD_FLOOR = r"""
import hashlib, json, os, sqlite3, sys, tomllib
from pathlib import Path

corpus, database, ddl = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(Path(sys.argv[3]).read_text())
STATUSES = {"draft", "active", "blocked", "done", "cancelled"}
database.unlink(missing_ok=True)
db = sqlite3.connect(database)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=NORMAL")
for statement in ddl:
    db.execute(statement)
plans, tasks, deps, canon, sources = [], [], [], [], []
for repo in sorted(corpus.iterdir()):
    slug = repo.name
    for top in ("workplans", "canon"):
        for entry in os.scandir(repo / top):
            if not entry.name.endswith(".md"):
                continue
            stat = entry.stat()
            data = Path(entry.path).read_bytes()
            path = f"{top}/{entry.name}"
            sha = hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()
            inode = stat.st_ino - (1 << 64) if stat.st_ino >= 1 << 63 else stat.st_ino
            sources.append((slug, path, top, sha, stat.st_mtime_ns, stat.st_size, stat.st_ctime_ns, inode))
            text = data.decode()
            if not text.startswith("+++\n"):
                continue
            front, _, body = text[4:].partition("\n+++\n")
            try:
                doc = tomllib.loads(front)
            except tomllib.TOMLDecodeError:
                continue
            if top == "canon":
                canon.append((slug, path, doc["id"], doc["title"], doc["kind"], doc["status"], str(doc.get("date")),
                              json.dumps(doc.get("supersedes", [])), body, "{}", False))
                continue
            plan_id, items = doc.get("id"), doc.get("tasks", [])
            if doc.get("status") not in STATUSES or len({t["id"] for t in items}) != len(items):
                continue
            plans.append((slug, path, plan_id, doc.get("title"), doc.get("status"), doc.get("owner"),
                          json.dumps(doc.get("related", [])), body, "{}", len(items), False))
            for position, task in enumerate(items):
                refs = [d if "-" in d else f"{plan_id}-{d}" for d in task.get("depends_on", [])]
                tasks.append((slug, path, task["id"], f"{plan_id}-{task['id']}", plan_id, position, task["title"],
                              task.get("status", "todo"), task.get("owner"), json.dumps(refs), "{}", False, False,
                              False))
                deps.extend((slug, path, task["id"], ref) for ref in dict.fromkeys(refs))
db.executemany("INSERT INTO source_file VALUES (?,?,?,?,?,?,?,?)", sources)
db.executemany("INSERT INTO workplan (repo,path,id,title,status,owner,related,body,extra,task_count,conflicted)"
               " VALUES (?,?,?,?,?,?,?,?,?,?,?)", plans)
db.executemany("INSERT INTO task (repo,path,task_id,ref,workplan_id,position,title,status,owner,depends_on,extra,"
               "ready,conflicted,cyclic) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", tasks)
db.executemany("INSERT INTO task_dependency VALUES (?,?,?,?)", deps)
db.executemany("INSERT INTO canon (repo,path,id,title,kind,status,date,supersedes,body,extra,conflicted)"
               " VALUES (?,?,?,?,?,?,?,?,?,?,?)", canon)
db.commit()
db.close()
print(json.dumps({"workplans": len(plans), "tasks": len(tasks), "canon": len(canon)}))
"""


class Missing(Exception):
    """The command does not exist in the checkout being timed."""


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one whole process; fails loudly on a non-zero exit. Run from the
    temp dir, so ``python -m statehub`` is the interpreter's own install, not a checkout in the
    working directory."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, check=False, cwd=env["STATEHUB_HOME"] + "/..")
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode == 2 and b"No such command" in done.stderr:
        raise Missing(argv[3])
    if done.returncode != 0:
        raise SystemExit(f"{argv} exited {done.returncode}: {done.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def medians(runs: int, *argvs: tuple[list[str], dict[str, str]]) -> list[tuple[float, float]]:
    """Median (wall, CPU) of each command, run in alternation so load hits them alike."""
    samples: list[list[tuple[float, float]]] = [[] for _ in argvs]
    for _ in range(runs):
        for index, (argv, env) in enumerate(argvs):
            samples[index].append(timed(argv, env))
    return [
        (statistics.median(w for w, _ in found), statistics.median(c for _, c in found)) for found in samples
    ]


def _ddl() -> list[str]:
    from sqlalchemy.dialects import sqlite as sqlite_dialect
    from sqlalchemy.schema import CreateIndex, CreateTable

    from statehub.cache.schema import metadata

    dialect = sqlite_dialect.dialect()
    statements = []
    for table in metadata.sorted_tables:
        statements.append(str(CreateTable(table).compile(dialect=dialect)))
        statements.extend(str(CreateIndex(index).compile(dialect=dialect)) for index in table.indexes)
    return statements


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=74)
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--rebuild-runs", type=int, default=3)
    parser.add_argument("--statehub-python", help="the interpreter that runs statehub (default: this one)")
    parser.add_argument("--only-rebuild", action="store_true", help="time only the rebuild row")
    args = parser.parse_args()
    python = sys.executable
    statehub = [args.statehub_python or python, "-m", "statehub"]
    with tempfile.TemporaryDirectory(prefix="statehub-bench-cli-") as tmp:
        base = Path(tmp)
        corpus = build_corpus(base / "corpus", repos=args.repos)
        print(f"corpus: {len(corpus.repos)} repos, {corpus.workplans} workplans, {corpus.tasks} tasks")
        env = {**os.environ, "STATEHUB_HOME": str(base / "home"), "STATEHUB_ACTOR": "agt-codex"}
        env.pop("STATEHUB_DATABASE_URL", None)
        subprocess.run(
            [*statehub, "repos", "add", *map(str, corpus.repos)], env=env, check=True, capture_output=True
        )
        cache = base / "home" / "cache" / "cache.sqlite3"

        print(
            f"{'command':<16}{'median':>10}{'CPU':>10}{'floor':>10}{'CPU':>10}{'ratio':>8}{'CPU':>7}  target"
        )
        met = True
        for name, words in () if args.only_rebuild else COMMANDS.items():
            floor_argv = [python, "-c", FLOORS[name], str(cache)]
            try:
                (wall, cpu), (floor_wall, floor_cpu) = medians(
                    args.runs, ([*statehub, *words], env), (floor_argv, env)
                )
            except Missing:
                print(f"{name:<16}{'n/a':>10}")
                continue
            ok = wall * 1000 <= READ_TARGET_MS
            met = met and ok
            print(
                f"{name:<16}{wall * 1000:>8.0f}ms{cpu * 1000:>8.0f}ms{floor_wall * 1000:>8.0f}ms"
                f"{floor_cpu * 1000:>8.0f}ms{wall / floor_wall:>7.2f}x{cpu / floor_cpu:>6.2f}x  "
                f"<= {READ_TARGET_MS:.0f} ms {'met' if ok else 'MISSED'}"
            )

        ddl_file = base / "ddl.json"
        ddl_file.write_text(json.dumps(_ddl()), encoding="utf-8")
        script = base / "rebuild_floor.py"
        script.write_text(REBUILD_FLOOR, encoding="utf-8")
        floor_argv = [python, str(script), str(base / "corpus"), str(base / "floor.sqlite3"), str(ddl_file)]
        (wall, cpu), (floor_wall, floor_cpu) = medians(
            args.rebuild_runs, ([*statehub, "rebuild", "--json"], env), (floor_argv, env)
        )
        ratio, cpu_ratio = wall / floor_wall, cpu / floor_cpu
        ok = ratio <= REBUILD_TARGET
        met = met and ok
        print(
            f"{'rebuild':<16}{wall * 1000:>8.0f}ms{cpu * 1000:>8.0f}ms{floor_wall * 1000:>8.0f}ms"
            f"{floor_cpu * 1000:>8.0f}ms{ratio:>7.2f}x{cpu_ratio:>6.2f}x  <= {REBUILD_TARGET}x floor "
            f"{'met' if ok else 'MISSED'}"
        )
    print("targets met" if met else "TARGETS MISSED")


if __name__ == "__main__":
    main()
