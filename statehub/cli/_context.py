"""Opening the hub for a command, and turning hub errors into one clear line and an exit code."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from statehub.cli._output import clean, print_json_error
from statehub.errors import LIBRARY_ERRORS, HubError, SetupError, as_hub_error
from statehub.settings import Settings

if TYPE_CHECKING:
    from registry.errors import RegistryError
    from statehub.events import EventDesk
    from statehub.hub import Hub
    from sync.errors import SyncError
    from workplans.errors import WorkplansError

__all__ = ["HubCommandError", "handle_errors", "load_settings", "open_desk", "open_hub", "setup_error"]

F = TypeVar("F", bound=Callable[..., Any])


def load_settings(profile: str | None = None) -> Settings:
    """The settings from the environment; a bad one is one clear line and the setup exit code (3).

    ``profile`` (``serve --profile``) stands for ``STATEHUB_PROFILE`` and is read with the rest, so
    every default derived from the profile follows it (``STATEHUB_STATE_URL``: the cache's database
    on a fleet hub); changing the profile of settings already read would leave those the old one's.
    """
    try:
        return Settings.from_env(os.environ | {"STATEHUB_PROFILE": profile} if profile else None)
    except ValueError as error:
        raise setup_error(error) from None


@contextmanager
def open_hub(*, reconcile: bool = True) -> Iterator[Hub]:
    """The hub of this home, its cache brought up to date with the files unless ``reconcile`` is
    False. Loads SQLAlchemy and the indexer: read commands use ``statehub.cli._reading`` instead."""
    from statehub.hub import Hub

    try:
        hub = Hub(load_settings(), reconcile=reconcile)
    except HubError as error:  # e.g. an unreadable hub.toml (SetupError, exit 3)
        raise HubCommandError(error) from None
    with hub:
        yield hub


@contextmanager
def open_desk() -> Iterator[EventDesk]:
    """The hub and its event desk (write buffer, applier lock, relay queue), closed together."""
    from statehub.events import EventDesk  # not at import: listing commands never load intake

    with open_hub() as hub, EventDesk(hub) as desk:
        yield desk


class HubCommandError(click.ClickException):
    """A hub error (or a library error, mapped by ``as_hub_error``) as one line and its exit code."""

    def __init__(self, error: HubError | WorkplansError | RegistryError | SyncError) -> None:
        hub_error = as_hub_error(error)
        super().__init__(clean(hub_error.message))
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
            if kwargs.get("as_json"):  # --json: stdout says why too, in the envelope
                hub_error = as_hub_error(error)
                print_json_error(
                    clean(hub_error.message), hub_error.status_code, hub_error.exit_code, hub_error.details
                )
            raise HubCommandError(error) from None

    return wrapper  # type: ignore[return-value]
