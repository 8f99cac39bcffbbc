"""The realistic fleet file, as a team would write it by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from workplans import FleetRegistry, parse_fleet

EXAMPLE_PATH = Path(__file__).parent / "fleet_example.toml"


@pytest.fixture
def example_text() -> str:
    return EXAMPLE_PATH.read_text(encoding="utf-8")


@pytest.fixture
def example(example_text: str) -> FleetRegistry:
    return parse_fleet(example_text)
