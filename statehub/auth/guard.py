"""One guard for every route: HTTP requests and WebSocket upgrades (before accept).

The right a route needs comes from its ``opt``; without one, reads (GET, HEAD)
need ``read``, a WebSocket upgrade needs ``read``, and anything else needs
``admin``, so a new route is closed until someone says otherwise:

    @post("/repos/{slug:str}/refresh", opt=requires("admin"))        # repo from the path
    @websocket("/sync/{doc:str}", opt=requires("edit", repo=repo_of_doc))
    @post("/events", opt=PER_EVENT)     # intake authorises each event (auth.event_policy)

A route marked ``PER_EVENT`` is only authenticated here; its handler passes
``event_authoriser(token_of(request))`` to intake, which asks it about every
event of a batch before storing any of them (``statehub.auth.event_policy``).

The token comes from ``Authorization: Bearer <token>``; a WebSocket upgrade may
instead send ``?token=<token>`` (browsers cannot set headers on a WebSocket),
which is why the server runs without access logs. Without either, a browser's
session cookie (``POST /auth/session``, :mod:`statehub.auth.sessions`, ADR-040)
stands for its token, verified again on every request; a cookie-authenticated
request that changes state must carry the session's CSRF token in
``X-StateHub-CSRF`` (403 without it), and a cookie-authenticated WebSocket
upgrade must carry an Origin (the cross-site middleware has checked it is the
hub's own). A route marked ``AUTHENTICATED`` (``GET /auth/session``) needs a
valid token and no particular right.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from litestar.connection import ASGIConnection, WebSocket
from litestar.enums import ScopeType
from litestar.exceptions import WebSocketException

from statehub.auth.event_policy import event_authoriser
from statehub.auth.sessions import COOKIE_NAME, CSRF_HEADER, csrf_matches
from statehub.auth.verify import TokenVerifier, VerifiedToken, authorize
from statehub.errors import Forbidden, HubError, Unauthorized

if TYPE_CHECKING:
    import datetime as dt

    from litestar.handlers.base import BaseRouteHandler

    from statehub.auth.policy import AuthPolicy
    from statehub.auth.sessions import SessionStore

__all__ = [
    "AUTHENTICATED",
    "OPEN",
    "PER_EVENT",
    "RepoOf",
    "authorize_event",
    "authorize_request",
    "refuse_socket",
    "requires",
    "session_of",
    "token_guard",
    "token_of",
]

RIGHT_OPT = "statehub_right"
REPO_OPT = "statehub_repo"
_OPEN = "open"
_PER_EVENT = "per-event"
_AUTHENTICATED = "authenticated"
_STATE_KEY = "statehub_token"
_SESSION_KEY = "statehub_session"
_UNAUTHENTICATED = "unauthenticated"
_READS = frozenset({"GET", "HEAD"})
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods a cookie-authenticated request may use without the CSRF token: they change nothing."""
OPEN_PATHS = frozenset({"/state/health"})
"""Answered without a token, so container health checks and load balancers can probe the hub."""

RepoOf = Callable[[ASGIConnection[Any, Any, Any, Any]], str | None]
"""Which repo a request acts on (None: the whole hub)."""


