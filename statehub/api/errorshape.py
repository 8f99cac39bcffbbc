"""One error shape for every answer that is not a success, the framework's included.

Every error answers ``{"error": <sentence>, "status_code": <int>, "details"?: {...}}``:
the hub's own (:class:`statehub.errors.HubError` and the libraries' trees mapped
to it), the framework's (a query value of the wrong type or out of range, a
malformed body, an unknown path, a method the route does not allow, a body over
the limit) and a bug (500, a generic sentence; the traceback goes to the log,
never to the client).

Before any handler (:func:`before_handler`), OPTIONS answers 204 with the
route's ``Allow``, and two checks run:

- a query parameter the route does not declare is 400 naming the ones it does
  (``/tasks?state=done`` would otherwise return every task);
- a ``?repo=`` filter naming no registered repo is 404 (it would otherwise
  answer an empty list, as if the repo had nothing in it).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from litestar import Litestar, Request, Response
from litestar.datastructures import State
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.routes import HTTPRoute
from litestar.status_codes import HTTP_204_NO_CONTENT, HTTP_500_INTERNAL_SERVER_ERROR

from registry.errors import RegistryError
from statehub.api.inputbounds import TOO_DEEP, too_large
from statehub.errors import BadRequest, HubError, NotFound, as_hub_error
from statehub.events import EventDesk
from statehub.hub import Hub
from sync.errors import SyncError
from workplans.errors import WorkplansError

__all__ = ["REPO_IN_BUFFER", "RouteTable", "before_handler", "error_body", "exception_handlers"]

log = logging.getLogger(__name__)

REPO_IN_BUFFER = "repo_in_buffer"
"""``opt`` key: a ``?repo=`` filter may also name a repo the write buffer has events for."""

AnyRequest = Request[Any, Any, State]

SERVER_ERROR = "the hub failed to answer this request; its log has the details"


def error_body(message: str, status_code: int, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The one error body: ``{"error", "status_code", "details"?}``."""
    body: dict[str, Any] = {"error": message, "status_code": status_code}
    if details:
        body["details"] = dict(details)
    return body


def _hub_error(
    _request: AnyRequest, raised: HubError | WorkplansError | RegistryError | SyncError
) -> Response[dict[str, Any]]:
    error = as_hub_error(raised)
    headers = dict(error.headers or {})
    if error.status_code == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="statehub"'
    return Response(
        error_body(error.message, error.status_code, error.details),
        status_code=error.status_code,
        headers=headers or None,
    )


def _validation_sentence(problems: list[Any]) -> str:
    parts = []
    for problem in problems:
        if not isinstance(problem, dict):
            parts.append(str(problem))
            continue
        key, source, message = problem.get("key"), problem.get("source"), problem.get("message", "")
        source = source.value if isinstance(source, Enum) else source
        if key and source:
            parts.append(f"{source} parameter {key!r}: {message}")
        elif key:
            parts.append(f"{key!r}: {message}")
        else:
            parts.append(str(message))
    return "; ".join(parts)


def _framework_error(max_body_bytes: int) -> Callable[[AnyRequest, HTTPException], Response[dict[str, Any]]]:
    def handler(request: AnyRequest, raised: HTTPException) -> Response[dict[str, Any]]:
        status = raised.status_code
        method, path = request.method, request.url.path
        details: dict[str, Any] | None = None
        extra = raised.extra
        if isinstance(extra, list) and extra:
            details = {"problems": extra}
        elif isinstance(extra, dict) and extra:
            details = dict(extra)
        if isinstance(raised, ValidationException) and isinstance(extra, list) and extra:
            message = f"invalid request to {method} {path}: {_validation_sentence(extra)}"
        elif isinstance(raised, NotFoundException):
            message = f"no route {method} {path}; GET /schema lists the hub's routes"
        elif isinstance(raised, MethodNotAllowedException):
            allowed = next((v for k, v in (raised.headers or {}).items() if k.lower() == "allow"), "")
            message = f"{method} is not allowed on {path}" + (f"; it allows {allowed}" if allowed else "")
        elif isinstance(raised, RequestEntityTooLarge):
            message = too_large(max_body_bytes)
        elif status >= HTTP_500_INTERNAL_SERVER_ERROR:
            log.error("%s %s failed", method, path, exc_info=raised)
            return Response(error_body(SERVER_ERROR, status), status_code=status)
        else:
            message = raised.detail or "the hub cannot use this request"
        return Response(error_body(message, status, details), status_code=status, headers=raised.headers)

    return handler


