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
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import msgspec
from litestar import Litestar, Request, Response
from litestar.datastructures import State
from litestar.enums import ParamType
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi.datastructures import ResponseSpec
from litestar.routes import HTTPRoute
from litestar.status_codes import (
    HTTP_204_NO_CONTENT,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from sqlalchemy.exc import OperationalError

from registry.errors import RegistryError
from statehub.api.inputbounds import TOO_DEEP, too_large
from statehub.api.openapi import is_schema_404_page, schema_404_sentence
from statehub.errors import BadRequest, HubError, NotFound, as_hub_error
from statehub.events import EventDesk
from statehub.hub import Hub
from sync.errors import StoreUnreachable, SyncError
from workplans.errors import WorkplansError

__all__ = [
    "REPO_IN_BUFFER",
    "ErrorBody",
    "RouteTable",
    "before_handler",
    "error_body",
    "error_responses",
    "exception_handlers",
]

log = logging.getLogger(__name__)

REPO_IN_BUFFER = "repo_in_buffer"
"""``opt`` key: a ``?repo=`` filter may also name a repo the write buffer has events for."""

AnyRequest = Request[Any, Any, State]

SERVER_ERROR = "the hub failed to answer this request; its log has the details"


class ErrorBody(msgspec.Struct, frozen=True, omit_defaults=True):
    """The one error body: ``{"error", "status_code", "details"?}``; ``details`` is left out when None."""

    error: str
    """A sentence for the person who has to act on it."""
    status_code: int
    """The HTTP status again."""
    details: dict[str, Any] | None = None
    """Structured data for a client, when there is some (e.g. ``problems``, ``unknown``/``allowed``)."""


def error_body(message: str, status_code: int, details: Mapping[str, Any] | None = None) -> ErrorBody:
    """The one error body; empty ``details`` are left out."""
    return ErrorBody(message, status_code, dict(details) if details else None)


_MEANINGS = {
    400: "The request cannot be used: a query parameter the route does not take, a value of the wrong "
    "type or out of range, a malformed body; the sentence says which",
    401: "No token, or one that is forged, expired or revoked (a hub with tokens)",
    403: "The token does not allow this, or a cross-site request was refused",
    404: "Nothing by that name: an unknown repo, id, reference or key",
    409: "Conflict: an id claimed twice, a slug taken, a file that moved",
    413: "The body is over the hub's size limit (the sentence names it)",
    415: "The body is not application/json",
    421: "The hub does not answer to this Host name",
    422: "Well formed, but the rules refuse it",
    500: "The hub failed; its log has the details",
    503: "The hub is at a limit (browser sessions, change streams) or its database does not answer; "
    "try again after Retry-After seconds",
}
COMMON_STATUSES = (400, 401, 403, 421, 500)
"""Statuses every operation can answer: unknown query parameters, tokens, Host checks, bugs."""
WRITE_STATUSES = (413, 415)
"""What every state-changing operation can answer besides: body size and type (ADR-022)."""


def error_responses(
    *statuses: int, refusal: Any = None, refused_with: tuple[int, ...] = ()
) -> dict[int, ResponseSpec]:
    """An operation's ``responses``: every error status it can answer, each with :class:`ErrorBody`.

    :data:`COMMON_STATUSES` are always included; name the others (404 for a
    lookup or a ``?repo=`` filter, 409, 422, and :data:`WRITE_STATUSES` for a POST
    or DELETE), so the OpenAPI document lists what the route really answers.
    An operation whose own answer can also come with an error status (a save
    refused with its reasons) names that type as ``refusal`` and those statuses
    as ``refused_with``: they are documented as either body.
    """
    return {
        status: ResponseSpec(
            refusal | ErrorBody if status in refused_with else ErrorBody,
            description=_MEANINGS[status],
            generate_examples=False,
        )
        for status in sorted({*COMMON_STATUSES, *statuses, *refused_with})
    }


def _hub_error(
    _request: AnyRequest, raised: HubError | WorkplansError | RegistryError | SyncError
) -> Response[ErrorBody]:
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


def _framework_error(
    max_body_bytes: int, routes: RouteTable
) -> Callable[[AnyRequest, HTTPException], Response[ErrorBody]]:
    def handler(request: AnyRequest, raised: HTTPException) -> Response[ErrorBody]:
        status = raised.status_code
        method, path = request.method, request.url.path
        details: dict[str, Any] | None = None
        extra = raised.extra
        headers = raised.headers
        if isinstance(raised, ValidationException) and isinstance(extra, list):
            extra = routes.name_choices(request, extra)
        if isinstance(extra, list) and extra:
            details = {"problems": extra}
        elif isinstance(extra, dict) and extra:
            details = dict(extra)
        if isinstance(raised, ValidationException) and isinstance(extra, list) and extra:
            message = f"invalid request to {method} {path}: {_validation_sentence(extra)}"
        elif isinstance(raised, NotFoundException):
            message = f"no route {method} {path}; GET /schema lists the hub's routes"
        elif isinstance(raised, MethodNotAllowedException):
            given = next((v for k, v in (headers or {}).items() if k.lower() == "allow"), "")
            allowed = ", ".join(sorted(m.strip() for m in given.split(",") if m.strip()))  # a stable order
            headers = {k: v for k, v in (headers or {}).items() if k.lower() != "allow"} | {"Allow": allowed}
            message = f"{method} is not allowed on {path}" + (f"; it allows {allowed}" if allowed else "")
        elif isinstance(raised, RequestEntityTooLarge):
            message = too_large(max_body_bytes)
        elif status >= HTTP_500_INTERNAL_SERVER_ERROR:
            log.error("%s %s failed", method, path, exc_info=raised)
            return Response(error_body(SERVER_ERROR, status), status_code=status)
        else:
            message = raised.detail or "the hub cannot use this request"
        return Response(error_body(message, status, details), status_code=status, headers=headers)

    return handler


def _server_error(request: AnyRequest, raised: Exception) -> Response[ErrorBody]:
    log.error("%s %s failed", request.method, request.url.path, exc_info=raised)
    return Response(
        error_body(SERVER_ERROR, HTTP_500_INTERNAL_SERVER_ERROR), status_code=HTTP_500_INTERNAL_SERVER_ERROR
    )


def _database_unreachable(request: AnyRequest, raised: OperationalError) -> Response[ErrorBody]:
    """The cache's database refused or dropped the connection (a PostgreSQL server stopped or
    restarting): 503 with the durable stores' ``Retry-After`` (sync.errors.StoreUnreachable), never
    the generic 500. The pool connects again on the next request. The sentence names the driver's
    first line only (never the URL, which may hold a password)."""
    reason = str(raised.orig).strip().splitlines()[0][:300] if raised.orig is not None else "no answer"
    log.warning("%s %s: the cache database does not answer: %s", request.method, request.url.path, reason)
    return Response(
        error_body(
            f"the cache database does not answer ({reason}): check that it runs and the hub may reach "
            "it (STATEHUB_DATABASE_URL), then try again; an event sent again with the same "
            "key is never applied twice",
            HTTP_503_SERVICE_UNAVAILABLE,
        ),
        status_code=HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(StoreUnreachable.retry_after)},
    )


