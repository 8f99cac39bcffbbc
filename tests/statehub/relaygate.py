"""A real HTTP server in front of a real upstream hub: forwards requests, or answers as told.

It plays what the upstream side may do to a relay that the hub itself has no
switch for: refuse a revoked token (401), be overloaded (503/429 with
``Retry-After``). Every request it sees is logged with its time and token.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

__all__ = ["Gate"]


class Gate:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.tokens: set[str] | None = None
        """Bearer tokens let through; None lets every request through."""
        self.answer: tuple[int, dict[str, str]] | None = None
        """Answer every request with this status and headers instead of forwarding."""
        self.seen: list[tuple[float, str, str | None, int]] = []
        """(monotonic time, path, token, status answered)."""
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def _handle(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                auth = self.headers.get("Authorization") or ""
                token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
                status, headers, content = gate._respond(method, self.path, body, token)
                gate.seen.append((time.monotonic(), self.path, token, status))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _respond(
        self, method: str, path: str, body: bytes, token: str | None
    ) -> tuple[int, dict[str, str], bytes]:
        json_type = {"Content-Type": "application/json"}
        if self.tokens is not None and token not in self.tokens:
            return 401, json_type, b'{"error": "token revoked", "status_code": 401}'
        if self.answer is not None:
            status, headers = self.answer
            return status, json_type | headers, b'{"error": "busy", "status_code": %d}' % status
        forwarded = httpx.request(
            method,
            f"{self.upstream}{path}",
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
        return forwarded.status_code, {"Content-Type": "application/json"}, forwarded.content

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
