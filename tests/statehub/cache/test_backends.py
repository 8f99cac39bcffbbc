"""The cache gives the same answers on SQLite and PostgreSQL (each test runs on both).

Covers the SQL that is easiest to get backend-specific: the derived facts
(duplicate ids, ready tasks), bulk loading with COPY, JSON columns, 64-bit
mtimes, refresh deletes, and the paged queries behind the API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import event, select, update
from sqlalchemy.exc import OperationalError

from statehub.cache import database, queries
from statehub.cache.answers import RepoCounts, RepoDetail
from statehub.cache.bulk import insert_rows
from statehub.cache.derived import recompute_derived
from statehub.cache.schema import FILE_ERRORS, SOURCE_FILES, TASKS
from statehub.cli import main
from statehub.hub import Hub
from tests.clijson import cli_data
from tests.gitfixtures import GitRepo, workplan_text

if TYPE_CHECKING:
    from collections.abc import Callable

    from litestar.testing import TestClient

    from statehub.settings import Settings

MANY = 60
"""Enough tasks in one file that the PostgreSQL path streams them with COPY."""


def _corpus(make_repo: Callable[[str], GitRepo]) -> GitRepo:
    repo = make_repo("ops")
    repo.write("statehub.toml", '[repo]\nslug = "ops"\ntitle = "Ops"\nprefixes = ["OPS"]\n')
    repo.write(
        "workplans/OPS-WP-0001.md",
        workplan_text(
            "OPS-WP-0001",
            [
                {"id": "T01", "title": "first", "status": "done", "owner": "codex"},
                {"id": "T02", "title": "second", "depends_on": ["T01"], "owner": "codex"},
                {"id": "T03", "title": "third", "depends_on": ["T02", "OPS-WP-0002-T01"]},
            ],
            owner="ops-lead",
        ),
    )
    repo.write(
        "workplans/OPS-WP-0002.md",
        workplan_text(
            "OPS-WP-0002",
            [{"id": f"T{i:02d}", "title": f"task {i}", "status": "todo"} for i in range(1, MANY + 1)],
        ),
    )
    repo.write("workplans/dup-a.md", workplan_text("OPS-WP-0009", [{"id": "T01", "title": "a"}]))
    repo.write("workplans/dup-b.md", workplan_text("OPS-WP-0009", [{"id": "T01", "title": "b"}]))
    repo.write("workplans/broken.md", "+++\nid = 'unterminated\n+++\n")
    repo.write(
        "canon/ADR-001.md",
        '+++\nid = "ADR-001"\ntitle = "Files first"\nkind = "adr"\nstatus = "accepted"\n'
        "date = 2026-05-02\n+++\nBody.\n",
    )
    repo.commit()
    return repo


def _snapshot(hub: Hub) -> dict[str, object]:
    with hub.engine.connect() as conn:
        return {
            "ready": [t.ref for t in queries.list_tasks(conn, ready=True, limit=1000).items],
            "workplans": [w.id for w in queries.list_workplans(conn).items],
            "tasks": queries.list_tasks(conn, limit=1).total,
            "repo": queries.get_repo(conn, "ops"),
            "canon": queries.get_canon(conn, "ADR-001"),
            "plan": queries.get_workplan(conn, "OPS-WP-0001"),
        }


def test_index_rebuild_and_refresh_agree(hub: Hub, make_repo: Callable[[str], GitRepo]) -> None:
    repo = _corpus(make_repo)
    report = hub.register(repo.root)
    assert [e.path for e in report.errors] == ["workplans/broken.md"]
    first = _snapshot(hub)
    assert first["workplans"] == ["OPS-WP-0001", "OPS-WP-0002"]
    assert first["tasks"] == 3 + MANY
    ready = first["ready"]
    assert isinstance(ready, list)
    assert "OPS-WP-0001-T02" in ready
    assert "OPS-WP-0001-T03" not in ready
    assert len(ready) == 1 + MANY
    repo_info = first["repo"]
    assert isinstance(repo_info, RepoDetail)
    assert repo_info.prefixes == ["OPS"]
    assert repo_info.counts == RepoCounts(workplans=4, tasks=5 + MANY, canon=1)
    messages = [e.message for e in repo_info.errors]
    assert sum("also claimed by" in m for m in messages) == 2
    assert first["canon"].date == "2026-05-02"  # type: ignore[attr-defined]

    hub.rebuild()
    assert _snapshot(hub) == first

    with hub.engine.connect() as conn:
        mtimes = list(conn.execute(select(SOURCE_FILES.c.mtime_ns)).scalars())
    assert mtimes
    assert all(m > 2**31 for m in mtimes)  # nanoseconds: needs BIGINT on PostgreSQL

    repo.write(
        "workplans/OPS-WP-0001.md",
        workplan_text("OPS-WP-0001", [{"id": "T01", "title": "first", "status": "done"}]),
    )
    (repo.root / "workplans" / "dup-b.md").unlink()
    hub.refresh("ops")
    with hub.engine.connect() as conn:
        plans = [w.id for w in queries.list_workplans(conn).items]
        assert plans == ["OPS-WP-0001", "OPS-WP-0002", "OPS-WP-0009"]
        assert queries.get_workplan(conn, "OPS-WP-0001").task_count == 1
        errors = queries.get_repo(conn, "ops").errors
    assert [e.path for e in errors] == ["workplans/broken.md"]


def test_remove_leaves_nothing_behind(hub: Hub, make_repo: Callable[[str], GitRepo]) -> None:
    hub.register(_corpus(make_repo).root)
    hub.remove("ops")
    with hub.engine.connect() as conn:
        assert queries.list_repos(conn).total == 0
        assert queries.list_tasks(conn).total == 0
        assert conn.execute(select(SOURCE_FILES)).first() is None


def test_api_reads_the_same_on_each_backend(
    client: TestClient,
    make_repo: Callable[[str], GitRepo],  # type: ignore[type-arg]
) -> None:
    repo = _corpus(make_repo)
    assert client.post("/repos", json={"path": str(repo.root)}).status_code == 201
    health = client.get("/state/health").json()
    assert health["repos"] == 1
    tasks = client.get("/tasks", params={"ready": "true", "limit": 5}).json()
    assert tasks["total"] == 1 + MANY
    assert len(tasks["items"]) == 5
    assert client.get("/tasks/OPS-WP-0009-T01").status_code == 409
    assert client.get("/workplans", params={"owner": "ops-lead"}).json()["total"] == 1


def test_bulk_insert_fills_defaults_and_keys(hub: Hub) -> None:
    """COPY (PostgreSQL) and executemany (SQLite) store the same rows, defaults and generated ids."""
    rows = [{"repo": "r", "path": f"p{i}", "line": i or None, "message": f"m {i}"} for i in range(MANY)]
    with hub.engine.begin() as conn:
        insert_rows(conn, FILE_ERRORS, rows)
        stored = conn.execute(select(FILE_ERRORS).order_by(FILE_ERRORS.c.id)).all()
    assert [(r.path, r.line, r.message, r.origin) for r in stored] == [
        (f"p{i}", i or None, f"m {i}", "parse") for i in range(MANY)
    ]
    assert len({r.id for r in stored}) == MANY


def test_ready_tasks_probe_dependencies_by_reference(hub: Hub, make_repo: Callable[[str], GitRepo]) -> None:
    """SQLite once planned "is this dependency done?" by status, scanning every done task per
    dependency: a 30-repo rebuild took 15 s instead of 0.6 s. The plan must look the task up by ref."""
    hub.register(_corpus(make_repo).root)
    if hub.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL plans by statistics; bench/pg_rebuild.py watches its speed")
    plans: list[str] = []

    def explain(conn: Any, cursor: Any, statement: str, params: Any, _context: Any, _many: bool) -> None:
        if statement.startswith("UPDATE task SET ready"):
            rows = cursor.connection.execute("EXPLAIN QUERY PLAN " + statement, params).fetchall()
            plans.append("\n".join(row[3] for row in rows))

    event.listen(hub.engine, "before_cursor_execute", explain)
    try:
        hub.rebuild()
    finally:
        event.remove(hub.engine, "before_cursor_execute", explain)
    assert plans
    assert any("USING COVERING INDEX ix_task_ref_status (ref=?" in plan for plan in plans), plans


def test_claimable_list_reads_one_index_in_order(hub: Hub, make_repo: Callable[[str], GitRepo]) -> None:
    """The claimable list's candidate query runs on most list requests (every claim's write-back
    changes the cache generation): it must read ix_task_ready alone, already in list order, with
    no row lookup and no sort (bench/claims.py), and still answer what a fresh query gives."""
    hub.register(_corpus(make_repo).root)
    if hub.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL plans by statistics; bench/claims.py watches its speed")
    plans: list[str] = []

    def explain(conn: Any, cursor: Any, statement: str, params: Any, _context: Any, _many: bool) -> None:
        if statement.startswith("SELECT task.ref, task.status, task.ready"):
            rows = cursor.connection.execute("EXPLAIN QUERY PLAN " + statement, params).fetchall()
            plans.append("\n".join(row[3] for row in rows))

    event.listen(hub.engine, "before_cursor_execute", explain)
    try:
        with hub.engine.connect() as conn:
            page = queries.list_claimable(conn, excluded=(), limit=5)
    finally:
        event.remove(hub.engine, "before_cursor_execute", explain)
    assert plans == ["SEARCH task USING COVERING INDEX ix_task_ready (ready=? AND conflicted=?)"], plans
    assert page.total == 1 + MANY  # OPS-WP-0001-T02 (T01 is done) and every task of OPS-WP-0002
    assert [item.ref for item in page.items] == ["OPS-WP-0001-T02"] + [
        f"OPS-WP-0002-T{i:02d}" for i in range(1, 5)
    ]


def test_cli_uses_the_configured_backend(settings: Settings, make_repo: Callable[[str], GitRepo]) -> None:
    """The CLI opens the cache named by STATEHUB_DATABASE_URL (the fixture sets it per backend)."""
    repo = _corpus(make_repo)
    runner = CliRunner()
    added = runner.invoke(main, ["repos", "add", str(repo.root), "--json"])
    assert added.exit_code == 0, added.output
    ready = runner.invoke(main, ["tasks", "--ready", "--json", "--limit", "1"])
    assert cli_data(ready.stdout)["total"] == 1 + MANY
    with Hub(settings) as hub:
        assert hub.engine.dialect.name == (
            "sqlite" if settings.database_url.startswith("sqlite") else "postgresql"
        )
        with hub.engine.connect() as conn:
            assert queries.list_repos(conn).total == 1


def test_full_ready_recompute_sets_every_flag_both_ways(
    hub: Hub, make_repo: Callable[[str], GitRepo]
) -> None:
    """The full recompute (a rebuild; the event service after a write) sets ``ready`` right whichever
    way each flag is wrong; PostgreSQL words it as joins (derived._FULL_READY_POSTGRES), SQLite as
    correlated subqueries, and the flags must come out the same."""
    hub.register(_corpus(make_repo).root)
    key = (TASKS.c.repo, TASKS.c.path, TASKS.c.task_id)
    with hub.engine.connect() as conn:
        expected = {tuple(r[:3]): r[3] for r in conn.execute(select(*key, TASKS.c.ready))}
    assert sorted(expected.values()).count(True) == 1 + MANY  # OPS-WP-0001-T02 and OPS-WP-0002's tasks
    with hub.engine.begin() as conn:
        conn.execute(update(TASKS).values(ready=~TASKS.c.ready))  # every flag wrong
        recompute_derived(conn)
    with hub.engine.connect() as conn:
        assert {tuple(r[:3]): r[3] for r in conn.execute(select(*key, TASKS.c.ready))} == expected


def _postgres_only(hub: Hub) -> None:
    if hub.engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL connection's life: SQLite has no server to lose or prepare on")


def test_reads_keep_their_prepared_statements(hub: Hub, make_repo: Callable[[str], GitRepo]) -> None:
    """Hub.reads runs without a transaction, so no ROLLBACK on return clears psycopg's prepared
    statements: a list asked again and again is prepared on the server once (ADR-047)."""
    _postgres_only(hub)
    hub.register(_corpus(make_repo).root)
    hub.reads.dispose()  # one fresh pooled connection, reused by each read below
    for _ in range(8):
        with hub.reads.connect() as conn:
            queries.list_tasks(conn, ready=True, limit=5)
    with hub.reads.connect() as conn:
        prepared = conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars().all()
        in_transaction = conn.connection.driver_connection.info.transaction_status  # type: ignore[union-attr]
    assert any("FROM task" in statement for statement in prepared), prepared
    assert in_transaction == psycopg.pq.TransactionStatus.IDLE


def test_a_connection_the_server_dropped_is_replaced(
    hub: Hub, make_repo: Callable[[str], GitRepo], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pooled connection idle for IDLE_PING_SECONDS is pinged before use; one the server ended
    (restart, failover, idle timeout) is replaced, and the read answers instead of failing."""
    _postgres_only(hub)
    hub.register(_corpus(make_repo).root)
    with hub.reads.connect() as conn:
        before = queries.list_tasks(conn, ready=True, limit=5).total
        server_pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    url = hub.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", [server_pid]).fetchone() == (True,)
    monkeypatch.setattr(database, "IDLE_PING_SECONDS", 0.0)
    with hub.reads.connect() as conn:
        assert queries.list_tasks(conn, ready=True, limit=5).total == before
        assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() != server_pid