def default_repo(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """A ``{slug}`` path parameter, else (reads only) a ``?repo=`` filter.

    A request that changes state acts on the repo its path names, or on the whole
    hub: a ``?repo=`` it does not act on must not narrow the check, or an admin
    token for one repo could ``POST /sweeps?repo=mine`` to sweep them all or
    ``POST /repos?repo=mine`` to register a new repo (ADR-022).
    """
    slug = connection.path_params.get("slug")
    if isinstance(slug, str):
        return slug
    method = connection.scope.get("method") if connection.scope["type"] == ScopeType.HTTP else None
    if method not in _READS:
        return None
    repo = connection.query_params.get("repo")
    return repo if isinstance(repo, str) and repo else None


def requires(right: str, repo: RepoOf = default_repo) -> dict[str, Any]:
    """``opt`` for a route that needs ``right`` (read | write | edit | admin) on ``repo(connection)``."""
    return {RIGHT_OPT: right, REPO_OPT: repo}


PER_EVENT: dict[str, Any] = {RIGHT_OPT: _PER_EVENT}
OPEN: dict[str, Any] = {RIGHT_OPT: _OPEN}
AUTHENTICATED: dict[str, Any] = {RIGHT_OPT: _AUTHENTICATED}
"""``opt`` for a route any valid token may use, whatever it allows (``GET /auth/session``: who am I)."""
_NO_RIGHT = frozenset({_PER_EVENT, _AUTHENTICATED})


def _bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = connection.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("send the token as 'Authorization: Bearer <token>'")
        return value.strip()
    if connection.scope["type"] == ScopeType.WEBSOCKET:
        query = connection.query_params.get("token")
        if isinstance(query, str) and query:
            return query
    return None


async def token_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Authenticate, then authorise the route's right; raise Unauthorized / Forbidden otherwise.

    Async on purpose: Litestar runs a sync guard in a worker thread, a thread hop on
    every request that cost more than the read queries themselves (bench/query.py).
    Verifying a token is CPU work with no I/O, so it belongs on the event loop.

    A refused WebSocket upgrade is accepted and at once closed with code 4401 or
    4403 and the reason's first 120 bytes (the protocol's limit for a close
    reason): a close before accept reaches a client as a bare HTTP 403 without
    the reason, and a browser sees only code 1006 (ADR-016, ADR-022).
    """
    try:
        _guard(connection, handler)
    except HubError as error:
        if connection.scope["type"] != ScopeType.WEBSOCKET:
            raise
        await _accept(connection)
        raise WebSocketException(detail=_close_reason(error.message), code=4000 + error.status_code) from None


async def _accept(connection: ASGIConnection[Any, Any, Any, Any]) -> WebSocket[Any, Any, Any]:
    socket = (
        connection
        if isinstance(connection, WebSocket)
        else WebSocket(connection.scope, connection.receive, connection.send)
    )
    await socket.accept()
    return socket


async def refuse_socket(connection: ASGIConnection[Any, Any, Any, Any], error: HubError) -> None:
    """Refuse a WebSocket upgrade a handler decided against (e.g. a fleet registry room needs
    admin): accept, then close with 4000 + the status (4401, 4403) and the reason, like the guard."""
    socket = await _accept(connection)
    await socket.close(code=4000 + error.status_code, reason=_close_reason(error.message))


def _close_reason(message: str, limit: int = 120) -> str:
    data = message.encode()
    if len(data) <= limit:
        return message
    return data[: limit - 3].decode(errors="ignore") + "..."


def _guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    policy: AuthPolicy = connection.app.state.auth
    if policy.verifier is None:
        return  # an open hub: every request may act, and token_of answers None
    right: str | None = handler.opt.get(RIGHT_OPT)
    if right is None:
        method = connection.scope.get("method") if connection.scope["type"] == ScopeType.HTTP else None
        right = "read" if method is None or method in _READS else "admin"
    connection.state[_STATE_KEY] = _UNAUTHENTICATED
    if right == _OPEN or connection.scope["path"] in OPEN_PATHS:
        return
    raw = _bearer(connection)
    if raw is not None:
        token = policy.verifier.verify(raw)
    else:
        session_id = connection.cookies.get(COOKIE_NAME)
        if not session_id:
            raise Unauthorized(
                "this hub requires a token: send 'Authorization: Bearer <token>', or sign in on the "
                "hub's page; ask the hub's admin to run 'statehub token mint --actor YOU --right read'"
            )
        token = _session_token(connection, policy.verifier, session_id)
        connection.state[_SESSION_KEY] = session_id
    connection.state[_STATE_KEY] = token
    if right not in _NO_RIGHT:
        repo_of: RepoOf = handler.opt.get(REPO_OPT, default_repo)
        authorize(token, right, repo_of(connection))


def _session_token(
    connection: ASGIConnection[Any, Any, Any, Any], verifier: TokenVerifier, session_id: str
) -> VerifiedToken:
    """The token a session cookie stands for, verified now; Unauthorized / Forbidden otherwise.

    A token found revoked ends the session, so the store forgets it at once.
    """
    sessions: SessionStore = connection.app.state.sessions
    session = sessions.find(session_id)
    if session is None:
        raise Unauthorized(
            "your session has ended (signed out, expired with its token or after 12 hours, or its token "
            "was revoked): sign in again on the hub's page"
        )
    if connection.scope["type"] == ScopeType.WEBSOCKET:
        if connection.headers.get("origin") is None:
            raise Forbidden(
                "a WebSocket signed in by the session cookie must come from the hub's own page "
                "(it sent no Origin); a script sends its token with ?token= instead"
            )
    elif connection.scope.get("method") not in _SAFE and not csrf_matches(
        session_id, connection.headers.get(CSRF_HEADER)
    ):
        raise Forbidden(
            "a request signed in by the session cookie that changes state must send the session's "
            "CSRF token in X-StateHub-CSRF (GET /auth/session answers it); nothing was changed"
        )
    try:
        return verifier.verify(session.token)
    except Unauthorized:
        sessions.end(session_id)
        raise


def session_of(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The session id the request was authenticated by (its cookie); None for a bearer token or
    an open hub."""
    value = connection.state.get(_SESSION_KEY)
    return value if isinstance(value, str) else None


def token_of(connection: ASGIConnection[Any, Any, Any, Any]) -> VerifiedToken | None:
    """The request's verified token; None when the hub is open (no token needed).

    Fails closed: on a route left open (``OPEN``) in a hub that requires tokens there
    is no token to act for, so asking for one is refused rather than answered None.
    """
    policy: AuthPolicy = connection.app.state.auth
    if policy.verifier is None:
        return None
    if _STATE_KEY not in connection.state:
        raise RuntimeError("token_guard did not run for this route; add it to the app's guards")
    token: VerifiedToken | str | None = connection.state[_STATE_KEY]
    if isinstance(token, str):
        raise Unauthorized("this route does not take a token, so it cannot act for anyone")
    return token


def authorize_request(
    token: VerifiedToken | None, right: str, repo: str | None = None, now: dt.datetime | None = None
) -> None:
    """Check one more right inside a handler (e.g. a CRDT save needing ``edit``); open hubs allow all."""
    if token is not None:
        authorize(token, right, repo, now)


def authorize_event(
    token: VerifiedToken | None, repo: str, actor: str, now: dt.datetime | None = None, kind: str = ""
) -> None:
    """May this token store an event of ``kind`` for ``repo`` as ``actor``? The policy of
    ``statehub.auth.event_policy`` for one event; intake asks it for every item before storing any."""
    event_authoriser(token, now).check(repo, actor, kind)
