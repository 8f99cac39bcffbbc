"""Open the cache database; drop and rebuild it when its schema version differs.

Two backends: a SQLite file (dev, one small host) and PostgreSQL (fleet), picked
by the URL alone: ``sqlite:///path`` or ``postgresql+psycopg://user@host/db``.
A SQLite path is read from the parsed URL (``statehub.settings.sqlite_url``
builds it), so a directory with ``?``, ``#``, ``%`` or spaces works (ADR-022).
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import Connection, Engine, create_engine, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError, DisconnectionError, OperationalError
from sqlalchemy.schema import CreateIndex, CreateTable, DropTable, ExecutableDDLElement

from statehub.cache import fleet_index as fleet_index  # registers registry/fleet.toml and its tables
from statehub.cache.schema import META, SCHEMA_VERSION, metadata
from statehub.cache.search import build_search, create_search, drop_search
from statehub.errors import SetupError

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "CACHE_SETUP_LOCK",
    "LOAD_CACHE_KIB",
    "create_indexes",
    "is_postgres",
    "loading",
    "open_cache",
    "replacing",
    "reset_cache",
    "setting_up",
]

CACHE_SETUP_LOCK = int.from_bytes(b"SHcache0", "big")
"""The advisory lock (one bigint key) a hub holds on PostgreSQL while it checks the cache's schema
version and creates the tables at open (as ``sync._durable_pg.MIGRATE_LOCK`` guards the state schema)."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _json_loads(data: bytes | str) -> Any:
    try:
        return _msgspec_decode(data)
    except msgspec.DecodeError:  # what msgspec refuses and the standard library reads (1e400)
        return json.loads(data)


_msgspec_decode = msgspec.json.decode


def _psycopg_json(dbapi_connection: Any, _record: Any) -> None:
    """psycopg decodes ``json`` columns with msgspec: the same values as the standard library's
    decoder, in a fraction of its time (the task lists decode every row's ``depends_on``)."""
    from psycopg.types.json import set_json_loads

    set_json_loads(_json_loads, dbapi_connection)


IDLE_PING_SECONDS = 5.0
"""A pooled PostgreSQL connection unused this long is pinged before it is handed out."""


def _ping_when_idle(engine: Engine) -> None:
    """Replace a dead pooled connection (the server restarted under a long-running hub) before a
    caller gets it: one whose socket already holds the server's goodbye (a restart, a fail-over,
    ``pg_terminate_backend``: :func:`sync._durable_pg.found_dead`, a ``poll`` and no round trip),
    and, pinging, one idle :data:`IDLE_PING_SECONDS` or more (a goodbye may never have arrived).
    A connection made for this very checkout that the server has ended already (sessions
    terminated over and over, a fail-over under way) is the database not answering, an
    OperationalError (503 in the API): SQLAlchemy's own answer once its reconnections ran out
    was "This connection is closed", an InvalidRequestError, and so a 500.

    ``pool_pre_ping`` pinged on every checkout: one more round trip on every request. A connection
    used within the last seconds of a busy hub is taken as alive; if the server went away in that
    window the query fails once, SQLAlchemy invalidates the pool, and the next checkout reconnects.
    """

    from sync._durable_pg import found_dead  # PostgreSQL only: the module stays unloaded on SQLite

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if found_dead(dbapi_connection):  # the server said goodbye (a restart): no round trip to know
            if "checked_in" not in record.info:  # made for this checkout: trying again would loop
                raise OperationalError(
                    "checkout", None, ConnectionError("the server ended a new connection at once")
                )
            raise DisconnectionError("the server ended this connection")
        now = time.monotonic()
        last = record.info.get("checked_in", now)
        if now - last >= IDLE_PING_SECONDS:
            try:
                dbapi_connection.execute("SELECT 1")
                dbapi_connection.rollback()  # end the transaction the ping began
            except Exception as error:
                raise DisconnectionError(str(error)) from error

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql", "postgres"))


