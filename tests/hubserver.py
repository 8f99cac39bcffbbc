"""A real hub server in a child process on a free loopback port, for socket and browser tests."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = ["START_TIMEOUT", "HubServer", "free_port"]

START_TIMEOUT = 60.0
"""Seconds a server may take to answer /state/health: generous, since a loaded machine (or
pytest-xdist workers sharing two cores) can take well over 20 s to import and open a hub."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_PR_SET_PDEATHSIG = 1
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
"""Looked up once here: the child between fork and exec only calls it, taking no lock."""


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when the thread that started it ends, the test
    process included (even by SIGKILL), so a server never outlives a killed or timed-out run.
    Start servers from the test's own thread, not a worker thread that ends before the test."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


class HubServer:
    """``statehub serve`` over ``home`` (a STATEHUB_HOME); ``restart`` keeps the port and the data.
    ``watch`` turns the file watcher on (off by default: most tests refresh themselves); ``env``
    adds variables (``STATEHUB_PROFILE=fleet``). The server stops with the test process."""

    def __init__(
        self,
        home: Path,
        port: int | None = None,
        *,
        watch: bool = False,
        env: Mapping[str, str] | None = None,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.home = home
        self.port = port or free_port()
        self.watch = watch
        self.env = dict(env or {})
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.log = home / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> HubServer:
        return self.launch().wait_ready()

    def launch(self) -> HubServer:
        """Start the process and return at once (start several, then ``wait_ready`` each)."""
        env = dict(os.environ, STATEHUB_HOME=str(self.home), STATEHUB_WATCH="1" if self.watch else "0")
        env.pop("STATEHUB_DATABASE_URL", None)
        env.update(self.env)
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(  # -P: the cwd's statehub/ (a repo's) is never imported
                [
                    sys.executable,
                    "-P",
                    "-m",
                    "statehub",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # one prctl call, looked up before the fork
            )
        return self

    def wait_ready(self) -> HubServer:
        """Wait until ``/state/health`` answers 200 (``start_timeout``); stop and raise if it never does."""
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hub server exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/state/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"hub server did not answer in {self.start_timeout:g} s: {self.log.read_text()}")

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
