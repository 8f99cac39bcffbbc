"""The extension point for more event kinds (e.g. fleet.*): a kind with a fixed file goes through
intake, write-back, commit and trailers like the workplan kinds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from statehub.auth import LOCAL_COMMAND
from statehub.errors import Unprocessable
from statehub.events import EventDesk
from statehub.hub import Hub
from tests.gitfixtures import GitRepo
from tests.statehub.eventfixtures import trailer_counts
from workplans import EVENT_KINDS, Event, EventKind, register_event_kind
from workplans.events import FieldReader


@dataclass(frozen=True, slots=True, kw_only=True)
class MachineNoteEvent(Event):
    machine: str
    note: str


def _read(reader: FieldReader, common: dict[str, Any]) -> Event | None:
    machine = reader.text("machine", required=True)
    note = reader.note("note", required=True)
    if reader.problems or None in (common["key"], common["actor"], common["at"]):
        return None
    return MachineNoteEvent(kind="fleet.machine.note", machine=machine or "", note=note or "", **common)


def _apply(text: str, event: MachineNoteEvent) -> str:
    line = f"# {event.machine}: {event.note} (event {event.key})\n"
    return text if line in text else text + line


@pytest.fixture
def fleet_kind() -> Iterator[None]:
    register_event_kind(EventKind("fleet.machine.note", _read, _apply, fixed_path="registry/fleet.toml"))
    yield
    del EVENT_KINDS["fleet.machine.note"]


@pytest.mark.usefixtures("fleet_kind")
def test_a_registered_kind_lands_in_its_fixed_file(hub: Hub, make_repo: Callable[[str], GitRepo]) -> None:
    repo = make_repo("fleet")
    repo.write("registry/fleet.toml", '[[machines]]\nname = "railiance01"\n')
    repo.commit()
    hub.register(repo.root)
    with EventDesk(hub) as desk:
        base = {"kind": "fleet.machine.note", "actor": "ops", "machine": "railiance01", "note": "rebooted"}
        with pytest.raises(Unprocessable, match="repo: required"):
            desk.submit(base | {"key": "F0"}, authorise=LOCAL_COMMAND)
        desk.submit(base | {"key": "F1", "repo": "fleet"}, authorise=LOCAL_COMMAND)
        desk.apply_pending()
        record = desk.buffer.get("F1")
    assert record is not None and record.state.value == "applied"
    assert repo.read("registry/fleet.toml").endswith("# railiance01: rebooted (event F1)\n")
    assert trailer_counts(repo) == {"F1": 1}
