"""A real hub server in a subprocess, on a free 127.0.0.1 port, under its own STATEHUB_HOME."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["HubProcess"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class HubProcess:
    def __init__(self, home: Path, log: Path) -> None:
        self.home = home
        self.log = log
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, **env: str) -> None:
        environ = os.environ | {"STATEHUB_HOME": str(self.home), "STATEHUB_WATCH": "0"} | env
        environ.pop("STATEHUB_DATABASE_URL", None)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(  # -P: the cwd's statehub/ (a repo's) is never imported
                [
                    sys.executable,
                    "-P",
                    "-m",
                    "statehub",
                    "serve",
                    "--port",
                    str(self.port),
                ],
                env=environ,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"hub exited with {self.process.returncode}: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/state/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"hub did not start: {self.log.read_text()}")

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}{path}", timeout=60, **kwargs)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def wait_exit(self, timeout: float = 60) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def wait_settled(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.call("GET", "/state/health").json()["buffer"]["pending"] == 0:
                return
            time.sleep(0.1)
        raise AssertionError("events still pending: " + self.call("GET", "/events?state=pending").text[:2000])
