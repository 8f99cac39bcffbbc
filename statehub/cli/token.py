"""``statehub token ...``: the root key, and minting, narrowing, reading and revoking tokens.

A token is printed on stdout alone, so it can be captured (``TOKEN=$(statehub
token mint ...)``) without landing in a log; everything else goes to stderr.
A TOKEN argument of ``-`` is read from stdin, which keeps it out of shell history.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from statehub.auth import keys, tokens
from statehub.auth.contract import RIGHTS
from statehub.auth.revocation import add_revocation
from statehub.cli._context import handle_errors, load_settings
from statehub.cli._options import json_option
from statehub.cli._output import clean, print_json
from statehub.errors import SetupError

if TYPE_CHECKING:
    import datetime as dt

    from biscuit_auth import PublicKey

    from statehub.settings import Settings

__all__ = ["token"]


def _token_arg(value: str) -> str:
    text = sys.stdin.read() if value == "-" else value
    return text.strip()


def _ttl(value: str | None) -> dt.timedelta | None:
    return tokens.parse_ttl(value) if value else None


@click.group()
def token() -> None:
    """Biscuit capability tokens: who may read, write, edit or administer which repos.

    Example: statehub token mint --actor agt-codex --right write --repo the-custodian --ttl 8h
    """


@token.command("init")
@click.option(
    "--print-public-key", is_flag=True, help="Print only the public key (creating the pair if needed)."
)
@click.option(
    "--force", is_flag=True, help="Replace an existing root key (every token minted with it stops working)."
)
@handle_errors
def init(print_public_key: bool, force: bool) -> None:
    """Create the root key pair: private key file (mode 0600) in the data dir.

    Example: statehub token init --print-public-key
    """
    settings = load_settings()
    path = settings.root_key_file
    if print_public_key and path.exists() and not force:
        public = keys.load_root_key(path).public_key
    else:
        public = keys.init_root_key(path, force=force)
        click.echo(err=True, message=f"root key written to {path} (mode 0600); keep it secret, back it up")
    click.echo(keys.format_public_key(public))


@token.command("mint")
@click.option("--actor", required=True, help="Who the token acts as, e.g. agt-codex.")
@click.option("--right", required=True, type=click.Choice(RIGHTS), help="read < write < edit < admin.")
@click.option("--repo", "repos", multiple=True, help="Limit writes to this repo slug (repeatable).")
@click.option("--ttl", help="Expire after this long: 90s, 15m, 8h, 30d, 1h30m.")
@handle_errors
def mint(actor: str, right: str, repos: tuple[str, ...], ttl: str | None) -> None:
    """Mint a token with the root key; prints the token alone on stdout.

    Example: statehub token mint --actor agt-codex --right write --repo the-custodian --ttl 8h
    """
    settings = load_settings()
    root = keys.load_root_key(settings.root_key_file)
    minted = tokens.mint(root, actor, right, repos, _ttl(ttl))
    scope = ", ".join(repos) if repos else "all repos"
    expiry = f"expires in {ttl}" if ttl else "no expiry"
    click.echo(
        err=True,
        message=f"token for {actor}: {right} on {scope}, {expiry}; revoke with "
        f"'statehub token revoke {minted.revocation_ids[0]}'",
    )
    click.echo(minted.to_base64())


def _public_key(settings: Settings, given: str | None) -> PublicKey:
    if given:
        return keys.parse_public_key(given, source="--public-key")
    found = keys.hub_public_key(settings)
    if found is None:
        raise SetupError(
            "no public key to check the token against: pass --public-key ed25519/<hex> (the hub admin "
            "prints it with 'statehub token init --print-public-key') or set STATEHUB_TOKEN_PUBLIC_KEY"
        )
    return found


@token.command("attenuate")
@click.argument("token_text", metavar="TOKEN")
@click.option("--repo", "repos", multiple=True, help="Only these repos (repeatable).")
@click.option("--right", type=click.Choice(RIGHTS), help="At most this right.")
@click.option("--ttl", help="Expire after this long: 90s, 15m, 8h, 30d.")
@click.option(
    "--public-key", help="The hub's public key (default: STATEHUB_TOKEN_PUBLIC_KEY or the local root key)."
)
@handle_errors
def attenuate(
    token_text: str, repos: tuple[str, ...], right: str | None, ttl: str | None, public_key: str | None
) -> None:
    """Narrow a token offline, without the root private key; prints the narrower token.

    Example: statehub token attenuate - --repo the-custodian --right write --ttl 1h < token.txt
    """
    settings = load_settings()
    narrowed = tokens.attenuate(
        _token_arg(token_text), _public_key(settings, public_key), repos, right, _ttl(ttl)
    )
    click.echo(narrowed.to_base64())


@token.command("inspect")
@click.argument("token_text", metavar="TOKEN")
@click.option("--public-key", help="Also check the signature against this public key.")
@json_option("the blocks and ids")
@handle_errors
def inspect(token_text: str, public_key: str | None, as_json: bool) -> None:
    """Show what a token allows, block by block, and its revocation ids.

    Example: statehub token inspect "$TOKEN"
    """
    settings = load_settings()
    key = (
        keys.parse_public_key(public_key, source="--public-key")
        if public_key
        else keys.hub_public_key(settings)
    )
    info = tokens.describe(_token_arg(token_text), key)
    if as_json:
        print_json(
            {
                "actor": info.facts.get("actor"),
                "right": info.facts.get("right"),
                "verified": info.verified,
                "blocks": info.blocks,
                "revocation_ids": info.revocation_ids,
            }
        )
        return
    state = {True: "signature verifies", False: "SIGNATURE DOES NOT VERIFY", None: "signature not checked"}
    actors = clean(", ".join(info.facts.get("actor", [])) or "?")  # a token's text is anyone's
    click.echo(f"actor: {actors}  ({state[info.verified]})")
    for index, (source, rid) in enumerate(zip(info.blocks, info.revocation_ids, strict=False)):
        label = "authority block" if index == 0 else f"block {index} (attenuation)"
        click.echo(f"\n{label}, revocation id {rid}:")
        for line in source.strip().splitlines():
            click.echo(f"  {clean(line)}")


@token.command("revoke")
@click.argument("revocation_id", metavar="ID")
@click.option("--note", default="", help="Why, kept beside the id.")
@handle_errors
def revoke(revocation_id: str, note: str) -> None:
    """Revoke a token (and every token narrowed from it) by one of its revocation ids.

    Example: statehub token revoke 5f3c... --note "laptop lost"
    """
    settings = load_settings()
    added = add_revocation(settings.revocation_file, revocation_id, note)
    where = settings.revocation_file
    click.echo(err=True, message=f"revoked in {where}" if added else f"already revoked in {where}")
