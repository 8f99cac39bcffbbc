"""Biscuit capability tokens: keys, minting and attenuation, revocation, and the request guard.

keys        the root key pair (private key file, mode 0600) and the public key
contract    the Datalog fact names tokens carry and the hub supplies (docs/deployment.md, "Tokens")
tokens      mint, attenuate, describe
sessions    browser sessions: a token exchanged for a cookie, in <data dir>/sessions.sqlite3 (ADR-040)
revocation  revoked ids in <config dir>/revoked-tokens.txt, reloaded on change
verify      who is asking (signature, revocation) and may they (right, repo, time)
event_policy  who may store which event; the authoriser every intake path takes (ADR-021, ADR-022)
policy      whether this hub requires tokens, decided from the settings at start
guard       the Litestar guard every route and WebSocket upgrade passes through (loaded on first use)
"""

from typing import TYPE_CHECKING, Any

from statehub.auth.event_policy import (
    ADMIN_KINDS,
    LOCAL_COMMAND,
    OPEN_HUB,
    EventAuthoriser,
    TokenAuthoriser,
    event_authoriser,
)
from statehub.auth.policy import AuthPolicy
from statehub.auth.verify import VerifiedToken, authorize

if TYPE_CHECKING:
    from statehub.auth.guard import (
        AUTHENTICATED,
        OPEN,
        PER_EVENT,
        authorize_event,
        authorize_request,
        refuse_socket,
        requires,
        session_of,
        token_guard,
        token_of,
    )

_GUARD = frozenset(
    {
        "AUTHENTICATED",
        "OPEN",
        "PER_EVENT",
        "authorize_event",
        "authorize_request",
        "refuse_socket",
        "requires",
        "session_of",
        "token_guard",
        "token_of",
    }
)
"""Names of :mod:`statehub.auth.guard`, loaded on first use: the guard needs Litestar, and a CLI
command (intake imports the event policy) must not load the web stack (``statehub doctor``)."""


def __getattr__(name: str) -> Any:
    if name in _GUARD:
        from statehub.auth import guard

        return getattr(guard, name)
    raise AttributeError(f"module 'statehub.auth' has no attribute {name!r}")


__all__ = [
    "ADMIN_KINDS",
    "AUTHENTICATED",
    "LOCAL_COMMAND",
    "OPEN",
    "OPEN_HUB",
    "PER_EVENT",
    "AuthPolicy",
    "EventAuthoriser",
    "TokenAuthoriser",
    "VerifiedToken",
    "authorize",
    "authorize_event",
    "authorize_request",
    "event_authoriser",
    "refuse_socket",
    "requires",
    "session_of",
    "token_guard",
    "token_of",
]
