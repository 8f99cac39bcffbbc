"""Verify a token and decide one request: who is asking, and may they do this?

``verify`` answers who (signature, revocation, one actor) and raises
Unauthorized; ``authorize`` answers may (the right, the repo, the time, every
block's checks) and raises Forbidden, or Unauthorized for an expired token.
Reasons name what to do next and never repeat the token.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from biscuit_auth import AuthorizationError, AuthorizerBuilder, Biscuit, Fact, PublicKey, Rule

from statehub.auth.contract import ACTOR_RULE, AUTHORIZER_CODE, RIGHTS, is_actor
from statehub.auth.tokens import read_token
from statehub.errors import Forbidden, HubError, Unauthorized

if TYPE_CHECKING:
    from statehub.auth.revocation import RevocationList

__all__ = ["TokenVerifier", "VerifiedToken", "authorize", "repos_in_scope", "token_scope"]

_MAX_TIME = dt.timedelta(milliseconds=100)
"""Biscuit's default 1 ms budget fails valid tokens on a busy host; our policy is tiny."""

_FAILED_CHECK = re.compile(r"Check n°\d+ in block n°(\d+): (.*?)(?=, Check n°|$)")
_REPO_CHECK = re.compile(r"repo\(\$(?P<var>\w+)\)\s*,\s*\[(?P<items>[^\]]*)\]\.contains\(\$(?P=var)\)")
"""The repo scope of a token's check (``repo($r), ["a", "b"].contains($r)``, statehub.auth.contract)."""
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A token whose signatures verified and that is not revoked. Never holds the token text."""

    biscuit: Biscuit
    actor: str
    right: str
    """The highest right its authority block grants."""
    revocation_ids: tuple[str, ...]

    @property
    def short_id(self) -> str:
        """Enough of the first revocation id to name this token in a log or an error."""
        return self.revocation_ids[0][:12] if self.revocation_ids else "?"


class TokenVerifier:
    def __init__(self, public_key: PublicKey, revocations: RevocationList) -> None:
        self.public_key = public_key
        self.revocations = revocations

    def verify(self, token: str) -> VerifiedToken:
        biscuit = read_token(token, self.public_key)
        ids = tuple(biscuit.revocation_ids)
        revoked = self.revocations.revoked(list(ids))
        if revoked is not None:
            raise Unauthorized(
                f"this token was revoked (revocation id {revoked[:12]}…, listed in "
                f"{self.revocations.path.name}); ask the hub's admin for a new one"
            )
        facts = _authority_facts(biscuit)
        actors = facts.get("actor", [])
        if len(actors) != 1:
            raise Unauthorized(
                f"the token names {len(actors)} actors; a hub token names exactly one "
                "(actor(\"name\") in its first block): mint it with 'statehub token mint --actor NAME'"
            )
        if not is_actor(actors[0]):
            raise Unauthorized(
                f"the token's actor {actors[0][:200]!r} is not an actor name ({ACTOR_RULE} characters), "
                "so no event could carry it: mint one with 'statehub token mint --actor NAME'"
            )
        rights = [r for r in facts.get("right", []) if r in RIGHTS]
        if not rights:
            raise Unauthorized(
                f'the token grants no right (right("read|write|edit|admin") in its first block): '
                f"mint one with 'statehub token mint --actor {actors[0]} --right read'"
            )
        best = max(rights, key=RIGHTS.index)
        return VerifiedToken(biscuit, actors[0], best, ids)


def _authority_facts(biscuit: Biscuit) -> dict[str, list[str]]:
    """The actor and right facts of the authority block (the only facts the hub trusts)."""
    authorizer = _builder().build(biscuit)
    found: dict[str, list[str]] = {}
    for name in ("actor", "right"):
        for fact in authorizer.query(Rule(f"found($x) <- {name}($x)")):
            value = fact.terms[0]
            if isinstance(value, str):
                found.setdefault(name, []).append(value)
    return found


def _builder() -> AuthorizerBuilder:
    builder = AuthorizerBuilder()
    limits = builder.limits()  # type: ignore[attr-defined]  # in 0.4, missing from its stubs
    limits.max_time = _MAX_TIME
    builder.set_limits(limits)  # type: ignore[attr-defined]
    return builder


def authorize(
    token: VerifiedToken, operation: str, repo: str | None = None, now: dt.datetime | None = None
) -> None:
    """Allow ``operation`` (a right) on ``repo`` (None: hub-wide) at ``now``, or raise why not."""
    if operation not in RIGHTS:
        raise ValueError(f"unknown operation {operation!r}")
    now = now or dt.datetime.now(dt.UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("authorize needs a timezone-aware time")
    now = now.astimezone(dt.UTC)  # biscuit-python accepts datetime.timezone.utc and nothing else
    builder = _builder()
    builder.add_code(AUTHORIZER_CODE)
    builder.add_fact(Fact("time({now})", {"now": now}))
    builder.add_fact(Fact("operation({op})", {"op": operation}))
    if repo is not None:
        builder.add_fact(Fact("repo({repo})", {"repo": repo}))
    try:
        builder.build(token.biscuit).authorize()
    except AuthorizationError as error:
        raise _refusal(token, operation, repo, str(error)) from None


def repos_in_scope(token: VerifiedToken, repos: list[str], now: dt.datetime | None = None) -> list[str]:
    """Of ``repos``, those the token is scoped to and may read (``GET /state/diagnostics`` shows only
    these), in their order.

    The scope is the contract's repo check (``repo($r), [...].contains($r)``, ADR-016) in
    every block that has one, the intersection of their lists; a token without one is
    scoped to every repo. A repo-scoped token reads listings hub-wide (ADR-016) but sees
    the diagnostics of its own repos only: they name work trees, remotes and files.
    """
    scope = token_scope(token)
    found = []
    for repo in repos:
        if scope is not None and repo not in scope:
            continue
        try:
            authorize(token, "read", repo, now)
        except HubError:
            continue
        found.append(repo)
    return found


def token_scope(token: VerifiedToken) -> set[str] | None:
    """The repos a token is scoped to: the intersection of the lists of its blocks' repo checks
    (``repo($r), [...].contains($r)``, ADR-016); None when it has none (every repo)."""
    scope: set[str] | None = None
    for index in range(token.biscuit.block_count()):
        for match in _REPO_CHECK.finditer(token.biscuit.block_source(index)):
            listed = {item.replace('\\"', '"') for item in _QUOTED.findall(match.group("items"))}
            scope = listed if scope is None else scope & listed
    return scope


def _refusal(token: VerifiedToken, operation: str, repo: str | None, message: str) -> HubError:
    where = f" on repo {repo!r}" if repo else ""
    failed = _FAILED_CHECK.findall(message)
    if any("time(" in check for _block, check in failed):
        return Unauthorized(
            f"the token for {token.actor} has expired ({_expiry(failed)}); ask for a new one "
            "('statehub token mint ... --ttl 8h')"
        )
    if "timeout" in message.lower() or "limit" in message.lower():
        return Forbidden(f"the token for {token.actor} is too complex to check in time; mint a simpler one")
    if failed:
        block, check = failed[0]
        origin = "as minted" if block == "0" else f"narrowed in block {block}"
        return Forbidden(
            f"the token for {token.actor} does not allow {operation}{where}: it is limited ({origin}) by "
            f"'{check}'; ask for a token that covers this request"
        )
    return Forbidden(
        f"the token for {token.actor} grants {token.right}, and this request needs {operation}{where}; "
        f"ask for one minted with --right {operation}"
    )


def _expiry(failed: list[tuple[str, str]]) -> str:
    for _block, check in failed:
        match = re.search(r"<=\s*(\S+)", check)
        if "time(" in check and match:
            return f"valid until {match.group(1)}"
    return "its time check failed"
