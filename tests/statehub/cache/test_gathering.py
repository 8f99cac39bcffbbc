"""A rebuild gathers every repo once against all declared prefixes, partly in a forked worker, and
ends with the cache that indexing the repos one by one (with ``recheck_claims``) ends with."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import event, select

from statehub.cache.fleet_rows import FLEET_FILE
from statehub.cache.gathering import MIN_REPOS_FOR_WORKER, gathered
from statehub.cache.schema import FILE_ERRORS, META, TASKS, metadata
from statehub.errors import SetupError
from statehub.hub import Hub
from tests.gitfixtures import GitRepo, workplan_text

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from statehub.cache.reading import Gathered

CANON = '+++\nid = "{id}"\ntitle = "Doc"\nkind = "adr"\nstatus = "accepted"\n+++\nBody.\n'


def _repos(make_repo: Callable[[str], GitRepo]) -> list[GitRepo]:
    """Ten repos whose claims only all their prefixes together settle: ``r1`` holds an id that
    ``r5`` (indexed later) declares a more specific prefix for, ``r3`` declares none and uses an id
    ``r0`` declares; ``r7`` has a broken file; ``r9``'s work tree goes missing."""
    repos = []
    for n in range(MIN_REPOS_FOR_WORKER + 2):
        repo = make_repo(f"r{n}")
        prefixes = {0: '["AA"]', 5: '["AA-X"]', 3: None}.get(n, f'["R{n}"]')
        manifest = f'[repo]\nslug = "r{n}"\n' + (f"prefixes = {prefixes}\n" if prefixes else "")
        repo.write("statehub.toml", manifest)
        own = {0: "AA", 5: "AA-X", 3: "FREE"}.get(n, f"R{n}")
        repo.write(
            f"workplans/{own}-WP-0001.md",
            workplan_text(
                f"{own}-WP-0001",
                [{"id": "T01", "title": "One"}, {"id": "T02", "title": "Two", "depends_on": ["T01"]}],
            ),
        )
        repo.write(f"canon/ADR-{n:03}.md", CANON.format(id=f"ADR-{n:03}"))
        if n == 1:
            repo.write(
                "workplans/AA-X-WP-0009.md", workplan_text("AA-X-WP-0009", [{"id": "T01", "title": "X"}])
            )
        if n == 3:
            repo.write("workplans/AA-WP-0002.md", workplan_text("AA-WP-0002", [{"id": "T01", "title": "A"}]))
        if n == 7:
            repo.write("workplans/broken.md", "no front matter\n")
        repo.commit()
        repos.append(repo)
    return repos


def _contents(hub: Hub) -> dict[str, list[Any]]:
    """Every cache table's rows, sorted; file errors without their row id, and no index notes
    (they hold the time) or generation."""
    found: dict[str, list[Any]] = {}
    with hub.engine.connect() as conn:
        for table in metadata.sorted_tables:
            if table is META:
                continue
            columns = [c for c in table.columns if not (table is FILE_ERRORS and c.name == "id")]
            found[table.name] = sorted(
                (tuple(repr(v) for v in row) for row in conn.execute(select(*columns))), key=repr
            )
    return found


