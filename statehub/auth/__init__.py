"""Biscuit capability tokens: keys, minting and attenuation, revocation, and the request guard.

keys        the root key pair (private key file, mode 0600) and the public key
contract    the Datalog fact names tokens carry and the hub supplies (docs/deployment.md, "Tokens")
tokens      mint, attenuate, describe
revocation  revoked ids in <config dir>/revoked-tokens.txt, reloaded on change
verify      who is asking (signature, revocation) and may they (right, repo, time)
policy      whether this hub requires tokens, decided from the settings at start
guard       the Litestar guard every route and WebSocket upgrade passes through
"""

from statehub.auth.guard import (
    OPEN,
    PER_EVENT,
    authorize_event,
    authorize_request,
    requires,
    token_guard,
    token_of,
)
from statehub.auth.policy import AuthPolicy
from statehub.auth.verify import VerifiedToken, authorize

__all__ = [
    "OPEN",
    "PER_EVENT",
    "AuthPolicy",
    "VerifiedToken",
    "authorize",
    "authorize_event",
    "authorize_request",
    "requires",
    "token_guard",
    "token_of",
]
