"""Mint, attenuate and describe tokens (the library behind ``statehub token``).

Minting needs the root private key. Attenuating needs only the public key:
biscuit-python 0.4 can append a block to an unverified token but cannot
serialise the result, so the token is verified (which also refuses a forged one
early) and then narrowed. No secret leaves the machine.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from biscuit_auth import (
    Biscuit,
    BiscuitBuilder,
    BiscuitValidationError,
    BlockBuilder,
    KeyPair,
    PublicKey,
    UnverifiedBiscuit,
)

from statehub.auth.contract import ACTOR_RULE, RIGHTS, is_actor, rights_up_to
from statehub.errors import BadRequest, Unauthorized, invalid_choice
from workplans.manifest import SLUG

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["TokenInfo", "attenuate", "describe", "mint", "parse_ttl", "read_token"]

_TTL_PART = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_ttl(text: str) -> dt.timedelta:
    """``90s``, ``15m``, ``8h``, ``30d``, ``2w`` or combinations like ``1h30m``."""
    value = text.strip().lower()
    parts = _TTL_PART.findall(value)
    if not value or "".join(n + u for n, u in parts) != value:
        raise BadRequest(f"invalid ttl {text!r}: use a number and a unit, like 90s, 15m, 8h, 30d or 1h30m")
    ttl = sum((dt.timedelta(**{_UNITS[u]: int(n)}) for n, u in parts), dt.timedelta())
    if ttl <= dt.timedelta():
        raise BadRequest(f"invalid ttl {text!r}: it must be longer than zero")
    return ttl


def _utc_now(now: dt.datetime | None) -> dt.datetime:
    now = now or dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        raise ValueError("token times must be timezone-aware")
    return now.astimezone(dt.UTC).replace(microsecond=0)


def _check_repos(repos: Sequence[str]) -> list[str]:
    for repo in repos:
        if not SLUG.fullmatch(repo):
            raise BadRequest(f"invalid repo slug {repo!r}: 'statehub repos list' shows the registered slugs")
    return sorted(set(repos))


def _check_right(right: str) -> None:
    if right not in RIGHTS:
        raise invalid_choice("right", right, RIGHTS)


def mint(
    root: KeyPair,
    actor: str,
    right: str,
    repos: Sequence[str] = (),
    ttl: dt.timedelta | None = None,
    now: dt.datetime | None = None,
) -> Biscuit:
    if not is_actor(actor):
        raise BadRequest(f"invalid actor {actor[:200]!r}: use {ACTOR_RULE} characters")
    _check_right(right)
    builder = BiscuitBuilder("actor({actor}); right({right});", {"actor": actor, "right": right})
    _add_limits(builder, _check_repos(repos), None, ttl, now)
    return builder.build(root.private_key)


def attenuate(
    token: str,
    public_key: PublicKey,
    repos: Sequence[str] = (),
    right: str | None = None,
    ttl: dt.timedelta | None = None,
    now: dt.datetime | None = None,
) -> Biscuit:
    """A narrower copy of ``token``: fewer repos, a lower right, an earlier expiry."""
    if not repos and right is None and ttl is None:
        raise BadRequest("nothing to narrow: give --repo, --right or --ttl")
    if right is not None:
        _check_right(right)
    parent = read_token(token, public_key)
    block = BlockBuilder("")
    _add_limits(block, _check_repos(repos), right, ttl, now)
    return parent.append(block)


def _add_limits(
    builder: BiscuitBuilder | BlockBuilder,
    repos: list[str],
    right: str | None,
    ttl: dt.timedelta | None,
    now: dt.datetime | None,
) -> None:
    if ttl is not None:
        builder.add_code("check if time($t), $t <= {expires};", {"expires": _utc_now(now) + ttl})
    if repos:
        builder.add_code('check if operation("read") or repo($r), {repos}.contains($r);', {"repos": repos})
    if right is not None:
        builder.add_code("check if operation($op), {rights}.contains($op);", {"rights": rights_up_to(right)})


def read_token(token: str, public_key: PublicKey) -> Biscuit:
    """Parse and verify a token's signatures; the message never repeats the token."""
    try:
        return Biscuit.from_base64(token.strip(), public_key)
    except BiscuitValidationError as error:
        if "base64" in str(error).lower() or not token.strip():
            raise Unauthorized(
                "the token is not a Biscuit token (it must be the base64 text printed by "
                "'statehub token mint'); check it was copied whole"
            ) from None
        raise Unauthorized(
            "the token's signature does not verify with this hub's root public key: it was minted "
            "for another hub or altered; ask this hub's admin for one ('statehub token mint')"
        ) from None


@dataclass(frozen=True, slots=True)
class TokenInfo:
    blocks: list[str]
    revocation_ids: list[str]
    verified: bool | None
    """True or False when a public key was given to check against; None otherwise."""
    facts: dict[str, list[str]] = field(default_factory=dict)


def describe(token: str, public_key: PublicKey | None = None) -> TokenInfo:
    """What a token says, block by block; readable without any key."""
    try:
        unverified = UnverifiedBiscuit.from_base64(token.strip())
    except (BiscuitValidationError, ValueError):
        raise BadRequest(
            "the token is not a Biscuit token (base64 text from 'statehub token mint')"
        ) from None
    blocks = [unverified.block_source(i) for i in range(unverified.block_count())]
    verified: bool | None = None
    if public_key is not None:
        try:
            read_token(token, public_key)
            verified = True
        except Unauthorized:
            verified = False
    facts: dict[str, list[str]] = {"actor": [], "right": []}
    for line in blocks[0].splitlines() if blocks else []:
        match = re.match(r'^(actor|right)\("((?:[^"\\]|\\.)*)"\);$', line.strip())
        if match:
            facts[match.group(1)].append(match.group(2))
    return TokenInfo(blocks, list(unverified.revocation_ids), verified, facts)
