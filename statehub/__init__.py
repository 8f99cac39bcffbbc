"""The hub itself: settings, cache, registration, git access, API, CLI, web UI."""

__all__ = ["__version__"]

__version__ = "0.1.0"
