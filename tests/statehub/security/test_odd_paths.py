"""ADR-022, any path: a hub home, data dir, cache dir or repo path with ``?``, ``#``, ``%``, spaces or
non-ASCII works end to end, through the CLI and a real hub server.

Before, a hub home holding ``?`` cut the SQLite URL short and the cache was
written somewhere else; each test checks the cache, the write buffer and the
commits land exactly where the settings say, and nowhere else.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from statehub.cache.database import open_cache
from statehub.settings import Settings, sqlite_url
from tests.clijson import cli_data
from tests.gitfixtures import GitRepo
from tests.statehub.eventfixtures import event, plan_repo
from tests.statehub.hubprocess import HubProcess

ODD_NAMES = {
    "question": "hub?home=1",
    "hash": "hub#home",
    "percent": "hub%3Fhome%",
    "space": "hub home ",
    "non-ascii": "hüb-hömé-日本",
    "all": "a ?b=#c %41 é&d;e",
}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("STATEHUB_")} | env
    return subprocess.run(
        [sys.executable, "-m", "statehub", *args], env=environ, capture_output=True, text=True, timeout=120
    )


def _files_under(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("name", list(ODD_NAMES))
def test_the_sqlite_url_keeps_every_character_of_the_path(tmp_path: Path, name: str) -> None:
    path = tmp_path / ODD_NAMES[name] / "cache.sqlite3"
    settings = Settings.from_env({"STATEHUB_HOME": str(tmp_path / ODD_NAMES[name])})
    assert settings.database_url == sqlite_url(settings.cache_dir / "cache.sqlite3")
    engine, created = open_cache(sqlite_url(path))
    engine.dispose()
    assert created
    assert path.is_file()
    assert _files_under(tmp_path) == {Path(ODD_NAMES[name]) / "cache.sqlite3"}


@pytest.mark.parametrize("name", list(ODD_NAMES))
def test_a_hub_home_and_repo_with_odd_characters_work_through_the_cli(tmp_path: Path, name: str) -> None:
    odd = ODD_NAMES[name]
    home = tmp_path / odd / "home"
    repo = plan_repo(lambda slug: GitRepo(tmp_path / odd / "repos" / slug))
    env = {"STATEHUB_HOME": str(home), "STATEHUB_WATCH": "0"}
    added = _cli(env, "repos", "add", str(repo.root))
    assert added.returncode == 0, added.stderr + added.stdout
    listed = _cli(env, "tasks", "--json")
    assert listed.returncode == 0, listed.stderr + listed.stdout
    refs = {task["ref"] for task in cli_data(listed.stdout)["items"]}
    assert "CUST-WP-0054-T02" in refs
    assert (home / "cache" / "cache.sqlite3").is_file()
    assert (home / "config" / "hub.toml").is_file()
    # Nothing was written beside the odd directory, where a cut-short URL would have put the cache.
    assert {p.name for p in tmp_path.iterdir()} == {odd}
    assert {p.name for p in (tmp_path / odd).iterdir()} == {"home", "repos"}
    assert {p.name for p in home.iterdir()} <= {"config", "data", "cache"}


@pytest.mark.parametrize("name", ["question", "all"])
def test_odd_config_data_and_cache_dirs_work_through_a_server(tmp_path: Path, name: str) -> None:
    odd = ODD_NAMES[name]
    root = tmp_path / odd
    dirs = {
        "STATEHUB_CONFIG_DIR": str(root / f"config {odd}"),
        "STATEHUB_DATA_DIR": str(root / f"data {odd}"),
        "STATEHUB_CACHE_DIR": str(root / f"cache {odd}"),
    }
    repo = plan_repo(lambda slug: GitRepo(root / f"repo {odd}" / slug))
    env = dirs | {"STATEHUB_HOME": str(tmp_path / "unused-home"), "STATEHUB_WATCH": "0"}
    added = _cli(env, "repos", "add", str(repo.root))
    assert added.returncode == 0, added.stderr + added.stdout

    hub = HubProcess(tmp_path / "unused-home", tmp_path / "hub.log")
    hub.start(**dirs)
    try:
        tasks = hub.call("GET", "/tasks", params={"repo": "the-custodian"}).json()
        assert "CUST-WP-0054-T02" in {t["ref"] for t in tasks["items"]}
        sent = event("01JZ3K7T2Q9ODDPATHS000001", "progress.note", repo="the-custodian")
        answer = hub.call("POST", "/events", json=sent)
        assert answer.status_code == 202, answer.text
        hub.wait_settled()
        assert hub.call("GET", f"/events/{sent['key']}").json()["state"] == "applied"
    finally:
        hub.stop()
    assert "tunnels moved" in repo.read("workplans/CUST-WP-0054.md")
    assert f"Statehub-Event: {sent['key']}" in repo.git("log", "-1", "--format=%B")
    assert (Path(dirs["STATEHUB_CACHE_DIR"]) / "cache.sqlite3").is_file()
    assert any(Path(dirs["STATEHUB_DATA_DIR"]).glob("*.sqlite3"))
    assert (Path(dirs["STATEHUB_CONFIG_DIR"]) / "hub.toml").is_file()
    assert not (tmp_path / "unused-home").exists() or not any((tmp_path / "unused-home").rglob("*.sqlite3"))
    assert {p.name for p in root.iterdir()} == {f"config {odd}", f"data {odd}", f"cache {odd}", f"repo {odd}"}
