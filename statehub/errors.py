"""The hub's error tree. Each error knows its HTTP status and its CLI exit code.

    HubError
    ├── BadRequest       400, exit 2   a filter value or argument the hub cannot use
    ├── NotAGitRepo      400, exit 2   registration of something that is not a git work tree
    ├── NotFound         404, exit 4   an unknown repo, workplan, task or canon id
    ├── Conflict         409, exit 5   a slug taken by another path, an ambiguous id
    ├── Unprocessable    422, exit 6   a well-formed request the rules refuse
    ├── Unauthorized     401, exit 7   no token, or one that is forged, expired or revoked
    ├── Forbidden        403, exit 8   a valid token that does not allow this request
    ├── PayloadTooLarge  413, exit 9   a body, file or batch over its size limit (the message names the limit)
    ├── InsufficientStorage 507, exit 10  the disk under the write buffer is full; nothing stored, retry later
    ├── Unavailable      503, exit 12  the hub is at a limit (browser sessions, change streams); retry later
    └── SetupError       500, exit 3   the hub is configured so it must not start (e.g. no token key)

Besides the errors' codes, one exit code says a command ran to the end and found
something only a person can fix: :data:`NEEDS_A_PERSON` (11).

Messages are written for the person who has to act on them. ``details`` is
structured data for a client (None when the message says it all); ``headers``
are HTTP headers the answer carries (``Retry-After``).

The libraries have their own trees (``workplans.errors``, ``registry.errors``,
``sync.errors``); :func:`as_hub_error` maps them to this one, in one table
(:data:`LIBRARY_ERRORS`), for the app's exception handler and the CLI alike.
A library error the table does not name more closely becomes a ``HubError``
(500, exit 1): a bug to fix, not a user's mistake.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

from registry.errors import FleetChangeRefused, FleetFileBroken, RegistryError, UnknownMachine
from sync.errors import (
    DropWithoutReason,
    KeyConflict,
    RoomError,
    StoreFull,
    StoreNotPermitted,
    StoreTooNew,
    StoreUnreachable,
    SyncError,
    UnknownRelayKey,
)
from workplans.errors import (
    ApplyError,
    BrokenTarget,
    DuplicateEventKind,
    FleetChangeError,
    FormatError,
    InvalidEvent,
    NoLongerApplies,
    UnclosedFrontMatter,
    WorkplansError,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "LIBRARY_ERRORS",
    "NEEDS_A_PERSON",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "HubError",
    "InsufficientStorage",
    "NotAGitRepo",
    "NotFound",
    "PayloadTooLarge",
    "SetupError",
    "StateUnreachable",
    "Unauthorized",
    "Unavailable",
    "Unprocessable",
    "as_hub_error",
    "error_for_status",
    "invalid_choice",
    "parse_choice",
    "unknown_repo",
]

E = TypeVar("E", bound=Enum)

NEEDS_A_PERSON = 11
"""The exit code of a command that ran to the end and found what only a person can fix:
``statehub sweep`` when a repo could not be integrated or pushed (or its git state stops writes),
``statehub doctor`` when something stops writes. The report names each with its remedy."""


class HubError(Exception):
    status_code = 500
    exit_code = 1
    details: dict[str, Any] | None = None
    headers: dict[str, str] | None = None

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        self.message = message
        if details is not None:
            self.details = details
        super().__init__(message)


class BadRequest(HubError):
    status_code = 400
    exit_code = 2


class NotAGitRepo(BadRequest):
    pass


class NotFound(HubError):
    status_code = 404
    exit_code = 4


class Conflict(HubError):
    status_code = 409
    exit_code = 5


class Unprocessable(HubError):
    status_code = 422
    exit_code = 6


class Unauthorized(HubError):
    """Who is asking is unknown: the token is missing or cannot be trusted."""

    status_code = 401
    exit_code = 7


class Forbidden(HubError):
    """Who is asking is known, and their token does not allow this."""

    status_code = 403
    exit_code = 8


class PayloadTooLarge(HubError):
    """The input is bigger than the hub accepts; the message says the limit."""

    status_code = 413
    exit_code = 9


class InsufficientStorage(HubError):
    """The disk under the write buffer is full: nothing of the request was stored; send it again
    after ``Retry-After`` seconds (sync.errors.StoreFull.retry_after)."""

    status_code = 507
    exit_code = 10
    headers = {"Retry-After": str(StoreFull.retry_after)}


class Unavailable(HubError):
    """The hub is at one of its limits (the browser sessions it holds, the change streams it
    serves): try again after ``Retry-After`` seconds; nothing was changed."""

    status_code = 503
    exit_code = 12
    headers = {"Retry-After": "60"}


class StateUnreachable(Unavailable):
    """The PostgreSQL database of the durable state does not answer (sync.errors.StoreUnreachable):
    nothing was kept; try again after ``Retry-After`` seconds, the store's own (it reconnects)."""

    headers = {"Retry-After": str(StoreUnreachable.retry_after)}


