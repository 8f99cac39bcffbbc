"""Opening the hub for a command, and turning hub errors into one clear line and an exit code."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from statehub.cli._output import clean
from statehub.errors import HubError
from statehub.hub import Hub
from statehub.settings import Settings

if TYPE_CHECKING:
    from statehub.events import EventDesk

__all__ = ["HubCommandError", "handle_errors", "load_settings", "open_desk", "open_hub"]

F = TypeVar("F", bound=Callable[..., Any])


def load_settings() -> Settings:
    """The settings from the environment; a bad one is one clear line and exit 1."""
    try:
        return Settings.from_env()
    except ValueError as error:
        raise click.ClickException(clean(error)) from None


@contextmanager
def open_hub(*, reconcile: bool = True) -> Iterator[Hub]:
    try:
        hub = Hub(load_settings(), reconcile=reconcile)
    except ValueError as error:  # an unreadable hub.toml
        raise click.ClickException(clean(error)) from None
    with hub:
        yield hub


@contextmanager
def open_desk() -> Iterator[EventDesk]:
    """The hub and its event desk (write buffer, applier lock, relay queue), closed together."""
    from statehub.events import EventDesk  # not at import: listing commands never load intake

    with open_hub() as hub, EventDesk(hub) as desk:
        yield desk


class HubCommandError(click.ClickException):
    def __init__(self, error: HubError) -> None:
        super().__init__(clean(error.message))
        self.exit_code = error.exit_code  # type: ignore[misc]


def handle_errors(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except HubError as error:
            raise HubCommandError(error) from None

    return wrapper  # type: ignore[return-value]
