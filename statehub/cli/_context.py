"""Opening the hub for a command, and turning hub errors into one clear line and an exit code."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from statehub.errors import HubError
from statehub.hub import Hub
from statehub.settings import Settings

__all__ = ["handle_errors", "open_hub"]

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def open_hub(*, reconcile: bool = True) -> Iterator[Hub]:
    try:
        settings = Settings.from_env()
        hub = Hub(settings, reconcile=reconcile)
    except ValueError as error:  # a bad setting or an unreadable hub.toml
        raise click.ClickException(str(error)) from None
    try:
        yield hub
    finally:
        hub.close()


class HubCommandError(click.ClickException):
    def __init__(self, error: HubError) -> None:
        super().__init__(error.message)
        self.exit_code = error.exit_code  # type: ignore[misc]


def handle_errors(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except HubError as error:
            raise HubCommandError(error) from None

    return wrapper  # type: ignore[return-value]