class SetupError(HubError):
    exit_code = 3


def unknown_repo(slug: str) -> NotFound:
    """The one sentence for a repo slug nothing is registered as (404, exit 4)."""
    return NotFound(f"no repo registered as {slug!r}; 'statehub repos list' shows the registered ones")


def invalid_choice(name: str, value: str, valid: Iterable[str]) -> BadRequest:
    """The one sentence for a value outside a fixed set: ``invalid status 'x': valid values are a, b``."""
    return BadRequest(f"invalid {name} {value!r}: valid values are {', '.join(valid)}")


def parse_choice(enum: type[E], name: str, value: str | None) -> E | None:
    """``value`` as a member of ``enum`` (None stays None), else BadRequest naming the valid values.

    What the CLI does with a ``--status`` it read as text; the HTTP API declares
    the enum on the parameter and Litestar parses it (``statehub.api.errorshape``
    answers a bad value with the same sentence).
    """
    if value is None:
        return None
    for member in enum:
        if member.value == value:
            return member
    raise invalid_choice(name, value, [str(m.value) for m in enum])


LIBRARY_ERRORS = (WorkplansError, RegistryError, SyncError)
"""The roots of the libraries' trees: what the app's handler and the CLI catch besides ``HubError``."""

_MAPPING: dict[type[Exception], type[HubError]] = {
    # workplans
    WorkplansError: Unprocessable,
    FormatError: Unprocessable,
    UnclosedFrontMatter: Unprocessable,
    DuplicateEventKind: HubError,
    InvalidEvent: Unprocessable,
    FleetChangeError: Unprocessable,
    ApplyError: Unprocessable,
    NoLongerApplies: Conflict,
    BrokenTarget: Unprocessable,
    # registry
    RegistryError: Unprocessable,
    UnknownMachine: NotFound,
    FleetChangeRefused: Unprocessable,
    FleetFileBroken: Unprocessable,
    # sync
    SyncError: HubError,
    KeyConflict: Conflict,
    UnknownRelayKey: NotFound,
    DropWithoutReason: BadRequest,
    StoreTooNew: SetupError,
    StoreNotPermitted: SetupError,
    StoreFull: InsufficientStorage,
    StoreUnreachable: StateUnreachable,
}
"""Library error -> hub error; the most specific class in the error's MRO wins."""

_BY_STATUS: dict[int, type[HubError]] = {
    kind.status_code: kind
    for kind in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        Unprocessable,
        Unavailable,
        InsufficientStorage,
    )
}
"""Each HTTP error status the hub answers, and its hub error."""


def error_for_status(status: int, message: str, default: type[HubError] = HubError) -> HubError:
    """The hub error a remote hub's ``status`` answer stands for (``default`` for another status),
    with ``message``: how a client command (``statehub watch``) or a room refusal (``RoomError.status``)
    becomes one line and its exit code."""
    return _BY_STATUS.get(status, default)(message)


def as_hub_error(error: HubError | WorkplansError | RegistryError | SyncError) -> HubError:
    """The hub's error for ``error``: itself when it is one, a room's refusal by its ``status``
    (:func:`error_for_status`), else by :data:`_MAPPING`.

    The message and ``details`` carry over unchanged.
    """
    if isinstance(error, HubError):
        return error
    if isinstance(error, RoomError):
        mapped = error_for_status(error.status, str(error), BadRequest)
        mapped.details = error.details
    else:
        kind = next((_MAPPING[cls] for cls in type(error).__mro__ if cls in _MAPPING), HubError)
        mapped = kind(str(error), details=error.details)
    mapped.__cause__ = error
    return mapped
