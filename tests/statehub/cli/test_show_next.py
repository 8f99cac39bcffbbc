"""``statehub show`` and ``statehub next``, the ``--json`` envelope and the freshness it carries."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from tests.clijson import cli_data, cli_envelope
from tests.gitfixtures import GitRepo, workplan_text

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.statehub.cli.conftest import Run

CANON = '+++\nid = "{id}"\ntitle = "{title}"\nkind = "adr"\nstatus = "accepted"\n+++\n\nWhy we decided.\n'


@pytest.fixture
def ops(make_repo: Callable[[str], GitRepo]) -> GitRepo:
    repo = make_repo("ops")
    repo.write("statehub.toml", '[repo]\nslug = "ops"\nprefixes = ["OPS"]\n')
    repo.write(
        "workplans/OPS-WP-0001.md",
        workplan_text(
            "OPS-WP-0001",
            [
                {"id": "T01", "title": "Provision", "status": "done", "owner": "codex"},
                {"id": "T02", "title": "Tunnels", "status": "todo", "owner": "dana", "depends_on": ["T01"]},
                {"id": "T03", "title": "Backups", "status": "todo", "depends_on": ["T02", "OPS-WP-0009-T01"]},
                {"id": "T04", "title": "Unowned, ready", "status": "todo"},
                {"id": "T05", "title": "Cancelled", "status": "cancelled"},
            ],
            owner="ops-lead",
        ),
    )
    repo.write(
        "workplans/OPS-WP-0002.md",
        workplan_text(
            "OPS-WP-0002",
            [{"id": "T01", "title": "Mine, in a draft plan", "status": "todo", "owner": "agt-codex"}],
            status="draft",
        ),
    )
    repo.write(
        "workplans/OPS-WP-0003.md",
        workplan_text(
            "OPS-WP-0003", [{"id": "T01", "title": "Mine, plan done", "owner": "agt-codex"}], status="done"
        ),
    )
    repo.write("canon/ADR-001.md", CANON.format(id="ADR-001", title="Files are the truth"))
    repo.commit()
    return repo


@pytest.fixture
def added(run: Run, ops: GitRepo) -> GitRepo:
    assert run("repos", "add", str(ops.root)).exit_code == 0
    return ops


def test_show_a_task_with_its_dependencies_and_dependents(run: Run, added: GitRepo) -> None:
    envelope = cli_envelope(run("show", "OPS-WP-0001-T02", "--json").output)
    assert envelope["command"] == "statehub show"
    shown = envelope["data"]
    assert shown["kind"] == "task"
    assert (shown["task"]["ref"], shown["task"]["ready"]) == ("OPS-WP-0001-T02", True)
    assert [(d["ref"], d["task"]["status"]) for d in shown["dependencies"]] == [("OPS-WP-0001-T01", "done")]
    assert [t["ref"] for t in shown["dependents"]] == ["OPS-WP-0001-T03"]
    assert [r["repo"] for r in envelope["freshness"]["repos"]] == ["ops"]

    missing = cli_data(run("show", "OPS-WP-0001-T03", "--json").output)["dependencies"]
    assert [(d["ref"], d["task"] is None) for d in missing] == [
        ("OPS-WP-0001-T02", False),
        ("OPS-WP-0009-T01", True),  # names no task: shown, not dropped
    ]
    text = run("show", "OPS-WP-0001-T03").output
    assert "Depends on (2)" in text and "(names no task)" in text and "Needed by nothing" in text


def test_show_a_workplan_with_its_tasks_and_progress(run: Run, added: GitRepo) -> None:
    shown = cli_data(run("show", "OPS-WP-0001", "--json").output)
    assert shown["kind"] == "workplan"
    assert [t["id"] for t in shown["workplan"]["tasks"]] == ["T01", "T02", "T03", "T04", "T05"]
    assert "Free text." in shown["workplan"]["body"]
    progress = shown["progress"]
    assert (progress["total"], progress["done"], progress["percent"]) == (5, 1, 25)  # 1 of 4 not cancelled
    assert progress["by_status"] == {"todo": 3, "in-progress": 0, "blocked": 0, "done": 1, "cancelled": 1}
    assert "progress 1/5 done (25%)" in run("show", "OPS-WP-0001").output


def test_show_a_canon_document(run: Run, added: GitRepo) -> None:
    shown = cli_data(run("show", "ADR-001", "--json").output)
    assert (shown["kind"], shown["canon"]["title"]) == ("canon", "Files are the truth")
    assert "Why we decided." in run("show", "ADR-001", "--repo", "ops").output


def test_a_canon_id_two_repos_use_asks_for_repo(
    run: Run, added: GitRepo, make_repo: Callable[[str], GitRepo]
) -> None:
    other = make_repo("app")
    other.write("canon/ADR-001.md", CANON.format(id="ADR-001", title="Also files"))
    other.commit()
    assert run("repos", "add", str(other.root)).exit_code == 0
    result = run("show", "ADR-001")
    assert result.exit_code == 5
    assert "ADR-001 exists in repos app, ops; add --repo SLUG" in result.output
    assert (
        cli_data(run("show", "ADR-001", "--repo", "app", "--json").output)["canon"]["title"] == "Also files"
    )


@pytest.mark.parametrize(
    ("ref", "code", "message"),
    [
        ("OPS-WP-0001-T99", 4, "no task 'OPS-WP-0001-T99'"),
        ("OPS-WP-0099", 4, "no workplan 'OPS-WP-0099'"),
        ("ADR-404", 4, "no canon document 'ADR-404'"),
        ("X" * 300, 2, "of 1 to 200 characters"),
    ],
)
def test_show_of_nothing_is_one_clear_line(
    run: Run, added: GitRepo, ref: str, code: int, message: str
) -> None:
    result = run("show", ref)
    assert result.exit_code == code
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_next_prefers_the_actors_own_then_unowned_and_skips_finished_plans(run: Run, added: GitRepo) -> None:
    mine = cli_data(run("next", "--actor", "agt-codex", "--json").output)
    # Its own task in a draft plan beats unowned ones in an active plan; the done plan offers nothing.
    assert (mine["actor"], mine["task"]["ref"]) == ("agt-codex", "OPS-WP-0002-T01")
    assert mine["candidates"] == 3  # OPS-WP-0001 T02, T04 and OPS-WP-0002-T01; T03 waits on T02
    assert mine["reason"].startswith("yours, ready, in draft workplan OPS-WP-0002")

    other = cli_data(run("next", "--actor", "lee", "--json").output)
    assert other["task"]["ref"] == "OPS-WP-0001-T04"  # unowned, in the active plan
    dana = cli_data(run("next", "--actor", "dana", "--repo", "ops", "--json").output)
    assert dana["task"]["ref"] == "OPS-WP-0001-T02"
    assert "OPS-WP-0001-T04" in run("next", "--actor", "lee").output


def test_next_with_nothing_ready_says_so(run: Run, added: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATEHUB_ACTOR", "agt-codex")
    added.write(
        "workplans/OPS-WP-0001.md",
        workplan_text("OPS-WP-0001", [{"id": "T01", "title": "x", "status": "done"}]),
    )
    added.write(
        "workplans/OPS-WP-0002.md",
        workplan_text("OPS-WP-0002", [{"id": "T01", "title": "y", "status": "done"}]),
    )
    found = run("next", "--json")
    assert found.exit_code == 0
    answer = cli_data(found.output)
    assert (answer["actor"], answer["task"], answer["candidates"]) == ("agt-codex", None, 0)
    assert "nothing to take for agt-codex" in run("next").output


def test_reads_see_a_file_changed_since_the_last_index(run: Run, added: GitRepo) -> None:
    before = cli_envelope(run("tasks", "--repo", "ops", "--json").output)
    assert before["freshness"]["stale"] is False
    (repo,) = before["freshness"]["repos"]
    assert (repo["repo"], repo["changed_since"]) == ("ops", False)
    assert repo["commit"] == added.git("rev-parse", "HEAD").strip() and repo["indexed_at"]

    added.write("workplans/OPS-WP-0004.md", workplan_text("OPS-WP-0004", [{"id": "T01", "title": "New"}]))
    after = cli_envelope(run("tasks", "--workplan", "OPS-WP-0004", "--json").output)
    assert [t["ref"] for t in after["data"]["items"]] == ["OPS-WP-0004-T01"]  # re-indexed first
    assert after["freshness"]["stale"] is False


def test_a_repo_gone_from_disk_is_stale_not_an_error(run: Run, added: GitRepo) -> None:
    added.root.rename(added.root.with_name("moved"))
    envelope = cli_envelope(run("workplans", "--json").output)
    assert envelope["data"]["total"] == 0  # a missing work tree's rows go (ADR-030)
    assert envelope["freshness"]["stale"] is True
    assert envelope["freshness"]["repos"][0]["changed_since"] is None


def test_commands_that_do_not_read_the_cache_carry_no_freshness(run: Run, added: GitRepo) -> None:
    envelope = cli_envelope(run("events", "--json").output)
    assert envelope["freshness"] is None
    assert envelope["data"] == {"items": [], "total": 0}


def test_next_claim_takes_the_best_task_a_claim_wins_and_passes_over_the_taken(
    run: Run, added: GitRepo
) -> None:
    """``next --claim``: the best candidate is claimed (a lease and a task.claim commit, ADR-032);
    the next agent gets the next best; when every candidate is taken it exits 5 saying so."""
    first = cli_envelope(run("next", "--claim", "--actor", "lee", "--lease-s", "600", "--json").output)
    won = first["data"]
    assert won["task"]["ref"] == "OPS-WP-0001-T04" and won["claim"]["actor"] == "lee"
    assert won["claim"]["ref"] == "OPS-WP-0001-T04" and won["reason"].startswith("claimed: unowned")
    assert "T04" in added.git("log", "-1", "--format=%B") and "lee" in added.git("log", "-1", "--format=%an")

    second = cli_data(run("next", "--claim", "--actor", "kim", "--json").output)
    assert second["task"]["ref"] == "OPS-WP-0001-T02"  # T04 is lee's now; dana's T02 is claimable
    third = run("next", "--claim", "--actor", "max")
    assert third.exit_code == 0 and "OPS-WP-0002-T01" in third.output and "claimed as max" in third.output

    none_left = run("next", "--claim", "--actor", "ann")
    assert none_left.exit_code == 5
    assert "nothing claimed for ann" in none_left.output
    shown = cli_data(run("show", "OPS-WP-0001-T04", "--json").output)["task"]
    assert (shown["status"], shown["owner"]) == ("in-progress", "lee")


def test_a_failing_json_command_prints_the_error_envelope(run: Run, added: GitRepo) -> None:
    """An agent reading stdout learns why a --json command failed, not only from stderr and the code."""
    failed = run("show", "OPS-WP-0001-T99", "--json")
    assert failed.exit_code == 4
    envelope = json.loads(failed.stdout)
    assert (envelope["schema_version"], envelope["command"]) == (1, "statehub show")
    assert envelope["data"] is None and envelope["freshness"] is None
    assert (envelope["error"]["status_code"], envelope["error"]["exit_code"]) == (404, 4)
    assert "OPS-WP-0001-T99" in envelope["error"]["error"]
    lost = run("next", "--claim", "--actor", "ann", "--repo", "nope", "--json")
    assert lost.exit_code == 4 and json.loads(lost.stdout)["error"]["status_code"] == 404
