"""Every way files move (issue 12, deliverable 4; ADR-030), on real repos.

Each member of the kind has its test: a file renamed within the repo, a
directory renamed with many files in it, a file and a directory moved out of the
repo, a directory moved in from outside, a directory deleted, a branch switch of
hundreds of files (a burst), a work tree removed or moved away and put back, an
editor's atomic-rename save with the same size and mtime, and a repo registered
or removed by the CLI (or by editing hub.toml) while a server runs on the same
hub home. Where the watcher is involved a real ``statehub serve`` process
watches (tests/hubserver.py) and the test polls its HTTP API until a deadline;
after each move the server's cache must equal a fresh rebuild of the same
hub.toml in a separate home (row for row, every table but the index times).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, create_engine, select

from statehub.cache import queries
from statehub.cache.indexer import MISSING_TREE
from statehub.cache.schema import FILE_ERRORS, metadata
from statehub.cli import main
from statehub.hub import Hub
from statehub.settings import Settings
from statehub.watcher import RepoWatcher
from tests.gitfixtures import GitRepo, workplan_text
from tests.hubserver import HubServer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

DEADLINE_S = 15.0
"""How long a poll waits for the server to show a move: far above the ~0.1 s it takes (bench/watch.py)."""


# helpers --------------------------------------------------------------------------------------


def _plan(plan_id: str, status: str = "todo") -> str:
    return workplan_text(plan_id, [{"id": "T01", "title": "one", "status": status}])


def _repo(make_repo: Callable[[str], GitRepo], name: str, plans: dict[str, str]) -> GitRepo:
    repo = make_repo(name)
    for rel, plan_id in plans.items():
        repo.write(rel, _plan(plan_id))
    repo.commit()
    return repo


def _cli(home: Path, *args: str) -> None:
    """``statehub ARGS`` on hub home ``home`` (its embedded SQLite cache), as another process would."""
    env: dict[str, str | None] = {"STATEHUB_HOME": str(home), "STATEHUB_DATABASE_URL": None}
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exit_code == 0, result.output


def _rows(engine: Engine) -> dict[str, list[str]]:
    """Every cache row but the index times (``cache_meta``) and row ids, in a comparable order."""
    found: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            if table.name == "cache_meta":
                continue
            columns = [c for c in table.columns if c.name != "id"]
            rows = conn.execute(select(*columns)).all()
            found[table.name] = sorted(json.dumps(list(row), sort_keys=True, default=str) for row in rows)
    return found


def _fresh_rows(served: Settings, tmp_path: Path) -> dict[str, list[str]]:
    """The rows a fresh rebuild of the same hub.toml gives, in a separate hub home."""
    home = tmp_path / f"fresh-{time.monotonic_ns()}"
    fresh = Settings.from_env({"STATEHUB_HOME": str(home)}).with_overrides(watch=False)
    fresh.ensure_dirs()
    shutil.copyfile(served.hub_file, fresh.hub_file)
    with Hub(fresh) as hub:  # a new cache: opening it rebuilds it from hub.toml and the files
        return _rows(hub.engine)


def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    assert check(), f"the server did not show {what} within {DEADLINE_S} s"


def _assert_equals_rebuild(served: Settings, tmp_path: Path) -> None:
    """Poll the server's cache until it equals a fresh rebuild (the files do not move meanwhile)."""
    expected = _fresh_rows(served, tmp_path)
    engine = create_engine(served.database_url)
    try:
        _until(lambda: _rows(engine) == expected, "a cache equal to a fresh rebuild")
    finally:
        engine.dispose()


