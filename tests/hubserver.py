"""A real hub server in a child process on a free loopback port, for socket and browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["START_TIMEOUT", "HubServer", "free_port"]

START_TIMEOUT = 60.0
"""Seconds a server may take to answer /state/health: generous, since a loaded machine (or
pytest-xdist workers sharing two cores) can take well over 20 s to import and open a hub."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HubServer:
    """``statehub serve`` over ``home`` (a STATEHUB_HOME); ``restart`` keeps the port and the data.
    ``watch`` turns the file watcher on (off by default: most tests refresh themselves)."""

    def __init__(self, home: Path, port: int | None = None, *, watch: bool = False) -> None:
        self.home = home
        self.port = port or free_port()
        self.watch = watch
        self.process: subprocess.Popen[bytes] | None = None
        self.log = home / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> HubServer:
        env = dict(os.environ, STATEHUB_HOME=str(self.home), STATEHUB_WATCH="1" if self.watch else "0")
        env.pop("STATEHUB_DATABASE_URL", None)
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "statehub", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hub server exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/state/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()  # a server that never answered is not left running after the test
        raise RuntimeError(f"hub server did not answer in {START_TIMEOUT:.0f} s: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
