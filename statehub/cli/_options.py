"""The options many commands share, declared once so they read and behave the same everywhere.

Each is a click decorator: ``@json_option()``, ``@page_options("tasks")``,
``@event_options`` (``--actor``, ``--key`` and ``--json`` of a command that sends
an event), ``@fleet_repo_option``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = [
    "actor_option",
    "event_options",
    "fleet_repo_option",
    "json_option",
    "key_option",
    "page_options",
]

F = TypeVar("F", bound=Callable[..., Any])


def json_option(what: str = "the result") -> Callable[[F], F]:
    """``--json`` (parameter ``as_json``): print ``what`` as JSON instead of tables and lines."""
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON.")


actor_option = click.option("--actor", help="Who is acting (default: $STATEHUB_ACTOR, else your login name).")

key_option = click.option(
    "--key", help="Idempotency key (default: a fresh one). Resend with the same key to retry."
)

fleet_repo_option = click.option(
    "--repo", help="The repo holding registry/fleet.toml, when more than one does."
)


def event_options(func: F) -> F:
    """``--actor``, ``--key`` and ``--json``: what every command that sends an event takes."""
    return actor_option(key_option(json_option("the stored event")(func)))


def page_options(what: str = "rows", default: int = 100) -> Callable[[F], F]:
    """``--limit`` (the library checks 1-1000) and ``--offset`` (0 to 2**31-1, as the API bounds it) of
    a listing; exit 2 outside."""

    def decorate(func: F) -> F:
        limited = click.option(
            "--limit",
            default=default,
            show_default=True,
            help=f"At most this many {what}.",
        )
        # Bounded like the API's offset, so 2**64 is a usage error, not an overflow (ADR-022).
        skipped = click.option(
            "--offset",
            default=0,
            show_default=True,
            type=click.IntRange(0, 2**31 - 1),
            help=f"Skip this many {what}.",
        )
        return limited(skipped(func))

    return decorate
