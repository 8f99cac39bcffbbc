"""ADR-022, cross-site: a hostile page cannot write through the user's browser, against a real hub process.

Each refused request carries a real event, a real repo registration, a real
save: were it let through, something would be stored or committed. Each test
asserts the answer and that nothing was: no event in the buffer, no repo
registered or removed, no commit.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import TYPE_CHECKING, Any, cast

import pytest
import websockets
from pycrdt import Doc, Text, create_sync_message, create_update_message

from statehub.hub import Hub
from statehub.settings import Settings
from sync import ysync
from sync.seed import TEXT_NAME
from tests.gitfixtures import GitRepo
from tests.statehub.eventfixtures import event, plan_repo
from tests.statehub.hubprocess import HubProcess
from tests.ysync_client import YClient

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

MANIFEST = '[repo]\nslug = "the-custodian"\ntitle = "Custodian"\nprefixes = ["CUST", "OTHER"]\n'
ALLOWED_ORIGIN = "http://editor.test:5173"
ALLOWED_HOST = "hub.test"


class Site:
    """One hub process over one registered repo, and a second repo nobody registered."""

    def __init__(self, hub: HubProcess, repo: GitRepo, stranger: GitRepo) -> None:
        self.hub = hub
        self.repo = repo
        self.stranger = stranger
        self.head = repo.git("rev-parse", "HEAD")

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.hub.port}"

    def assert_untouched(self) -> None:
        assert self.hub.call("GET", "/events").json()["total"] == 0
        repos = [r["slug"] for r in self.hub.call("GET", "/repos").json()["items"]]
        assert repos == ["the-custodian"]
        assert self.repo.git("rev-parse", "HEAD") == self.head
        assert self.repo.git("status", "--porcelain") == ""
        assert self.repo.read("statehub.toml") == MANIFEST


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("crosssite")
    repo = plan_repo(lambda name: GitRepo(base / "repos" / name))
    repo.write("statehub.toml", MANIFEST)
    repo.commit("manifest")
    stranger = GitRepo(base / "repos" / "stranger")
    stranger.commit("empty")
    home = base / "home"
    hub = Hub(Settings.from_env({"STATEHUB_HOME": str(home)}))
    hub.register(repo.root)
    hub.close()
    process = HubProcess(home, base / "hub.log")
    process.start(STATEHUB_ALLOWED_ORIGINS=ALLOWED_ORIGIN, STATEHUB_ALLOWED_HOSTS=ALLOWED_HOST)
    try:
        yield Site(process, repo, stranger)
    finally:
        process.stop()


def _body(value: Any) -> bytes:
    return json.dumps(value).encode()


EVENT = event("01JZ3K7T2Q9CROSSSITE000001", "progress.note", repo="the-custodian")

CONTENT_TYPES = {
    "text/plain": "text/plain;charset=UTF-8",
    "form": "application/x-www-form-urlencoded",
    "multipart": "multipart/form-data; boundary=x",
    "none": None,
    "json": "application/json",
    "json-utf8": "application/json; charset=utf-8",
    "json-latin1": "application/json; charset=latin-1",
    "json-ish": "application/json-patch+json",
}
JSON_TYPES = {"json", "json-utf8"}


def _origins(site: Site) -> dict[str, tuple[dict[str, str], str | None]]:
    """name -> (headers, the reason's telltale when refused; None when allowed)."""
    return {
        "absent": ({}, None),
        "same": ({"Origin": site.origin, "Sec-Fetch-Site": "same-origin"}, None),
        "allowed": ({"Origin": ALLOWED_ORIGIN, "Sec-Fetch-Site": "cross-site"}, None),
        "foreign": ({"Origin": "https://evil.example"}, "https://evil.example may not change"),
        "other-port": ({"Origin": "http://127.0.0.1:1"}, "http://127.0.0.1:1 may not change"),
        "localhost-other-port": ({"Origin": "http://localhost:5173"}, "http://localhost:5173 may not"),
        "null": ({"Origin": "null"}, "Origin: null"),
        "fetch-cross-site": ({"Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site: cross-site"),
        "fetch-same-site": ({"Sec-Fetch-Site": "same-site"}, "Sec-Fetch-Site: same-site"),
        "same-but-cross-site": ({"Origin": site.origin, "Sec-Fetch-Site": "cross-site"}, "may not change"),
    }


ORIGIN_NAMES = [
    "absent",
    "same",
    "allowed",
    "foreign",
    "other-port",
    "localhost-other-port",
    "null",
    "fetch-cross-site",
    "fetch-same-site",
    "same-but-cross-site",
]


@pytest.mark.parametrize("origin_name", ORIGIN_NAMES)
@pytest.mark.parametrize("type_name", list(CONTENT_TYPES))
def test_an_event_is_stored_only_from_our_origin_as_json(
    site: Site, origin_name: str, type_name: str
) -> None:
    headers, refused_because = _origins(site)[origin_name]
    content_type = CONTENT_TYPES[type_name]
    if content_type is not None:
        headers = headers | {"Content-Type": content_type}
    passes = refused_because is None and type_name in JSON_TYPES
    # What passes reaches the handler with an empty list (422, nothing stored); what is refused
    # carries a real event that would be stored were it let through.
    answer = site.hub.call("POST", "/events", content=_body([] if passes else EVENT), headers=headers)
    if refused_because is not None:
        assert answer.status_code == 403, answer.text
        assert "cross-site request refused" in answer.json()["error"]
        assert refused_because in answer.json()["error"]
    elif not passes:
        assert answer.status_code == 415, answer.text
        assert "Content-Type" in answer.json()["error"]
    else:
        assert answer.status_code == 422, answer.text
        assert answer.json()["details"]["problems"][0]["message"] == "the list is empty"
    site.assert_untouched()


@pytest.mark.parametrize("type_name", [t for t in CONTENT_TYPES if t not in JSON_TYPES])
def test_a_repo_is_registered_only_from_json(site: Site, type_name: str) -> None:
    content_type = CONTENT_TYPES[type_name]
    headers = {"Content-Type": content_type} if content_type else {}
    answer = site.hub.call(
        "POST", "/repos", content=_body({"path": str(site.stranger.root)}), headers=headers
    )
    assert answer.status_code == 415, answer.text
    assert "application/json" in answer.json()["error"]
    site.assert_untouched()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/repos", {"path": "STRANGER"}),
        ("DELETE", "/repos/the-custodian", None),
        ("POST", "/repos/the-custodian/refresh", None),
        ("POST", "/sweeps", {}),
        ("POST", "/sync/the-custodian/statehub.toml/save?user=Mallory", None),
        ("POST", "/events?each=true", [EVENT]),
    ],
)
@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://127.0.0.1:1"])
def test_every_state_changing_route_checks_the_origin(
    site: Site, method: str, path: str, body: Any, origin: str
) -> None:
    if body == {"path": "STRANGER"}:
        body = {"path": str(site.stranger.root)}
    content = _body(body) if body is not None else None
    headers = {"Origin": origin} | ({"Content-Type": "application/json"} if content else {})
    answer = site.hub.call(method, path, content=content, headers=headers)
    assert answer.status_code == 403, answer.text
    assert "cross-site request refused" in answer.json()["error"]
    site.assert_untouched()


