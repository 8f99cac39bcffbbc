"""A real hub process over the example workplan repo, and what "nothing was touched" means there.

Shared by the input-bound tests and the review findings (ADR-022): each starts a hub,
sends something hostile, and asserts the answer and that nothing was stored or committed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from statehub.hub import Hub
from statehub.settings import Settings
from tests.gitfixtures import GitRepo
from tests.statehub.eventfixtures import plan_repo
from tests.statehub.hubprocess import HubProcess

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import httpx

__all__ = ["Target", "bounds_hub"]


class Target:
    def __init__(self, hub: HubProcess, repo: GitRepo) -> None:
        self.hub = hub
        self.repo = repo
        self.head = repo.git("rev-parse", "HEAD")

    def post_json(self, path: str, body: bytes, **headers: str) -> httpx.Response:
        return self.hub.call(
            "POST", path, content=body, headers={"Content-Type": "application/json", **headers}
        )

    def assert_untouched(self) -> None:
        assert self.hub.call("GET", "/events").json()["total"] == 0
        assert [r["slug"] for r in self.hub.call("GET", "/repos").json()["items"]] == ["the-custodian"]
        assert self.repo.git("rev-parse", "HEAD") == self.head
        assert self.repo.git("status", "--porcelain") == ""


def bounds_hub(base: Path, **env: str) -> Iterator[Target]:
    """Register the example repo under ``base`` and serve it with ``env``; stopped afterwards."""
    repo = plan_repo(lambda name: GitRepo(base / "repos" / name))
    home = base / "home"
    with Hub(Settings.from_env({"STATEHUB_HOME": str(home)})) as hub:
        hub.register(repo.root)
    process = HubProcess(home, base / "hub.log")
    process.start(**env)
    try:
        yield Target(process, repo)
    finally:
        process.stop()
