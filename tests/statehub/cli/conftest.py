"""Run the ``statehub`` command in-process against the test's STATEHUB_HOME."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner, Result

from statehub.cli import main

if TYPE_CHECKING:
    from pathlib import Path

    from statehub.settings import Settings

Run = Callable[..., Result]


@pytest.fixture
def run(settings: Settings) -> Run:
    """``run("repos", "list")``; the ``settings`` fixture has already pointed STATEHUB_HOME at a temp dir."""
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture
def settings_home(settings: Settings) -> Path:
    """The STATEHUB_HOME directory the ``settings`` fixture set."""
    return settings.config_dir.parent
