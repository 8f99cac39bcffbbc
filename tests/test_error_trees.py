"""One error tree per package: every exception a library raises derives from its package's root,
the tree is drawn in the package's errors module, and the hub maps the trees to its own in one place."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import click
import msgspec
import pytest
from click.testing import CliRunner

import registry
import sync
import workplans
from registry.errors import RegistryError, UnknownMachine
from statehub.api.errorshape import _hub_error
from statehub.cli._context import handle_errors
from statehub.errors import (
    LIBRARY_ERRORS,
    BadRequest,
    Conflict,
    HubError,
    NotFound,
    PayloadTooLarge,
    SetupError,
    Unprocessable,
    as_hub_error,
)
from sync.errors import (
    KeyConflict,
    RoomError,
    RoomFileError,
    RoomInputError,
    StoreTooNew,
    SyncError,
    UnknownRelayKey,
)
from workplans.errors import BrokenTarget, FormatError, InvalidEvent, NoLongerApplies, WorkplansError
from workplans.problems import FileProblem

ROOTS = {"workplans": WorkplansError, "registry": RegistryError, "sync": SyncError}


def _exceptions(package_name: str) -> list[type[BaseException]]:
    package = importlib.import_module(package_name)
    found: list[type[BaseException]] = []
    for info in pkgutil.iter_modules(package.__path__, f"{package_name}."):
        module = importlib.import_module(info.name)
        found.extend(
            value
            for value in vars(module).values()
            if inspect.isclass(value)
            and issubclass(value, BaseException)
            and value.__module__.startswith(f"{package_name}.")
        )
    return sorted(set(found), key=lambda cls: cls.__qualname__)


@pytest.mark.parametrize("package_name", sorted(ROOTS))
def test_every_exception_derives_from_the_package_root(package_name: str) -> None:
    root = ROOTS[package_name]
    exceptions = _exceptions(package_name)
    assert root in exceptions
    assert [cls.__qualname__ for cls in exceptions if not issubclass(cls, root)] == []


@pytest.mark.parametrize("package_name", sorted(ROOTS))
def test_the_tree_is_drawn_with_every_public_exception(package_name: str) -> None:
    errors_module = importlib.import_module(f"{package_name}.errors")
    drawn = errors_module.__doc__ or ""
    public = [cls.__name__ for cls in _exceptions(package_name) if not cls.__name__.startswith("_")]
    assert [name for name in public if name not in drawn] == []
    assert set(errors_module.__all__) == set(public)


@pytest.mark.parametrize("root", [WorkplansError, RegistryError, SyncError, HubError])
def test_details_is_declared_on_the_base(root: type[Exception]) -> None:
    assert "details" in root.__annotations__
    assert root.details is None  # type: ignore[attr-defined]


def test_packages_export_their_roots() -> None:
    assert workplans.WorkplansError is WorkplansError
    assert registry.RegistryError is RegistryError
    assert set(LIBRARY_ERRORS) == set(ROOTS.values())
    assert Path(sync.__file__).exists()


@pytest.mark.parametrize(
    ("error", "kind", "status", "exit_code"),
    [
        (KeyConflict("k1"), Conflict, 409, 5),
        (UnknownRelayKey("no such key"), NotFound, 404, 4),
        (StoreTooNew(Path("/x.sqlite3"), "events file", 9, 1), SetupError, 500, 3),
        (UnknownMachine("m9", ["m1"]), NotFound, 404, 4),
        (FormatError([FileProblem("a.md", 3, "bad")]), Unprocessable, 422, 6),
        (InvalidEvent({"kind": "required"}), Unprocessable, 422, 6),
        (NoLongerApplies("task gone"), Conflict, 409, 5),
        (BrokenTarget("no front matter"), Unprocessable, 422, 6),
        (SyncError("a bug"), HubError, 500, 1),
        # a room's refusal carries its status: mapped here too, not by a second table
        (RoomInputError("a name with a newline"), BadRequest, 400, 2),
        (RoomFileError("statehub.toml is a symbolic link", 404), NotFound, 404, 4),
        (RoomError("the edit makes the text longer than 256 KiB", 413), PayloadTooLarge, 413, 9),
        (RoomError("the file moved", 409), Conflict, 409, 5),
        (RoomError("odd", 418), BadRequest, 400, 2),
    ],
)
def test_the_hub_maps_library_errors_in_one_table(
    error: Exception, kind: type[HubError], status: int, exit_code: int
) -> None:
    mapped = as_hub_error(error)  # type: ignore[arg-type]
    assert type(mapped) is kind
    assert (mapped.status_code, mapped.exit_code, mapped.message) == (status, exit_code, str(error))
    assert mapped.__cause__ is error


def test_a_subclass_the_table_does_not_name_maps_as_its_nearest_parent() -> None:
    class Odd(UnknownRelayKey):
        pass

    error = Odd("x")
    error.details = {"why": "because"}
    mapped = as_hub_error(error)
    assert type(mapped) is NotFound and mapped.details == {"why": "because"}
    hub = NotFound("same")
    assert as_hub_error(hub) is hub


def test_the_app_answers_a_library_error_through_the_mapping() -> None:
    response = _hub_error(None, KeyConflict("k1"))  # type: ignore[arg-type]
    assert response.status_code == 409
    assert msgspec.to_builtins(response.content) == {"error": str(KeyConflict("k1")), "status_code": 409}


def test_the_cli_exits_with_the_mapped_code() -> None:
    @click.command()
    @handle_errors
    def broken() -> None:
        raise UnknownMachine("m9", [])

    result = CliRunner().invoke(broken)
    assert result.exit_code == 4
    assert "no machine named 'm9'" in result.output
