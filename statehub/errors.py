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
    └── SetupError       500, exit 3   the hub is configured so it must not start (e.g. no token key)

Messages are written for the person who has to act on them.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "HubError",
    "NotAGitRepo",
    "NotFound",
    "PayloadTooLarge",
    "SetupError",
    "Unauthorized",
    "Unprocessable",
    "invalid_choice",
]


class HubError(Exception):
    status_code = 500
    exit_code = 1

    def __init__(self, message: str) -> None:
        self.message = message
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


class SetupError(HubError):
    exit_code = 3


def invalid_choice(name: str, value: str, valid: Iterable[str]) -> BadRequest:
    return BadRequest(f"invalid {name} {value!r}: valid values are {', '.join(valid)}")
