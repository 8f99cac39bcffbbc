"""The packages that load their public names on first use (PEP 562, canon/ADR-033) answer the
same object however their submodules were imported before."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import types

import pytest

LAZY = ["workplans", "registry", "statehub", "statehub.cache"]


@pytest.mark.parametrize("package", LAZY)
def test_no_public_name_is_shadowed_by_a_submodule(package: str) -> None:
    """A public name equal to a submodule's name is hidden once that submodule is imported
    (the import system sets the package attribute to the module): ``registry.readiness`` was."""
    script = f"""
import importlib, pkgutil, types
package = importlib.import_module({package!r})
for info in pkgutil.iter_modules(package.__path__):
    if info.name == "__main__":
        continue
    importlib.import_module(f"{package}.{{info.name}}")
shadowed = [name for name in package.__all__
            if isinstance(getattr(package, name), types.ModuleType)]
assert not shadowed, shadowed
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_the_checker_sees_a_shadowed_name() -> None:
    registry = importlib.import_module("registry")
    names = {info.name for info in pkgutil.iter_modules(registry.__path__)}
    assert "readiness" in names and not isinstance(registry.readiness, types.ModuleType)
