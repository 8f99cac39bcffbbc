"""Opening the hub for a command, and turning hub errors into one clear line and an exit code."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from registry.errors import RegistryError
from statehub.errors import LIBRARY_ERRORS, HubError, SetupError, as_hub_error
from statehub.hub import Hub
from statehub.settings import Settings
from sync.errors import SyncError
from workplans.errors import WorkplansError

__all__ = ["HubCommandError", "handle_errors", "open_hub", "setup_error"]

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def open_hub(*, reconcile: bool = True) -> Iterator[Hub]:
    try:
        settings = Settings.from_env()
        hub = Hub(settings, reconcile=reconcile)
    except ValueError as error:  # a bad setting or an unreadable hub.toml
        raise setup_error(error) from None
    try:
        yield hub
    finally:
        hub.close()


class HubCommandError(click.ClickException):
    """A hub error (or a library error, mapped by ``as_hub_error``) as one line and its exit code."""

    def __init__(self, error: HubError | WorkplansError | RegistryError | SyncError) -> None:
        hub_error = as_hub_error(error)
        super().__init__(hub_error.message)
        self.exit_code = hub_error.exit_code  # type: ignore[misc]


def setup_error(error: ValueError) -> HubCommandError:
    """A setting the hub cannot use (``Settings.from_env`` says which): exit with the setup code."""
    return HubCommandError(SetupError(str(error)))


def handle_errors(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (HubError, *LIBRARY_ERRORS) as error:
            raise HubCommandError(error) from None

    return wrapper  # type: ignore[return-value]