class Served:
    """A watching server on its own hub home, and its API as the tests read it."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.settings = Settings.from_env({"STATEHUB_HOME": str(home)}).with_overrides(watch=False)
        self.server = HubServer(home, watch=True)

    def cli(self, *args: str) -> None:
        _cli(self.home, *args)

    def get(self, path: str, **params: Any) -> Any:
        answer = httpx.get(f"{self.server.url}{path}", params=params, timeout=10)
        return answer.json() if answer.status_code == 200 else None

    def plans(self, repo: str) -> dict[str, str]:
        """Workplan id -> repo-relative path of one repo, as the API lists them."""
        page = self.get("/workplans", repo=repo, limit=1000)
        return {} if page is None else {item["id"]: item["path"] for item in page["items"]}

    def total(self, repo: str) -> int:
        page = self.get("/workplans", repo=repo, limit=1)
        return -1 if page is None else int(page["total"])

    def task_status(self, ref: str) -> str | None:
        task = self.get(f"/tasks/{ref}")
        return None if task is None else str(task["status"])

    def errors(self, slug: str) -> list[dict[str, Any]]:
        repo = self.get(f"/repos/{slug}")
        return [] if repo is None else list(repo["errors"])

    def equals_rebuild(self, tmp_path: Path) -> None:
        _assert_equals_rebuild(self.settings, tmp_path)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One watching server for this module's tests; each test registers its own repos."""
    served = Served(tmp_path_factory.mktemp("moves") / "hub-home")
    served.server.start()
    yield served
    served.server.stop()


# moves within a repo --------------------------------------------------------------------------


