"""Write-back on real git repos keeps every file shape people's editors write, byte for byte.

A workplan with a byte order mark, mixed line endings, tabs, trailing
whitespace, a ``## Progress`` look-alike in a fence and no final line ending is
indexed like any other, and events change exactly their lines: the blob
committed holds the person's bytes everywhere else. A body that takes no note
(it ends in a fence never closed) makes the note wait until the person closes
it. The fleet registry keeps its byte order mark and line endings too.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from statehub.auth import LOCAL_COMMAND
from statehub.cache import queries
from statehub.events import EventDesk
from tests.statehub.eventfixtures import PLAN_PATH, event, plan_repo, trailer_counts

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from statehub.hub import Hub
    from tests.gitfixtures import GitRepo

BOM = "\ufeff"

SHAPED = (
    BOM + "+++ \r\n"
    'id = "CUST-WP-0054"\t# the plan\n'
    'title = "Workstation independence"   \r\n'
    'status = "active"\n'
    "\r\n"
    "[[tasks]]\r\n"
    'id\t=\t"T01"\n'
    'title = "Fleet architecture"\r\n'
    'status = "done"\r\n'
    "\n"
    "[[tasks]]\n"
    'id = "T02"\r\n'
    'title = "De-hub the network"\n'
    'status = "in-progress"\r\n'
    "+++\n"
    "# Workstation independence\r\n"
    "\r\n"
    "```markdown\n"
    "## Progress\n"
    "+++\n"
    "```\r\n"
    "\r\n"
    "## Progress   \r\n"
    "\r\n"
    "- 2026-07-01T00:00:00Z CUST-WP-0054 @person: started\t<!-- event:OLD -->"
)
"""BOM, trailing blanks on a fence, mixed endings, tabs, a fenced look-alike, no final newline."""

EXPECTED = (
    BOM + "+++ \r\n"
    'id = "CUST-WP-0054"\t# the plan\n'
    'title = "Workstation independence"   \r\n'
    'status = "active"\n'
    "\r\n"
    "[[tasks]]\r\n"
    'id\t=\t"T01"\n'
    'title = "Fleet architecture"\r\n'
    'status = "done"\r\n'
    "\n"
    "[[tasks]]\n"
    'id = "T02"\r\n'
    'title = "De-hub the network"\n'
    'status = "done"\r\n'
    "\r\n"
    "[[tasks]]\r\n"
    'id = "T03"\r\n'
    'title = "Drain coulombcore"\r\n'
    'status = "todo"\r\n'
    "+++\n"
    "# Workstation independence\r\n"
    "\r\n"
    "```markdown\n"
    "## Progress\n"
    "+++\n"
    "```\r\n"
    "\r\n"
    "## Progress   \r\n"
    "\r\n"
    "- 2026-07-01T00:00:00Z CUST-WP-0054 @person: started\t<!-- event:OLD -->\r\n"
    "- 2026-07-03T22:29:55Z CUST-WP-0054-T02 @agt-codex: tunnels moved <!-- event:E2 -->\r\n"
)


@pytest.fixture
def desk(hub: Hub) -> Iterator[EventDesk]:
    with EventDesk(hub) as opened:
        yield opened


def _committed(repo: GitRepo, path: str) -> bytes:
    """The blob HEAD holds, as bytes (no newline translation on the way)."""
    shown = subprocess.run(["git", "show", f"HEAD:{path}"], cwd=repo.root, check=True, capture_output=True)
    return shown.stdout


def test_a_workplan_of_every_shape_is_served_and_written_back_byte_for_byte(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = plan_repo(make_repo)
    (repo.root / PLAN_PATH).write_bytes(SHAPED.encode("utf-8"))
    repo.commit("a person's editor")
    hub.register(repo.root)
    with hub.engine.connect() as conn:
        assert queries.get_repo(conn, "the-custodian").errors == []
        plan = queries.get_workplan(conn, "CUST-WP-0054")
    assert [t.status for t in plan.tasks] == ["done", "in-progress"]
    desk.submit(
        [event("E1"), event("E2", kind="progress.note"), event("E3", kind="task.add")],
        authorise=LOCAL_COMMAND,
    )
    desk.apply_pending()
    states = [desk.buffer.get(key) for key in ("E1", "E2", "E3")]
    assert [s.state.value if s else None for s in states] == ["applied"] * 3
    assert (repo.root / PLAN_PATH).read_bytes() == EXPECTED.encode("utf-8")
    assert _committed(repo, PLAN_PATH) == EXPECTED.encode("utf-8")
    assert trailer_counts(repo) == {"E1": 1, "E2": 1, "E3": 1}


def test_a_body_ending_in_a_fence_never_closed_holds_the_note_until_the_person_closes_it(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = plan_repo(make_repo)
    text = SHAPED + "\r\n\r\n```\r\nhalf a code sample\r\n"
    (repo.root / PLAN_PATH).write_bytes(text.encode("utf-8"))
    repo.commit("an open fence")
    hub.register(repo.root)
    desk.submit(event("N1", kind="progress.note"), authorise=LOCAL_COMMAND)
    desk.apply_pending()
    found = desk.buffer.get("N1")
    assert found is not None and found.state.value == "pending" and PLAN_PATH in (found.reason or "")
    assert (repo.root / PLAN_PATH).read_bytes() == text.encode("utf-8")
    (repo.root / PLAN_PATH).write_bytes((text + "```\r\n").encode("utf-8"))
    repo.commit("close the fence")
    desk.apply_pending()
    found = desk.buffer.get("N1")
    assert found is not None and found.state.value == "applied"
    after = (repo.root / PLAN_PATH).read_bytes().decode("utf-8")
    assert after.startswith(text + "```\r\n") and after.endswith("<!-- event:N1 -->\r\n")


FLEET_EXAMPLE = (Path(__file__).parent.parent / "registry" / "fleet_example.toml").read_text("utf-8")


def test_a_fleet_registry_and_manifest_with_a_bom_and_mixed_endings_are_read_and_kept(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    lines = [line + ("\r\n" if n % 2 else "\n") for n, line in enumerate(FLEET_EXAMPLE.splitlines())]
    lines[0] = BOM + lines[0]
    repo = make_repo("fleet-registry")
    (repo.root / "registry").mkdir()
    (repo.root / "registry" / "fleet.toml").write_bytes("".join(lines).encode("utf-8"))
    (repo.root / "statehub.toml").write_bytes((BOM + '[repo]\r\nslug = "the-fleet"\r\n').encode("utf-8"))
    repo.commit("a person's editor")
    assert hub.register(repo.root).repo == "the-fleet"  # the manifest's slug, read through its BOM
    with hub.engine.connect() as conn:
        assert queries.get_repo(conn, "the-fleet").errors == []
    state = {"key": "F1", "kind": "fleet.workload.state", "repo": "the-fleet", "actor": "agt-codex"}
    desk.submit(state | {"workload": "state-hub-api", "state": "draining"}, authorise=LOCAL_COMMAND)
    desk.apply_pending()
    found = desk.buffer.get("F1")
    assert found is not None and found.state.value == "applied", found
    at = next(n for n, line in enumerate(lines) if line.startswith('name = "state-hub-api"')) + 6
    assert lines[at].startswith('state = "running"')
    lines[at] = lines[at].replace("running", "draining")
    assert _committed(repo, "registry/fleet.toml") == "".join(lines).encode("utf-8")
