"""Registration, refresh and rebuild through the Hub: the files are the truth, the cache follows."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine, func, select, text

from statehub.cache import queries
from statehub.cache.answers import RepoCounts
from statehub.cache.schema import META, TASKS
from statehub.errors import Conflict, NotAGitRepo, NotFound
from statehub.hub import Hub
from tests.gitfixtures import GitRepo, lose_cache, workplan_text

if TYPE_CHECKING:
    from pathlib import Path

    from statehub.settings import Settings

MakeRepo = Callable[[str], GitRepo]


def _plan_repo(make_repo: MakeRepo, name: str = "alpha", plans: int = 3) -> GitRepo:
    repo = make_repo(name)
    for n in range(1, plans + 1):
        repo.write(
            f"workplans/A-WP-{n:04d}.md",
            workplan_text(f"A-WP-{n:04d}", [{"id": "T01", "title": "one", "status": "todo"}]),
        )
    repo.write("canon/ADR-001.md", _canon("ADR-001"))
    repo.commit()
    return repo


def _canon(doc_id: str) -> str:
    return f'+++\nid = "{doc_id}"\ntitle = "A decision"\nkind = "adr"\nstatus = "accepted"\n+++\nBody.\n'


def _counts(hub: Hub, slug: str) -> RepoCounts:
    with hub.engine.connect() as conn:
        return queries.get_repo(conn, slug).counts


def test_register_indexes_workplans_tasks_and_canon(hub: Hub, make_repo: MakeRepo) -> None:
    repo = _plan_repo(make_repo)
    report = hub.register(repo.root)
    assert (report.repo, report.files, report.parsed, report.errors) == ("alpha", 4, 4, [])
    assert _counts(hub, "alpha") == RepoCounts(workplans=3, tasks=3, canon=1)
    assert [r.slug for r in hub.repos()] == ["alpha"]


def test_register_from_a_subdirectory_registers_the_work_tree(hub: Hub, make_repo: MakeRepo) -> None:
    repo = _plan_repo(make_repo)
    assert hub.register(repo.root / "workplans").repo == "alpha"
    assert hub.repos()[0].path == repo.root.resolve()


def test_registering_again_is_idempotent(hub: Hub, make_repo: MakeRepo) -> None:
    repo = _plan_repo(make_repo)
    hub.register(repo.root)
    again = hub.register(repo.root)
    assert again.parsed == 0
    assert len(hub.repos()) == 1
    assert _counts(hub, "alpha") == RepoCounts(workplans=3, tasks=3, canon=1)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: p, "does not exist"),
        (lambda p: (p.mkdir(), p)[1], "is not inside a git work tree"),
        (lambda p: (p.write_text("x"), p)[1], "is not a directory"),
        (
            lambda p: (subprocess.run(["git", "init", "-q", "--bare", str(p)], check=True), p)[1],
            "is a bare git repository",
        ),
    ],
    ids=["missing", "not-git", "file", "bare"],
)
def test_registering_something_that_is_not_a_work_tree_says_why(
    hub: Hub, tmp_path: Path, setup: Callable[[Path], Path], message: str
) -> None:
    target = setup(tmp_path / "thing")
    with pytest.raises(NotAGitRepo, match=message):
        hub.register(target)
    assert hub.repos() == []


def test_a_slug_taken_by_another_path_is_a_conflict(hub: Hub, make_repo: MakeRepo) -> None:
    first, second = make_repo("one"), make_repo("two")
    for repo in (first, second):
        repo.write("statehub.toml", '[repo]\nslug = "same"\n')
        repo.commit()
    hub.register(first.root)
    with pytest.raises(Conflict, match="slug 'same' is already registered"):
        hub.register(second.root)


def test_refresh_reparses_only_changed_files(hub: Hub, make_repo: MakeRepo) -> None:
    repo = _plan_repo(make_repo)
    hub.register(repo.root)
    assert hub.refresh("alpha")[0].parsed == 0
    repo.write(
        "workplans/A-WP-0002.md", workplan_text("A-WP-0002", [{"id": "T01", "title": "x"}], status="done")
    )
    (repo.root / "workplans" / "A-WP-0003.md").unlink()
    report = hub.refresh("alpha")[0]
    assert (report.parsed, report.removed) == (1, 1)
    with hub.engine.connect() as conn:
        assert queries.get_workplan(conn, "A-WP-0002").status == "done"
        with pytest.raises(NotFound):
            queries.get_workplan(conn, "A-WP-0003")


def test_touching_a_file_without_changing_it_does_not_reparse(hub: Hub, make_repo: MakeRepo) -> None:
    repo = _plan_repo(make_repo)
    hub.register(repo.root)
    path = repo.root / "workplans" / "A-WP-0001.md"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert hub.refresh("alpha")[0].parsed == 0


def test_untracked_files_are_indexed_and_refreshed(hub: Hub, make_repo: MakeRepo) -> None:
    repo = _plan_repo(make_repo)
    hub.register(repo.root)
    repo.write("workplans/sub/A-WP-0009.md", workplan_text("A-WP-0009", [{"id": "T01", "title": "new"}]))
    assert hub.refresh("alpha")[0].parsed == 1
    repo.write("workplans/sub/A-WP-0009.md", workplan_text("A-WP-0009", [{"id": "T01", "title": "renamed"}]))
    assert hub.refresh("alpha")[0].parsed == 1
    with hub.engine.connect() as conn:
        assert queries.get_task(conn, "A-WP-0009-T01").title == "renamed"


def test_a_broken_file_is_reported_and_the_rest_indexed(hub: Hub, make_repo: MakeRepo) -> None:
    repo = _plan_repo(make_repo)
    repo.write("workplans/broken.md", '+++\nid = "A-WP-0100"\ntitle = \n+++\n')
    repo.write("workplans/bin.md", "")
    (repo.root / "workplans" / "bin.md").write_bytes(b"+++\n\xff\xfe\n+++\n")
    repo.commit()
    report = hub.register(repo.root)
    assert sorted(str(p) for p in report.errors) == [
        "workplans/bin.md: file is not valid UTF-8 (byte 4)",
        "workplans/broken.md:3: invalid TOML: a value is missing or not valid here: "
        'text needs quotes ("main") (column 9)',
    ]
    assert _counts(hub, "alpha").workplans == 3
    repo.write("workplans/broken.md", workplan_text("A-WP-0100", []))
    assert hub.refresh("alpha")[0].errors == []
    with hub.engine.connect() as conn:
        errors = queries.get_repo(conn, "alpha").errors
    assert [e.path for e in errors] == ["workplans/bin.md"]


def test_a_workplan_id_in_two_repos_is_an_error_on_both_and_neither_is_served(
    hub: Hub, make_repo: MakeRepo
) -> None:
    a, b = make_repo("a"), make_repo("b")
    a.write("workplans/X.md", workplan_text("X-WP-0001", [{"id": "T01", "title": "a"}]))
    b.write("workplans/Y.md", workplan_text("X-WP-0001", [{"id": "T01", "title": "b"}]))
    a.commit()
    b.commit()
    hub.register(a.root)
    hub.register(b.root)
    with hub.engine.connect() as conn:
        assert queries.list_workplans(conn).total == 0
        assert queries.list_tasks(conn).total == 0
        with pytest.raises(Conflict):
            queries.get_workplan(conn, "X-WP-0001")
        with pytest.raises(Conflict):
            queries.get_task(conn, "X-WP-0001-T01")
        errors = {s: queries.get_repo(conn, s).errors for s in ("a", "b")}
    assert errors["a"][0].message.startswith("workplan id X-WP-0001 is also claimed by b/workplans/Y.md")
    assert errors["b"][0].message.startswith("workplan id X-WP-0001 is also claimed by a/workplans/X.md")
    # renaming one resolves both
    b.write("workplans/Y.md", workplan_text("X-WP-0002", [{"id": "T01", "title": "b"}]))
    hub.refresh("b")
    with hub.engine.connect() as conn:
        assert queries.list_workplans(conn).total == 2
        assert queries.get_repo(conn, "a").errors == []
        assert queries.get_task(conn, "X-WP-0001-T01").title == "a"


def test_a_workplan_id_twice_in_one_repo_is_an_error_on_both(hub: Hub, make_repo: MakeRepo) -> None:
    repo = make_repo("a")
    repo.write("workplans/one.md", workplan_text("X-WP-0001", []))
    repo.write("workplans/two.md", workplan_text("X-WP-0001", []))
    repo.commit()
    hub.register(repo.root)
    with hub.engine.connect() as conn:
        errors = queries.get_repo(conn, "a").errors
        assert queries.list_workplans(conn).total == 0
    assert [e.path for e in errors] == ["workplans/one.md", "workplans/two.md"]
    (repo.root / "workplans" / "two.md").unlink()
    hub.refresh("a")
    with hub.engine.connect() as conn:
        assert queries.get_repo(conn, "a").errors == []
        assert queries.list_workplans(conn).total == 1


def test_a_canon_id_twice_in_one_repo_is_an_error_but_two_repos_may_each_have_one(
    hub: Hub, make_repo: MakeRepo
) -> None:
    a, b = make_repo("a"), make_repo("b")
    a.write("canon/one.md", _canon("ADR-001"))
    a.write("canon/two.md", _canon("ADR-001"))
    b.write("canon/one.md", _canon("ADR-001"))
    a.commit()
    b.commit()
    hub.register(a.root)
    hub.register(b.root)
    with hub.engine.connect() as conn:
        assert [d.repo for d in queries.list_canon(conn).items] == ["b"]
        assert len(queries.get_repo(conn, "a").errors) == 2
        assert queries.get_canon(conn, "ADR-001", "b").repo == "b"


def test_removing_a_repo_removes_its_rows_and_leaves_its_files(hub: Hub, make_repo: MakeRepo) -> None:
    repo = _plan_repo(make_repo)
    other = _plan_repo(make_repo, "beta", plans=0)
    hub.register(repo.root)
    hub.register(other.root)
    hub.remove("alpha")
    assert [r.slug for r in hub.repos()] == ["beta"]
    with hub.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(TASKS)).scalar_one() == 0
        with pytest.raises(NotFound):
            queries.get_repo(conn, "alpha")
    assert (repo.root / "workplans" / "A-WP-0001.md").exists()
    with pytest.raises(NotFound, match="no repo registered as 'alpha'"):
        hub.remove("alpha")


def test_hub_toml_survives_deleting_the_cache(settings: Settings, make_repo: MakeRepo) -> None:
    repo = _plan_repo(make_repo)
    with Hub(settings) as first:
        first.register(repo.root)
        with first.engine.connect() as conn:
            before = queries.list_tasks(conn).items, queries.list_canon(conn).items
    lose_cache(settings.database_url, settings.default_cache_file)
    with Hub(settings) as second, second.engine.connect() as conn:
        assert (queries.list_tasks(conn).items, queries.list_canon(conn).items) == before
    assert "alpha" in settings.hub_file.read_text(encoding="utf-8")


def test_a_cache_of_another_schema_version_is_dropped_and_rebuilt(
    settings: Settings, make_repo: MakeRepo
) -> None:
    repo = _plan_repo(make_repo)
    with Hub(settings) as first:
        first.register(repo.root)
    engine = create_engine(settings.database_url)
    with engine.begin() as db:
        db.execute(text("UPDATE cache_meta SET value = '0' WHERE key = 'schema_version'"))
        db.execute(text("DELETE FROM task"))
        db.execute(text("CREATE TABLE leftover_from_old_schema (x integer)"))
    engine.dispose()
    with Hub(settings) as second, second.engine.connect() as conn:
        assert queries.list_tasks(conn).total == 3
        version = conn.execute(select(META.c.value).where(META.c.key == "schema_version")).scalar_one()
    assert version != "0"


def test_a_hub_opened_to_rebuild_leaves_a_lost_cache_to_its_rebuild(
    settings: Settings, make_repo: MakeRepo
) -> None:
    """``statehub rebuild`` on a missing cache rebuilt it twice: once as the hub opened, once as
    asked. Opened ``rebuilding``, the hub leaves the new cache empty for the rebuild to fill."""
    repo = _plan_repo(make_repo)
    with Hub(settings) as first:
        first.register(repo.root)
    lose_cache(settings.database_url, settings.default_cache_file)
    with Hub(settings, reconcile=False, rebuilding=True) as hub:
        with hub.engine.connect() as conn:
            assert queries.list_tasks(conn).total == 0
        hub.rebuild()
        with hub.engine.connect() as conn:
            assert queries.list_tasks(conn).total == 3


def test_restart_picks_up_file_changes_made_while_the_hub_was_down(
    settings: Settings, make_repo: MakeRepo
) -> None:
    repo = _plan_repo(make_repo)
    with Hub(settings) as first:
        first.register(repo.root)
    repo.write(
        "workplans/A-WP-0001.md",
        workplan_text("A-WP-0001", [{"id": "T01", "title": "one", "status": "done"}]),
    )
    with Hub(settings) as second, second.engine.connect() as conn:
        assert queries.get_task(conn, "A-WP-0001-T01").status == "done"


def test_rebuild_gives_the_same_answers(hub: Hub, make_repo: MakeRepo) -> None:
    hub.register(_plan_repo(make_repo).root)
    with hub.engine.connect() as conn:
        before = queries.list_tasks(conn).items
    reports = hub.rebuild()
    assert [(r.repo, r.parsed) for r in reports] == [("alpha", 4)]
    with hub.engine.connect() as conn:
        assert queries.list_tasks(conn).items == before


@pytest.mark.parametrize("breakage", ["garbage", "directory", "fifo", "latin-1"])
def test_an_unreadable_hub_toml_keeps_the_list_last_read(
    hub: Hub, make_repo: MakeRepo, tmp_path: Path, breakage: str
) -> None:
    """Review finding: a hub.toml made unreadable while a hub runs (a half-saved edit, a
    directory, a FIFO whose read would block, text that is not UTF-8) raised out of every
    Hub.repos() call (500s); now the last list is kept and the cause said."""
    from statehub.hubfile import HubFile, HubFileBroken

    hub.register(make_repo("kept").root)
    path = hub.settings.hub_file
    good = path.read_text(encoding="utf-8")
    path.unlink()
    if breakage == "garbage":
        path.write_text("[[repos]\n", encoding="utf-8")
    elif breakage == "directory":
        path.mkdir()
    elif breakage == "fifo":
        os.mkfifo(path)
    else:
        path.write_bytes(good.encode("utf-8") + b"# caf\xe9\n")
    assert [r.slug for r in hub.repos()] == ["kept"]
    assert "cannot read the list of registered repos" in (hub.hub_file.broken or "")
    with pytest.raises(HubFileBroken) as refused:
        hub.register(make_repo("new").root)
    assert refused.value.status_code == 409
    with pytest.raises(HubFileBroken, match="cannot read the list of registered repos") as unstarted:
        HubFile(path).repos()  # nothing read before: a hub does not start on it
    assert unstarted.value.exit_code == 3
    if path.is_dir():
        path.rmdir()
    else:
        path.unlink()
    path.write_text(good, encoding="utf-8")
    assert [r.slug for r in hub.repos()] == ["kept"] and hub.hub_file.broken is None


def test_a_read_during_a_postgresql_rebuild_never_sees_an_empty_cache(hub: Hub, make_repo: MakeRepo) -> None:
    """ADR-047: on PostgreSQL a rebuild drops, loads and indexes in one transaction; a read meanwhile
    waits for the new rows. (Its drop and create used to commit first: a read could find no task.)"""
    if hub.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's rebuild is unchanged: its drop commits before the load")
    import threading

    hub.register(_plan_repo(make_repo).root)
    with hub.reads.connect() as conn:
        tasks = conn.exec_driver_sql("SELECT count(*) FROM task").scalar_one()
    seen: list[int] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            with hub.reads.connect() as conn:
                seen.append(conn.exec_driver_sql("SELECT count(*) FROM task").scalar_one())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(5):
            hub.rebuild()
    finally:
        done.set()
        reader.join()
    assert tasks > 0 and seen and set(seen) == {tasks}
