"""Tokens minted by someone else's Biscuit code, from the documented contract alone.

Nothing here uses statehub.auth to build tokens: only biscuit_auth, the hub's
root private key file (as any minter holding it would) and the fact names in
docs/deployment.md ("Tokens"). The hub must accept each token exactly when its facts and checks allow.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from biscuit_auth import BiscuitBuilder, BlockBuilder, KeyPair, PrivateKey

from statehub.auth.keys import format_public_key

if TYPE_CHECKING:
    from tests.statehub.auth.conftest import SecuredHub

NOW = dt.datetime.now(dt.UTC)
AGO = (NOW - dt.timedelta(minutes=1)).isoformat()
SOON = (NOW + dt.timedelta(hours=1)).isoformat()

# (authority block, attenuation blocks, request, expected status)
CASES: list[tuple[str, list[str], tuple[str, str], int]] = [
    ('actor("ext"); right("write");', [], ("event", "alpha:ext"), 201),
    ('actor("ext"); right("write");', [], ("event", "alpha:someone-else"), 403),
    ('actor("ext"); right("read");', [], ("event", "alpha:ext"), 403),
    ('actor("ext"); right("read");', [], ("GET", "/tasks"), 200),
    ('actor("ext"); right("read"); team("ops");', [], ("GET", "/canon"), 200),
    # a strict repo check (no read exception): hub-wide reads fail, repo-named reads pass
    ('actor("ext"); right("admin"); check if repo($r), ["beta"].contains($r);', [], ("GET", "/tasks"), 403),
    (
        'actor("ext"); right("admin"); check if repo($r), ["beta"].contains($r);',
        [],
        ("GET", "/tasks?repo=beta"),
        200,
    ),
    ('actor("ext"); right("admin"); check if repo($r), ["beta"].contains($r);', [], ("refresh", "beta"), 200),
    (
        'actor("ext"); right("admin"); check if repo($r), ["beta"].contains($r);',
        [],
        ("refresh", "alpha"),
        403,
    ),
    # facts in an attenuation block are not trusted: a block cannot widen a token
    ('actor("ext"); right("read");', ['right("admin");'], ("refresh", "alpha"), 403),
    ('actor("ext"); right("read");', ['actor("root");'], ("GET", "/tasks"), 200),
    ('actor("ext"); right("admin");', ['check if operation("read");'], ("refresh", "alpha"), 403),
    ('actor("ext"); right("admin");', ['check if operation("read");'], ("GET", "/repos"), 200),
    (
        'actor("ext"); right("edit");',
        ['check if operation($op), ["read", "write"].contains($op);'],
        ("save", "alpha"),
        403,
    ),
    (
        'actor("ext"); right("edit");',
        ['check if operation($op), ["read", "write"].contains($op);'],
        ("event", "alpha:ext"),
        201,
    ),
    # time is supplied by the hub: expired authority or block checks are refused with 401
    (
        f'actor("ext"); right("read"); check if time($t), $t <= {AGO};',
        [],
        ("GET", "/tasks"),
        401,
    ),
    (
        f'actor("ext"); right("read"); check if time($t), $t <= {SOON};',
        [],
        ("GET", "/tasks"),
        200,
    ),
    (
        'actor("ext"); right("read");',
        [f"check if time($t), $t <= {(NOW - dt.timedelta(seconds=5)).isoformat()};"],
        ("GET", "/tasks"),
        401,
    ),
    # the hub needs exactly one actor and a known right
    ('right("read");', [], ("GET", "/tasks"), 401),
    ('actor("a"); actor("b"); right("read");', [], ("GET", "/tasks"), 401),
    ('actor("ext"); right("superuser");', [], ("GET", "/tasks"), 401),
    ('actor("ext"); right("read"); right("edit");', [], ("save", "gamma"), 201),
]


def _send(hub: SecuredHub, token: str, request: tuple[str, str]) -> int:
    kind, target = request
    headers = hub.bearer(token)
    if kind == "GET":
        return hub.client.get(target, headers=headers).status_code
    if kind == "event":
        repo, actor = target.split(":")
        return hub.client.post(
            "/probe/events", json=[{"repo": repo, "actor": actor}], headers=headers
        ).status_code
    if kind == "save":
        return hub.client.post(f"/probe/save/{target}", headers=headers).status_code
    return hub.client.post(f"/repos/{target}/refresh", headers=headers).status_code


def test_tokens_minted_elsewhere_are_judged_by_their_facts_and_checks(secured: SecuredHub) -> None:
    private = PrivateKey(secured.settings.root_key_file.read_text(encoding="utf-8").strip())
    assert format_public_key(KeyPair.from_private_key(private).public_key) == format_public_key(
        secured.root.public_key
    )
    wrong = []
    for authority, blocks, request, expected in CASES:
        token = BiscuitBuilder(authority).build(private)
        for block in blocks:
            token = token.append(BlockBuilder(block))
        status = _send(secured, token.to_base64(), request)
        if status != expected:
            wrong.append((authority, blocks, request, expected, status))
    assert wrong == []


def test_a_token_signed_by_another_root_is_refused(secured: SecuredHub) -> None:
    token = BiscuitBuilder('actor("ext"); right("admin");').build(KeyPair().private_key)
    assert _send(secured, token.to_base64(), ("GET", "/tasks")) == 401
