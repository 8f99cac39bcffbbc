"""How commands print: rich tables and lines for people, ``--json`` for scripts.

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
from typing import TYPE_CHECKING, Any

import msgspec
from rich.console import Console
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

__all__ = ["clean", "console", "err_console", "print_json", "print_table", "say"]

console = Console(highlight=False, markup=False, emoji=False)
err_console = Console(stderr=True, highlight=False, markup=False, emoji=False)

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
    line = Text.assemble(*(clean(p) if isinstance(p, str) else (clean(p[0]), p[1]) for p in parts))
    (file or console).print(line, soft_wrap=True)


def print_json(value: Any) -> None:
    """``value`` (the library's answer Structs, or lists and dicts of them) as indented JSON: the
    same fields and values the HTTP API answers."""
    sys.stdout.write(json.dumps(msgspec.to_builtins(value), indent=2, default=str) + "\n")


def print_table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], total: int | None = None
) -> None:
    table = Table(title=Text(clean(title)), title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(Text("" if v is None else clean(v)) for v in row))
    if console.is_terminal:
        console.print(table)
    else:
        _print_whole(table)
    if total is not None and total > len(rows):
        say(f"showing {len(rows)} of {total}; use --limit/--offset for more")


def _print_whole(table: Table) -> None:
    """Print ``table`` as wide as its widest cells need: piped output is never cut to 80 columns."""
    natural = Measurement.get(console, console.options.update_width(_UNBOUNDED), table).maximum
    wide = Console(file=console.file, width=max(natural, console.width), highlight=False, markup=False)
    wide.print(table)


@contextmanager
def progress_bar(label: str, total: int, *, hidden: bool = False) -> Iterator[Callable[[str], None]]:
    """A per-repo progress bar on the CLI's console: yields ``advance(slug)``; ``hidden`` for --json."""
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=hidden,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda _slug: bar.advance(task)
