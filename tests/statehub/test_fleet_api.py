"""``/fleet/...`` over a real git repo holding the realistic fleet file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from litestar.testing import TestClient

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.gitfixtures import GitRepo

EXAMPLE = (Path(__file__).parent.parent / "registry" / "fleet_example.toml").read_text(encoding="utf-8")

Client = TestClient  # type: ignore[type-arg]


def _fleet_repo(
    make_repo: Callable[[str], GitRepo], name: str = "fleet-registry", text: str = EXAMPLE
) -> GitRepo:
    repo = make_repo(name)
    repo.write("registry/fleet.toml", text)
    repo.commit("fleet registry")
    return repo


def _register(client: Client, repo: GitRepo) -> dict[str, Any]:
    response = client.post("/repos", json={"path": str(repo.root)})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_machines_lanes_and_workload_filters(client: Client, make_repo: Callable[[str], GitRepo]) -> None:
    _register(client, _fleet_repo(make_repo))
    machines = client.get("/fleet/machines").json()
    assert machines["repo"] == "fleet-registry"
    assert [(m["name"], m["role"], m["workloads"]) for m in machines["items"]] == [
        ("railiance01", "production-home", ["forgejo"]),
        (
            "coulombcore",
            "frozen-legacy",
            [
                "woodpecker-ci",
                "container-registry",
                "state-hub-api",
                "activity-core",
                "monitoring",
                "mail-relay",
                "postgres-main",
                "keycloak",
                "vault",
            ],
        ),
        ("workstation", "temporary-dev", ["daily-triage"]),
        ("buildbox", "build", []),
    ]
    assert machines["items"][1]["allows"] == {
        "placement": False,
        "promotion": False,
        "production": True,
        "critical_lanes": True,
    }
    wave8 = client.get("/fleet/workloads", params={"wave": 8}).json()
    assert [w["name"] for w in wave8["items"]] == ["keycloak", "vault"]
    on_laptop = client.get("/fleet/workloads", params={"host": "workstation"}).json()
    assert [w["name"] for w in on_laptop["items"]] == ["daily-triage"]
    draining = client.get("/fleet/workloads", params={"state": "draining", "host": "railiance01"}).json()
    assert draining["items"] == [
        {
            "name": "container-registry",
            "current_host": "coulombcore",
            "target_host": "railiance01",
            "runs_on": "coulombcore",
            "owner": "CUST-WP-0054-T04",
            "wave": 2,
            "stateful": True,
            "state": "draining",
            "gate": {
                "overlay_repo": "railiance/registry",
                "stages_proven": ["deploy", "observe"],
                "backup_restore_drill": None,
                "canary_observed": False,
                "operator_approval": None,
                "image": "forge.example/registry:2.8",
                "exception": "",
            },
            "gate_unmet": [
                "stage 'promote' is not in stages_proven",
                "stage 'rollback' is not in stages_proven",
                "canary_observed is not true",
                "operator_approval is not recorded",
                "image 'forge.example/registry:2.8' is not pinned by digest (name@sha256:<64 hex>)",
                "backup_restore_drill is not recorded (required for a stateful workload)",
            ],
        }
    ]
    forgejo = client.get("/fleet/workloads", params={"state": "promoted"}).json()["items"][0]
    assert forgejo["gate"]["backup_restore_drill"] == "2026-06-20"
    assert forgejo["gate_unmet"] == []
    lanes = client.get("/fleet/lanes").json()
    assert lanes["at_risk"] == 2
    assert [(lane["name"], lane["risks"]) for lane in lanes["items"]] == [
        (
            "activity-core-to-state-hub",
            [
                {"machine": "workstation", "role": "temporary-dev", "position": "via"},
                {"machine": "coulombcore", "role": "frozen-legacy", "position": "to"},
            ],
        ),
        (
            "ops-vpn-to-vault",
            [
                {"machine": "workstation", "role": "temporary-dev", "position": "via"},
                {"machine": "coulombcore", "role": "frozen-legacy", "position": "to"},
            ],
        ),
        ("forge-to-ci", []),
        ("dev-preview", []),
    ]


def test_drain_plan_and_readiness(client: Client, make_repo: Callable[[str], GitRepo]) -> None:
    _register(client, _fleet_repo(make_repo))
    plan = client.get("/fleet/drain-plan", params={"machine": "coulombcore"}).json()
    assert [(w["wave"], [s["workload"] for s in w["steps"]]) for w in plan["waves"]] == [
        (1, ["forgejo", "woodpecker-ci"]),
        (2, ["container-registry"]),
        (3, ["state-hub-api"]),
        (4, ["activity-core", "legacy-wiki"]),
        (5, ["monitoring"]),
        (6, ["mail-relay"]),
        (7, ["postgres-main"]),
        (8, ["keycloak", "vault"]),
    ]
    assert plan["waves"][0]["steps"][1] == {
        "workload": "woodpecker-ci",
        "state": "migrated",
        "target_host": "railiance01",
        "next_step": "promote on railiance01",
        "blockers": [],
    }
    assert plan["drained"] is False
    assert client.get("/fleet/readiness").json() == {
        "repo": "fleet-registry",
        "question": "can production run with every temporary-dev machine switched off?",
        "ready": False,
        "switched_off": ["workstation"],
        "blockers": [
            {
                "kind": "workload",
                "name": "daily-triage",
                "machine": "workstation",
                "reason": "running on workstation",
            },
            {
                "kind": "lane",
                "name": "activity-core-to-state-hub",
                "machine": "workstation",
                "reason": "critical lane passes through workstation",
            },
            {
                "kind": "lane",
                "name": "ops-vpn-to-vault",
                "machine": "workstation",
                "reason": "critical lane passes through workstation",
            },
        ],
    }


def test_bad_requests_get_clear_answers(client: Client, make_repo: Callable[[str], GitRepo]) -> None:
    empty = make_repo("plans-only")
    empty.write("README.md", "no fleet here\n")
    empty.commit()
    _register(client, empty)
    response = client.get("/fleet/machines")
    assert response.status_code == 404
    assert response.json()["error"] == (
        "no registered repo has registry/fleet.toml; register the repo that holds it"
    )
    _register(client, _fleet_repo(make_repo))
    assert client.get("/fleet/drain-plan").status_code == 400
    unknown = client.get("/fleet/drain-plan", params={"machine": "laptop"})
    assert unknown.status_code == 404
    assert unknown.json()["error"].startswith("no machine named 'laptop' in the fleet registry")
    bad_state = client.get("/fleet/workloads", params={"state": "moving"})
    assert bad_state.status_code == 400
    assert "valid values are running, draining, migrated, promoted, retired" in bad_state.json()["error"]
    assert client.get("/fleet/machines", params={"repo": "plans-only"}).status_code == 404


def test_two_registries_need_a_repo(client: Client, make_repo: Callable[[str], GitRepo]) -> None:
    _register(client, _fleet_repo(make_repo, "fleet-a"))
    _register(client, _fleet_repo(make_repo, "fleet-b", EXAMPLE.replace('"buildbox"', '"buildbox2"')))
    response = client.get("/fleet/machines")
    assert response.status_code == 409
    assert "fleet-a, fleet-b" in response.json()["error"]
    machines = client.get("/fleet/machines", params={"repo": "fleet-b"}).json()
    assert machines["items"][-1]["name"] == "buildbox2"


def test_a_broken_file_is_reported_and_the_fix_is_picked_up(
    client: Client, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = _fleet_repo(
        make_repo,
        text=EXAMPLE.replace(
            'target_host = "railiance01"\nowner = "CUST-WP-0054-T09"',
            'target_host = "railiance09"\nowner = "CUST-WP-0054-T09"',
        ),
    )
    registered = _register(client, repo)
    assert registered["errors"] == [
        {
            "path": "registry/fleet.toml",
            "line": 129,
            "message": "workload #10 (keycloak): 'target_host' = 'railiance09' is not a machine in this file "
            "(machines: buildbox, coulombcore, railiance01, workstation)",
        }
    ]
    response = client.get("/fleet/readiness")
    assert response.status_code == 422
    assert "registry/fleet.toml:129: workload #10 (keycloak)" in response.json()["error"]
    repo.write("registry/fleet.toml", EXAMPLE.replace('via = ["workstation"]', "via = []"))
    assert client.post("/repos/fleet-registry/refresh").status_code == 200
    ready = client.get("/fleet/readiness").json()
    assert [b["name"] for b in ready["blockers"]] == ["daily-triage"]
