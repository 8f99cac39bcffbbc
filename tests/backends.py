"""The cache backends every cache and API test runs against: SQLite and real PostgreSQL.

A pytest plugin (loaded from tests/conftest.py). Any test that uses the
``settings`` fixture (directly, or through ``hub`` / ``client``) runs once per
backend, with ids ``[sqlite]`` and ``[postgres]``. Each postgres test gets its
own freshly created database, dropped afterwards, so tests never see each
other's rows. The databases are copies of a session template that already holds
the current cache schema, which saves each test the DDL (~0.4 s here).

    pytest --backends sqlite            # only SQLite (PostgreSQL not needed)
    pytest --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import os
import time
import uuid
from typing import TYPE_CHECKING, Any, TypeAlias

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from statehub.cache.database import open_cache
from statehub.cache.schema import metadata
from sync._durable_pg import PgState

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    import psycopg

    from sync._state_db import StateLocation

BACKENDS = ("sqlite", "postgres")
StateAt: TypeAlias = "Callable[[str], StateLocation]"
"""The ``state_backend`` fixture: where a durable store of that file name opens on this backend."""
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("statehub")
    group.addoption(
        "--backends",
        default=os.environ.get("STATEHUB_TEST_BACKENDS", ",".join(BACKENDS)),
        help="comma-separated cache backends to run the cache and API tests on (sqlite,postgres)",
    )
    group.addoption(
        "--postgres-url",
        default=os.environ.get("STATEHUB_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="a PostgreSQL URL allowed to CREATE DATABASE; each test gets its own database",
    )


def selected_backends(config: pytest.Config) -> list[str]:
    chosen = [b.strip() for b in str(config.getoption("--backends")).split(",") if b.strip()]
    unknown = sorted(set(chosen) - set(BACKENDS))
    if unknown or not chosen:
        raise pytest.UsageError(f"--backends {','.join(chosen)}: choose from {', '.join(BACKENDS)}")
    return chosen


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for fixture in ("cache_backend", "state_backend"):
        if fixture in metafunc.fixturenames:
            backends = selected_backends(metafunc.config)
            metafunc.parametrize(fixture, backends, ids=backends, indirect=True)


@pytest.fixture(scope="session")
def postgres_admin(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A connection to the server's maintenance database, used only to create and drop test databases."""
    url = str(request.config.getoption("--postgres-url"))
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as error:
        engine.dispose()
        pytest.fail(
            f"PostgreSQL is not reachable at {make_url(url).render_as_string()}: {error.orig}. "
            "Start it (.ci/run does), or run only SQLite with: pytest --backends sqlite",
            pytrace=False,
        )
    yield engine
    engine.dispose()


class _Template:
    """A database holding the empty current schema; rebuilt if the set of cache tables changes."""

    def __init__(self, admin: Engine) -> None:
        self.admin = admin
        self.name: str | None = None
        self.tables: frozenset[str] = frozenset()

    def current(self) -> str:
        import statehub.app  # noqa: F401  (every module that defines cache tables)

        tables = frozenset(metadata.tables)
        if self.name is None or tables != self.tables:
            self.drop()
            name = f"statehub_test_template_{uuid.uuid4().hex[:8]}"
            with self.admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            engine, _created = open_cache(_url(self.admin, name))
            engine.dispose()
            self.name, self.tables = name, tables
        return self.name

    def drop(self) -> None:
        if self.name is not None:
            with self.admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            self.name = None


def _url(admin: Engine, database: str) -> str:
    return make_url(admin.url).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_template(postgres_admin: Engine) -> Iterator[_Template]:
    template = _Template(postgres_admin)
    yield template
    template.drop()


@pytest.fixture
def cache_backend(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The cache URL for this test: None means the default SQLite file under the test's hub home."""
    if request.param == "sqlite":
        yield None
        return
    admin: Engine = request.getfixturevalue("postgres_admin")
    template: _Template = request.getfixturevalue("postgres_template")
    name = f"statehub_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template.current()}"'))
    try:
        yield _url(admin, name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def postgres_database(postgres_admin: Engine) -> Iterator[str]:
    """An empty database of its own for this test (dropped afterwards): its SQLAlchemy URL."""
    name = f"statehub_test_{uuid.uuid4().hex[:12]}"
    with postgres_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield _url(postgres_admin, name)
    finally:
        with postgres_admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def state_backend(request: pytest.FixtureRequest, tmp_path: Path) -> StateAt:
    """Where a durable store opens (canon/ADR-046): ``state_at("rooms.sqlite3")`` is that file under
    the test's temp dir on ``[sqlite]``, the state schema of a fresh database on ``[postgres]``
    (one database per test: every store of the test, and a reopened one, find each other's rows)."""
    if request.param == "sqlite":
        return lambda name: tmp_path / name
    state = PgState(request.getfixturevalue("postgres_database"))
    return lambda _name: state


AT_COMMIT = 7_050_016
"""The advisory lock a store's COMMIT waits for after :func:`hold_commits` (held by the test)."""


def hold_commits(holder: psycopg.Connection[Any], table: str) -> None:
    """Make every COMMIT that inserted or updated rows of the state schema's ``table`` wait while
    ``holder`` (autocommit, on the test's own database) holds :data:`AT_COMMIT`: a deferred
    trigger takes it shared at the COMMIT. Then take it. A test ends the session waiting there
    with :func:`end_at_commit`, or lets go (``pg_advisory_unlock``)."""
    holder.execute(
        f"""
        CREATE OR REPLACE FUNCTION statehub_state.wait_at_commit() RETURNS trigger LANGUAGE plpgsql
        AS $$ BEGIN PERFORM pg_advisory_xact_lock_shared({AT_COMMIT}); RETURN NULL; END $$;
        CREATE CONSTRAINT TRIGGER wait_at_commit AFTER INSERT OR UPDATE ON statehub_state.{table}
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION statehub_state.wait_at_commit();
        """
    )
    holder.execute("SELECT pg_advisory_lock(%s)", (AT_COMMIT,))


def end_at_commit(holder: psycopg.Connection[Any], within_s: float = 30.0) -> bool:
    """Terminate the session that waits at a COMMIT for :data:`AT_COMMIT` in ``holder``'s database
    (only there: ``datname`` is the test's own database); whether one did within ``within_s``."""
    give_up = time.monotonic() + within_s
    while time.monotonic() < give_up:
        ended = holder.execute(
            "SELECT pid, pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND wait_event_type = 'Lock' AND wait_event = 'advisory' AND query LIKE 'COMMIT%'"
        ).fetchone()
        if ended is not None:
            return bool(ended[1])
        time.sleep(0.01)
    return False
