"""Load TOML with errors that point at the real file line."""

from __future__ import annotations

import re
import tomllib
from typing import Any

from workplans.lines import split_lines
from workplans.problems import FileProblem, FormatError, toml_error_line

_LONE_CR = re.compile(r"\r(?!\n)")

CLEARER = {
    "Invalid value": 'a value is missing or not valid here: text needs quotes ("main")',
    "Expected '=' after a key in a key/value pair": 'a key needs " = " and a value after it (key = "value")',
    "Expected newline or end of document after a statement": (
        "one key = value per line: anything after the value must be a # comment"
    ),
    "Unclosed array": "a list opened with '[' is not closed with ']'",
    "Unclosed inline table": "a table opened with '{' is not closed with '}' on the same line",
    "Unterminated string": "a string is not closed: add the closing quote on the same line",
    "Invalid initial character for a key part": "a key must start with a letter, digit, _ or -, or be quoted",
}
"""tomllib's phrases that puzzle a person, said plainly (the editor shows them beside the line)."""


def load_toml(text: str, path: str, first_line: int = 1) -> dict[str, Any]:
    """Parse TOML text that starts on ``first_line`` of the file at ``path``.

    Raises FormatError with the file line. TOML ends lines with LF or CRLF
    only (https://toml.io/en/v1.0.0#spec): a lone CR (old Mac line endings)
    is reported as such, on its line, rather than as the parser's puzzle.
    """
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        lone = _LONE_CR.search(text)
        if lone is not None:
            file_line = first_line + len(split_lines(text[: lone.start()] + ".")) - 1
            message = "line ends with a lone carriage return (CR); TOML needs LF or CRLF line endings"
            raise FormatError([FileProblem(path, file_line, message)]) from None
        line, column, message = toml_error_line(str(error))
        message = CLEARER.get(message, message)
        at = line + first_line - 1 if line is not None else None
        where = f" (column {column})" if column is not None else ""
        raise FormatError([FileProblem(path, at, f"invalid TOML: {message}{where}")]) from None
