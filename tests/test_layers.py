"""ADR-002: imports point one way, workplans <- registry <- sync <- statehub."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["workplans", "registry", "sync", "statehub"]
FORBIDDEN_IN_SYNC = {"litestar"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", ORDER)
def test_imports_point_one_way(package: str) -> None:
    allowed_below = set(ORDER[: ORDER.index(package) + 1])
    above = set(ORDER) - allowed_below
    offenders = []
    for module in sorted((ROOT / package).rglob("*.py")):
        bad = _imports(module) & above
        if package == "sync":
            bad |= _imports(module) & FORBIDDEN_IN_SYNC
        if bad:
            offenders.append(f"{module.relative_to(ROOT)} imports {sorted(bad)}")
    assert offenders == [], "imports against ADR-002:\n" + "\n".join(offenders)


def test_the_layer_test_sees_a_wrong_arrow(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("from statehub.hub import Hub\nimport sync.buffer\n")
    assert _imports(module) == {"statehub", "sync"}
