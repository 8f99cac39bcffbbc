"""The watcher follows a real file edit into the API without a manual refresh."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from litestar.testing import TestClient

from statehub.app import create_app
from tests.gitfixtures import GitRepo, workplan_text

if TYPE_CHECKING:
    from collections.abc import Callable

    from statehub.settings import Settings


def _wait_for(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_an_edited_file_shows_up_in_the_api(settings: Settings, make_repo: Callable[[str], GitRepo]) -> None:
    repo = make_repo("watched")
    repo.write(
        "workplans/W.md", workplan_text("W-WP-0001", [{"id": "T01", "title": "one", "status": "todo"}])
    )
    repo.commit()
    with TestClient(create_app(settings.with_overrides(watch=True))) as client:
        assert client.post("/repos", json={"path": str(repo.root)}).status_code == 201
        time.sleep(0.3)  # let the watcher pick up the newly registered repo
        repo.write(
            "workplans/W.md", workplan_text("W-WP-0001", [{"id": "T01", "title": "one", "status": "done"}])
        )
        assert _wait_for(lambda: client.get("/tasks/W-WP-0001-T01").json()["status"] == "done")
        repo.write("workplans/new.md", workplan_text("W-WP-0002", [{"id": "T01", "title": "new"}]))
        assert _wait_for(lambda: client.get("/workplans").json()["total"] == 2)
        repo.write("notes.txt", "not indexed")  # ignored files do not break anything
        assert client.get("/state/health").json()["status"] == "ok"
