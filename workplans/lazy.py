"""Package exports loaded on first use (PEP 562): the one way our packages defer their imports.

A package lists each public name with the submodule defining it and ends with::

    __getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__)

so ``from workplans import TaskStatus`` loads ``workplans.models`` only, and a read command that
needs one enum does not load every parser and writer (canon/ADR-033).
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, where: Mapping[str, str], public: Iterable[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``: a name in ``where`` (name -> module) is
    imported from its module when first asked for and kept in the package's namespace; any other
    name raises :class:`AttributeError` as a missing attribute does."""
    names = set(public)

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | names)

    return __getattr__, __dir__
