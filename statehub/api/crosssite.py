"""Refuse cross-site requests: only our host names, only our origins change state, only JSON bodies.

Every web page a person visits is hostile (ADR-022): it can make their browser
send requests to ``127.0.0.1``. Three rules, applied to every HTTP request and
WebSocket upgrade before any handler runs, on both profiles (tokens do not
replace them on a dev hub):

- **Host.** Only configured names are answered: ``127.0.0.1``, ``localhost``,
  ``[::1]``, the hub's ``host`` setting and ``STATEHUB_ALLOWED_HOSTS`` (``*``
  answers any name). Anything else is 421 (a DNS-rebinding page's own name
  pointed at 127.0.0.1); no Host at all is 400.
- **Origin.** A state-changing request (POST, PUT, PATCH, DELETE) and every
  WebSocket upgrade must come from the hub's own origin (the Origin's host and
  port are the Host header's) or one in ``STATEHUB_ALLOWED_ORIGINS``. No Origin
  is allowed (curl, the CLI, relaying hubs send none) unless
  ``Sec-Fetch-Site`` says a browser sent it from another site; ``Origin: null``
  (sandboxed frames, ``file:`` pages) and ``Sec-Fetch-Site: cross-site``
  without an allowed Origin are refused. 403 with the reason.
- **JSON only.** A state-changing request that carries a body, or names a
  Content-Type, must say ``application/json`` (charset utf-8 if any): the
  content types a page may send without a CORS preflight (``text/plain``,
  forms, multipart) are refused with 415.

HTTP refusals are JSON ``{"error", "status_code"}`` like every hub error. A
refused WebSocket is accepted and closed at once with code ``4000 + status``
(4403, 4421, 4400) and the reason, which is what a browser can see; nothing is
read from it.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from statehub.settings import Settings

__all__ = ["CrossSitePolicy", "crosssite_middleware", "refuse"]

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - recognised in the settings, not bound


@dataclass(frozen=True, slots=True)
class CrossSitePolicy:
    """Which host names are answered and which foreign origins may change state."""

    hosts: frozenset[str]
    """Lower-case names without port or brackets; ``*`` answers any."""
    origins: frozenset[str]
    """Normalised ``scheme://host[:port]`` (default ports left out)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> CrossSitePolicy:
        names = [*LOOPBACK_NAMES, *settings.allowed_hosts]
        if settings.host not in _WILDCARD_BINDS:
            names.append(settings.host)
        hosts = frozenset(_host_name(name) for name in names)
        origins = frozenset(o for o in (_origin(value) for value in settings.allowed_origins) if o)
        return cls(hosts=hosts, origins=origins)

    def check(self, method: str, headers: dict[str, str], websocket: bool) -> tuple[int, str] | None:
        """(status, reason) when the request must be refused, else None."""
        host = headers.get("host")
        if not host or not host.strip():
            return 400, "the request has no Host header; send the hub's name, e.g. Host: 127.0.0.1:8750"
        name, port = _split_host(host)
        if name is None:
            return 400, f"the Host header {host!r} is not a host name"
        if "*" not in self.hosts and name not in self.hosts:
            return 421, (
                f"this hub does not answer to the name {name!r}; it answers to "
                f"{', '.join(sorted(self.hosts))}. A hub behind a proxy lists its public name "
                "in STATEHUB_ALLOWED_HOSTS"
            )
        if websocket or method in STATE_CHANGING:
            refused = self._check_origin(headers, name, port)
            if refused is not None:
                return 403, refused
        if not websocket and method in STATE_CHANGING:
            return _check_content_type(headers)
        return None

    def _check_origin(self, headers: dict[str, str], host: str, port: int | None) -> str | None:
        origin = headers.get("origin")
        fetch_site = headers.get("sec-fetch-site", "").strip().lower()
        if origin is None:
            if fetch_site in ("cross-site", "same-site"):
                return (
                    f"cross-site request refused: the browser says it came from another site "
                    f"(Sec-Fetch-Site: {fetch_site}) and sent no Origin"
                )
            return None
        if origin.strip().lower() == "null":
            return (
                "cross-site request refused: Origin: null (a sandboxed frame, a file: page or a "
                "redirect) cannot be checked; open the hub's own page instead"
            )
        normal = _origin(origin)
        if normal is None:
            return f"cross-site request refused: the Origin header {origin!r} is not an origin"
        if normal in self.origins:
            return None
        parts = urlsplit(normal)
        default = _DEFAULT_PORTS.get(parts.scheme)
        same = parts.hostname == host and (parts.port or default) == (port or default)
        if same and fetch_site != "cross-site":
            return None
        return (
            f"cross-site request refused: a page from {normal} may not change this hub's state; "
            "only the hub's own pages and origins listed in STATEHUB_ALLOWED_ORIGINS may"
        )


