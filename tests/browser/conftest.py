"""Shared by the browser tests: Debian's chromium driven by Playwright, one fresh profile per module."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.chromium import CHROMIUM

if TYPE_CHECKING:
    from collections.abc import Iterator


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if CHROMIUM.exists() or os.environ.get("CI"):
        return
    skip = pytest.mark.skip(reason="Debian chromium is not installed (.ci/run installs it)")
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(skip)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium with a fresh profile (``--user-data-dir``) for the module; each person is a page."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="statehub-chromium-")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield launched
        launched.close()
    shutil.rmtree(profile, ignore_errors=True)