def _hosts(site: Site) -> dict[str, tuple[str, int]]:
    port = site.hub.port
    return {
        "loopback-ip": (f"127.0.0.1:{port}", 200),
        "localhost": (f"localhost:{port}", 200),
        "localhost-no-port": ("localhost", 200),
        "ipv6": (f"[::1]:{port}", 200),
        "configured": (f"{ALLOWED_HOST}:{port}", 200),
        "upper-case": (f"LOCALHOST:{port}", 200),
        "rebinding": (f"evil.example:{port}", 421),
        "rebinding-no-port": ("evil.example", 421),
        "subdomain-of-localhost": (f"evil.localhost.example:{port}", 421),
        "other-ip": (f"10.1.2.3:{port}", 421),
        "other-loopback": (f"127.0.0.2:{port}", 421),
        "other-ipv6": (f"[fe80::1]:{port}", 421),
        "bad-port": ("127.0.0.1:99999", 400),
        "unbracketed-ipv6": (f"::1:{port}", 400),
        "userinfo": (f"evil@127.0.0.1:{port}", 400),
    }


HOST_NAMES = [
    "loopback-ip",
    "localhost",
    "localhost-no-port",
    "ipv6",
    "configured",
    "upper-case",
    "rebinding",
    "rebinding-no-port",
    "subdomain-of-localhost",
    "other-ip",
    "other-loopback",
    "other-ipv6",
    "bad-port",
    "unbracketed-ipv6",
    "userinfo",
]