def test_a_server_ending_every_new_connection_is_a_database_error_not_a_closed_connection(
    hub: Hub, make_repo: Callable[[str], GitRepo]
) -> None:
    """While the server ends each connection as soon as it is made (sessions terminated over and
    over, a fail-over under way), the pool's checkout finds the old connection dead, then the new
    one: that is the database not answering (sqlalchemy's OperationalError, which the API answers
    503 with Retry-After), not SQLAlchemy's "This connection is closed" once its reconnection
    attempts run out (an InvalidRequestError: a 500 from POST /events under pg_terminate_backend)."""
    _postgres_only(hub)
    hub.register(_corpus(make_repo).root)
    url = hub.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as admin:

        def end_at_once(dbapi_connection: Any, _record: Any) -> None:  # the server ends it: FATAL, EOF
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", [dbapi_connection.info.backend_pid])

        ended = admin.execute(  # every pooled connection of the hub's
            "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
        assert ended is not None and ended[0] >= 1
        event.listen(hub.engine, "connect", end_at_once)
        try:
            with pytest.raises(OperationalError, match="ended"), hub.reads.connect():
                pass
        finally:
            event.remove(hub.engine, "connect", end_at_once)
    with hub.reads.connect() as conn:  # once the server lets connections be, reads answer again
        assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1


def test_a_rebuild_of_unchanged_files_announces_no_row_change(
    hub: Hub, make_repo: Callable[[str], GitRepo]
) -> None:
    """A refresh of one small file writes its tasks with SQLAlchemy's JSON encoder, a rebuild with
    COPY's (PostgreSQL), which spaces ``["OPS-WP-0001-T02", "OPS-WP-0002-T01"]`` otherwise: the
    snapshots compare JSON as text, and a text that differs only so is no change."""
    repo = _corpus(make_repo)
    hub.register(repo.root)
    text = (repo.root / "workplans/OPS-WP-0001.md").read_text(encoding="utf-8")
    repo.write("workplans/OPS-WP-0001.md", text.replace("Free text.", "Free text, edited."))
    hub.refresh("ops")
    with hub.engine.connect() as conn:
        before = hub.snapshot(conn, None)
    hub.rebuild()
    with hub.engine.connect() as conn:
        after = hub.snapshot(conn, None)
        depends_on = conn.execute(
            select(TASKS.c.depends_on).where(TASKS.c.ref == "OPS-WP-0001-T03")
        ).scalar_one()
    assert depends_on == ["OPS-WP-0001-T02", "OPS-WP-0002-T01"]
    if hub.engine.dialect.name == "postgresql":  # the premise: the stored texts differ
        key = ("task", "ops", "workplans/OPS-WP-0001.md", "T03")
        assert before.rows[key] != after.rows[key]
    assert [c.type for c in before.changes(after, "rebuild")] == []


def _libpq_keepalives(engine: Any) -> tuple[str | None, ...]:
    with engine.connect() as conn:
        said = conn.connection.driver_connection.info.get_parameters()
        names = (
            "keepalives",
            "keepalives_idle",
            "keepalives_interval",
            "keepalives_count",
            "tcp_user_timeout",
        )
        return tuple(said.get(name) for name in names)


def test_cache_connections_give_up_a_silent_database_host_within_the_window(
    postgres_database: str,
) -> None:
    """review16e: the state stores' connections carried TCP keepalives and ``tcp_user_timeout``
    (STATEHUB_PG_DEAD_PEER), the cache's did not: a read against a database host that lost power
    could hang for the kernel's two hours. libpq's settings are on every cache connection (this end:
    the cache's sessions hold no lock the server must free)."""
    from statehub.cache.database import open_cache

    engine, _created = open_cache(postgres_database, dead_peer_s=30)
    try:
        assert _libpq_keepalives(engine) == ("1", "10", "3", "6", "30000")
    finally:
        engine.dispose()
    engine, _created = open_cache(postgres_database)
    try:
        assert _libpq_keepalives(engine) == ("1", "20", "6", "6", "60000")
    finally:
        engine.dispose()


def test_cache_connections_keep_pgoptions_the_urls_options_and_its_own_keepalives(
    postgres_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """review16f: passing ``options`` for the keepalives replaced libpq's PGOPTIONS (a deployment
    that chose the cache's ``search_path`` or ``application_name`` there lost it silently), and the
    defaults in connect_args overrode a ``keepalives_idle`` the URL itself gave."""
    from statehub.cache.database import open_cache

    monkeypatch.setenv("PGOPTIONS", "-c application_name=fromenv")
    joiner = "&" if "?" in postgres_database else "?"
    engine, _created = open_cache(f"{postgres_database}{joiner}keepalives_idle=2", dead_peer_s=30)
    try:
        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert str(raw.execute("SHOW application_name").fetchone()[0]) == "fromenv"
        assert _libpq_keepalives(engine) == ("1", "2", "3", "6", "30000")
    finally:
        engine.dispose()
    monkeypatch.delenv("PGOPTIONS")
    engine, _created = open_cache(f"{postgres_database}{joiner}options=-c%20application_name%3Dmine")
    try:
        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert str(raw.execute("SHOW application_name").fetchone()[0]) == "mine"
    finally:
        engine.dispose()


def test_a_cache_url_with_libpqs_short_scheme_opens(postgres_database: str) -> None:
    """review16f: the settings take ``postgres://`` (libpq's short scheme) for the fleet's database,
    and the state stores open it, but the cache's engine failed at start with SQLAlchemy's "Can't
    load plugin: sqlalchemy.dialects:postgres"."""
    from sqlalchemy import text

    from statehub.cache.database import open_cache

    short = "postgres" + postgres_database[postgres_database.index("://") :]
    engine, _created = open_cache(short)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
