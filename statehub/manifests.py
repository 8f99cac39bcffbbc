"""The manifests people may edit together, and how a whole manifest is checked before a save.

A room's document name is ``<repo slug>/<path>``; only two paths are
editable: ``statehub.toml`` (the repo manifest) and ``registry/fleet.toml``
(the fleet registry). Anything else is refused before a socket is accepted.

Validation runs TOML syntax first, then the schema of the file's kind, and
reports each problem with a 1-based line and column.

**The fleet registry** is checked by ``workplans.parse_fleet``: types, roles,
states, unique names and references to declared machines, every problem with
its line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from statehub.errors import BadRequest
from statehub.hubfile import RegisteredRepo
from workplans import FLEET_PATH, MANIFEST_PATH, FileProblem, FormatError, parse_fleet, parse_manifest

if TYPE_CHECKING:
    from pathlib import Path

    from statehub.hub import Hub

__all__ = [
    "EDITABLE",
    "VALIDATORS",
    "ManifestDoc",
    "Validator",
    "resolve_doc",
    "validate",
]

EDITABLE = {MANIFEST_PATH: "repo manifest", FLEET_PATH: "fleet registry"}

Validator = Callable[[str, str], object]
"""Parse ``text`` of the file at ``path``; raise FormatError with every problem found."""


VALIDATORS: dict[str, Validator] = {MANIFEST_PATH: parse_manifest, FLEET_PATH: parse_fleet}

_COLUMN = re.compile(r"\s*\(column (\d+)\)$")


def validate(path: str, text: str) -> list[dict[str, Any]]:
    """Every problem in ``text`` as ``{"line", "column", "message"}``; empty when it may be saved."""
    try:
        VALIDATORS[path](text, path)
    except FormatError as error:
        return [_problem(p, text) for p in error.problems]
    return []


def _problem(problem: FileProblem, text: str) -> dict[str, Any]:
    message, column, line = problem.message, None, problem.line
    match = _COLUMN.search(message)
    if line is None and "(at end of document)" in message:
        # tomllib gives no line for an error at the very end: point at the last line.
        lines = text.splitlines() or [""]
        line, column = len(lines), len(lines[-1]) + 1
        message = message.replace(" (at end of document)", " at the end of the file")
    elif match:
        message, column = message[: match.start()], int(match.group(1))
    elif line is not None:
        lines = text.splitlines()
        if 0 < line <= len(lines):
            raw = lines[line - 1]
            column = len(raw) - len(raw.lstrip()) + 1
    return {"line": line, "column": column, "message": message}


@dataclass(frozen=True, slots=True)
class ManifestDoc:
    """An editable manifest: the room ``name`` is ``<slug>/<path>``."""

    repo: RegisteredRepo
    path: str

    @property
    def name(self) -> str:
        return f"{self.repo.slug}/{self.path}"

    @property
    def file(self) -> Path:
        return self.repo.path / self.path

    @property
    def kind(self) -> str:
        return EDITABLE[self.path]


def resolve_doc(hub: Hub, doc: str) -> ManifestDoc:
    """``<repo slug>/<path>`` to a registered repo's manifest, or a BadRequest/NotFound that says why."""
    doc = doc.strip("/")
    slug, _, path = doc.partition("/")
    if not slug or path not in EDITABLE:
        raise BadRequest(
            f"{doc!r} is not an editable manifest: name one as <repo slug>/<path> where path is "
            + " or ".join(EDITABLE)
        )
    return ManifestDoc(hub.repo(slug), path)
