"""The extension point for more event kinds (e.g. fleet.*): a kind with a fixed file goes through
intake, write-back, commit and trailers like the workplan kinds.

The table of kinds is built once, from the kinds' definitions, and passed in; importing a module
registers nothing, and the workplans modules import one another without a cycle."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from registry import fleet_event_kinds, hub_event_kinds
from statehub.auth import LOCAL_COMMAND
from statehub.errors import Unprocessable
from statehub.events import EventDesk
from statehub.hub import Hub
from tests.statehub.eventfixtures import trailer_counts
from workplans import Event, EventKind, EventKinds, workplan_event_kinds

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from statehub.settings import Settings
    from tests.gitfixtures import GitRepo
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


NOTE_KIND = EventKind("fleet.machine.note", _read, _apply, fixed_path="registry/fleet.toml")


@pytest.fixture
def noting_hub(settings: Settings) -> Iterator[Hub]:
    opened = Hub(settings, event_kinds=EventKinds([*hub_event_kinds().values(), NOTE_KIND]))
    yield opened
    opened.close()


def test_a_kind_passed_in_lands_in_its_fixed_file(
    noting_hub: Hub, make_repo: Callable[[str], GitRepo]
) -> None:
    hub = noting_hub
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


def test_a_hub_without_the_kind_refuses_it(hub: Hub) -> None:
    desk = EventDesk(hub)
    try:
        with pytest.raises(Unprocessable, match=r"unknown kind 'fleet\.machine\.note'"):
            desk.submit(
                {"key": "N1", "kind": "fleet.machine.note", "actor": "ops", "machine": "m", "note": "n"},
                authorise=LOCAL_COMMAND,
            )
    finally:
        desk.close()


def test_the_hub_table_has_every_kind() -> None:
    kinds = hub_event_kinds()
    assert kinds.names() == sorted(
        [
            "task.status",
            "task.add",
            "task.claim",
            "task.release",
            "workplan.status",
            "progress.note",
            "fleet.workload.state",
            "fleet.workload.place",
            "fleet.workload.gate",
            "fleet.machine.role",
        ]
    )
    assert set(kinds) == set(workplan_event_kinds()) | {kind.name for kind in fleet_event_kinds()}
    assert {kinds[name].fixed_path for name in kinds if name.startswith("fleet.")} == {"registry/fleet.toml"}
    assert all(kinds[name].fixed_path is None for name in workplan_event_kinds())


def test_a_kind_defined_twice_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'fleet\.machine\.note' is defined twice"):
        EventKinds([NOTE_KIND, NOTE_KIND])


WORKPLANS_MODULES = sorted(
    f"workplans.{path.stem}"
    for path in (Path(__file__).resolve().parents[2] / "workplans").glob("*.py")
    if path.stem != "__init__"
)


def test_no_import_cycle_among_the_workplans_modules() -> None:
    """On the graph of run-time imports (late imports inside functions included, ``TYPE_CHECKING``
    blocks left out): no module's imports lead back to it."""
    graph = {name: _first_party_imports(name) for name in WORKPLANS_MODULES}
    cycles = [cycle for name in graph if (cycle := _cycle_from(name, graph))]
    assert cycles == []


def test_the_cycle_check_sees_a_cycle() -> None:
    assert _cycle_from("a", {"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle_from("a", {"a": {"b"}, "b": set()}) == []


def _first_party_imports(module: str) -> set[str]:
    """The workplans modules ``module`` imports at run time (``TYPE_CHECKING`` blocks left out)."""
    path = Path(__file__).resolve().parents[2] / (module.replace(".", "/") + ".py")
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "workplans":
            found.update(f"workplans.{a.name}" for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("workplans."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("workplans."))
    return found & set(WORKPLANS_MODULES)


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        yield node
        yield from _runtime_nodes(node)


def _cycle_from(start: str, graph: dict[str, set[str]]) -> list[str]:
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        name, path = stack.pop()
        for nxt in graph.get(name, set()):
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return []
