"""How commands print: plain tables and rich lines for people, ``--json`` (in an envelope) for scripts.

What a command prints often comes from files and people (titles, owners, file
errors, reasons), so nothing here is read as Rich markup: the consoles have
markup off, styles are given as ``(text, style)`` pairs, and every piece of text
passes through ``clean`` first, which shows control characters as escapes
(``\\x1b``) instead of letting a repo file drive the terminal.

On a terminal tables fit the window; piped, they keep every cell whole, one
line per row, so ``grep`` and ``cut`` see full values.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import click
import msgspec

from statehub.answers import Freshness

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from rich.console import Console

__all__ = [
    "JSON_SCHEMA_VERSION",
    "Envelope",
    "clean",
    "command_name",
    "console",
    "err_console",
    "print_json",
    "print_json_error",
    "print_table",
    "say",
]

T = TypeVar("T")

JSON_SCHEMA_VERSION = 1
"""The version of the ``--json`` envelope (docs/architecture.md, "JSON output"): raised when a
field of the envelope, or of an answer inside it, changes meaning or goes away."""


class Envelope(msgspec.Struct, Generic[T], frozen=True):
    """What every ``--json`` prints: ``{"schema_version", "command", "data", "freshness"}``.

    ``data`` is the command's answer, in the shape the HTTP API answers (a list's
    ``{"items", "total"}``, a task, a summary); ``freshness`` says how current the
    cache was for the repos the answer draws on (``statehub.answers.Freshness``),
    null for commands that do not read the cache.
    """

    schema_version: int
    command: str
    """The command that answered, e.g. ``statehub tasks``."""
    data: T
    freshness: Freshness | None


class ErrorEnvelope(msgspec.Struct, frozen=True):
    """What a ``--json`` command prints when it fails: ``{"schema_version", "command", "data": null,
    "freshness": null, "error": {"error", "status_code", "exit_code", "details"?}}``; the one line on
    stderr and the exit code come as without ``--json``."""

    schema_version: int
    command: str
    data: None
    freshness: None
    error: dict[str, Any]


def print_json_error(
    message: str,
    status_code: int,
    exit_code: int,
    details: dict[str, Any] | None,
    command: str | None = None,
) -> None:
    """The :class:`ErrorEnvelope` on stdout, so an agent reading stdout learns why (docs: JSON output);
    ``command``: its name when no command's context is current (a usage error)."""
    error: dict[str, Any] = {"error": message, "status_code": status_code, "exit_code": exit_code}
    if details:
        error["details"] = details
    envelope = ErrorEnvelope(JSON_SCHEMA_VERSION, command or _command_name(), None, None, error)
    sys.stdout.write(json.dumps(msgspec.to_builtins(envelope), indent=2, default=str) + "\n")


@cache
def console() -> Console:
    """The CLI's rich console on stdout (markup off), made when first used: read commands,
    which print plain tables, never load rich."""
    from rich.console import Console

    return Console(highlight=False, markup=False, emoji=False)


@cache
def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, markup=False, emoji=False)


_ESCAPED = {
    code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if code not in (0x09, 0x0A)
} | {code: f"\\u{code:04x}" for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}
"""C0 and C1 control characters but tab and newline, DEL, and the bidirectional overrides
(which reorder what a reader sees): each is shown as its escape."""

_UNBOUNDED = 1_000_000
"""A width no table reaches: used to measure a table's natural width."""


def clean(value: object) -> str:
    """``value`` as text safe to show on a terminal: control characters become visible escapes."""
    return str(value).translate(_ESCAPED)


Part = str | tuple[str, str]
"""Text to print as it is, or ``(text, style)``, e.g. ``("PAUSED", "bold")``."""


def say(*parts: Part, file: Console | None = None) -> None:
    """Print one line made of ``parts``, never as markup and never hard-wrapped."""
    from rich.text import Text

    line = Text.assemble(*(clean(p) if isinstance(p, str) else (clean(p[0]), p[1]) for p in parts))
    (file or console()).print(line, soft_wrap=True)


def command_name(ctx: click.Context | None) -> str:
    """``statehub`` and the subcommand path of ``ctx``, however the program was started
    (``statehub``, ``python -m statehub``)."""
    if ctx is None:
        return "statehub"
    root = ctx.find_root().command_path
    return " ".join(["statehub", *ctx.command_path[len(root) :].split()])


def _command_name() -> str:
    return command_name(click.get_current_context(silent=True))


def print_json(value: Any, freshness: Freshness | None = None) -> None:
    """``value`` (the library's answer Structs, or lists and dicts of them) as indented JSON in the
    :class:`Envelope`: the same fields and values the HTTP API answers, under ``data``."""
    envelope = Envelope(JSON_SCHEMA_VERSION, _command_name(), value, freshness)
    # json.dumps keeps ensure_ascii: a bidirectional override from a file is printed as \u202e
    sys.stdout.write(json.dumps(msgspec.to_builtins(envelope), indent=2, default=str) + "\n")


_ELLIPSIS = "\u2026"


def print_table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], total: int | None = None
) -> None:
    """A title line, a header and one line per row, columns padded to their widest cell.

    Piped, every cell is whole (``grep`` and ``cut`` see full values); on a
    terminal the widest columns are cut (ending in ``…``) until a row fits the window.
    Plain text, no rich: the read commands print tables and must start at once.
    """
    cells = [[clean(c) for c in columns]]
    cells += [["" if v is None else clean(v).replace("\n", " ") for v in row] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    out = sys.stdout
    room = terminal_width()
    if room is not None:
        widths = _fit(widths, room)
    lines = [clean(title)]
    for line in cells:
        shown = [_cut(cell, width) for cell, width in zip(line, widths, strict=True)]
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(shown, widths, strict=True)).rstrip())
    if total is not None and total > len(rows):
        lines.append(f"showing {len(rows)} of {total}; use --limit/--offset for more")
    out.write("\n".join(lines) + "\n")


def terminal_width() -> int | None:
    """The window's width in columns when stdout is a terminal; None when it is piped."""
    if not sys.stdout.isatty():
        return None
    import shutil  # here: it loads the compression modules, which a piped read never needs

    return shutil.get_terminal_size().columns


def _fit(widths: list[int], room: int) -> list[int]:
    """Narrow the widest columns, one character at a time, until a row fits in ``room``."""
    fitted = list(widths)
    while sum(fitted) + 2 * (len(fitted) - 1) > room and max(fitted) > 8:
        fitted[fitted.index(max(fitted))] -= 1
    return fitted


def _cut(cell: str, width: int) -> str:
    return cell if len(cell) <= width else cell[: max(width - 1, 0)] + _ELLIPSIS


@contextmanager
def progress_bar(label: str, total: int, *, hidden: bool = False) -> Iterator[Callable[[str], None]]:
    """A per-repo progress bar on the CLI's console: yields ``advance(slug)``; ``hidden`` for --json."""
    if hidden:
        yield lambda _slug: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(),
        auto_refresh=False,  # no refresh thread: statehub rebuild forks its worker under the bar
    ) as bar:
        task = bar.add_task(label, total=total)

        def advance(_slug: str) -> None:
            bar.advance(task)
            bar.refresh()

        yield advance
