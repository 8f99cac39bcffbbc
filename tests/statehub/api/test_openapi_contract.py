"""schemathesis over the served OpenAPI document, on a dev hub and on a fleet hub with an admin token.

Two real hub processes (tests/hubserver.py) over real git repos: a dev hub
(open, no tokens) and a fleet hub (tokens required, the run sends an admin
token). Against each, schemathesis' CLI runs every check (``--checks all``)
in every phase (examples, coverage, fuzzing, stateful) with the repo's
``schemathesis.toml`` (each allowance there has its reason, ADR-031), and
must find no failure.

Runtime: both runs go at once, :data:`MAX_EXAMPLES` test cases per operation
in fuzzing and stateful; about 1,000 test cases per hub (the coverage phase
makes most), some 45 s of CPU in all (hub start-up included). On the shared
2-core machine under a load average of 12-15 that was 41 s of set-up and 93 s
of runs. It cannot hang: every request has a timeout
(``--request-timeout``), each run a deadline (:data:`RUN_DEADLINE`, then it is
killed), and the servers stop with the test process (``HubServer`` asks the
kernel to send them SIGTERM when it dies).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from statehub.auth.keys import init_root_key, load_root_key
from statehub.auth.tokens import mint
from tests.gitfixtures import GitRepo, workplan_text
from tests.hubserver import HubServer

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ROOT / "schemathesis.toml"
FLEET_EXAMPLE = ROOT / "tests" / "registry" / "fleet_example.toml"

MAX_EXAMPLES = 5
"""Test cases per operation in the fuzzing and stateful phases (the coverage phase makes its own, most
of the ~930 a hub gets): 10 adds ~12% more cases for ~12% more time on a machine where time is short."""
REQUEST_TIMEOUT = 20
"""Seconds one request may take before schemathesis reports it (a refresh on a loaded machine)."""
RUN_DEADLINE = 300
"""Seconds a whole run may take before it is killed and the test fails."""

CANON = (
    '+++\nid = "ADR-001"\ntitle = "Files"\nkind = "adr"\nstatus = "accepted"\ndate = 2026-05-02\n+++\nBody.\n'
)


@dataclass
class Run:
    """A schemathesis run under way against one hub."""

    hub: str
    process: subprocess.Popen[str]

    def result(self) -> tuple[int, str]:
        try:
            out, _ = self.process.communicate(timeout=RUN_DEADLINE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
            pytest.fail(f"schemathesis on the {self.hub} hub ran over {RUN_DEADLINE} s:\n{out[-4000:]}")
        return self.process.returncode, out


def _repos(base: Path) -> list[GitRepo]:
    ops = GitRepo(base / "ops")
    ops.write("statehub.toml", '[repo]\nslug = "ops"\ntitle = "Operations"\nprefixes = ["OPS"]\n')
    ops.write(
        "workplans/OPS-WP-0001.md",
        workplan_text(
            "OPS-WP-0001",
            [
                {"id": "T01", "title": "Provision", "status": "done", "owner": "codex"},
                {"id": "T02", "title": "Tunnels", "owner": "codex", "depends_on": ["T01"]},
            ],
            owner="ops-lead",
        ),
    )
    ops.write("canon/ADR-001.md", CANON)
    ops.commit()
    fleet = GitRepo(base / "fleet")
    fleet.write("registry/fleet.toml", FLEET_EXAMPLE.read_text(encoding="utf-8"))
    fleet.commit()
    return [ops, fleet]


def _schemathesis(hub: str, server: HubServer, report: Path, *headers: str) -> Run:
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        f"{server.url}/schema/openapi.json",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--request-timeout",
        str(REQUEST_TIMEOUT),
        "--workers",
        "1",
        "--report",
        "junit",
        "--report-dir",
        str(report),
        *headers,
    ]
    process = subprocess.Popen(
        command,
        cwd=report.parent,
        env=dict(os.environ, NO_COLOR="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return Run(hub, process)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    """Both hubs started, their repos registered, and a schemathesis run going against each."""
    base = tmp_path_factory.mktemp("contract")
    fleet_home = base / "fleet-home"
    init_root_key(fleet_home / "data" / "token-root.key")
    admin = mint(load_root_key(fleet_home / "data" / "token-root.key"), "agt-admin", "admin").to_base64()
    dev = HubServer(base / "dev-home")
    fleet = HubServer(fleet_home, env={"STATEHUB_PROFILE": "fleet"})
    started: list[Run] = []
    try:
        dev.launch()
        fleet.launch()
        for server, headers in ((dev, {}), (fleet, {"Authorization": f"Bearer {admin}"})):
            server.wait_ready()
            for repo in _repos(server.home / "repos"):
                answer = httpx.post(
                    f"{server.url}/repos", json={"path": str(repo.root)}, headers=headers, timeout=60
                )
                assert answer.status_code == 201, answer.text
        started = [
            _schemathesis("dev", dev, base / "dev-report"),
            _schemathesis("fleet", fleet, base / "fleet-report", "-H", f"Authorization: Bearer {admin}"),
        ]
        yield {run.hub: run for run in started}
    finally:
        for run in started:
            if run.process.poll() is None:
                run.process.kill()
                run.process.communicate()
        dev.stop()
        fleet.stop()


def _summary(out: str) -> str:
    """The run's numbers: operations tested, test cases generated and how many failed."""
    tested = re.search(r"Tested: (\d+)", out)
    cases = re.search(r"Test cases:\s*\n\s*(.+)", out)
    operations = tested.group(1) if tested else "?"
    return f"operations tested: {operations}; test cases: {cases.group(1) if cases else '?'}"


@pytest.mark.parametrize("hub", ["dev", "fleet"])
def test_schemathesis_finds_no_failure(runs: dict[str, Run], hub: str) -> None:
    code, out = runs[hub].result()
    print(f"schemathesis on the {hub} hub: {_summary(out)}")  # the figures, with -s
    assert code == 0, f"schemathesis on the {hub} hub failed:\n{out[-12000:]}"
    generated = re.search(r"(\d+) generated, (\d+) passed", out)
    assert generated is not None, out[-4000:]
    assert generated.group(1) == generated.group(2), out[-4000:]
