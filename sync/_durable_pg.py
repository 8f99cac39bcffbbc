"""The durable stores on PostgreSQL: one state schema, ordered migrations under an advisory lock.

A fleet hub whose cache is on PostgreSQL keeps its durable state there too
(canon/ADR-046): every store's tables live in the schema :data:`STATE_SCHEMA`
of the state database, next to the cache's tables but never among them. The
cache is dropped and rebuilt at will (statehub.cache.database drops only the
tables of its own metadata, in the connection's default schema); this schema
is only ever migrated forward, never dropped.

Migrations: :data:`MIGRATIONS` (``statehub_state.migration``) holds one row
per store and version applied. Each store brings its own ordered steps (step
``n`` takes it from version ``n - 1`` to ``n``, as in :mod:`sync._durable`),
applied in one transaction that first takes the advisory lock
:data:`MIGRATE_LOCK`: N replicas starting at once queue on it, the first
applies the steps, the others find them applied. PostgreSQL's DDL is
transactional, so a failing step leaves the schema as it was. A store whose
recorded version is newer than the code's steps is refused
(:class:`~sync.errors.StoreTooNew`) before anything is written.

Connections: psycopg 3 directly (not SQLAlchemy): the stores are hand-written
SQL over a DB-API connection on SQLite already; a replica's later needs
(session advisory locks, ``LISTEN``/``NOTIFY``) want a dedicated connection
that a pool would hide. One connection per store and process, in autocommit
mode, used under the store's lock; a store's transaction is
``connection.transaction()``. A connection the server dropped (a restart, a
fail-over, ``pg_terminate_backend``) is replaced before it is used, and the
store migrated on it (a database created again empty gets its tables back), so
the first request after a restart does not fail (canon/ADR-049, addendum of
2026-12-01). Only where nothing can have run twice:

- before a statement or a transaction, a connection whose socket already shows
  the server's goodbye (the FATAL message and end of file a terminated backend
  sends) is found dead without a round trip (:func:`found_dead`) and replaced;
- a ``BEGIN`` that meets a dropped connection ran nothing of its transaction:
  it is sent once more on a new connection;
- a lone statement outside a transaction that only reads (``SELECT`` with no
  side effect this store relies on) is sent once more on a new connection.

A statement of a transaction that meets the drop is never retried here (its
commit may have happened, or its transaction's earlier statements are gone):
it raises StoreUnreachable (503 with Retry-After), and the client's retry by
event key is what makes trying again safe. ``search_path`` is set at connect
(``options``), so the stores' SQL names tables unqualified on both backends;
a transaction-pooling proxy (pgbouncer in transaction mode) would lose it and
is not supported (session advisory locks need session pooling anyway).

Durability follows the SQLite file's setting: a store whose file runs
``synchronous=NORMAL`` (rooms, sessions) connects with ``synchronous_commit=off``:
its commit is in the server's memory when it returns, so it survives the
hub's crash (the case that matters: the server is another process, often
another host), and the server's own crash may lose its last few hundred
milliseconds, as a power cut may lose a NORMAL file's last commits. It costs a
round trip instead of a WAL flush (bench/state_pg.py: an append went from
about 5 ms to a fraction of one on this host). A ``synchronous=FULL`` store (the
write buffer with its relay queue and leases, canon/ADR-049) waits for the flush.

psycopg is imported here, and this module only when a store opens on
PostgreSQL: read commands of the CLI never load it (tests/statehub/cli/test_lazy.py).
"""

from __future__ import annotations

import functools
import re
import select
import threading
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from sync.errors import StoreNotPermitted, StoreTooNew, StoreUnreachable

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    import psycopg

    from sync._state_db import Rows

__all__ = [
    "DEAD_PEER_S",
    "MIGRATE_LOCK",
    "MIGRATIONS",
    "STATE_SCHEMA",
    "PgState",
    "PgStateDb",
    "applied_versions",
    "found_dead",
    "keepalive_options",
    "migrate",
]

