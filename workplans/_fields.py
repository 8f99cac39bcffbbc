"""Checked reads of TOML tables, collecting problems instead of stopping at the first."""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

from workplans.problems import FileProblem

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

E = TypeVar("E", bound=StrEnum)

_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "an array",
    dict: "a table",
    dt.date: "a date",
    dt.datetime: "a date-time",
}


def type_name(value: object) -> str:
    for kind, name in _TYPE_NAMES.items():
        if type(value) is kind:
            return name
    return type(value).__name__


class KeyLines:
    """Find the file line of a key, so semantic problems point at a line too.

    TOML parsers do not report positions for values, so we scan the raw text:
    top-level keys, then keys inside the n-th ``[[array]]`` table (and inside its
    sub-tables, such as the ``[workloads.gate]`` of the n-th ``[[workloads]]``).
    """

    _HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\-\" ]+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")

    def __init__(self, toml_text: str, first_line: int) -> None:
        # Scanned lazily: a valid file never needs a line number, and the scan
        # costs a third of parsing a workplan (bench/rebuild.py).
        self._text = toml_text
        self._first_line = first_line
        self._scanned = False
        self._lines: dict[tuple[str, int, str], int] = {}
        self._headers: dict[tuple[str, int], int] = {}

    def _scan(self) -> None:
        self._scanned = True
        counters: dict[str, int] = {}
        arrays: set[str] = set()
        table, index = "", 0
        for offset, raw in enumerate(self._text.splitlines()):
            line_no = self._first_line + offset
            header = self._HEADER.match(raw)
            if header:
                table = header.group(1).strip()
                if raw.lstrip().startswith("[["):
                    index = counters.get(table, -1) + 1
                    arrays.add(table)
                else:
                    # [workloads.gate] belongs to the latest [[workloads]] entry, so it shares its index
                    parent = table.rpartition(".")[0]
                    index = counters.get(parent, 0) if parent in arrays else 0
                counters[table] = index
                self._headers.setdefault((table, index), line_no)
                continue
            key = self._KEY.match(raw)
            if key:
                self._lines.setdefault((table, index, key.group(1)), line_no)

    def key(self, key: str, table: str = "", index: int = 0) -> int | None:
        if not self._scanned:
            self._scan()
        return self._lines.get((table, index, key)) or self._headers.get((table, index))

    def table(self, table: str, index: int = 0) -> int | None:
        if not self._scanned:
            self._scan()
        return self._headers.get((table, index))


class Reader:
    """Read keys of one TOML table with type checks, recording problems with lines."""

    def __init__(
        self,
        data: dict[str, Any],
        path: str,
        lines: KeyLines,
        problems: list[FileProblem],
        table: str = "",
        index: int = 0,
        label: str | Callable[[], str] = "",
    ) -> None:
        self.data = data
        self.path = path
        self.lines = lines
        self.problems = problems
        self.table = table
        self.index = index
        self.label = label

    def problem(self, key: str | None, message: str) -> None:
        line = (
            self.lines.key(key, self.table, self.index) if key else self.lines.table(self.table, self.index)
        )
        label = self.label() if callable(self.label) else self.label
        prefix = f"{label}: " if label else ""
        self.problems.append(FileProblem(self.path, line, prefix + message))

    def string(self, key: str, *, required: bool) -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                self.problem(None, f"missing required key '{key}'")
            return None
        if not isinstance(value, str):
            self.problem(key, f"'{key}' must be a string, not {type_name(value)}")
            return None
        if required and not value.strip():
            self.problem(key, f"'{key}' must not be empty")
            return None
        return value

    def pattern(self, key: str, pattern: re.Pattern[str], example: str) -> str | None:
        value = self.string(key, required=True)
        if value is not None and not pattern.fullmatch(value):
            self.problem(key, f"'{key}' = {value!r} does not match {pattern.pattern} (e.g. {example})")
            return None
        return value

    def choice(self, key: str, enum: type[E], *, default: E | None = None) -> E | None:
        value = self.string(key, required=default is None)
        if value is None:
            return default if key not in self.data else None
        member: E | None = _members(enum).get(value)
        if member is None:
            valid = " | ".join(m.value for m in enum)
            self.problem(key, f"'{key}' = {value!r} is not one of {valid}")
        return member

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(key, f"'{key}' must be an array of strings, not {type_name(value)}")
            return ()
        return tuple(value)

    def date(self, key: str) -> dt.date | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        self.problem(key, f"'{key}' must be a TOML date like 2026-05-02, not {type_name(value)}")
        return None

    def extra(self, known: Iterable[str]) -> dict[str, Any]:
        known_keys = known if isinstance(known, frozenset) else frozenset(known)
        return {k: v for k, v in self.data.items() if k not in known_keys}


@cache
def _members(enum: type[StrEnum]) -> dict[str, Any]:
    """Value -> member, once per enum: cheaper than ``enum(value)`` in a hot loop."""
    return {member.value: member for member in enum}
