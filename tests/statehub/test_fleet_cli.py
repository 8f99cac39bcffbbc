"""``statehub fleet ...`` against a real repo and a real cache."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
import pytest
from click.testing import CliRunner

from statehub.cli import main
from statehub.cli.fleet import fleet
from tests.clijson import cli_data

if TYPE_CHECKING:
    from collections.abc import Callable

    from statehub.settings import Settings
    from tests.gitfixtures import GitRepo

EXAMPLE = (Path(__file__).parent.parent / "registry" / "fleet_example.toml").read_text(encoding="utf-8")


@pytest.fixture
def runner(settings: Settings, make_repo: Callable[[str], GitRepo]) -> CliRunner:
    repo = make_repo("fleet-registry")
    repo.write("registry/fleet.toml", EXAMPLE)
    repo.commit()
    cli = CliRunner()
    result = cli.invoke(main, ["repos", "add", str(repo.root)])
    assert result.exit_code == 0, result.output
    return cli


def test_every_fleet_command_has_an_example() -> None:
    assert "Example:" in (fleet.help or "")
    for name, command in fleet.commands.items():
        assert isinstance(command, click.Command)
        assert "Example: statehub fleet" in (command.help or ""), name


def test_status_shows_machines_workloads_risks_and_readiness(runner: CliRunner) -> None:
    result = runner.invoke(main, ["fleet", "status"])
    assert result.exit_code == 0, result.output
    for expected in (
        "Machines (fleet-registry)",
        "coulombcore",
        "frozen-legacy",
        "container-registry",
        "6 unmet",
        "Lane risks",
        "ops-vpn-to-vault",
        "not ready: production still needs workstation",
        "workload daily-triage: running on workstation",
        "Rules the file breaks",
        "runs on workstation, a temporary-dev machine, which must host no production",
    ):
        assert expected in result.output, expected
    as_json = cli_data(runner.invoke(main, ["fleet", "status", "--json"]).output)
    assert set(as_json) == {"machines", "workloads", "lanes", "readiness", "violations"}
    assert as_json["violations"]["total"] == 3
    assert as_json["workloads"]["total"] == 12


def test_drain_plan_table_and_json(runner: CliRunner) -> None:
    result = runner.invoke(main, ["fleet", "drain-plan", "coulombcore"])
    assert result.exit_code == 0, result.output
    assert "Drain plan for coulombcore (frozen-legacy)" in result.output
    assert "no target host: statehub fleet place vault --on HOST" in result.output
    plan = cli_data(runner.invoke(main, ["fleet", "drain-plan", "coulombcore", "--json"]).output)
    assert [w["wave"] for w in plan["waves"]] == [1, 2, 3, 4, 5, 6, 7, 8]
    missing = runner.invoke(main, ["fleet", "drain-plan", "laptop"])
    assert missing.exit_code == 4
    assert "no machine named 'laptop'" in missing.output


def test_readiness_exits_one_when_not_ready(runner: CliRunner) -> None:
    result = runner.invoke(main, ["fleet", "readiness", "--json"])
    assert result.exit_code == 1
    answer = cli_data(result.output)
    assert answer["ready"] is False
    assert [b["name"] for b in answer["blockers"]] == [
        "daily-triage",
        "activity-core-to-state-hub",
        "ops-vpn-to-vault",
    ]
    assert runner.invoke(main, ["fleet", "readiness", "--repo", "nope"]).exit_code == 4
