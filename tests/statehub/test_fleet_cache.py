"""The fleet registry survives the trip through the cache, on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import Engine, create_engine, delete, text

from statehub.cache.fleet_index import FLEET_FILE, fleet_rows, registry_from_rows
from statehub.cache.schema import metadata
from tests.workplans.test_fleet import EXAMPLE, registries
from workplans import FleetRegistry, parse_fleet, render_fleet

if TYPE_CHECKING:
    from collections.abc import Iterator

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    if request.param == "sqlite":
        created = create_engine("sqlite://")
        metadata.create_all(created)
        yield created
        created.dispose()
        return
    name = f"statehub_fleet_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    created = create_engine(PG_ADMIN.rsplit("/", 1)[0] + f"/{name}")
    try:
        metadata.create_all(created)
        yield created
    finally:
        created.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}"'))
        admin.dispose()


def _round_trip(engine: Engine, fleet_text: str) -> FleetRegistry:
    with engine.begin() as conn:
        for name in FLEET_FILE.tables:
            conn.execute(delete(metadata.tables[name]))
        for name, rows in fleet_rows("fleet", "registry/fleet.toml", fleet_text).items():
            if rows:
                conn.execute(metadata.tables[name].insert(), rows)
    with engine.connect() as conn:
        return registry_from_rows(conn, "fleet")


def test_the_example_comes_back_whole(engine: Engine) -> None:
    assert _round_trip(engine, EXAMPLE) == parse_fleet(EXAMPLE)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(registries())
def test_any_registry_comes_back_whole(engine: Engine, fleet: FleetRegistry) -> None:
    assert _round_trip(engine, render_fleet(fleet)) == fleet