STATE_SCHEMA = "statehub_state"
MIGRATIONS = f"{STATE_SCHEMA}.migration"
MIGRATE_LOCK = int.from_bytes(b"SHmigrat", "big")
"""The advisory lock (one bigint key) every migration of the state schema holds while it runs."""

_DRIVER = re.compile(r"^postgres(?:ql)?\+[a-z0-9_]+://")


DEAD_PEER_S = 60.0
"""Default of :attr:`PgState.dead_peer_s` (``STATEHUB_PG_DEAD_PEER``)."""
DEAD_PEER_MIN_S = 10.0
DEAD_PEER_MAX_S = 3600.0


def keepalive_options(dead_peer_s: float) -> tuple[dict[str, Any], str]:
    """libpq's keepalive parameters (this end finds a vanished server) and the server-side
    settings for ``options`` (the server finds a vanished client, and ends its session, locks and
    all), so that a silent peer is given up within about ``dead_peer_s`` seconds.

    The first probe after a third of it idle, then six probes a ninth of it apart; and
    ``tcp_user_timeout`` for data sent and never acknowledged (keepalives do not probe while
    data waits). On a Unix-domain socket the server ignores them (``SHOW`` answers 0): there is no
    peer host to lose."""
    whole = int(dead_peer_s)
    idle, interval, count = max(1, whole // 3), max(1, whole // 9), 6
    user_timeout_ms = whole * 1000
    client: dict[str, Any] = {
        "keepalives": 1,
        "keepalives_idle": idle,
        "keepalives_interval": interval,
        "keepalives_count": count,
        "tcp_user_timeout": user_timeout_ms,
    }
    server = (
        f"-c tcp_keepalives_idle={idle} -c tcp_keepalives_interval={interval} "
        f"-c tcp_keepalives_count={count} -c tcp_user_timeout={user_timeout_ms}"
    )
    return client, server


@dataclass(frozen=True, slots=True)
class PgState:
    """The state schema of one PostgreSQL database: where a fleet hub's durable stores live.

    ``url`` is a libpq URL (``postgresql://user@host:5432/db``); a SQLAlchemy URL with a
    driver (``postgresql+psycopg://...``, the cache's form) is taken as the same database.
    """

    url: str
    dead_peer_s: float = DEAD_PEER_S
    """Seconds after which either end of a connection takes the other for gone when it stops
    answering (a host that lost power sends no FIN): TCP keepalives and ``tcp_user_timeout`` on
    both ends (:func:`keepalive_options`). The server then ends the session and frees its
    session advisory locks (a room's save lock, the applier's, the bus's ``open`` holds)."""

    def __post_init__(self) -> None:
        if not self.url.startswith(("postgresql", "postgres")):
            raise ValueError(f"{self.where}: the state database must be a postgresql:// URL")
        if not DEAD_PEER_MIN_S <= self.dead_peer_s <= DEAD_PEER_MAX_S:
            raise ValueError(
                f"dead_peer_s={self.dead_peer_s}: give seconds from {DEAD_PEER_MIN_S} to {DEAD_PEER_MAX_S}"
            )
        object.__setattr__(self, "url", _DRIVER.sub("postgresql://", self.url))

    @property
    def where(self) -> str:
        """The schema, database and server, without the password (for messages and logs)."""
        parts = urlsplit(_DRIVER.sub("postgresql://", self.url))
        host = parts.hostname or "the local socket"
        port = f":{parts.port}" if parts.port else ""
        database = parts.path.lstrip("/") or parts.username or "postgres"
        return f"PostgreSQL schema {STATE_SCHEMA} in database {database} on {host}{port}"

    def connect(self, *, wait_for_flush: bool = True) -> psycopg.Connection[Any]:
        """A new autocommit connection whose ``search_path`` is the state schema; StoreUnreachable
        (naming the database, never the password) when the server cannot be reached or refuses.

        ``wait_for_flush=False`` sets ``synchronous_commit=off`` on it (see the module docstring)."""
        import psycopg

        client, server = keepalive_options(self.dead_peer_s)
        options = f"-c search_path={STATE_SCHEMA} {server}"
        if not wait_for_flush:
            options += " -c synchronous_commit=off"
        try:
            return psycopg.connect(
                self.url,
                autocommit=True,
                options=options,
                application_name="statehub",
                connect_timeout=10,
                **client,
            )
        except psycopg.OperationalError as error:
            raise StoreUnreachable(self.where, _first_line(error)) from None


def applied_versions(conn: psycopg.Connection[Any], store: str) -> int:
    """The newest version of ``store`` recorded in the state schema (0: none, or no schema yet)."""
    row = conn.execute("SELECT to_regclass(%s)", (MIGRATIONS,)).fetchone()
    if row is None or row[0] is None:
        return 0
    found = conn.execute(f"SELECT coalesce(max(version), 0) FROM {MIGRATIONS} WHERE store = %s", (store,))  # noqa: S608 - a constant
    value = found.fetchone()
    return int(value[0]) if value is not None else 0


def migrate(conn: psycopg.Connection[Any], where: str, store: str, steps: Sequence[str], what: str) -> int:
    """Bring ``store`` in the state schema to ``len(steps)`` under :data:`MIGRATE_LOCK`; return it.

    The version is read (and a newer one refused) before the lock is taken or anything is
    created, so a hub too old for the schema changes nothing; then, in one transaction holding
    the lock: the schema and the migrations table if missing, and the steps not yet applied.
    StoreNotPermitted when the user may not create them (nothing is created).
    """
    newest = len(steps)
    version = applied_versions(conn, store)
    if version > newest:
        raise StoreTooNew(where, what, version, newest)
    if version == newest:
        return newest
    import psycopg

    try:
        return _migrate_locked(conn, where, store, steps, what)
    except psycopg.errors.InsufficientPrivilege as error:
        raise StoreNotPermitted(where, conn.info.user, conn.info.dbname, _first_line(error)) from None


def _migrate_locked(
    conn: psycopg.Connection[Any], where: str, store: str, steps: Sequence[str], what: str
) -> int:
    """:func:`migrate`'s transaction: under :data:`MIGRATE_LOCK`, the schema, the migrations
    table and the steps not yet applied (a privilege refused rolls all of it back)."""
    newest = len(steps)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
        # Only when missing: CREATE SCHEMA IF NOT EXISTS asks for CREATE on the database even when
        # the schema is there, and an administrator may have made it for a user without that right.
        found = conn.execute("SELECT to_regnamespace(%s)", (STATE_SCHEMA,)).fetchone()
        if found is None or found[0] is None:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA}")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS} ("
            "store text NOT NULL, version integer NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (store, version))"
        )
        version = applied_versions(conn, store)  # another replica may have applied them meanwhile
        if version > newest:
            raise StoreTooNew(where, what, version, newest)
        for number in range(version + 1, newest + 1):
            conn.execute(steps[number - 1].encode())  # no parameters: several statements in one step
            conn.execute(f"INSERT INTO {MIGRATIONS} (store, version) VALUES (%s, %s)", (store, number))  # noqa: S608 - a constant
    return newest


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def found_dead(conn: psycopg.Connection[Any]) -> bool:
    """Whether an idle connection is already known dead, without a round trip.

    A backend the server ends (a restart, a fail-over, ``pg_terminate_backend``) sends a FATAL
    message and closes its socket: the idle connection's socket turns readable. Reading what is
    there (``PQconsumeInput``, which never blocks and sends nothing) takes the message, then the
    end of file, which marks the connection closed. A live idle connection's socket is not
    readable (or holds a notice), and this costs one ``poll`` of it. A connection cut without a
    goodbye (a network partition) looks alive here: its next statement finds out.
    """
    import psycopg

    if conn.closed:
        return True
    try:
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN)
        for _ in range(4):  # the message, then the end of file (usually both at once)
            if not poller.poll(0):
                return False
            conn.pgconn.consume_input()
            if conn.closed:
                return True
    except (psycopg.OperationalError, OSError, ValueError):
        conn.close()
        return True
    return conn.closed