def test_a_rebuild_with_its_worker_ends_where_indexing_repo_by_repo_ends(
    hub: Hub, make_repo: Callable[[str], GitRepo]
) -> None:
    repos = _repos(make_repo)
    for repo in repos:
        hub.register(repo.root)  # each indexed in turn, earlier repos' claims judged again
    shutil.rmtree(repos[-1].root)
    hub.refresh()
    one_by_one = _contents(hub)
    refused = {(row[0], row[1]) for row in one_by_one["file_error"]}
    assert {("'r1'", "'workplans/AA-X-WP-0009.md'"), ("'r3'", "'workplans/AA-WP-0002.md'")} <= refused
    assert ("'r9'", "'.'") in refused and ("'r7'", "'workplans/broken.md'") in refused

    reports = hub.rebuild(worker=True)
    assert [r.repo for r in reports] == [f"r{n}" for n in range(len(repos))]
    assert _contents(hub) == one_by_one
    hub.rebuild(worker=False)  # and without the worker
    assert _contents(hub) == one_by_one
    with _another_thread():  # as a server rebuilds: the worker is spawned, not forked
        reports = hub.rebuild()
    assert [r.repo for r in reports] == [f"r{n}" for n in range(len(repos))]
    assert _contents(hub) == one_by_one
    # as ``statehub rebuild`` runs it: gathering (and the worker) started before the hub rebuilds;
    # here the worker hands its repos over as dicts (``hub.rebuild(worker=True)`` above had them
    # encoded for the driver on SQLite, Gathered.encoded)
    with gathered([(r.slug, r.path) for r in hub.repos()], hub.settings.file_limits, worker=True) as found:
        reports = hub.rebuild(found=found)
    assert [r.repo for r in reports] == [f"r{n}" for n in range(len(repos))]
    assert _contents(hub) == one_by_one


@contextmanager
def _another_thread() -> Iterator[None]:
    """Another thread runs meanwhile, as in a server: a rebuild must not fork then."""
    done = threading.Event()
    other = threading.Thread(target=done.wait)
    other.start()
    try:
        yield
    finally:
        done.set()
        other.join()


