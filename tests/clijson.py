"""Read what a ``statehub ... --json`` printed: the envelope (docs/architecture.md, "JSON output")."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["cli_data", "cli_envelope"]


def cli_envelope(text: str) -> dict[str, Any]:
    """The whole envelope, checked for its keys and schema version."""
    envelope: dict[str, Any] = json.loads(text)
    assert set(envelope) == {"schema_version", "command", "data", "freshness"}, envelope
    assert envelope["schema_version"] == 1
    assert envelope["command"].startswith("statehub")
    return envelope


def cli_data(text: str) -> Any:
    """The answer inside the envelope (``data``)."""
    return cli_envelope(text)["data"]
