"""Load TOML with errors that point at the real file line."""

from __future__ import annotations

import tomllib
from typing import Any

from workplans.problems import FileProblem, FormatError, toml_error_line


def load_toml(text: str, path: str, first_line: int = 1) -> dict[str, Any]:
    """Parse TOML text that starts on ``first_line`` of the file at ``path``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        line, column, message = toml_error_line(str(error))
        file_line = line + first_line - 1 if line is not None else None
        where = f" (column {column})" if column is not None else ""
        raise FormatError([FileProblem(path, file_line, f"invalid TOML: {message}{where}")]) from None