def open_cache(url: str, *, dead_peer_s: float | None = None) -> tuple[Engine, bool]:
    """Return the engine and whether the cache was (re)created empty.

    A cache written by another schema version is dropped whole: it holds
    nothing that the files cannot give back. A SQLite file that is not a
    database at all (damaged, or the URL names some other file) is SetupError
    naming it: the hub does not delete a file it did not make recognisably.

    On PostgreSQL, ``dead_peer_s`` (seconds, ``STATEHUB_PG_DEAD_PEER``; None: the state stores'
    default) sets libpq's TCP keepalives and ``tcp_user_timeout`` on this end of each connection
    (``sync._durable_pg.keepalive_options``, canon/ADR-051): a read against a database host that
    vanished fails within about that long instead of the kernel's two hours. Keepalive parameters
    the URL names win; its ``options`` and PGOPTIONS are left to libpq.
    """
    kwargs: dict[str, Any] = {}
    if url.startswith(("postgres://", "postgres+")):  # libpq's short scheme, which the settings take
        url = "postgresql" + url[len("postgres") :]
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False}
    elif is_postgres(url):
        from sync._durable_pg import DEAD_PEER_S, keepalive_options

        client, _server = keepalive_options(DEAD_PEER_S if dead_peer_s is None else dead_peer_s)
        query = make_url(url).query
        # This end only: the cache's sessions hold no lock a vanished hub must free, and the
        # server-side settings sent as ``options`` cost reads a fifth of their throughput in
        # bench/query.py (0.54-0.62x against 0.75-0.77x). What the URL says wins over the
        # defaults (connect_args would override it); the URL's ``options`` and PGOPTIONS stay.
        kwargs["connect_args"] = {name: value for name, value in client.items() if name not in query}
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    elif is_postgres(url):
        _ping_when_idle(engine)
        event.listen(engine, "connect", _psycopg_json)
    try:
        stored = _stored_version(engine)
    except DatabaseError as error:
        if not url.startswith("sqlite"):
            raise
        engine.dispose()
        raise SetupError(
            f"the cache {make_url(url).database} cannot be read ({error.orig}); the cache is "
            "disposable: move that file away (or delete it) and run 'statehub rebuild'"
        ) from None
    if stored == SCHEMA_VERSION:
        return engine, False
    if engine.dialect.name == "postgresql":
        # Hubs starting at once on one database (fleet replicas) take turns: the first creates,
        # the next reads the version again under the lock and finds the tables (canon/ADR-054).
        with engine.begin() as conn:
            _take_setup_lock(conn)
            if _version_in(conn) == SCHEMA_VERSION:
                return engine, False
            _drop_tables(conn)
            _create_tables(conn, indexes=True)
        return engine, True
    reset_cache(engine)
    return engine, True


@contextmanager
def setting_up(engine: Engine) -> Iterator[None]:
    """Hold the cache's setup lock (``CACHE_SETUP_LOCK``) on PostgreSQL for the block: a hub's
    start-up work on the cache (the rebuild of a cache it created, its reconcile) runs while no
    other hub of the database does its own, nor creates the tables (``open_cache``). The lock is
    held by a transaction of its own that touches no table, so the block's own transactions,
    DDL included, never wait for it. Nothing on SQLite (one host, one hub)."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as guard, guard.begin():
        _take_setup_lock(guard)
        yield


def _take_setup_lock(conn: Connection) -> None:
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CACHE_SETUP_LOCK})


def reset_cache(engine: Engine, *, indexes: bool = True) -> None:
    """Drop every cache table and create the current schema.

    ``indexes=False`` leaves out the secondary indexes, for a bulk load that then
    calls :func:`create_indexes`: building an index once over loaded rows is
    cheaper than keeping it up to date row by row (bench/rebuild.py).
    """
    if engine.dialect.name == "postgresql":
        # DDL is transactional on PostgreSQL: one transaction, one commit (each costs a WAL flush).
        with engine.begin() as conn:
            _drop_tables(conn)
            _create_tables(conn, indexes=indexes)
        return
    with engine.begin() as conn:
        _drop_tables(conn)
    with engine.begin() as conn:
        _create_tables(conn, indexes=indexes)


@contextmanager
def replacing(engine: Engine) -> Iterator[Connection]:
    """A write transaction that replaces the whole cache: every table dropped and created again
    without its secondary indexes, for a rebuild to load its rows and then call
    :func:`create_indexes`.

    All of it is one transaction with one commit, as the bare floor does (ADR-047): a reader
    elsewhere, a running server's, reads the old cache until the new one commits, never missing
    tables or no rows, and a rebuild that stops half-way (Ctrl-C, a full disk) leaves the old cache
    as it was. On SQLite it is begun at once (``BEGIN IMMEDIATE``: Python's sqlite3 begins none
    before DDL, so each DROP and CREATE would otherwise commit on its own) and readers in WAL mode
    go on reading the old cache; on PostgreSQL the drop holds every table's ACCESS EXCLUSIVE lock,
    so a read meanwhile waits for the new rows (seconds on the 74-repo corpus) rather than answer
    from an empty cache."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        _drop_tables(conn)
        _create_tables(conn, indexes=False)
        yield conn


