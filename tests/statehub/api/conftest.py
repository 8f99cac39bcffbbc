"""A hub app over a small, realistic workspace: two repos with cross-repo dependencies."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.gitfixtures import GitRepo, workplan_text

if TYPE_CHECKING:
    from collections.abc import Callable

    from litestar.testing import TestClient

CANON = (
    '+++\nid = "{id}"\ntitle = "{title}"\nkind = "{kind}"\nstatus = "{status}"\n'
    "date = 2026-05-02\n+++\nBody.\n"
)


@pytest.fixture
def workspace(make_repo: Callable[[str], GitRepo]) -> dict[str, GitRepo]:
    ops, app = make_repo("ops"), make_repo("app")
    ops.write("statehub.toml", '[repo]\nslug = "ops"\ntitle = "Operations"\nprefixes = ["OPS"]\n')
    ops.write(
        "workplans/OPS-WP-0001.md",
        workplan_text(
            "OPS-WP-0001",
            [
                {"id": "T01", "title": "Provision", "status": "done", "owner": "codex"},
                {
                    "id": "T02",
                    "title": "Tunnels",
                    "status": "blocked",
                    "owner": "codex",
                    "depends_on": ["T01"],
                },
                {"id": "T03", "title": "Backups", "status": "todo", "owner": "dana", "depends_on": ["T02"]},
            ],
            owner="ops-lead",
            title="Production home",
        ),
    )
    ops.write("canon/ADR-001.md", CANON.format(id="ADR-001", title="Files", kind="adr", status="accepted"))
    ops.write("canon/RB-001.md", CANON.format(id="RB-001", title="Drain", kind="runbook", status="proposed"))
    app.write(
        "workplans/APP-WP-0001.md",
        workplan_text(
            "APP-WP-0001",
            [
                {"id": "T01", "title": "Cross-repo, done dependency", "depends_on": ["OPS-WP-0001-T01"]},
                {"id": "T02", "title": "Missing dependency", "depends_on": ["OPS-WP-0009-T01"]},
                {"id": "T03", "title": "Cancelled", "status": "cancelled"},
                {"id": "T04", "title": "Cross-repo, open dependency", "depends_on": ["OPS-WP-0001-T03"]},
            ],
            status="draft",
            owner="claude",
        ),
    )
    app.write("workplans/broken.md", '+++\nid = "APP-WP-0002"\ntitle = "x"\nstatus = "someday"\n+++\n')
    ops.commit()
    app.commit()
    return {"ops": ops, "app": app}


@pytest.fixture
def loaded(client: TestClient, workspace: dict[str, GitRepo]) -> TestClient:  # type: ignore[type-arg]
    for repo in workspace.values():
        assert client.post("/repos", json={"path": str(repo.root)}).status_code == 201
    return client
