"""The CLI's sqlite3 read path answers exactly what ``statehub.cache.queries`` answers (canon/ADR-033)."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import pytest

from statehub.cache import queries
from statehub.cache.fastread import open_sqlite_reader
from statehub.errors import BadRequest, HubError, SetupError
from statehub.hub import Hub
from statehub.settings import sqlite_path
from tests.gitfixtures import GitRepo, workplan_text
from workplans import CanonKind, CanonStatus, TaskStatus, WorkplanStatus

if TYPE_CHECKING:
    from collections.abc import Callable

    from statehub.settings import Settings

CANON = '+++\nid = "{id}"\ntitle = "{title}"\nkind = "{kind}"\nstatus = "{status}"\n+++\nBody.\n'


@pytest.fixture
def hub(settings: Settings, make_repo: Callable[[str], GitRepo]) -> Hub:
    if sqlite_path(settings.database_url) is None:
        pytest.skip("the sqlite3 read path serves a SQLite cache only")
    ops, app = make_repo("ops"), make_repo("app")
    ops.write("statehub.toml", '[repo]\nslug = "ops"\nprefixes = ["OPS"]\n')
    ops.write(
        "workplans/OPS-WP-0001.md",
        workplan_text(
            "OPS-WP-0001",
            [
                {"id": "T01", "title": "Provision", "status": "done", "owner": "codex"},
                {
                    "id": "T02",
                    "title": "Tunnels",
                    "status": "blocked",
                    "owner": "codex",
                    "depends_on": ["T01"],
                },
                {"id": "T03", "title": "Loop a", "depends_on": ["T04"]},
                {"id": "T04", "title": "Loop b", "depends_on": ["T03"]},
            ],
            owner="ops-lead",
        ),
    )
    ops.write("workplans/OPS-WP-0002.md", workplan_text("OPS-WP-0002", [{"id": "T01", "title": "One"}]))
    ops.write(
        "workplans/OPS-WP-0003.md",
        workplan_text(
            "OPS-WP-0003",
            [
                {"id": "T01", "title": "Free"},
                {"id": "T02", "title": "Dana's", "owner": "dana"},
                {"id": "T03", "title": "Bob's", "owner": "bob"},
            ],
        ),
    )
    ops.write("workplans/copy.md", workplan_text("OPS-WP-0002", [{"id": "T01", "title": "Twice"}]))
    ops.write("canon/ADR-001.md", CANON.format(id="ADR-001", title="Files", kind="adr", status="accepted"))
    ops.write("canon/RB-001.md", CANON.format(id="RB-001", title="Drain", kind="runbook", status="proposed"))
    app.write(
        "workplans/APP-WP-0001.md",
        workplan_text(
            "APP-WP-0001",
            [
                {"id": "T01", "title": "Cross-repo", "depends_on": ["OPS-WP-0001-T01"], "owner": "dana"},
                {"id": "T02", "title": "Missing", "depends_on": ["OPS-WP-0009-T01"]},
                {"id": "T03", "title": "On T02 of ops", "depends_on": ["OPS-WP-0001-T02"]},
            ],
            status="draft",
        ),
    )
    app.write(
        "canon/ADR-001.md", CANON.format(id="ADR-001", title="Also files", kind="adr", status="accepted")
    )
    app.write("workplans/broken.md", "no front matter\n")
    ops.commit()
    app.commit()
    made = Hub(settings)
    made.register(ops.root)
    made.register(app.root)
    return made


def _outcome(ask: Callable[[], Any]) -> tuple[str, Any]:
    """What asking gives: ("answer", the answer) or ("error", (its type, its message))."""
    try:
        return "answer", ask()
    except HubError as error:
        return "error", (type(error), error.message)


def _same(fast: Callable[[], Any], slow: Callable[[], Any]) -> None:
    assert _outcome(fast) == _outcome(slow)


def test_every_question_answers_the_same(hub: Hub, settings: Settings) -> None:
    path = sqlite_path(settings.database_url)
    assert path is not None
    reader = open_sqlite_reader(path)
    assert reader is not None
    with hub, reader, hub.engine.connect() as conn:
        _same(reader.list_repos, lambda: queries.list_repos(conn))
        for repo, workplan, status, owner, ready in itertools.product(
            (None, "ops", "app", "nope"),
            (None, "OPS-WP-0001", "OPS-WP-0002"),
            (None, TaskStatus.TODO, TaskStatus.DONE),
            (None, "codex", "dana"),
            (None, True, False),
        ):
            filters = {"repo": repo, "workplan": workplan, "status": status, "owner": owner, "ready": ready}
            _same(lambda f=filters: reader.list_tasks(**f), lambda f=filters: queries.list_tasks(conn, **f))
        for limit, offset in ((1, 0), (2, 1), (1000, 0), (3, 100), (0, 0), (1001, 0), (1, -1)):
            _same(
                lambda lo=(limit, offset): reader.list_tasks(limit=lo[0], offset=lo[1]),
                lambda lo=(limit, offset): queries.list_tasks(conn, limit=lo[0], offset=lo[1]),
            )
        for repo, wp_status, owner in itertools.product(
            (None, "ops", "app"), (None, *WorkplanStatus), (None, "ops-lead")
        ):
            _same(
                lambda a=(repo, wp_status, owner): reader.list_workplans(repo=a[0], status=a[1], owner=a[2]),
                lambda a=(repo, wp_status, owner): queries.list_workplans(
                    conn, repo=a[0], status=a[1], owner=a[2]
                ),
            )
        for repo, kind, doc_status in itertools.product(
            (None, "ops", "app"), (None, *CanonKind), (None, *CanonStatus)
        ):
            _same(
                lambda a=(repo, kind, doc_status): reader.list_canon(repo=a[0], kind=a[1], status=a[2]),
                lambda a=(repo, kind, doc_status): queries.list_canon(
                    conn, repo=a[0], kind=a[1], status=a[2]
                ),
            )
        refs = [
            "OPS-WP-0001-T01",
            "OPS-WP-0001-T02",
            "OPS-WP-0001-T03",
            "APP-WP-0001-T02",
            "OPS-WP-0002-T01",
            "X",
        ]
        for ref in refs:
            _same(lambda r=ref: reader.get_task(r), lambda r=ref: queries.get_task(conn, r))
            _same(lambda r=ref: reader.dependents(r), lambda r=ref: queries.dependents(conn, r))
        _same(lambda: reader.tasks_by_ref(refs), lambda: queries.tasks_by_ref(conn, refs))
        for plan in ("OPS-WP-0001", "APP-WP-0001", "OPS-WP-0002", "OPS-WP-0404"):
            _same(lambda p=plan: reader.get_workplan(p), lambda p=plan: queries.get_workplan(conn, p))
        for repo, actor, limit in itertools.product(
            (None, "ops", "app", "nope"), ("dana", "bob", "x"), (1, 3, 50)
        ):
            _same(
                lambda a=(actor, repo, limit): reader.next_candidates(*a),
                lambda a=(actor, repo, limit): queries.next_candidates(conn, *a),
            )
        best, total = reader.next_candidates("dana", None, 50)  # and those comparisons were not all empty
        assert [t.ref for t, _ in best] == [
            "OPS-WP-0003-T02",  # dana's, in an active workplan
            "APP-WP-0001-T01",  # dana's, in a draft one
            "OPS-WP-0003-T01",  # unowned
            "OPS-WP-0003-T03",  # bob's
        ]
        assert total == 4
        assert reader.next_candidates("dana", None, 1) == (best[:1], 4)
        for doc, repo in (
            ("ADR-001", None),
            ("ADR-001", "app"),
            ("RB-001", None),
            ("RB-001", "app"),
            ("X-1", None),
        ):
            _same(
                lambda a=(doc, repo): reader.get_canon(*a), lambda a=(doc, repo): queries.get_canon(conn, *a)
            )
        assert queries.dependents(conn, "OPS-WP-0001-T01")  # the comparisons above were not all empty
        with pytest.raises(BadRequest):
            reader.list_canon(limit=0)


def test_another_schema_version_is_no_reader(hub: Hub, settings: Settings) -> None:
    path = sqlite_path(settings.database_url)
    assert path is not None
    with hub, hub.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE cache_meta SET value = '0' WHERE key = 'schema_version'")
    assert open_sqlite_reader(path) is None
    assert open_sqlite_reader(path.with_name("absent.sqlite3")) is None


def test_a_damaged_cache_file_is_a_clear_setup_error(hub: Hub, settings: Settings) -> None:
    """Review of issue 13: a cache file that is not SQLite made every read command (the fast path
    falls back to the hub) and ``statehub rebuild`` end in a SQLAlchemy traceback. Now: no fast
    reader, then SetupError (exit 3) naming the file and what to do; the file is left alone."""
    path = sqlite_path(settings.database_url)
    assert path is not None
    hub.close()
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    path.write_bytes(b"not a database, some other file\n" * 64)
    assert open_sqlite_reader(path) is None
    with pytest.raises(SetupError) as raised:
        Hub(settings)
    assert str(path) in raised.value.message
    assert "statehub rebuild" in raised.value.message
    assert path.read_bytes().startswith(b"not a database")
