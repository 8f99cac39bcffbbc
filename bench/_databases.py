"""Cache databases for benchmarks: ``--database-url`` support in one place.

    from _databases import add_database_option, cache_url
    add_database_option(parser)                      # adds --database-url
    with cache_url(args.database_url, tmp_dir) as url:
        settings = settings.with_overrides(database_url=url)

A PostgreSQL URL names a server and a maintenance database the benchmark may
CREATE DATABASE on; each run gets a fresh database, dropped afterwards.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["DEFAULT_POSTGRES_URL", "add_database_option", "cache_url"]

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def add_database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=None,
        help="cache backend: omit for a temp SQLite file; a postgresql+psycopg:// URL for a fresh "
        "database on that server (e.g. " + DEFAULT_POSTGRES_URL + ")",
    )


@contextmanager
def cache_url(database_url: str | None, tmp_dir: Path) -> Iterator[str]:
    """A fresh, empty cache URL: a temp SQLite file, or a new database on a PostgreSQL server."""
    if not database_url or database_url.startswith("sqlite"):
        yield database_url or f"sqlite:///{tmp_dir / f'cache-{uuid.uuid4().hex[:8]}.sqlite3'}"
        return
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    name = f"statehub_bench_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