def _server_error(request: AnyRequest, raised: Exception) -> Response[dict[str, Any]]:
    log.error("%s %s failed", request.method, request.url.path, exc_info=raised)
    return Response(
        error_body(SERVER_ERROR, HTTP_500_INTERNAL_SERVER_ERROR), status_code=HTTP_500_INTERNAL_SERVER_ERROR
    )


def _too_deep(_request: Request[Any, Any, Any], _error: RecursionError) -> Response[dict[str, Any]]:
    """A body nested too deep for the JSON decoder (msgspec gives up near 1,000 levels): 400, not 500.

    Litestar decodes a handler's typed ``data`` before the handler runs, so the
    RecursionError cannot be caught there (ADR-022: no input yields a 500).
    """
    return Response({"error": TOO_DEEP, "status_code": 400}, status_code=400)


def exception_handlers(library_errors: tuple[type[Exception], ...], max_body_bytes: int) -> dict[Any, Any]:
    """The app's handlers: the hub's tree, the framework's exceptions, then anything else (500)."""
    return {
        **dict.fromkeys((HubError, *library_errors), _hub_error),
        HTTPException: _framework_error(max_body_bytes),
        RecursionError: _too_deep,
        Exception: _server_error,
    }


# -- before the handler: query parameters, OPTIONS -------------------------------------------------------


@dataclass
class RouteTable:
    """What each route handler takes, read once from the built app (:meth:`fill`).

    ``query``: ``id(handler)`` -> the query parameter names it declares, for every
    API route (handler parameters and, as Litestar folds them in, its
    dependencies'). Routes left out of the schema (the web page, static files)
    are not checked.

    ``allow``: ``id(OPTIONS handler)`` -> the route's ``Allow`` header. Litestar's
    own OPTIONS answer lists only the methods of the first handler of a path
    when a controller declares several (``/repos/{slug}`` answered ``GET,
    OPTIONS``, not ``DELETE, GET, OPTIONS``), so the hub answers OPTIONS itself.
    """

    query: dict[int, frozenset[str]] = field(default_factory=dict)
    allow: dict[int, str] = field(default_factory=dict)

    def fill(self, app: Litestar) -> None:
        for route in app.routes:
            if not isinstance(route, HTTPRoute):
                continue
            for method, (handler, model) in route.route_handler_map.items():
                if method == "OPTIONS":
                    self.allow[id(handler)] = ", ".join(sorted(route.methods))
                elif handler.include_in_schema:
                    self.query[id(handler)] = frozenset(p.field_alias for p in model.expected_query_params)


def _names(names: frozenset[str]) -> str:
    return ", ".join(sorted(names)) if names else "none"


def _known_repo(request: AnyRequest, repo: str) -> None:
    """NotFound naming ``repo`` unless it is registered (or, for the event list, has events stored).

    The write buffer keeps events for a repo that is not (or no longer) registered,
    rejected ones included; ``GET /events?repo=`` must still list them.
    """
    hub: Hub = request.app.state.hub
    try:
        hub.repo(repo)
    except NotFound:
        if request.route_handler.opt.get(REPO_IN_BUFFER):
            desk: EventDesk = request.app.state.events
            if desk.buffer.list_events(repo=repo, limit=1, offset=0)[1]:
                return
        raise


def before_handler(routes: RouteTable) -> Callable[[AnyRequest], Awaitable[Response[None] | None]]:
    """The app's ``before_request`` hook.

    OPTIONS answers 204 with the route's ``Allow``; a query parameter the route
    does not declare is 400 naming the ones it does; a ``?repo=`` naming no
    registered repo is 404.
    """

    async def check(request: AnyRequest) -> Response[None] | None:
        handler = id(request.route_handler)
        allow = routes.allow.get(handler)
        if allow is not None:
            return Response(None, status_code=HTTP_204_NO_CONTENT, headers={"Allow": allow})
        allowed = routes.query.get(handler)
        query = request.query_params
        if allowed is None or not query:
            return None
        unknown = sorted(set(query.keys()) - allowed)
        if unknown:
            listed = ", ".join(repr(name) for name in unknown)
            raise BadRequest(
                f"unknown query parameter{'s' if len(unknown) > 1 else ''} {listed} for "
                f"{request.method} {request.url.path}; it takes: {_names(allowed)}",
                details={"unknown": unknown, "allowed": sorted(allowed)},
            )
        repo = query.get("repo")
        if "repo" in allowed and isinstance(repo, str) and repo:
            _known_repo(request, repo)
        return None

    return check
