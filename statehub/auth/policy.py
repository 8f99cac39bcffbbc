"""Whether this hub requires tokens, and with which key: decided once, when the app is built.

profile  STATEHUB_AUTH   key configured   result
fleet    (unset)         yes              tokens required
fleet    anything        no               refuses to start, saying how to configure a key
fleet    open            -                refuses to start: a fleet hub always checks tokens
dev      (unset)         no               open, but only on a loopback address
dev      (unset)         STATEHUB_TOKEN_PUBLIC_KEY set   tokens required
dev      required        yes / no         tokens required / refuses to start
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from statehub.auth.keys import hub_public_key
from statehub.auth.revocation import RevocationList
from statehub.auth.verify import TokenVerifier
from statehub.errors import BadRequest, SetupError

if TYPE_CHECKING:
    from statehub.settings import Settings

__all__ = ["HOW_TO_CONFIGURE", "AuthPolicy"]

HOW_TO_CONFIGURE = (
    "configure token verification in one of these ways:\n"
    "  1. on this host: statehub token init   (writes the root key to {key_file}, mode 0600)\n"
    "  2. STATEHUB_TOKEN_ROOT_KEY_FILE=/path/to/root-key   (e.g. a container secret)\n"
    "  3. STATEHUB_TOKEN_PUBLIC_KEY=ed25519/<hex>   (from 'statehub token init --print-public-key'\n"
    "     where the root key lives; this hub then verifies but cannot mint)\n"
    "then mint tokens with: statehub token mint --actor NAME --right read|write|edit|admin"
)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    verifier: TokenVerifier | None
    """None: the hub is open (dev on loopback); every request is allowed."""

    @property
    def required(self) -> bool:
        return self.verifier is not None

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthPolicy:
        mode = settings.auth
        if mode is None:
            wants = settings.profile == "fleet" or settings.token_public_key is not None
            mode = "required" if wants else "open"
        if mode == "open":
            if settings.profile == "fleet":
                raise SetupError(
                    "the fleet profile always requires tokens: remove STATEHUB_AUTH=open, or run "
                    "this hub with --profile dev on 127.0.0.1"
                )
            if settings.auth is None and not _is_loopback(settings.host):
                raise SetupError(
                    f"refusing to serve without tokens on {settings.host}: an open hub listens on "
                    "127.0.0.1 only. Bind 127.0.0.1; or, if something else keeps this address private "
                    "(a container port published on 127.0.0.1), say so with STATEHUB_AUTH=open; or set "
                    "STATEHUB_AUTH=required and " + HOW_TO_CONFIGURE.format(key_file=settings.root_key_file)
                )
            return cls(None)
        try:
            key = hub_public_key(settings)
        except BadRequest as error:
            raise SetupError(error.message) from None
        if key is None:
            raise SetupError(
                f"the {settings.profile} profile requires tokens, and no key is configured to verify "
                "them; " + HOW_TO_CONFIGURE.format(key_file=settings.root_key_file)
            )
        return cls(TokenVerifier(key, RevocationList(settings.revocation_file)))
