"""tests/node's npm packages (yjs, y-websocket), installed once even when pytest-xdist workers race."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

import pytest

__all__ = ["NODE_DIR", "node_packages"]

NODE_DIR = Path(__file__).resolve().parent / "node"


def node_packages() -> Path:
    """tests/node with its ``node_modules`` present: ``npm ci`` (from its package-lock.json) if missing.

    ``make test`` runs the suite on several workers; an exclusive lock on a file in tests/node
    makes a second worker wait for the first one's ``npm ci`` instead of running its own over it.
    Fails the test when node is not installed (.ci/run installs it).
    """
    if shutil.which("node") is None:
        pytest.fail("node is not installed: .ci/run installs it; see README, web UI")
    with (NODE_DIR / "node_modules.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (NODE_DIR / "node_modules" / "y-websocket").is_dir():
            subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, capture_output=True
            )
    return NODE_DIR
