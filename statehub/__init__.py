"""The hub itself: settings, cache, registration, git access, API, CLI, web UI."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    """``__version__``: written once, in pyproject.toml; read from the installed package's metadata
    when first asked for (importlib.metadata is not loaded by every command; canon/ADR-033)."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import version

    found = version("statehub")
    globals()["__version__"] = found
    return found
