"""Fleet changes as events: accepted ones become commits to the fleet file; refused ones write nothing."""

from __future__ import annotations

import difflib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from click.testing import CliRunner
from litestar.testing import TestClient

from statehub.auth import LOCAL_COMMAND
from statehub.cli import main
from statehub.events import EventDesk
from tests.statehub.eventfixtures import trailer_counts

if TYPE_CHECKING:
    from collections.abc import Callable

    from statehub.hub import Hub
    from tests.gitfixtures import GitRepo

EXAMPLE = (Path(__file__).parent.parent / "registry" / "fleet_example.toml").read_text(encoding="utf-8")
FLEET = "registry/fleet.toml"
DIGEST = "forge.example/registry@sha256:" + "e" * 64
Client = TestClient[Any]


def _repo(make_repo: Callable[[str], GitRepo]) -> GitRepo:
    repo = make_repo("fleet-registry")
    repo.write(FLEET, EXAMPLE)
    repo.commit("fleet registry")
    return repo


def _event(key: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"key": key, "kind": kind, "repo": "fleet-registry", "actor": "agt-codex"} | fields


def _settled(client: Client, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/state/health").json()["buffer"]["pending"] == 0:
            return
        time.sleep(0.05)
    raise AssertionError("events still pending: " + str(client.get("/events?state=pending").json()))


def _diff(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_an_accepted_promotion_lands_as_commits_with_formatting_intact(
    client: Client, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = _repo(make_repo)
    client.post("/repos", json={"path": str(repo.root)})
    evidence = {
        "stages_proven": ["deploy", "observe", "promote", "rollback"],
        "canary_observed": True,
        "operator_approval": "ops-lead",
        "image": DIGEST,
        "backup_restore_drill": "2026-07-01",
    }
    batch = [
        _event("F1", "fleet.workload.gate", workload="container-registry", gate=evidence),
        _event("F2", "fleet.workload.state", workload="container-registry", state="migrated"),
        _event(
            "F3", "fleet.workload.state", workload="container-registry", state="promoted", note="canary ok"
        ),
    ]
    answer = client.post("/events", json=batch)
    assert answer.status_code == 202, answer.text
    _settled(client)
    assert _diff(EXAMPLE, repo.read(FLEET)) == [
        '-state = "draining"',
        '+state = "promoted"',
        '-stages_proven = ["deploy", "observe"]',
        '-image = "forge.example/registry:2.8"    # still a tag, not a digest',
        '+stages_proven = ["deploy", "observe", "promote", "rollback"]',
        f'+image = "{DIGEST}"    # still a tag, not a digest',
        "+backup_restore_drill = 2026-07-01",
        "+canary_observed = true",
        '+operator_approval = "ops-lead"',
    ]
    assert trailer_counts(repo) == {"F1": 1, "F2": 1, "F3": 1}
    assert repo.git("log", "-1", "--format=%an").strip() == "agt-codex"
    assert "workload container-registry: state promoted" in repo.git("log", "-1", "--format=%B")
    assert repo.git("status", "--porcelain") == ""
    promoted = client.get("/fleet/workloads", params={"state": "promoted"}).json()["items"]
    assert [w["name"] for w in promoted] == ["forgejo", "container-registry"]
    plan = client.get("/fleet/drain-plan", params={"machine": "coulombcore"}).json()
    assert plan["waves"][1]["steps"][0]["next_step"] == "done"


def _refused(client: Client, body: Any) -> list[dict[str, Any]]:
    response = client.post("/events", json=body)
    assert response.status_code == 422, response.text
    problems: list[dict[str, Any]] = response.json()["details"]["problems"]
    return problems


def test_refused_changes_answer_422_with_every_reason_and_write_nothing(
    client: Client, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = _repo(make_repo)
    client.post("/repos", json={"path": str(repo.root)})
    head = repo.git("rev-parse", "HEAD")
    on_frozen = _event("R1", "fleet.workload.place", workload="vault", target_host="coulombcore")
    assert _refused(client, on_frozen) == [
        {
            "index": 0,
            "key": "R1",
            "field": "target_host",
            "message": "workload vault: target host coulombcore is frozen-legacy: "
            "it accepts no new placement",
        }
    ]
    migrate = _event("R2", "fleet.workload.state", workload="container-registry", state="migrated")
    promote = _event("R3", "fleet.workload.state", workload="container-registry", state="promoted")
    assert [p["message"] for p in _refused(client, [migrate, promote])] == [
        "workload container-registry: promotion gate unmet: stage 'promote' is not in stages_proven",
        "workload container-registry: promotion gate unmet: stage 'rollback' is not in stages_proven",
        "workload container-registry: promotion gate unmet: canary_observed is not true",
        "workload container-registry: promotion gate unmet: operator_approval is not recorded",
        "workload container-registry: promotion gate unmet: image 'forge.example/registry:2.8' "
        "is not pinned by digest (name@sha256:<64 hex>)",
        "workload container-registry: promotion gate unmet: backup_restore_drill is not recorded "
        "(required for a stateful workload)",
    ]
    jump = _event("R4", "fleet.workload.state", workload="state-hub-api", state="migrated")
    assert _refused(client, jump)[0]["message"].startswith(
        "workload state-hub-api: cannot go from running to migrated"
    )
    bad_gate = _event("R5", "fleet.workload.gate", workload="vault", gate={"colour": "red"})
    assert _refused(client, bad_gate)[0]["field"] == "gate"
    unknown = _event("R6", "fleet.machine.role", machine="laptop", role="build")
    assert "no machine named 'laptop'" in _refused(client, unknown)[0]["message"]
    assert client.get("/events").json()["total"] == 0
    assert repo.read(FLEET) == EXAMPLE
    assert repo.git("rev-parse", "HEAD") == head


def test_a_change_the_file_no_longer_allows_is_rejected_at_apply_time(
    hub: Hub, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = _repo(make_repo)
    hub.register(repo.root)
    with EventDesk(hub) as desk:
        desk.submit(
            _event("A1", "fleet.workload.place", workload="vault", target_host="buildbox"),
            authorise=LOCAL_COMMAND,
        )
        repo.write(
            FLEET,
            EXAMPLE.replace('name = "buildbox"\nrole = "build"', 'name = "buildbox"\nrole = "frozen-legacy"'),
        )
        repo.commit("freeze buildbox by hand")
        desk.apply_pending()
        record = desk.buffer.get("A1")
    assert record is not None and record.state.value == "rejected"
    assert (
        record.reason == "workload vault: target host buildbox is frozen-legacy: it accepts no new placement"
        " (the committed registry/fleet.toml says so)"
    )
    assert "A1" not in trailer_counts(repo)


def test_cli_place_set_state_and_promote(settings: Any, make_repo: Callable[[str], GitRepo]) -> None:
    repo = _repo(make_repo)
    cli = CliRunner()
    assert cli.invoke(main, ["repos", "add", str(repo.root)]).exit_code == 0
    placed = cli.invoke(main, ["fleet", "place", "vault", "--on", "railiance01", "--actor", "ops-lead"])
    assert placed.exit_code == 0, placed.output
    assert "(fleet.workload.place): applied in commit" in placed.output
    assert _diff(EXAMPLE, repo.read(FLEET)) == ['+target_host = "railiance01"']
    assert repo.git("log", "-1", "--format=%an").strip() == "ops-lead"
    moved = cli.invoke(main, ["fleet", "set-state", "state-hub-api", "draining"])
    assert moved.exit_code == 0, moved.output
    refused = cli.invoke(main, ["fleet", "promote", "container-registry"])
    assert refused.exit_code == 6
    assert "cannot go from draining to promoted" in refused.output
    frozen = cli.invoke(main, ["fleet", "place", "keycloak", "--on", "coulombcore"])
    assert frozen.exit_code == 6
    assert "coulombcore is frozen-legacy: it accepts no new placement" in frozen.output
    promoted = cli.invoke(main, ["fleet", "promote", "woodpecker-ci", "--json"])
    assert promoted.exit_code == 0, promoted.output
    assert '"state": "applied"' in promoted.output
    evidence = ["--canary-observed", "--stage", "rollback", "--backup-restore-drill", "2026-07-02"]
    recorded = cli.invoke(main, ["fleet", "gate", "container-registry", *evidence])
    assert recorded.exit_code == 0, recorded.output
    changed = _diff(EXAMPLE, repo.read(FLEET))
    for line in (
        '-stages_proven = ["deploy", "observe"]',
        '+stages_proven = ["deploy", "observe", "rollback"]',
        "+backup_restore_drill = 2026-07-02",
        "+canary_observed = true",
    ):
        assert line in changed
    assert cli.invoke(main, ["fleet", "gate", "vault"]).exit_code == 2
    refrozen = cli.invoke(main, ["fleet", "set-role", "railiance01", "frozen-legacy"])
    assert refrozen.exit_code == 6
    assert "target host railiance01 is frozen-legacy" in refrozen.output
    assert cli.invoke(main, ["fleet", "set-role", "buildbox", "experimental"]).exit_code == 0
    assert len(trailer_counts(repo)) == 5
