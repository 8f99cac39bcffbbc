"""``statehub claim | heartbeat | release`` in-process on a real repo (ADR-032): --json, exit codes,
the file after a claim and a release."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.clijson import cli_data
from tests.gitfixtures import GitRepo, workplan_text

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.statehub.cli.conftest import Run

PLAN = "CLI-WP-0001"
REF = f"{PLAN}-T01"
PATH = f"workplans/{PLAN}.md"


def _repo(make_repo: Callable[[str], GitRepo], run: Run) -> GitRepo:
    repo = make_repo("cli-claims")
    repo.write(PATH, workplan_text(PLAN, [{"id": "T01", "title": "one", "status": "todo", "owner": "lead"}]))
    repo.commit()
    assert run("repos", "add", str(repo.root)).exit_code == 0
    return repo


def test_claim_heartbeat_release_from_the_command_line(make_repo: Callable[[str], GitRepo], run: Run) -> None:
    repo = _repo(make_repo, run)
    before = repo.read(PATH)
    claimed = run("claim", REF, "--actor", "agt-cli", "--lease-s", "600", "--json")
    assert claimed.exit_code == 0, claimed.output
    body = cli_data(claimed.output)
    assert set(body) == {"ref", "actor", "lease_expires_at", "key"}
    assert 'owner = "agt-cli"' in repo.read(PATH)  # applied at once: no server holds the applier lock
    assert 'status = "in-progress"' in repo.read(PATH)

    lost = run("claim", REF, "--actor", "agt-other")
    assert lost.exit_code == 5
    assert "held by agt-cli until" in lost.output
    assert run("claim", f"{PLAN}-T09", "--actor", "agt-cli").exit_code == 4

    beat = run("heartbeat", REF, "--actor", "agt-cli", "--json")
    assert beat.exit_code == 0, beat.output
    assert cli_data(beat.output)["key"] == body["key"]
    assert run("heartbeat", REF, "--actor", "agt-other").exit_code == 5

    released = run("release", REF, "--status", "todo", "--actor", "agt-cli", "--json")
    assert released.exit_code == 0, released.output
    assert cli_data(released.output)["owner"] == "lead"
    assert repo.read(PATH) == before
    assert run("release", REF, "--status", "cancelled", "--actor", "agt-cli").exit_code == 2
    assert run("claim", REF, "--actor", "agt-cli", "--lease-s", "0").exit_code == 2
