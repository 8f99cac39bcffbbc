"""Real hub processes for the event benchmarks: start one on loopback, count what it committed."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

__all__ = ["count_trailers", "free_port", "start_hub"]

_TRAILER = re.compile(r"^Statehub-Event: (\S+)$", re.MULTILINE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_hub(home: Path, port: int, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """``statehub serve`` on 127.0.0.1:``port`` with its own home and an SQLite cache, once healthy."""
    environ = os.environ | {"STATEHUB_HOME": str(home), "STATEHUB_WATCH": "0"} | env
    environ.pop("STATEHUB_DATABASE_URL", None)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "statehub", "serve", "--port", str(port)],
            env=environ,
            stdout=out,
            stderr=out,
        )
    for _ in range(1200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/state/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit(f"hub did not start: {log.read_text()}")


def count_trailers(repos: Iterable[Path]) -> dict[str, int]:
    """``Statehub-Event`` trailers per key across the repos' histories; a dirty repo ends the run."""
    counts: dict[str, int] = {}
    for repo in repos:
        log = subprocess.run(
            ["git", "log", "--format=%B"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout
        for key in _TRAILER.findall(log):
            counts[key] = counts.get(key, 0) + 1
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout
        if dirty:
            raise SystemExit(f"{repo} has uncommitted changes after the run:\n{dirty}")
    return counts
