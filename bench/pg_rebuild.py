"""How fast the hub rebuilds a PostgreSQL cache, against a bare psycopg ``COPY`` floor, in one run.

(a) ``Hub.rebuild()`` over the 74-repo synthetic corpus (bench/corpus.py) into a
    fresh PostgreSQL database, in-process as a server rebuilds (another thread
    running, so its worker is a spawned ``python -m statehub.cache.gathering``),
    and as ``statehub rebuild`` does it, with no other thread, so its worker is
    forked (canon/ADR-043);
(b) the floor, into another fresh database on the same server: the same files read,
    split and parsed with tomllib (bench/rebuild.py's ``floor_rows``), the same
    tables created with the hub's own DDL, the same rows loaded with one psycopg
    ``COPY ... FROM STDIN`` per table, the hub's indexes built after the load, one
    transaction; no framework.
Target (issue 16): rebuild <= 1.5x the floor. The two run in alternation so load
from other work on the machine hits both alike; the ratio quoted is the median of
each round's rebuild / floor, with its spread.

    .venv/bin/python bench/pg_rebuild.py [--repos 74] [--rounds 3]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Wall time is the figure: PostgreSQL's own work happens in its backend, which the
client's CPU time does not see.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._databases import DEFAULT_POSTGRES_URL, cache_url
from bench.corpus import Corpus, build_corpus
from bench.rebuild import floor_rows
from statehub.cache.schema import metadata
from statehub.hub import Hub
from statehub.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Callable

REBUILD_TARGET = 1.5
COLUMNS = {
    "source_file": "repo, path, kind, sha, mtime_ns, size, ctime_ns, inode",
    "workplan": "repo, path, id, title, status, owner, related, body, extra, task_count, conflicted",
    "task": "repo, path, task_id, ref, workplan_id, position, title, status, owner, depends_on, extra, "
    "ready, conflicted, cyclic",
    "task_dependency": "repo, path, task_id, depends_on",
    "canon": "repo, path, id, title, kind, status, date, supersedes, body, extra, conflicted",
}


def _ddl() -> tuple[list[str], list[str]]:
    """The hub's tables and, apart, its indexes, as PostgreSQL DDL."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    tables = [str(CreateTable(metadata.tables[name]).compile(dialect=dialect)) for name in COLUMNS]
    indexes = [
        str(CreateIndex(index).compile(dialect=dialect))
        for name in COLUMNS
        for index in metadata.tables[name].indexes
    ]
    return tables, indexes


def floor(corpus: Corpus, url: str, tables: list[str], indexes: list[str]) -> int:
    """Read, parse, COPY every row, build the indexes; the rows loaded."""
    rows = floor_rows(corpus)
    with psycopg.connect(url) as conn:
        for name in reversed(COLUMNS):
            conn.execute(f'DROP TABLE IF EXISTS "{name}"')
        for statement in tables:
            conn.execute(statement)
        with conn.cursor() as cursor:
            for name, columns in COLUMNS.items():
                with cursor.copy(f'COPY "{name}" ({columns}) FROM STDIN') as copy:
                    for row in rows[name]:
                        copy.write_row(row)
        for statement in indexes:
            conn.execute(statement)
    return sum(len(r) for r in rows.values())


def _beside_a_thread(func: Callable[[], object]) -> None:
    """Run ``func`` while another thread runs, as in a server (the rebuild then spawns its worker)."""
    done = threading.Event()
    other = threading.Thread(target=done.wait)
    other.start()
    try:
        func()
    finally:
        done.set()
        other.join()


def interleaved(rounds: int, *funcs: Callable[[], object]) -> list[list[float]]:
    times: list[list[float]] = [[] for _ in funcs]
    for _ in range(rounds):
        for index, func in enumerate(funcs):
            start = time.perf_counter()
            func()
            times[index].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=74)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=DEFAULT_POSTGRES_URL)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="statehub-bench-") as tmp, ExitStack() as databases:
        base = Path(tmp)
        corpus = build_corpus(base / "corpus", repos=args.repos)
        hub_url = databases.enter_context(cache_url(args.database_url, base))
        floor_url = databases.enter_context(cache_url(args.database_url, base)).replace("+psycopg", "", 1)
        settings = Settings.from_env({"STATEHUB_HOME": str(base / "home")}).with_overrides(
            watch=False, database_url=hub_url
        )
        hub = Hub(settings)
        try:
            for repo in corpus.repos:
                hub.register(repo)
            tables, indexes = _ddl()
            loaded = floor(corpus, floor_url, tables, indexes)
            floor_times, rebuild_times, worker_times = interleaved(
                args.rounds,
                lambda: floor(corpus, floor_url, tables, indexes),
                lambda: _beside_a_thread(hub.rebuild),
                hub.rebuild,
            )
            with psycopg.connect(hub_url.replace("+psycopg", "", 1)) as conn:
                counts = {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone() for n in COLUMNS}  # noqa: S608 - our table names
        finally:
            hub.close()
    print(
        f"corpus: {len(corpus.repos)} repos, {corpus.workplans} workplans, {corpus.tasks} tasks, "
        f"{corpus.canon} canon; floor rows {loaded}; hub rows {sum(c[0] for c in counts.values() if c)}"
    )
    met = True
    print(
        f"floor (tomllib + psycopg COPY):   median {statistics.median(floor_times):.3f} s  "
        f"(rounds {_list(floor_times)})"
    )
    for name, times in (
        ("Hub.rebuild() (server, spawned)", rebuild_times),
        ("statehub rebuild (forked worker)", worker_times),
    ):
        ratios = [t / f for f, t in zip(floor_times, times, strict=True)]
        ratio = statistics.median(ratios)
        print(f"{name + ':':<33} median {statistics.median(times):.3f} s  (rounds {_list(times)})")
        print(
            f"  / floor: median {ratio:.2f}x of the rounds' ratios ({_list(ratios)}; "
            f"spread {min(ratios):.2f}-{max(ratios):.2f}); target <= {REBUILD_TARGET}"
        )
        met = met and ratio <= REBUILD_TARGET
    print("targets met" if met else "TARGETS MISSED")


def _list(times: list[float]) -> str:
    return " ".join(f"{t:.2f}" for t in times)


if __name__ == "__main__":
    main()