def test_a_file_renamed_within_the_repo(
    api: Served, make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    repo = _repo(make_repo, "rn", {"workplans/a.md": "RN-WP-0001", "workplans/b.md": "RN-WP-0002"})
    api.cli("repos", "add", str(repo.root))
    _until(lambda: api.total("rn") == 2, "the registered repo")
    (repo.root / "workplans/a.md").rename(repo.root / "workplans/renamed.md")
    _until(lambda: api.plans("rn").get("RN-WP-0001") == "workplans/renamed.md", "the renamed path")
    (repo.root / "workplans/b.md").rename(repo.root / "notes.md")  # out of what is indexed
    _until(lambda: "RN-WP-0002" not in api.plans("rn"), "a workplan renamed out of workplans/ gone")
    api.equals_rebuild(tmp_path)


def test_a_directory_renamed_with_many_files(
    api: Served, make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    repo = _repo(make_repo, "dr", {f"workplans/team/p{i:02}.md": f"DR-WP-{i:04}" for i in range(40)})
    api.cli("repos", "add", str(repo.root))
    _until(lambda: api.total("dr") == 40, "the registered repo")
    (repo.root / "workplans/team").rename(repo.root / "workplans/archive")
    _until(
        lambda: set(api.plans("dr").values()) == {f"workplans/archive/p{i:02}.md" for i in range(40)},
        "every workplan at its renamed directory",
    )
    (repo.root / "workplans").rename(repo.root / "old-plans")  # the whole indexed directory
    _until(lambda: api.total("dr") == 0, "no workplan once workplans/ is renamed away")
    api.equals_rebuild(tmp_path)


def test_a_directory_deleted(api: Served, make_repo: Callable[[str], GitRepo], tmp_path: Path) -> None:
    plans = {f"workplans/sub/p{i:02}.md": f"DD-WP-{i:04}" for i in range(20)}
    repo = _repo(make_repo, "dd", {**plans, "workplans/keep.md": "DD-WP-0100"})
    api.cli("repos", "add", str(repo.root))
    _until(lambda: api.total("dd") == 21, "the registered repo")
    shutil.rmtree(repo.root / "workplans/sub")
    _until(lambda: api.plans("dd") == {"DD-WP-0100": "workplans/keep.md"}, "only the workplan left")
    api.equals_rebuild(tmp_path)


# moves across the repo's edge -----------------------------------------------------------------


def test_files_and_directories_moved_out_of_the_repo(
    api: Served, make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    plans = {f"workplans/sub/p{i:02}.md": f"MO-WP-{i:04}" for i in range(10)}
    repo = _repo(make_repo, "mo", {**plans, "workplans/one.md": "MO-WP-0100"})
    api.cli("repos", "add", str(repo.root))
    _until(lambda: api.total("mo") == 11, "the registered repo")
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo.root / "workplans/one.md").rename(outside / "one.md")
    _until(lambda: "MO-WP-0100" not in api.plans("mo"), "a file moved out gone")
    (repo.root / "workplans/sub").rename(outside / "sub")
    _until(lambda: api.total("mo") == 0, "a directory moved out gone")
    (outside / "sub/p00.md").write_text(_plan("MO-WP-0000", "done"))  # no longer the repo's business
    api.equals_rebuild(tmp_path)


def test_files_and_directories_moved_in_from_outside(
    api: Served, make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    repo = _repo(make_repo, "mi", {"workplans/one.md": "MI-WP-0100"})
    api.cli("repos", "add", str(repo.root))
    _until(lambda: api.total("mi") == 1, "the registered repo")
    outside = tmp_path / "outside"
    (outside / "batch").mkdir(parents=True)
    for i in range(10):
        (outside / "batch" / f"p{i:02}.md").write_text(_plan(f"MI-WP-{i:04}"))
    (outside / "single.md").write_text(_plan("MI-WP-0200"))
    (outside / "batch").rename(repo.root / "workplans/batch")
    _until(lambda: api.total("mi") == 11, "a directory moved in")
    (outside / "single.md").rename(repo.root / "single.md")  # not indexed there
    (repo.root / "single.md").rename(repo.root / "workplans/single.md")
    _until(lambda: api.plans("mi").get("MI-WP-0200") == "workplans/single.md", "a file moved in")
    api.equals_rebuild(tmp_path)


# bursts ---------------------------------------------------------------------------------------


def test_a_branch_switch_of_hundreds_of_files(
    api: Served, make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    repo = _repo(make_repo, "bs", {f"workplans/p{i:03}.md": f"BS-WP-{i:04}" for i in range(300)})
    repo.git("checkout", "-q", "-b", "other")
    for i in range(300):  # every file changes: a third go, the rest change, and a third bring a new one
        if i % 3 == 0:
            (repo.root / f"workplans/p{i:03}.md").unlink()
        else:
            repo.write(f"workplans/p{i:03}.md", _plan(f"BS-WP-{i:04}", "done"))
        if i % 3 == 1:
            repo.write(f"workplans/new/n{i:03}.md", _plan(f"BS-WP-{i + 1000:04}"))
    repo.git("mv", "workplans/p001.md", "workplans/moved-001.md")
    repo.git("mv", "workplans/p002.md", "not-indexed-002.md")
    repo.commit("the other branch")
    repo.git("checkout", "-q", "main")
    api.cli("repos", "add", str(repo.root))
    _until(lambda: api.total("bs") == 300, "the registered repo")
    repo.git("checkout", "-q", "other")
    _until(lambda: api.task_status("BS-WP-0299-T01") == "done", "the end of the switch")
    api.equals_rebuild(tmp_path)
    repo.git("checkout", "-q", "main")
    _until(lambda: api.task_status("BS-WP-0299-T01") == "todo", "the switch back")
    api.equals_rebuild(tmp_path)


# the work tree itself -------------------------------------------------------------------------


def test_a_work_tree_moved_away_and_back(
    api: Served, make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    repo = _repo(make_repo, "wa", {"workplans/a.md": "WA-WP-0001"})
    other = _repo(make_repo, "wa-stays", {"workplans/s.md": "WS-WP-0001"})
    api.cli("repos", "add", str(repo.root), str(other.root))
    _until(lambda: api.total("wa") == 1, "the registered repo")
    away = tmp_path / "away"
    repo.root.rename(away)
    _until(lambda: [e["path"] for e in api.errors("wa")] == ["."], "a note that the work tree is missing")
    assert "is missing" in api.errors("wa")[0]["message"]
    assert api.total("wa") == 0
    assert api.plans("wa-stays") == {"WS-WP-0001": "workplans/s.md"}  # the other repo is untouched
    (away / "workplans/a.md").write_text(_plan("WA-WP-0001", "done"))  # edits where it went are not ours
    api.equals_rebuild(tmp_path)
    away.rename(repo.root)  # put back, with the edit made while away
    _until(lambda: api.task_status("WA-WP-0001-T01") == "done", "the work tree back")
    assert api.errors("wa") == []
    (repo.root / "workplans/b.md").write_text(_plan("WA-WP-0002"))  # and watched again
    _until(lambda: "WA-WP-0002" in api.plans("wa"), "a file added after the work tree came back")
    api.equals_rebuild(tmp_path)


def test_a_work_tree_deleted_and_replaced(
    api: Served, make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    repo = _repo(make_repo, "wd", {"workplans/a.md": "WD-WP-0001"})
    api.cli("repos", "add", str(repo.root))
    _until(lambda: api.total("wd") == 1, "the registered repo")
    shutil.rmtree(repo.root)
    _until(lambda: [e["path"] for e in api.errors("wd")] == ["."], "a note that the work tree is missing")
    assert api.total("wd") == 0
    api.equals_rebuild(tmp_path)
    replaced = _repo(make_repo, "wd", {"workplans/z.md": "WD-WP-0009"})  # a new clone at the same path
    _until(lambda: api.plans("wd") == {"WD-WP-0009": "workplans/z.md"}, "the new work tree's workplans")
    replaced.write("workplans/y.md", _plan("WD-WP-0008"))  # the new directory is the one watched
    _until(lambda: "WD-WP-0008" in api.plans("wd"), "a file in the replacing work tree")
    api.equals_rebuild(tmp_path)


# editors --------------------------------------------------------------------------------------


def _atomic_save_same_stat(path: Path, text: str) -> None:
    """An editor's save: write a temp file, give it the old mtime (same size), rename it over."""
    before = path.stat()
    assert len(text.encode()) == before.st_size
    temp = path.with_name(f".{path.name}.swp")
    temp.write_text(text)
    os.utime(temp, ns=(before.st_atime_ns, before.st_mtime_ns))
    temp.replace(path)
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_an_atomic_rename_save_with_the_same_size_and_mtime(
    api: Served, make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    repo = _repo(make_repo, "as", {"workplans/a.md": "AS-WP-0001"})
    api.cli("repos", "add", str(repo.root))
    _until(lambda: api.total("as") == 1, "the registered repo")
    _atomic_save_same_stat(repo.root / "workplans/a.md", _plan("AS-WP-0001", "done"))  # todo -> done
    _until(lambda: api.task_status("AS-WP-0001-T01") == "done", "the atomically saved status")
    api.equals_rebuild(tmp_path)


def test_a_burst_of_saves_ends_with_the_last_one_shown(
    api: Served, make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    """Saves faster than the watcher's gap between one repo's refreshes (canon/ADR-039): in place,
    by atomic rename, a delete and a new file among them; what was saved last is what is served."""
    repo = _repo(make_repo, "bu", {"workplans/a.md": "BU-WP-0001", "workplans/b.md": "BU-WP-0002"})
    api.cli("repos", "add", str(repo.root))
    _until(lambda: api.total("bu") == 2, "the registered repo")
    path = repo.root / "workplans/a.md"
    statuses = ["done", "todo", "in-progress", "blocked"]
    for number in range(80):
        text = _plan("BU-WP-0001", statuses[number % len(statuses)])
        if number % 2:
            temp = path.with_name(".a.md.tmp")
            temp.write_text(text, encoding="utf-8")
            temp.replace(path)
        else:
            path.write_text(text, encoding="utf-8")
        if number == 40:
            (repo.root / "workplans/b.md").unlink()
            repo.write("workplans/c.md", _plan("BU-WP-0003"))
        time.sleep(0.003)
    assert statuses[79 % len(statuses)] == "blocked"
    _until(lambda: api.task_status("BU-WP-0001-T01") == "blocked", "the last status saved")
    _until(lambda: set(api.plans("bu")) == {"BU-WP-0001", "BU-WP-0003"}, "the delete and the new file")
    api.equals_rebuild(tmp_path)


def test_a_refresh_sees_an_atomic_rename_save_with_the_same_size_and_mtime(
    hub: Hub, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = _repo(make_repo, "mv", {"workplans/a.md": "MV-WP-0001"})
    hub.register(repo.root)
    _atomic_save_same_stat(repo.root / "workplans/a.md", _plan("MV-WP-0001", "done"))
    [report] = hub.refresh("mv")
    assert report.parsed == 1
    with hub.engine.connect() as conn:
        assert queries.get_task(conn, "MV-WP-0001-T01").status == "done"


def test_a_refresh_of_a_missing_work_tree_says_so_and_agrees_with_a_rebuild(
    hub: Hub, make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    repo = _repo(make_repo, "mv", {"workplans/a.md": "MV-WP-0001", "workplans/b.md": "MV-WP-0002"})
    hub.register(repo.root)
    away = tmp_path / "away"
    repo.root.rename(away)
    [report] = hub.refresh("mv")
    assert report.removed == 2
    assert [(e.path, e.message.split(";")[0]) for e in report.errors] == [
        (".", f"the work tree {repo.root} is missing (moved away or deleted)")
    ]
    refreshed = _rows(hub.engine)
    assert refreshed["workplan"] == [] and refreshed["source_file"] == []
    hub.refresh("mv")  # again: still one note, not two
    hub.reconcile()
    assert _rows(hub.engine) == refreshed
    with hub.engine.connect() as conn:
        origins = list(conn.execute(select(FILE_ERRORS.c.origin)).scalars())
    assert origins == [MISSING_TREE]
    hub.rebuild()
    assert _rows(hub.engine) == refreshed
    away.rename(repo.root)
    hub.refresh("mv")
    with hub.engine.connect() as conn:
        assert queries.get_repo(conn, "mv").errors == []
        assert queries.list_workplans(conn).total == 2


# the registry ---------------------------------------------------------------------------------


def test_a_repo_added_by_the_cli_to_a_hub_started_with_none_is_watched(
    make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    served = Served(tmp_path / "empty-hub")
    with served.server:  # no repo registered: the server watches hub.toml all the same
        repo = _repo(make_repo, "ca", {"workplans/a.md": "CA-WP-0001"})
        served.cli("repos", "add", str(repo.root))  # another process (here: this one), same hub home
        repo.write("workplans/a.md", _plan("CA-WP-0001", "done"))  # only a watcher shows this
        _until(lambda: served.task_status("CA-WP-0001-T01") == "done", "an edit in the CLI-registered repo")
        second = _repo(make_repo, "ca2", {"workplans/b.md": "CB-WP-0001"})
        served.cli("repos", "add", str(second.root))
        second.write("workplans/c.md", _plan("CB-WP-0002"))
        _until(lambda: "CB-WP-0002" in served.plans("ca2"), "a file added to a second CLI-registered repo")
        served.equals_rebuild(tmp_path)


def test_a_repo_removed_by_the_cli_or_from_hub_toml_is_dropped(
    api: Served, make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    gone = _repo(make_repo, "rm-cli", {"workplans/a.md": "RC-WP-0001"})
    edited = _repo(make_repo, "rm-edit", {"workplans/a.md": "RE-WP-0001"})
    kept = _repo(make_repo, "rm-kept", {"workplans/a.md": "RK-WP-0001"})
    api.cli("repos", "add", str(gone.root), str(edited.root), str(kept.root))
    _until(lambda: api.total("rm-edit") == 1, "the registered repos")
    api.cli("repos", "remove", "rm-cli")
    gone.write("workplans/b.md", _plan("RC-WP-0002"))  # no longer watched: nothing of it comes back
    text = api.settings.hub_file.read_text()  # a person removes a repo by editing hub.toml
    entry = f'[[repos]]\nslug = "rm-edit"\npath = "{edited.root}"\n'
    assert entry in text
    api.settings.hub_file.write_text(text.replace(entry, ""))
    _until(lambda: api.get("/repos/rm-edit") is None, "the repo removed from hub.toml dropped")
    assert api.get("/repos/rm-cli") is None
    assert api.get("/tasks/RE-WP-0001-T01") is None and api.get("/tasks/RC-WP-0002-T01") is None
    kept.write("workplans/b.md", _plan("RK-WP-0002"))  # the repo left is still watched
    _until(lambda: api.total("rm-kept") == 2, "a file added to the kept repo")
    api.equals_rebuild(tmp_path)


def test_changed_paths_map_to_the_repos_they_can_change(tmp_path: Path) -> None:
    """The watcher's mapping: which changed paths make it refresh which repo."""
    roots = {tmp_path / "a": "a", tmp_path / "b": "b"}
    added = 1  # watchfiles.Change.added; the kind of change does not matter

    def touched(*rels: str) -> set[str]:
        return RepoWatcher.touched({(added, str(tmp_path / rel)) for rel in rels}, roots)  # type: ignore[misc]

    assert touched("a/workplans/x.md") == {"a"}
    assert touched("a/workplans/team") == {"a"}  # a directory renamed, moved, deleted
    assert touched("a/workplans") == {"a"}
    assert touched("a/canon/sub/doc.md", "b/statehub.toml") == {"a", "b"}
    assert touched("a") == {"a"}  # the work tree itself
    assert touched("a/registry") == {"a"}  # on the way to registry/fleet.toml
    assert touched("a/README.md", "a/src/x.md", "a/.git/index", "a/workplans/.x.md.swp") == set()
    assert touched("elsewhere/workplans/x.md") == set()


def test_changes_through_a_link_out_of_the_repo_refresh_nothing(tmp_path: Path) -> None:
    """Review finding: the notifier follows a link to a directory (``canon -> ..``) when it
    opens its watch, so changes to the hub's own cache beside the repo came in as the repo's
    and each refresh wrote the cache again, without end. Only paths inside the work tree count."""
    root = tmp_path / "a"
    (root / "workplans" / "team").mkdir(parents=True)
    (tmp_path / "hub" / "cache").mkdir(parents=True)
    (root / "canon").symlink_to("..")  # a link up, out of the repo
    (root / "workplans" / "out").symlink_to(tmp_path / "hub")  # a link to a directory elsewhere
    (root / "workplans" / "here").symlink_to("team")  # a link that stays inside
    roots = {root: "a"}
    added = 1

    def touched(*rels: str) -> set[str]:
        return RepoWatcher.touched({(added, str(root / rel)) for rel in rels}, roots)  # type: ignore[misc]

    assert touched("canon/hub/cache/cache.sqlite3-wal") == set()
    assert touched("workplans/out/cache/x.md") == set()
    assert touched("canon") == {"a"}  # the link itself is the repo's (a file error says so)
    assert touched("workplans/here/x.md") == {"a"}
    assert touched("workplans/team/x.md", "canon/hub/cache/y.md") == {"a"}
    assert touched("workplans/gone/deleted/x.md") == {"a"}  # a path no longer there resolves as spelled


def test_an_unreadable_hub_toml_keeps_the_last_list_served(
    make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    """Review finding: hub.toml saved half-edited while a server runs made /state/health,
    /state/diagnostics, GET /sync, POST /repos, POST /repos/{slug}/refresh and POST /sweeps
    answer 500. Now the repos it last listed are served and watched, health and diagnostics
    name the problem, and registering or removing a repo is 409 without writing the file."""
    served = Served(tmp_path / "broken-hub")
    with served.server:
        repo = _repo(make_repo, "hb", {"workplans/a.md": "HB-WP-0001"})
        served.cli("repos", "add", str(repo.root))
        _until(lambda: served.total("hb") == 1, "the registered repo")
        good = served.settings.hub_file.read_text(encoding="utf-8")
        served.settings.hub_file.write_text("[[repos]\nslug = ", encoding="utf-8")
        url = served.server.url
        health = httpx.get(f"{url}/state/health", timeout=10)
        assert health.status_code == 200, health.text
        assert any("cannot read the list of registered repos" in p for p in health.json()["problems"])
        diagnostics = httpx.get(f"{url}/state/diagnostics", params={"probe": "false"}, timeout=30)
        assert diagnostics.status_code == 200, diagnostics.text
        assert "hub-file" in {p["kind"] for p in diagnostics.json()["hub"]["problems"]}
        assert httpx.get(f"{url}/sync", timeout=10).status_code == 200
        assert httpx.post(f"{url}/repos/hb/refresh", timeout=10).status_code == 200
        assert httpx.post(f"{url}/sweeps", json={}, timeout=60).status_code == 202
        other = _repo(make_repo, "hb2", {"workplans/b.md": "HC-WP-0001"})
        for answer in (
            httpx.post(f"{url}/repos", json={"path": str(other.root)}, timeout=10),
            httpx.delete(f"{url}/repos/hb", timeout=10),
        ):
            assert answer.status_code == 409, answer.text
            assert set(answer.json()) == {"error", "status_code"}
            assert "cannot read the list of registered repos" in answer.json()["error"]
        assert served.settings.hub_file.read_text(encoding="utf-8") == "[[repos]\nslug = "  # the edit kept
        repo.write("workplans/a.md", _plan("HB-WP-0001", "done"))  # still watched
        _until(lambda: served.task_status("HB-WP-0001-T01") == "done", "an edit while hub.toml is broken")
        served.settings.hub_file.write_text(good, encoding="utf-8")
        _until(lambda: served.get("/state/health")["problems"] == [], "health clear once hub.toml is fixed")
        served.equals_rebuild(tmp_path)
