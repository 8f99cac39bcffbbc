"""The root key pair tokens are signed with, and the public key the hub verifies them with.

The private key is a file only its owner can read (mode 0600), written once by
``statehub token init``. The public key is not secret: it is printed with
``statehub token init --print-public-key`` and given to a hub (or to anyone who
attenuates or checks tokens) as ``ed25519/<hex>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from biscuit_auth import KeyPair, PrivateKey, PublicKey

from statehub.atomic import atomic_write
from statehub.errors import BadRequest, Conflict, SetupError

if TYPE_CHECKING:
    from pathlib import Path

    from statehub.settings import Settings

__all__ = [
    "format_public_key",
    "hub_public_key",
    "init_root_key",
    "load_root_key",
    "parse_public_key",
]

PUBLIC_PREFIX = "ed25519/"
PRIVATE_PREFIX = "ed25519-private/"


def format_public_key(key: PublicKey) -> str:
    return PUBLIC_PREFIX + key.to_bytes().hex()


def parse_public_key(text: str, *, source: str = "public key") -> PublicKey:
    """Accept ``ed25519/<hex>`` or bare hex; say what is wrong otherwise."""
    value = text.strip()
    if not value.startswith(PUBLIC_PREFIX):
        value = PUBLIC_PREFIX + value
    try:
        return PublicKey(value)
    except (ValueError, TypeError):
        raise BadRequest(
            f"{source} is not an Ed25519 public key: expected ed25519/ and 64 hex digits, "
            "as printed by 'statehub token init --print-public-key'"
        ) from None


def init_root_key(path: Path, *, force: bool = False) -> PublicKey:
    """Create the root key pair; the private key file is readable by its owner only."""
    if path.exists() and not force:
        raise Conflict(
            f"a root key already exists at {path}; tokens minted with it stop working if it is "
            "replaced, so pass --force only if that is what you want"
        )
    pair = KeyPair()
    atomic_write(path, PRIVATE_PREFIX + pair.private_key.to_bytes().hex() + "\n", mode=0o600)
    return pair.public_key


def load_root_key(path: Path) -> KeyPair:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise SetupError(
            f"no root key at {path}: run 'statehub token init' on the hub's host, or point "
            "STATEHUB_TOKEN_ROOT_KEY_FILE at the root private key"
        ) from None
    except OSError as error:
        raise SetupError(f"cannot read the root key {path}: {error.strerror}") from None
    if not text.startswith(PRIVATE_PREFIX):
        text = PRIVATE_PREFIX + text
    try:
        return KeyPair.from_private_key(PrivateKey(text))
    except (ValueError, TypeError):
        raise SetupError(
            f"{path} does not hold an Ed25519 private key (ed25519-private/<64 hex digits>); "
            "create one with 'statehub token init'"
        ) from None


def hub_public_key(settings: Settings) -> PublicKey | None:
    """The key tokens are verified with: STATEHUB_TOKEN_PUBLIC_KEY, else the root key file's."""
    if settings.token_public_key:
        return parse_public_key(settings.token_public_key, source="STATEHUB_TOKEN_PUBLIC_KEY")
    if settings.root_key_file.is_file():
        return load_root_key(settings.root_key_file).public_key
    return None
