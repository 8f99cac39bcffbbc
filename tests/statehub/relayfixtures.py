"""Two real hubs on loopback: a fleet hub (upstream) and a dev hub relaying to it.

Each hub is its own server process with its own STATEHUB_HOME and its own
checkout, both clones of one bare remote, as on a laptop and a fleet server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from tests.gitfixtures import GitRepo, workplan_text
from tests.statehub.eventfixtures import plan_repo
from tests.statehub.hubprocess import HubProcess

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

__all__ = ["PLANS", "HubPair", "clone", "notes", "plan_of", "run_cli"]


def clone(remote: Path, root: Path) -> GitRepo:
    subprocess.run(["git", "clone", "-q", str(remote), str(root)], check=True)
    repo = GitRepo.__new__(GitRepo)
    repo.root = root
    repo.git("config", "user.email", "tests@statehub.invalid")
    repo.git("config", "user.name", "State Hub tests")
    repo.git("config", "commit.gpgsign", "false")
    return repo


PLANS = [f"RELAY-WP-{n:04d}" for n in range(1, 11)]
"""Ten small workplans, so 1,000 notes make ten files of 100 lines, not one of 1,000."""


def plan_of(key: str) -> str:
    return PLANS[int(key.rsplit("-", 1)[1]) % len(PLANS)]


def notes(prefix: str, count: int, start: int = 0) -> list[dict[str, Any]]:
    """Progress notes over ten workplans, each with its own original time (one actor: one commit a pass)."""
    return [
        {
            "key": f"{prefix}-{i:05d}",
            "kind": "progress.note",
            "workplan": PLANS[i % len(PLANS)],
            "task": "T01",
            "note": f"note {i}",
            "actor": "agt-codex",
            "at": f"2026-07-03T{10 + i // 3600 % 10:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
        }
        for i in range(start, start + count)
    ]


def run_cli(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = os.environ | {"STATEHUB_HOME": str(home), "STATEHUB_WATCH": "0"} | (env or {})
    environ.pop("STATEHUB_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "statehub", *args], env=environ, capture_output=True, text=True, timeout=120
    )


class HubPair:
    """``fleet`` (the upstream) and ``dev`` (relaying to it), with their checkouts."""

    def __init__(self, tmp_path: Path, make_repo: Callable[[str], GitRepo], batch: int = 1000) -> None:
        self.remote = tmp_path / "remote.git"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.remote)], check=True)
        seed = plan_repo(make_repo, "seed")
        for plan in PLANS:
            seed.write(f"workplans/{plan}.md", workplan_text(plan, [{"id": "T01", "title": "Relay"}]))
        seed.commit("plans for relayed notes")
        seed.git("remote", "add", "origin", str(self.remote))
        seed.git("push", "-q", "-u", "origin", "main")
        self.fleet_repo = clone(self.remote, tmp_path / "fleet-checkout" / "the-custodian")
        self.dev_repo = clone(self.remote, tmp_path / "dev-checkout" / "the-custodian")
        self.fleet = HubProcess(tmp_path / "fleet-home", tmp_path / "fleet.log")
        self.dev = HubProcess(tmp_path / "dev-home", tmp_path / "dev.log")
        self.token_file = tmp_path / "upstream.token"
        self.dev_env = {
            "STATEHUB_UPSTREAM": self.fleet.url,
            "STATEHUB_UPSTREAM_TOKEN_FILE": str(self.token_file),
            "STATEHUB_RELAY_BACKOFF_CAP": "0.5",
            "STATEHUB_RELAY_BATCH": str(batch),
        }
        self.fleet_env: dict[str, str] = {}
        self.fleet_headers: dict[str, str] = {}
        """For a fleet hub that requires tokens: the test's own admin token."""

    def register(self, upstream: str | None = None) -> None:
        """Register each checkout with its hub; the fleet hub is left stopped (the upstream is down)."""
        self.start_fleet()
        added = self.fleet.call(
            "POST", "/repos", json={"path": str(self.fleet_repo.root)}, headers=self.fleet_headers
        )
        assert added.status_code == 201, added.text
        self.fleet.stop()
        if upstream is not None:
            self.dev_env["STATEHUB_UPSTREAM"] = upstream
        self.start_dev()
        assert self.dev.call("POST", "/repos", json={"path": str(self.dev_repo.root)}).status_code == 201

    def start_fleet(self) -> None:
        self.fleet.start(**self.fleet_env)

    def start_dev(self) -> None:
        self.dev.start(**self.dev_env)

    def relay(self) -> dict[str, Any]:
        relay: dict[str, Any] = self.dev.call("GET", "/state/health").json()["relay"]
        return relay

    def wait_relay(self, confirmed: int, timeout: float = 120) -> dict[str, Any]:
        """Until ``confirmed`` events are confirmed and nothing is pending."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            relay = self.relay()
            if relay["counts"]["confirmed"] >= confirmed and relay["pending"] == 0:
                return relay
            time.sleep(0.1)
        raise AssertionError(
            f"relay did not finish: {json.dumps(self.relay())}\n{self.dev.log.read_text()[-3000:]}"
        )

    def stop(self) -> None:
        self.dev.stop()
        self.fleet.stop()