def _too_deep(_request: Request[Any, Any, Any], _error: RecursionError) -> Response[ErrorBody]:
    """A body nested too deep for the JSON decoder (msgspec gives up near 1,000 levels): 400, not 500.

    Litestar decodes a handler's typed ``data`` before the handler runs, so the
    RecursionError cannot be caught there (ADR-022: no input yields a 500).
    """
    return Response(error_body(TOO_DEEP, 400), status_code=400)


def exception_handlers(
    library_errors: tuple[type[Exception], ...], max_body_bytes: int, routes: RouteTable
) -> dict[Any, Any]:
    """The app's handlers: the hub's tree, the framework's exceptions, a cache database that does not
    answer (503), then anything else (500).

    ``routes`` (filled once the app is built) lets a bad enum value name the valid ones.
    """
    return {
        **dict.fromkeys((HubError, *library_errors), _hub_error),
        HTTPException: _framework_error(max_body_bytes, routes),
        OperationalError: _database_unreachable,
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

    ``choices``: ``id(handler)`` -> the handler's parameter name -> (the query
    parameter's name, the values of the enum it is declared as), so a bad value is
    answered naming the parameter as the client sent it and the valid values.

    ``lists``: ``id(handler)`` -> the query parameters it declares as a list (``?status=todo&status=done``),
    the only ones that may be given more than once.

    ``missing``: ``id(handler)`` of Litestar's HTML page for an unknown
    ``/schema/{path}``, answered with the JSON 404 instead (``statehub.api.openapi``).
    """

    query: dict[int, frozenset[str]] = field(default_factory=dict)
    allow: dict[int, str] = field(default_factory=dict)
    choices: dict[int, dict[str, tuple[str, list[str]]]] = field(default_factory=dict)
    lists: dict[int, frozenset[str]] = field(default_factory=dict)
    missing: set[int] = field(default_factory=set)

    def fill(self, app: Litestar) -> None:
        for route in app.routes:
            if not isinstance(route, HTTPRoute):
                continue
            for method, (handler, model) in route.route_handler_map.items():
                if method == "OPTIONS":
                    self.allow[id(handler)] = ", ".join(sorted(route.methods))
                    continue
                if is_schema_404_page(handler):
                    self.missing.add(id(handler))
                if handler.include_in_schema:
                    self.query[id(handler)] = frozenset(p.field_alias for p in model.expected_query_params)
                parameters = handler.parsed_fn_signature.parameters
                found: dict[str, tuple[str, list[str]]] = {}
                lists = set()
                for p in model.expected_query_params:
                    declared = parameters.get(p.field_name)
                    if declared is not None and _takes_list(declared.annotation):
                        lists.add(p.field_alias)
                    enum = _enum_in(declared.annotation) if declared is not None else None
                    if enum is not None:
                        # Litestar names a problem by the handler's parameter (``state_``), not its alias.
                        found[p.field_name] = (p.field_alias, [str(m.value) for m in enum])
                if found:
                    self.choices[id(handler)] = found
                if lists:
                    self.lists[id(handler)] = frozenset(lists)

    def name_choices(self, request: AnyRequest, problems: list[Any]) -> list[Any]:
        """``problems`` of a ValidationException, a bad value of an enum parameter saying the valid ones.

        Such a problem's message becomes ``'x' is not valid; valid values are a, b`` and it
        gains ``valid``: the values, in the enum's order.
        """
        choices = self.choices.get(id(request.route_handler))
        if not choices:
            return problems
        named = []
        for problem in problems:
            key = problem.get("key") if isinstance(problem, dict) else None
            choice = choices.get(key) if isinstance(key, str) else None
            if choice is not None and problem.get("source") == ParamType.QUERY:
                alias, valid = choice
                value = request.query_params.get(alias)
                problem = problem | {
                    "key": alias,
                    "message": f"{value!r} is not valid; valid values are {', '.join(valid)}",
                    "valid": valid,
                }
            named.append(problem)
        return named


def _enum_in(annotation: Any) -> type[Enum] | None:
    """The Enum an annotation (``Status``, ``Status | None``, ``Annotated[...]``) declares, if any."""
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return annotation
    for inner in typing.get_args(annotation):
        found = _enum_in(inner)
        if found is not None:
            return found
    return None


def _takes_list(annotation: Any) -> bool:
    """Whether an annotation (``list[X] | None``, ``Annotated[...]``) declares a list."""
    if typing.get_origin(annotation) is list:
        return True
    return any(_takes_list(inner) for inner in typing.get_args(annotation))


def _names(names: frozenset[str]) -> str:
    return ", ".join(sorted(names)) if names else "none"


def _known_repo(request: AnyRequest, repo: str) -> None:
    """NotFound naming ``repo`` unless it is registered (:meth:`Hub.repo`) or, for the event list,
    has events stored (:meth:`EventDesk.known_repo`): the same rules the CLI's ``--repo`` obeys."""
    if request.route_handler.opt.get(REPO_IN_BUFFER):
        desk: EventDesk = request.app.state.events
        desk.known_repo(repo)
    else:
        hub: Hub = request.app.state.hub
        hub.repo(repo)


def before_handler(routes: RouteTable) -> Callable[[AnyRequest], Awaitable[Response[None] | None]]:
    """The app's ``before_request`` hook.

    OPTIONS answers 204 with the route's ``Allow``; an unknown page under
    ``/schema`` is 404; a query parameter the route does not declare is 400
    naming the ones it does, and one given twice is 400 (``?repo=a&repo=b``)
    unless it is declared as a list (``?status=todo&status=done``); a ``?repo=`` naming no
    registered repo is 404.
    """

    async def check(request: AnyRequest) -> Response[None] | None:
        handler = id(request.route_handler)
        allow = routes.allow.get(handler)
        if allow is not None:
            return Response(None, status_code=HTTP_204_NO_CONTENT, headers={"Allow": allow})
        if handler in routes.missing:
            raise NotFound(schema_404_sentence(request.url.path))
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
        lists = routes.lists.get(handler, frozenset())
        repeated = sorted(name for name in query if name not in lists and len(query.getall(name)) > 1)
        if repeated:  # a one-value parameter: Litestar would bind one, the checks another
            listed = ", ".join(repr(name) for name in repeated)
            raise BadRequest(
                f"query parameter{'s' if len(repeated) > 1 else ''} {listed} given more than once for "
                f"{request.method} {request.url.path}; each takes one value",
                details={"repeated": repeated},
            )
        if "repo" in allowed and "repo" not in lists:
            repo = query.get("repo")
            if isinstance(repo, str) and repo:
                _known_repo(request, repo)
        return None

    return check
