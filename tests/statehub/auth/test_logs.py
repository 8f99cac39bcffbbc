"""Tokens never appear in logs: a real server, run the way ``statehub serve`` runs it."""

from __future__ import annotations

import datetime as dt
import logging
import socket
import threading
import time
from typing import TYPE_CHECKING

import httpx
import pytest
import uvicorn
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from statehub.app import create_app
from statehub.auth.keys import init_root_key, load_root_key
from statehub.auth.tokens import mint
from statehub.cli.serve import server_config
from tests.statehub.auth.conftest import probe_events, probe_sync

if TYPE_CHECKING:
    from collections.abc import Iterator

    from statehub.settings import Settings
    from tests.gitfixtures import GitRepo

CLIENT_LOGGERS = ("httpx", "httpcore", "websockets.client")
"""This test's own clients log their requests at DEBUG; only the hub's side is under test."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def served(settings: Settings, guarded_repos: list[GitRepo]) -> Iterator[tuple[str, Settings]]:
    init_root_key(settings.root_key_file)
    secure = settings.with_overrides(auth="required", port=_free_port())
    app = create_app(secure)
    app.register(probe_events)
    app.register(probe_sync)
    app.state.written = []
    server = uvicorn.Server(server_config(app, secure))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # an operator turning logging up
        logging.getLogger(name).setLevel(logging.DEBUG)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"127.0.0.1:{secure.port}", secure
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_no_token_reaches_the_logs(
    served: tuple[str, Settings], caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    address, settings = served
    caplog.set_level(logging.DEBUG)
    root = load_root_key(settings.root_key_file)
    good = mint(root, "agt-log", "edit").to_base64()
    expired = mint(
        root,
        "agt-log",
        "read",
        ttl=dt.timedelta(minutes=1),
        now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
    ).to_base64()
    forged = good[:-8] + ("AAAAAAAA" if not good.endswith("AAAAAAAA") else "BBBBBBBB")
    tokens = [good, expired, forged]
    with httpx.Client(base_url=f"http://{address}") as client:
        for token in tokens:
            client.get("/tasks", headers={"Authorization": f"Bearer {token}"})
            client.get(f"/tasks?token={token}")
            client.post(
                "/probe/events",
                json=[{"repo": "alpha", "actor": "someone-else"}],
                headers={"Authorization": f"Bearer {token}"},
            )
    statuses = []
    for token in tokens:
        try:
            with connect(f"ws://{address}/probe/sync/alpha?token={token}") as ws:
                statuses.append(("accepted", ws.recv()))
        except ConnectionClosed as refused:  # accepted, then closed with the reason (ADR-016)
            statuses.append(("refused", refused.rcvd.code if refused.rcvd else None))
    assert statuses[0][0] == "accepted"
    assert statuses[1:] == [("refused", 4401), ("refused", 4401)]
    captured = capfd.readouterr()
    server_records = [r for r in caplog.records if not r.name.startswith(CLIENT_LOGGERS)]
    assert any("[redacted]" in r.getMessage() for r in server_records)  # handshakes were logged
    logged = "\n".join(r.getMessage() for r in server_records) + captured.out + captured.err
    for token in tokens:
        for piece in (token, token[:40], token[-40:]):
            assert piece not in logged


def test_redact_covers_query_and_bearer() -> None:
    from statehub.auth.redact import redact

    line = '127.0.0.1:5 - "WebSocket /sync/doc?x=1&token=EooCCp8-_=&y=2" 403 Authorization: Bearer EooC.x/+='
    assert redact(line) == (
        '127.0.0.1:5 - "WebSocket /sync/doc?x=1&token=[redacted]&y=2" 403 Authorization: Bearer [redacted]'
    )
