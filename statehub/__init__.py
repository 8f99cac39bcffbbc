"""The hub itself: settings, cache, registration, git access, API, CLI, web UI."""

from importlib.metadata import version

__all__ = ["__version__"]

__version__ = version("statehub")
"""Written once, in pyproject.toml; read from the installed package's metadata."""
