"""The state schema on a real PostgreSQL (canon/ADR-046): ordered migrations, applied once by
replicas starting together, a newer schema refused, never touched by a cache rebuild."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from typing import TYPE_CHECKING

import pytest
from biscuit_auth import KeyPair
from sqlalchemy import text

from statehub.auth import sessions as sessions_module
from statehub.auth.revocation import RevocationList
from statehub.auth.sessions import SessionStore
from statehub.auth.tokens import mint
from statehub.auth.verify import TokenVerifier
from statehub.cache.database import open_cache, reset_cache
from statehub.cache.schema import META
from statehub.errors import Unavailable
from sync._durable_pg import MIGRATIONS, STATE_SCHEMA, PgState, PgStateDb
from sync.errors import StoreTooNew, StoreUnreachable
from sync.room_store import RoomStore
from sync.seed import seed_doc

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.engine import Engine

pytestmark = pytest.mark.postgres

STEPS = (
    "CREATE TABLE probe (n integer PRIMARY KEY); INSERT INTO probe VALUES (1);",
    "INSERT INTO probe VALUES (2);",
    "ALTER TABLE probe ADD COLUMN note text; UPDATE probe SET note = 'three';",
)


def _versions(state: PgState, store: str) -> list[int]:
    with state.connect() as conn:
        rows = conn.execute(f"SELECT version FROM {MIGRATIONS} WHERE store = %s ORDER BY version", (store,))  # noqa: S608
        return [r[0] for r in rows]


def test_steps_run_in_order_once_each_and_later_ones_on_the_next_open(postgres_database: str) -> None:
    state = PgState(postgres_database)
    PgStateDb(state, "probe", STEPS[:2], "probe store").close()
    assert _versions(state, "probe") == [1, 2]
    db = PgStateDb(state, "probe", STEPS, "probe store")  # a newer hub: only step 3 runs
    assert [tuple(r) for r in db.execute("SELECT n, note FROM probe ORDER BY n").fetchall()] == [
        (1, "three"),
        (2, "three"),
    ]
    db.close()
    PgStateDb(state, "probe", STEPS, "probe store").close()  # nothing left to run: nothing runs twice
    assert _versions(state, "probe") == [1, 2, 3]


def test_a_failing_step_leaves_the_schema_as_it_was(postgres_database: str) -> None:
    state = PgState(postgres_database)
    PgStateDb(state, "probe", STEPS[:1], "probe store").close()
    with pytest.raises(Exception, match="no_such_table"):
        PgStateDb(state, "probe", (*STEPS[:2], "INSERT INTO no_such_table VALUES (1);"), "probe store")
    assert _versions(state, "probe") == [1]
    with state.connect() as conn:
        assert conn.execute("SELECT count(*) FROM probe").fetchone() == (1,)  # step 2 rolled back too


def test_a_newer_schema_is_refused_and_left_as_it_is(postgres_database: str) -> None:
    state = PgState(postgres_database)
    RoomStore(state).close()
    with state.connect() as conn:
        conn.execute(f"INSERT INTO {MIGRATIONS} (store, version) VALUES ('rooms', 99)")  # noqa: S608
    with pytest.raises(
        StoreTooNew, match=r"newer State Hub \(room store.*version 99.*keep the schema"
    ) as error:
        RoomStore(state)
    assert STATE_SCHEMA in str(error.value) and "password" not in str(error.value)
    assert _versions(state, "rooms") == [1, 2, 99]


SCRIPT = """
import sys
from sync._durable_pg import PgState, PgStateDb
steps = (
    "CREATE TABLE once (n integer); INSERT INTO once VALUES (1); SELECT pg_sleep(0.3);",
    "INSERT INTO once VALUES (2);",
)
PgStateDb(PgState(sys.argv[1]), "once", steps, "probe store").close()
print("migrated")
"""


def test_replicas_starting_together_migrate_once(postgres_database: str) -> None:
    """Two processes open the same new schema at once: both start, each step ran exactly once.

    (The first step sleeps so the second process arrives while the first holds the lock; without
    it, the second's CREATE TABLE or its migration row would fail.)"""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(SCRIPT), postgres_database],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outcomes
    state = PgState(postgres_database)
    with state.connect() as conn:
        assert [r[0] for r in conn.execute("SELECT n FROM once ORDER BY n")] == [1, 2]
    assert _versions(state, "once") == [1, 2]


def test_a_cache_rebuild_never_touches_the_state_schema(postgres_database: str) -> None:
    state = PgState(postgres_database)
    with RoomStore(state) as store:
        store.begin("demo/statehub.toml", "x = 1\n", seed_doc("x = 1\n"))
    engine, created = open_cache(postgres_database)
    assert created
    reset_cache(engine)  # statehub rebuild
    with engine.begin() as conn:  # a cache of another schema version: opening drops it whole
        conn.execute(META.update().values(value="0"))
    engine.dispose()
    engine, created = open_cache(postgres_database)
    engine.dispose()
    assert created
    with RoomStore(state) as store:
        assert store.docs() == ["demo/statehub.toml"]
    assert _versions(state, "rooms") == [1, 2]


def test_a_connection_the_server_dropped_is_replaced(postgres_database: str) -> None:
    state = PgState(postgres_database)
    with RoomStore(state) as store:
        store.begin("d", "a", seed_doc("a"))
        with state.connect() as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        # the server's goodbye is on the socket: the store connects again before the statement
        # (canon/ADR-049, addendum of 2026-12-01; it used to fail this first statement with a 503)
        assert store.docs() == ["d"]
        assert store.docs() == ["d"]


def test_replicas_signing_in_at_once_keep_the_hubs_bound(
    postgres_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two stores (two replicas' connections) sign in from eight threads: each sign-in's
    count-then-insert is serialised by the advisory lock, so exactly MAX_SESSIONS succeed
    (without it, two that counted the same total would both insert)."""
    monkeypatch.setattr(sessions_module, "MAX_SESSIONS", 60)
    root = KeyPair()
    verifier = TokenVerifier(root.public_key, RevocationList(tmp_path / "revoked.txt"))
    tokens = [mint(root, f"actor{i}", "read").to_base64() for i in range(8)]
    state = PgState(postgres_database)
    replicas = [SessionStore(state), SessionStore(state)]
    made: list[str] = []
    refused: list[Unavailable] = []

    def sign_in(store: SessionStore, token_text: str) -> None:
        token = verifier.verify(token_text)
        for _ in range(15):
            try:
                made.append(store.create(token_text, token))
            except Unavailable as error:
                refused.append(error)

    threads = [threading.Thread(target=sign_in, args=(replicas[i % 2], t)) for i, t in enumerate(tokens)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(made), len(refused)) == (60, 120 - 60)
    assert [store.count() for store in replicas] == [60, 60]
    for store in replicas:
        store.close()


def test_a_sign_in_waits_for_the_one_deciding_on_another_replica(
    postgres_database: str, tmp_path: Path
) -> None:
    """While another replica holds the sign-in lock (mid-decision), a sign-in here waits for it
    and writes nothing; it completes once that transaction ends."""
    root = KeyPair()
    token_text = mint(root, "ada", "read").to_base64()
    token = TokenVerifier(root.public_key, RevocationList(tmp_path / "revoked.txt")).verify(token_text)
    state = PgState(postgres_database)
    made: list[str] = []
    with SessionStore(state) as store, state.connect() as other:
        with other.transaction():
            other.execute("SELECT pg_advisory_xact_lock(hashtextextended('sessions:sign-in', 0))")
            signing = threading.Thread(target=lambda: made.append(store.create(token_text, token)))
            signing.start()
            deadline = time.monotonic() + 30
            while not other.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone()[0]:
                assert time.monotonic() < deadline, "the sign-in never waited for the lock"
                time.sleep(0.01)
            assert made == [] and other.execute("SELECT count(*) FROM session").fetchone() == (0,)
        signing.join()
        assert len(made) == 1 and store.count() == 1


def test_the_cache_and_the_state_share_a_database_but_not_a_table(postgres_database: str) -> None:
    state = PgState(postgres_database)
    RoomStore(state).close()
    SessionStore(state).close()
    engine, _created = open_cache(postgres_database)
    with engine.connect() as conn:
        tables = conn.execute(
            text("SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema = :s"),
            {"s": STATE_SCHEMA},
        ).fetchall()
    engine.dispose()
    assert sorted(t[1] for t in tables) == [
        "migration",
        "room_editor",
        "room_lineage",
        "room_note",
        "room_presence",
        "room_update",
        "session",
    ]


def test_a_state_database_that_does_not_answer_is_a_clear_error_without_the_password() -> None:
    state = PgState("postgresql+psycopg://statehub:hunter2@127.0.0.1:1/statehub")
    with pytest.raises(
        StoreUnreachable, match=r"schema statehub_state in database statehub on 127.0.0.1:1"
    ) as error:
        RoomStore(state)
    assert "hunter2" not in str(error.value)


def test_durability_follows_the_files_setting(postgres_database: str) -> None:
    """A store whose file runs synchronous=NORMAL (rooms, sessions) commits without waiting for the
    server's WAL flush; one that would run FULL (the write buffer, once ported) waits."""
    state = PgState(postgres_database)
    with RoomStore(state) as rooms:
        assert rooms._db.execute("SHOW synchronous_commit").fetchone() == ("off",)
    full = PgStateDb(state, "probe", STEPS, "probe store")
    assert full.execute("SHOW synchronous_commit").fetchone() == ("on",)
    assert full.execute("SHOW search_path").fetchone() == (STATE_SCHEMA,)
    full.close()


def test_a_state_database_lost_and_created_again_is_migrated_on_reconnect(
    postgres_database: str, postgres_admin: Engine
) -> None:
    """review16a: the state database dropped under a running hub (and created again empty: a restore,
    a fail-over to a fresh server) was reconnected to without its tables, so every statement
    failed with UndefinedTable (500) until the hub restarted; the reconnect migrates it."""
    state = PgState(postgres_database)
    name = postgres_database.rsplit("/", 1)[1]
    with RoomStore(state) as store:
        store.begin("d", "a", seed_doc("a"))
        with postgres_admin.connect() as admin:
            admin.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        with pytest.raises(StoreUnreachable, match="does not answer"):
            store.docs()
        with pytest.raises(StoreUnreachable, match="does not exist"):
            store.docs()  # still gone: a clear error each time
        with postgres_admin.connect() as admin:
            admin.execute(text(f'CREATE DATABASE "{name}"'))
        assert store.docs() == []  # the new database holds nothing, and the store works again
        store.begin("e", "b", seed_doc("b"))
        assert store.docs() == ["e"]
    assert _versions(state, "rooms") == [1, 2]


def test_a_user_who_may_not_create_the_schema_gets_the_grant_to_ask_for(postgres_database: str) -> None:
    """Found by review16b: a hub whose database user lacks CREATE on the database stopped at its
    first start with psycopg's InsufficientPrivilege in a traceback. It is StoreNotPermitted:
    one sentence naming the schema, the user and the two ways out (docs/deployment.md), nothing
    created; once the schema exists and belongs to the user, the store opens."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    from sync.errors import StoreNotPermitted

    admin = PgState(postgres_database)
    role = f"review_nocreate_{int(time.time() * 1000) % 10**9}"
    parts = urlsplit(admin.url)
    database = parts.path.lstrip("/")
    limited = PgState(urlunsplit(parts._replace(netloc=f"{role}:secret-pw@{parts.hostname}:{parts.port}")))
    with admin.connect() as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'REVOKE CREATE ON DATABASE "{database}" FROM PUBLIC')
    try:
        with pytest.raises(StoreNotPermitted) as error:
            RoomStore(limited)
        sentence = str(error.value)
        assert "statehub_state" in sentence and role in sentence, sentence
        assert f"GRANT CREATE ON DATABASE {database} TO {role}" in sentence, sentence
        assert f"CREATE SCHEMA statehub_state AUTHORIZATION {role}" in sentence, sentence
        assert "secret-pw" not in sentence
        with admin.connect() as conn:
            assert conn.execute("SELECT to_regnamespace('statehub_state')").fetchone() == (None,)
            conn.execute(f'CREATE SCHEMA statehub_state AUTHORIZATION "{role}"')
        RoomStore(limited).close()  # the remedy works
        assert _versions(admin, "rooms") == [1, 2]
    finally:
        with admin.connect() as conn:
            conn.execute("DROP SCHEMA IF EXISTS statehub_state CASCADE")
            conn.execute(f'DROP OWNED BY "{role}"')
        with psycopg.connect(admin.url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')