def _lost(error: BaseException, conn: psycopg.Connection[Any]) -> bool:
    """Whether ``error`` is the connection's loss (not an error of the statement itself)."""
    import psycopg

    return isinstance(error, psycopg.OperationalError) and conn.closed


_WRITES = re.compile(
    r"\b(INSERT|UPDATE|DELETE|FOR\s+UPDATE|FOR\s+SHARE|pg_advisory\w*|nextval|setval|pg_notify)\b",
    re.IGNORECASE,
)


def _only_reads(sql: str) -> bool:
    """Whether a statement only reads (sent again on a new connection when the old one dropped
    under it): a ``SELECT``/``WITH`` naming nothing that writes, locks or notifies."""
    return sql.lstrip().upper().startswith(("SELECT", "WITH")) and _WRITES.search(sql) is None


@functools.lru_cache(maxsize=256)
def _paramstyle(sql: str) -> bytes:
    """The portable SQL of a store (``?`` placeholders) as psycopg takes it (``%s``)."""
    return sql.replace("%", "%%").replace("?", "%s").encode()


class PgStateDb:
    """One store's connection to the state schema (see the module docstring); the store locks it."""

    dialect: Literal["sqlite", "postgresql"] = "postgresql"

    def __init__(
        self, state: PgState, store: str, steps: Sequence[str], what: str, *, wait_for_flush: bool = True
    ) -> None:
        self.state = state
        self.store = store
        self.where = state.where
        self._wait = wait_for_flush
        self._steps = list(steps)
        self._what = what
        self._lock = threading.RLock()
        self._in_transaction = False
        self._conn = state.connect(wait_for_flush=wait_for_flush)
        try:
            migrate(self._conn, self.where, store, steps, what)
        except BaseException:
            self._conn.close()
            raise

    def _live(self) -> psycopg.Connection[Any]:
        """The connection, replaced first when the server dropped it (never inside a transaction).

        The new connection migrates the store again (a no-op when its version is there): the
        database may be another one now (restored empty, a fail-over to a fresh server), and a
        store whose tables are gone would fail every statement until the hub restarts."""
        if not self._in_transaction and found_dead(self._conn):
            conn = self.state.connect(wait_for_flush=self._wait)
            try:
                migrate(conn, self.where, self.store, self._steps, self._what)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        """One statement (in the current transaction, if any; else on its own). A lone read
        that meets a dropped connection is sent once more on a new one (see the module docstring)."""
        import psycopg

        with self._lock, self._dropped():
            conn = self._live()
            try:
                return conn.execute(_paramstyle(sql), tuple(params))
            except psycopg.OperationalError as error:
                if self._in_transaction or not _lost(error, conn) or not _only_reads(sql):
                    raise
            return self._live().execute(_paramstyle(sql), tuple(params))

    def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> None:
        """``sql`` once per parameter row (psycopg pipelines them: one round trip, not one each)."""
        with self._lock, self._dropped(), self._live().cursor() as cursor:
            cursor.executemany(_paramstyle(sql), [tuple(p) for p in params])

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock, self._dropped(), ExitStack() as stack:
            self._begin(stack)
            self._in_transaction = True
            try:
                yield
            finally:
                self._in_transaction = False

    def _begin(self, stack: ExitStack) -> None:
        """A transaction begun on the live connection, ended with ``stack``; a ``BEGIN`` that meets
        a dropped connection ran nothing of the transaction, so it is sent once more on a new one."""
        import psycopg

        conn = self._live()
        try:
            stack.enter_context(conn.transaction())
            return
        except psycopg.OperationalError as error:
            if not _lost(error, conn):
                raise
        stack.enter_context(self._live().transaction())

    @contextmanager
    def _dropped(self) -> Iterator[None]:
        """A connection lost under a statement is StoreUnreachable (the next one reconnects)."""
        import psycopg

        try:
            yield
        except psycopg.OperationalError as error:
            if not self._conn.closed:
                raise
            raise StoreUnreachable(self.where, _first_line(error)) from None

    def serialize(self, name: str) -> None:
        """Hold an advisory lock named by ``store:name`` to the end of this transaction (replicas queue)."""
        self.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (f"{self.store}:{name}",))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