def _drop_tables(conn: Connection) -> None:
    drop_search(conn)
    # As drop_all, without reflecting each table; on PostgreSQL in one round trip.
    _run_ddl(conn, [DropTable(table, if_exists=True) for table in reversed(metadata.sorted_tables)])


def _create_tables(conn: Connection, *, indexes: bool) -> None:
    _run_ddl(conn, [CreateTable(table) for table in metadata.sorted_tables])
    create_search(conn)
    if indexes:
        create_indexes(conn)
    conn.execute(META.insert(), [{"key": "schema_version", "value": str(SCHEMA_VERSION)}])


def create_indexes(conn: Connection) -> None:
    """Build the secondary indexes and the search index (statehub.cache.search) over the rows loaded,
    in tables :func:`reset_cache` just created without them."""
    _run_ddl(conn, [CreateIndex(index) for table in metadata.sorted_tables for index in table.indexes])
    build_search(conn)


def _run_ddl(conn: Connection, statements: list[ExecutableDDLElement]) -> None:
    """Run DDL statements in order: on PostgreSQL as one script, one round trip (psycopg sends a
    statement without parameters by the simple query protocol, which takes several); on SQLite
    one by one."""
    if conn.dialect.name != "postgresql":
        for statement in statements:
            conn.execute(statement)
        return
    texts = [str(statement.compile(dialect=conn.dialect)) for statement in statements]
    driver = conn.connection.driver_connection
    assert driver is not None
    driver.execute(";\n".join(texts))


def _stored_version(engine: Engine) -> int | None:
    with engine.connect() as conn:
        return _version_in(conn)


def _version_in(conn: Connection) -> int | None:
    if not conn.dialect.has_table(conn, META.name):  # no Inspector: one query, nothing cached
        return None
    value = conn.execute(select(META.c.value).where(META.c.key == "schema_version")).scalar_one_or_none()
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


LOAD_CACHE_KIB = 65536
"""SQLite's page cache while a rebuild loads the cache (KiB): the 74-repo corpus's cache is about
11 MB, so its pages stay in memory while the rows go in, the indexes and derived columns are built
and the change stream's snapshot reads them back; the default 2 MiB spilled pages to the WAL and
read them again (about 10% of that work)."""


@contextmanager
def loading(conn: Connection) -> Iterator[None]:
    """On SQLite, :data:`LOAD_CACHE_KIB` of page cache for ``conn`` inside the block, its own size
    restored when the block ends well (the pool keeps the connection; after a failure, which
    rolls the transaction back, it may keep the larger cache, memory and nothing more); nothing on
    PostgreSQL."""
    if conn.dialect.name != "sqlite":
        yield
        return
    size = int(conn.exec_driver_sql("PRAGMA cache_size").scalar_one())
    conn.exec_driver_sql(f"PRAGMA cache_size = -{LOAD_CACHE_KIB}")
    yield
    conn.exec_driver_sql(f"PRAGMA cache_size = {size}")
