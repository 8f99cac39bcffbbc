"""``statehub event ...`` and ``statehub events``: the same rules as the API, from a shell."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner

from statehub.cli import main
from statehub.state_stores import state_location
from sync.applier_lock import applier_lock
from tests.clijson import cli_data
from tests.statehub.eventfixtures import PLAN_PATH, plan_repo, trailer_counts

if TYPE_CHECKING:
    from collections.abc import Callable

    from statehub.settings import Settings
    from tests.gitfixtures import GitRepo

pytestmark = pytest.mark.usefixtures(
    "state_in_cache_database"
)  # the buffer in the state schema on [postgres]


def run(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args))
    return result


@pytest.fixture
def repo(settings: Settings, make_repo: Callable[[str], GitRepo], monkeypatch: pytest.MonkeyPatch) -> GitRepo:
    monkeypatch.setenv("STATEHUB_ACTOR", "agt-cli")
    made = plan_repo(make_repo)
    assert run("repos", "add", str(made.root)).exit_code == 0
    return made


def test_status_note_and_add_land_as_commits(repo: GitRepo) -> None:
    result = run("event", "status", "CUST-WP-0054-T02", "done", "--note", "tunnels moved", "--key", "C1")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("accepted C1 (task.status): applied in commit ")
    result = run("event", "note", "CUST-WP-0054", "plan-wide note", "--json")
    out = cli_data(result.output)
    assert (out["result"], out["state"], out["kind"]) == ("accepted", "applied", "progress.note")
    result = run(
        "event", "add", "CUST-WP-0054", "Drain coulombcore", "--owner", "codex", "--depends-on", "T02"
    )
    assert result.exit_code == 0, result.output
    result = run("event", "status", "CUST-WP-0054", "done", "--json")
    assert cli_data(result.output)["event"]["kind"] == "workplan.status"
    text = repo.read(PLAN_PATH)
    assert '[[tasks]]\nid = "T03"\ntitle = "Drain coulombcore"\nstatus = "todo"\nowner = "codex"' in text
    assert "CUST-WP-0054-T02 @agt-cli: tunnels moved <!-- event:C1 -->" in text
    assert "CUST-WP-0054 @agt-cli: plan-wide note" in text
    assert len(trailer_counts(repo)) == 4
    assert repo.git("log", "-1", "--format=%an").strip() == "agt-cli"
    again = run("event", "status", "CUST-WP-0054-T02", "done", "--note", "tunnels moved", "--key", "C1")
    assert again.output.startswith("duplicate C1")
    listed = cli_data(run("events", "--state", "applied", "--json").output)
    assert listed["total"] == 4
    assert "C1" in run("events").output


def test_bad_input_gets_a_clear_error_and_an_exit_code(repo: GitRepo) -> None:
    result = run("event", "status", "CUST-WP-0054-T02", "finished")
    assert result.exit_code == 6
    assert "status: 'finished' is not one of todo" in result.output
    result = run("event", "status", "not-a-ref", "done")
    assert result.exit_code == 2 and "not a task reference" in result.output
    result = run("event", "note", "CUST-WP-0054-T09", "x")
    assert result.exit_code == 6 and "no task T09 in workplan CUST-WP-0054" in result.output
    result = run("event", "status", "CUST-WP-0054-T02", "done", "--key", "C1")
    assert result.exit_code == 0
    result = run("event", "status", "CUST-WP-0054-T02", "blocked", "--key", "C1")
    assert result.exit_code == 5 and "already used for a different event" in result.output
    assert cli_data(run("events", "--json").output)["total"] == 1


def test_when_another_process_applies_the_cli_leaves_the_event_to_it(
    repo: GitRepo, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importlib.import_module("statehub.cli._sending"), "APPLY_WAIT", 0.1)
    busy = applier_lock(state_location(settings, "applier.lock"))  # another replica, on PostgreSQL
    assert busy.acquire("the-custodian", timeout=1)
    try:
        result = run("event", "note", "CUST-WP-0054-T02", "later", "--key", "L1")
    finally:
        busy.release("the-custodian")
        busy.close()
    assert result.exit_code == 0
    assert "pending; another hub process is applying, it will pick this up" in result.output
    assert trailer_counts(repo) == {}
    assert "L1" in run("events", "--state", "pending").output


def test_every_event_command_documents_an_example() -> None:
    for args in (["event", "status"], ["event", "note"], ["event", "add"], ["event"], ["events"], ["sweep"]):
        assert "Example:" in run(*args, "--help").output


def test_events_of_a_repo_no_longer_registered_are_still_listed_by_repo(repo: GitRepo) -> None:
    """``--repo`` obeys the API's rule (``EventDesk.known_repo``): a slug neither registered nor
    in the buffer is exit 4; one the buffer holds events for is listed after it is removed."""
    assert run("event", "status", "CUST-WP-0054-T02", "done", "--key", "R1").exit_code == 0
    assert run("repos", "remove", "the-custodian").exit_code == 0
    listed = run("events", "--repo", "the-custodian", "--json")
    assert listed.exit_code == 0, listed.output
    assert [e["key"] for e in cli_data(listed.output)["items"]] == ["R1"]
    unknown = run("events", "--repo", "elsewhere")
    assert unknown.exit_code == 4
    assert "no repo registered as 'elsewhere'" in unknown.output