@pytest.mark.parametrize("host_name", HOST_NAMES)
def test_only_configured_host_names_are_answered(site: Site, host_name: str) -> None:
    host, status = _hosts(site)[host_name]
    read = site.hub.call("GET", "/repos", headers={"Host": host})
    assert read.status_code == status, read.text
    refused = status != 200
    write = site.hub.call(
        "POST",
        "/events",
        content=_body(EVENT if refused else []),
        headers={"Host": host, "Content-Type": "application/json"},
    )
    if not refused:
        assert read.json()["total"] == 1
        assert write.status_code == 422, write.text  # reached the handler: an empty list
        site.assert_untouched()
        return
    assert write.status_code == status, write.text
    message = read.json()["error"]
    assert ("does not answer to the name" in message) if status == 421 else ("Host" in message)
    site.assert_untouched()


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):  # every request here ends with the server closing
            answer += chunk
    return answer


def test_a_request_without_host_is_refused(site: Site) -> None:
    body = _body(EVENT)
    request = (
        b"POST /events HTTP/1.0\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    answer = _raw(site.hub.port, request)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"no Host header" in answer
    site.assert_untouched()


def test_a_repeated_host_or_origin_is_refused(site: Site) -> None:
    body = _body(EVENT)
    for extra in (b"Host: evil.example\r\n", b"Origin: http://127.0.0.1\r\nOrigin: https://evil.example\r\n"):
        request = (
            f"POST /events HTTP/1.1\r\nHost: 127.0.0.1:{site.hub.port}\r\nConnection: close\r\n".encode()
            + extra
            + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        answer = _raw(site.hub.port, request)
        assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
        # uvicorn's parser refuses a second Host itself; the hub refuses a second Origin.
        assert b"repeats the" in answer or b"Invalid HTTP request" in answer
    site.assert_untouched()


# --- WebSocket upgrades: the editor's socket can save, so it is a write like any POST.


def _room(site: Site) -> str:
    return f"ws://127.0.0.1:{site.hub.port}/sync/the-custodian/statehub.toml?user=Mallory"


async def _try_to_save(site: Site, origin: str | None) -> tuple[int, str] | None:
    """Connect with ``origin``, edit and save at once; the close (code, reason), or None if it stayed open."""
    socket_ = await websockets.connect(_room(site), origin=cast("Any", origin), max_size=None)
    doc: Doc[Any] = Doc()
    text = doc.get(TEXT_NAME, type=Text)
    with doc.transaction():
        text.insert(0, "# planted by another site\n")
    try:
        await socket_.send(create_sync_message(Doc()))
        await socket_.send(create_update_message(doc.get_update()))
        await socket_.send(ysync.hub_message({"type": "save"}))
        while True:
            await asyncio.wait_for(socket_.recv(), 3)
    except websockets.ConnectionClosed:
        return socket_.close_code or 0, socket_.close_reason or ""
    except TimeoutError:
        return None
    finally:
        await socket_.close()


@pytest.mark.parametrize(
    ("origin", "refused"),
    [
        ("https://evil.example", "https://evil.example may not change"),
        ("null", "Origin: null"),
        ("http://127.0.0.1:1", "http://127.0.0.1:1 may not change"),
        ("http://localhost:5173", "http://localhost:5173 may not"),
    ],
)
def test_a_socket_from_another_origin_is_closed_with_4403(site: Site, origin: str, refused: str) -> None:
    closed = asyncio.run(_try_to_save(site, origin))
    assert closed is not None
    code, reason = closed
    assert code == 4403
    assert "cross-site request refused" in reason
    assert refused[:40] in reason or refused in reason
    site.assert_untouched()


@pytest.mark.parametrize("origin", [None, "same", ALLOWED_ORIGIN])
def test_a_socket_from_our_origin_opens_and_syncs(site: Site, origin: str | None) -> None:
    async def scenario() -> str:
        chosen = site.origin if origin == "same" else origin
        client = YClient(_room(site))
        client._ws = await websockets.connect(client.url, origin=cast("Any", chosen), max_size=None)
        client._task = asyncio.create_task(client._read())
        await client._ws.send(create_sync_message(client.doc))
        await asyncio.wait_for(client.synced.wait(), 5)
        text = str(client.text)
        await client.close()
        return text

    assert asyncio.run(scenario()) == MANIFEST
    site.assert_untouched()


def _ws_upgrade(site: Site, host: str, origin: str | None = None) -> bytes:
    lines = [
        "GET /sync/the-custodian/statehub.toml?user=Mallory HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ]
    if origin:
        lines.append(f"Origin: {origin}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", site.hub.port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer and answer.split(b"\r\n\r\n", 1)[1][:1] == b"\x88":
                break
    return answer


def _close_frame(answer: bytes) -> tuple[int, str]:
    head, frame = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    assert frame[0] == 0x88, frame[:4]
    length = frame[1] & 0x7F
    payload = frame[2 : 2 + length]
    return int.from_bytes(payload[:2], "big"), payload[2:].decode()


@pytest.mark.parametrize(
    ("host", "code", "telltale"),
    [
        ("evil.example:{port}", 4421, "does not answer to the name"),
        ("10.1.2.3:{port}", 4421, "does not answer to the name"),
        ("127.0.0.1:99999", 4400, "is not a host name"),
    ],
)
def test_a_socket_to_a_foreign_host_name_is_closed(site: Site, host: str, code: int, telltale: str) -> None:
    answer = _ws_upgrade(site, host.format(port=site.hub.port))
    closed_code, reason = _close_frame(answer)
    assert closed_code == code
    assert telltale in reason
    site.assert_untouched()


def test_a_raw_socket_from_a_foreign_origin_is_closed_before_any_message(site: Site) -> None:
    answer = _ws_upgrade(site, f"127.0.0.1:{site.hub.port}", "https://evil.example")
    code, reason = _close_frame(answer)
    assert code == 4403
    assert "https://evil.example" in reason
    site.assert_untouched()


def test_settings_reject_values_that_are_not_names_or_origins(tmp_path: Path) -> None:
    env = {"STATEHUB_HOME": str(tmp_path)}
    with pytest.raises(ValueError, match="STATEHUB_ALLOWED_ORIGINS"):
        Settings.from_env(env | {"STATEHUB_ALLOWED_ORIGINS": "evil.example"})
    with pytest.raises(ValueError, match="STATEHUB_ALLOWED_ORIGINS"):
        Settings.from_env(env | {"STATEHUB_ALLOWED_ORIGINS": "https://evil.example/path"})
    with pytest.raises(ValueError, match="STATEHUB_ALLOWED_HOSTS"):
        Settings.from_env(env | {"STATEHUB_ALLOWED_HOSTS": "https://hub.example"})
    settings = Settings.from_env(env | {"STATEHUB_ALLOWED_HOSTS": "a.example, b.example c.example"})
    assert settings.allowed_hosts == ("a.example", "b.example", "c.example")