def _check_content_type(headers: dict[str, str]) -> tuple[int, str] | None:
    content_type = headers.get("content-type")
    has_body = headers.get("content-length", "0").strip() not in ("", "0") or "transfer-encoding" in headers
    if content_type is None:
        if not has_body:
            return None
        return 415, "the body has no Content-Type; send JSON with Content-Type: application/json"
    media, _, params = content_type.partition(";")
    if media.strip().lower() != "application/json":
        return 415, (
            f"the hub reads JSON bodies only, not {media.strip() or 'an empty type'!r}; "
            "send Content-Type: application/json"
        )
    for param in params.split(";"):
        key, _, value = param.partition("=")
        key, value = key.strip().lower(), value.strip().strip('"').lower()
        if not key:
            continue
        if key != "charset" or value not in ("utf-8", "utf8"):
            return 415, (
                f"Content-Type parameter {param.strip()!r} is not accepted: JSON is UTF-8, "
                "send Content-Type: application/json or application/json; charset=utf-8"
            )
    return None


def _host_name(name: str) -> str:
    return name.strip().strip("[]").rstrip(".").lower()


def _split_host(value: str) -> tuple[str | None, int | None]:
    """``name[:port]`` or ``[v6][:port]`` -> (lower-case name, port); (None, None) if malformed."""
    value = value.strip()
    if value.startswith("["):
        bracket, _, rest = value[1:].partition("]")
        try:
            ipaddress.IPv6Address(bracket)
        except ValueError:
            return None, None
        name, port_text = bracket, rest.removeprefix(":") if rest.startswith(":") else None
        if rest and port_text is None:
            return None, None
    else:
        name, colon, after = value.rpartition(":")
        name, port_text = (name, after) if colon else (value, None)
        if ":" in name:  # an unbracketed IPv6 address
            return None, None
    port: int | None = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            return None, None
        port = int(port_text)
    name = _host_name(name)
    if not name or any(c in name for c in "/\\@ \t") or not name.isascii():
        return None, None
    return name, port


def _origin(value: str) -> str | None:
    """``scheme://host[:port]``, lower case, default port left out; None if not an origin."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Last value of each header by lower-case name; a repeated Host or Origin is refused below."""
    found: dict[str, str] = {}
    for key, value in raw:
        name = key.decode("latin-1").lower()
        if name in found and name in ("host", "origin", "content-type"):
            found[name] = "\x00repeated"
            continue
        found[name] = value.decode("latin-1")
    return found


async def refuse(scope: Scope, receive: Receive, send: Send, status: int, reason: str) -> None:
    """Answer a refusal before the app sees the request: JSON for HTTP, accept-and-close for WS."""
    if scope["type"] == ScopeType.WEBSOCKET:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept", "subprotocol": None, "headers": []})
        await send({"type": "websocket.close", "code": 4000 + status, "reason": _close_reason(reason)})
        return
    body = json.dumps({"error": reason, "status_code": status}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _close_reason(reason: str) -> str:
    """A close frame's reason holds at most 123 bytes of UTF-8."""
    encoded = reason.encode("utf-8")[:123]
    return encoded.decode("utf-8", errors="ignore")


def crosssite_middleware(policy: CrossSitePolicy) -> Any:
    """The Litestar middleware factory enforcing ``policy`` on every HTTP request and WebSocket."""

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] not in (ScopeType.HTTP, ScopeType.WEBSOCKET):
                await app(scope, receive, send)
                return
            headers = _headers(scope["headers"])
            for name in ("host", "origin", "content-type"):
                if headers.get(name) == "\x00repeated":
                    await refuse(scope, receive, send, 400, f"the request repeats the {name} header")
                    return
            method = str(scope.get("method", "GET")) if scope["type"] == ScopeType.HTTP else "GET"
            refused = policy.check(method, headers, websocket=scope["type"] == ScopeType.WEBSOCKET)
            if refused is not None:
                await refuse(scope, receive, send, *refused)
                return
            await app(scope, receive, send)

        return middleware

    return factory
