"""``/mcp``: the hub's MCP server (statehub.mcpserver) over streamable HTTP, behind the token guard.

Mounted as an ASGI app: the guard runs first (``PER_EVENT``: a tokened hub authenticates
the request and refuses a missing or wrong token with the one error shape), then every
tool call acts as the token's actor, each read is authorised for its repo and each event
by ``event_authoriser(token)``, exactly as ``GET`` routes and ``POST /events`` are
(ADR-016, ADR-034). On an open hub (no tokens, loopback only) the actor is the
``X-Statehub-Actor`` header, else the server's own (``STATEHUB_ACTOR``, the login name).

Stateless and JSON-answering (``stateless=True``, ``json_response=True``): every POST
is one self-contained JSON-RPC exchange, so nothing is kept per client between requests
and any number of agents can call at once; other methods are 405. The hub's own Host/Origin checks
(statehub.api.crosssite) stand in for the SDK's DNS-rebinding protection.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from litestar import asgi
from litestar.connection import ASGIConnection
from litestar.exceptions import MethodNotAllowedException
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from statehub.auth import PER_EVENT, token_of
from statehub.auth.event_policy import event_authoriser
from statehub.auth.guard import authorize_request
from statehub.errors import BadRequest
from statehub.events.intake import default_actor
from statehub.mcpserver import Caller, build_server, read_anything

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from litestar.types import Receive, Scope, Send
    from mcp.server.context import ServerRequestContext

    from statehub.events import EventDesk
    from statehub.hub import Hub

__all__ = ["MCP_PATH", "mcp_endpoint", "open_mcp"]

MCP_PATH = "/mcp"
_CALLER = "statehub.mcp.caller"
ACTOR_HEADER = "x-statehub-actor"


@dataclass(frozen=True, slots=True)
class _ServerAccess:
    hub: Hub
    events: EventDesk

    def desk(self) -> EventDesk:
        return self.events


def _caller_of(ctx: ServerRequestContext[Any, Any]) -> Caller:
    request = ctx.request
    scope = getattr(request, "scope", None)
    caller = scope.get(_CALLER) if isinstance(scope, dict) else None
    if not isinstance(caller, Caller):  # pragma: no cover - every request comes through mcp_endpoint
        raise RuntimeError("an MCP request reached the server without passing the hub's guard")
    return caller


@asynccontextmanager
async def open_mcp(hub: Hub, desk: EventDesk) -> AsyncIterator[StreamableHTTPASGIApp]:
    """The ASGI app serving MCP for the app's lifespan (``app.state.mcp``)."""
    server = build_server(_ServerAccess(hub, desk), _caller_of)
    manager = StreamableHTTPSessionManager(
        app=server,
        json_response=True,
        stateless=True,
        security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        max_request_body_size=hub.settings.max_body_bytes,
    )
    async with manager.run():
        yield StreamableHTTPASGIApp(manager)


def _caller(scope: Scope) -> Caller:
    connection: ASGIConnection[Any, Any, Any, Any] = ASGIConnection(scope)
    token = token_of(connection)
    if token is not None:

        def may_read(repo: str | None) -> None:
            authorize_request(token, "read", repo)

        return Caller(actor=token.actor, authorise=event_authoriser(token), may_read=may_read)
    said = connection.headers.get(ACTOR_HEADER)
    if said is not None and not 0 < len(said) <= 200:
        raise BadRequest(f"{ACTOR_HEADER} must be 1 to 200 characters")
    return Caller(actor=said or default_actor(), authorise=event_authoriser(None), may_read=read_anything)


@asgi(MCP_PATH, is_mount=True, opt=PER_EVENT, copy_scope=True)
async def mcp_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """MCP streamable HTTP: POST JSON-RPC requests, answered as JSON (tools, resources).

    Only POST: a stateless server has nothing to push, so the optional ``GET`` stream (which
    would hold a connection open for ever) and session ``DELETE`` are 405 (the protocol's
    answer for "no stream here"), in the one error shape.
    """
    if scope.get("method") != "POST":
        raise MethodNotAllowedException(headers={"Allow": "POST"})
    scope[_CALLER] = _caller(scope)  # type: ignore[literal-required]
    endpoint: StreamableHTTPASGIApp = scope["app"].state.mcp
    await endpoint(scope, receive, send)  # type: ignore[arg-type]