def test_a_spawned_worker_gathers_where_threads_run_and_one_that_dies_is_made_up_for(
    hub: Hub, make_repo: Callable[[str], GitRepo], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With another thread running the worker is a fresh process (no fork); whether it gathers
    or exits at once without a word (here its interpreter is ``false``), the repos come back
    whole and in order, as gathering them all here gives them."""
    repos = _repos(make_repo)
    for repo in repos:
        hub.register(repo.root)
    jobs = [(r.slug, r.path) for r in hub.repos()]
    with gathered(jobs, hub.settings.file_limits, worker=False) as found:
        alone = list(found)
    forks = []
    with _another_thread():
        real_fork = os.fork

        def counted() -> int:
            forks.append(1)
            return real_fork()

        monkeypatch.setattr(os, "fork", counted)
        with gathered(jobs, hub.settings.file_limits, worker=True) as found:
            spawned = list(found)
        monkeypatch.setattr(sys, "executable", shutil.which("false"))
        with gathered(jobs, hub.settings.file_limits, worker=True) as found:
            dead = list(found)
    assert len(alone) == len(repos)
    assert spawned == alone
    assert dead == alone
    assert forks == []


def test_gathering_loads_no_sqlalchemy() -> None:
    """``statehub rebuild`` forks its worker before it imports SQLAlchemy, so reading, parsing and
    judging files (and the command's module) must not load it (canon/ADR-043)."""
    code = (
        "import sys\n"
        "import statehub.cache.gathering, statehub.cli.repos, statehub.hubfile\n"
        "print(sorted(m for m in sys.modules if m.partition('.')[0] in ('sqlalchemy', 'git')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_sqlite_rows_names_the_schemas_json_columns() -> None:
    """``statehub.cache.sqlite_rows`` encodes the JSON columns it names without SQLAlchemy: they
    are exactly the schema's."""
    from sqlalchemy import JSON

    from statehub.cache.sqlite_rows import JSON_COLUMNS

    in_schema = {
        table.name: frozenset(c.name for c in table.columns if isinstance(c.type, JSON))
        for table in metadata.sorted_tables
    }
    assert {name: columns for name, columns in in_schema.items() if columns} == JSON_COLUMNS


def test_source_kinds_name_the_schemas_tables() -> None:
    """The table names rows are gathered under (``statehub.cache.sources``, SQLAlchemy-free) are
    the schema's tables."""
    from statehub.cache.sources import SOURCE_KINDS

    assert FLEET_FILE.name in SOURCE_KINDS
    for kind in SOURCE_KINDS.values():
        for name in kind.tables:
            assert name in metadata.tables, (kind.name, name)


def test_readers_see_the_old_cache_until_a_rebuild_commits_and_an_interrupted_one_keeps_it(
    hub: Hub, make_repo: Callable[[str], GitRepo]
) -> None:
    """A rebuild replaces the cache in one transaction: a reader elsewhere (a running server)
    keeps the old cache, never no tables or none of the rows, until it commits (on PostgreSQL it
    waits for the commit; here it reads before the drop and after the rollback); a rebuild that
    stops half-way (Ctrl-C, a full disk) leaves the old cache as it was."""
    if hub.engine.dialect.name != "sqlite":
        pytest.skip("a reader on PostgreSQL waits for the rebuild's table locks: test_hub's reader test")
    for repo in _repos(make_repo):
        hub.register(repo.root)
    before = _contents(hub)
    seen = []

    def interrupted(found: Iterator[Gathered]) -> Iterator[Gathered]:
        for n, repo in enumerate(found):
            if n == 3:
                with Hub(hub.settings, reconcile=False) as reader:  # another connection, as a server's
                    seen.append(_contents(reader))
                raise KeyboardInterrupt
            yield repo

    with (
        pytest.raises(KeyboardInterrupt),
        gathered([(r.slug, r.path) for r in hub.repos()], hub.settings.file_limits, worker=True) as found,
    ):
        hub.rebuild(found=interrupted(found))
    assert seen == [before]
    assert _contents(hub) == before


def test_a_rebuild_that_cannot_write_says_so_in_one_line_and_keeps_the_old_cache(
    hub: Hub, make_repo: Callable[[str], GitRepo]
) -> None:
    """A full disk (here SQLite's own: the database at its ``max_page_count``) stops a rebuild with
    a SetupError naming the database's reason, not a driver traceback, and the cache as it was."""
    if hub.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's max_page_count makes the full disk here")
    repos = _repos(make_repo)
    for repo in repos:
        hub.register(repo.root)
    before = _contents(hub)
    body = "".join(f"Note {n}: word{n} and more words.\n" for n in range(20_000))  # ~0.6 MB to write
    plan = workplan_text("AA-WP-0002", [{"id": "T01", "title": "B"}])
    repos[0].write("workplans/AA-WP-0002.md", plan + body)
    with hub.engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
    hub.engine.dispose()

    @event.listens_for(hub.engine, "connect")
    def _full(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages + 2}")

    with pytest.raises(SetupError, match="database or disk is full"):
        hub.rebuild()
    event.remove(hub.engine, "connect", _full)
    hub.engine.dispose()
    assert _contents(hub) == before


def test_a_spawned_worker_never_imports_a_statehub_package_in_the_working_directory(
    hub: Hub, make_repo: Callable[[str], GitRepo], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The server may be started inside a repo (untrusted: never run its code): a ``statehub/``
    package there is not what the spawned worker runs (``python -m`` puts the working directory
    first on ``sys.path`` unless told not to)."""
    repos = _repos(make_repo)
    for repo in repos:
        hub.register(repo.root)
    jobs = [(r.slug, r.path) for r in hub.repos()]
    with gathered(jobs, hub.settings.file_limits, worker=False) as found:
        alone = list(found)
    marker = tmp_path / "ran"
    planted = tmp_path / "planted"
    (planted / "statehub" / "cache").mkdir(parents=True)
    (planted / "statehub" / "__init__.py").write_text("")
    (planted / "statehub" / "cache" / "__init__.py").write_text("")
    (planted / "statehub" / "cache" / "gathering.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
    )
    monkeypatch.chdir(planted)
    with _another_thread(), gathered(jobs, hub.settings.file_limits, worker=True) as found:
        spawned = list(found)
    assert not marker.exists()
    assert spawned == alone


def test_a_spawned_worker_whose_output_is_not_its_results_is_made_up_for(
    hub: Hub, make_repo: Callable[[str], GitRepo], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that exits 0 having written something other than its pickled results (here its
    interpreter is ``echo``) is a failed worker: its repos are gathered here, not an error."""
    repos = _repos(make_repo)
    for repo in repos:
        hub.register(repo.root)
    jobs = [(r.slug, r.path) for r in hub.repos()]
    with gathered(jobs, hub.settings.file_limits, worker=False) as found:
        alone = list(found)
    monkeypatch.setattr(sys, "executable", shutil.which("echo"))
    with _another_thread(), gathered(jobs, hub.settings.file_limits, worker=True) as found:
        polluted = list(found)
    assert polluted == alone


def test_a_rebuild_flags_ready_where_a_duplicate_or_a_cycle_overrules_the_guess(
    hub: Hub, make_repo: Callable[[str], GitRepo]
) -> None:
    """A PostgreSQL rebuild writes each task's ``ready`` from its status and its dependencies'
    (``indexer._guess_ready``); a duplicated workplan id and a cycle make tasks that guess calls
    ready not ready, and the full recompute must say so, on every way a rebuild runs."""
    repos = []
    for n in range(MIN_REPOS_FOR_WORKER):
        repo = make_repo(f"g{n}")
        repo.write("statehub.toml", f'[repo]\nslug = "g{n}"\nprefixes = ["G{n}"]\n')
        repo.write(
            f"workplans/G{n}-WP-0001.md",
            workplan_text(
                f"G{n}-WP-0001",
                [
                    {"id": "T01", "title": "Done", "status": "done"},
                    {"id": "T02", "title": "Open", "depends_on": ["T01"]},
                ],
            ),
        )
        repos.append(repo)
    # g0: a workplan id claimed twice (both files refused as duplicates: their tasks conflicted), and
    # a task elsewhere depending on a done task of it
    twice = [{"id": "T01", "title": "Done", "status": "done"}, {"id": "T02", "title": "Open"}]
    repos[0].write("workplans/G0-WP-0002.md", workplan_text("G0-WP-0002", twice))
    repos[0].write("workplans/copy-of-G0-WP-0002.md", workplan_text("G0-WP-0002", twice))
    repos[1].write(
        "workplans/G1-WP-0002.md",
        workplan_text("G1-WP-0002", [{"id": "T01", "title": "After", "depends_on": ["G0-WP-0002-T01"]}]),
    )
    # g2: an open task and a done one depending on each other (a cycle, every dependency of the
    # open one done)
    repos[2].write(
        "workplans/G2-WP-0002.md",
        workplan_text(
            "G2-WP-0002",
            [
                {"id": "T01", "title": "Open", "depends_on": ["T02"]},
                {"id": "T02", "title": "Done", "status": "done", "depends_on": ["T01"]},
            ],
        ),
    )
    for repo in repos:
        repo.commit()
        hub.register(repo.root)
    wanted = {f"G{n}-WP-0001-T02": True for n in range(MIN_REPOS_FOR_WORKER)} | {
        "G0-WP-0002-T02": False,  # its workplan id is claimed twice
        "G1-WP-0002-T01": False,  # its dependency is a conflicted task
        "G2-WP-0002-T01": False,  # in a cycle
    }

    def ready() -> dict[str, bool]:
        with hub.engine.connect() as conn:
            rows = conn.execute(select(TASKS.c.ref, TASKS.c.ready).where(TASKS.c.ref.in_(wanted)))
            return {ref: bool(flag) for ref, flag in rows if ref in wanted}

    assert ready() == wanted  # indexed repo by repo
    hub.rebuild(worker=False)
    assert ready() == wanted
    hub.rebuild(worker=True)
    assert ready() == wanted
    with _another_thread():
        hub.rebuild()
    assert ready() == wanted
