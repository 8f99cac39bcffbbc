"""The hub: settings, the registered repos and their cache, opened and closed together.

Both the API and the CLI act through this object, so they call the same
library functions and see the same rules.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import OperationalError

from statehub.cache import IndexReport, index_repo, open_cache, remove_repo_rows
from statehub.cache.database import create_indexes, loading, replacing, setting_up
from statehub.cache.derived import Scope, recompute_derived
from statehub.cache.freshness import FreshnessMemo, freshness
from statehub.cache.indexed import last_indexed_commits
from statehub.cache.indexer import declared_prefixes
from statehub.cache.queries import CandidateMemo
from statehub.cache.schema import REPOS
from statehub.errors import BadRequest, Conflict, SetupError, unknown_repo
from statehub.hubfile import HubFile, HubFileBroken, RegisteredRepo
from statehub.repofiles import FileLimits, RepoPathError, read_repo_file
from workplans import MANIFEST_PATH, FormatError, parse_manifest
from workplans.manifest import SLUG

if TYPE_CHECKING:
    from types import TracebackType

    from statehub.answers import Freshness
    from statehub.cache.reading import Gathered
    from statehub.changes import Change, ChangeLog, RowSnapshot, Tracker
    from statehub.metrics import HubMetrics
    from statehub.settings import Settings
    from workplans import EventKinds

__all__ = ["Hub", "Progress", "sent_path"]

_AS_INDEXED_MAX = 200
"""A watcher batch with more changed paths than this in one repo (a checkout, a pull) refreshes it
without looking at each path first."""

Progress = Callable[[str], None]
"""Called with a repo slug as each repo finishes indexing (drives progress bars)."""


def sent_path(text: str) -> Path:
    """A work tree path a client sent over HTTP (``POST /repos``), checked before registering it.

    It must be absolute (``~`` and ``~user`` expand): a relative path would name a
    directory under the server's working directory, not the client's. A path the
    system cannot look up (too long, a loop) is BadRequest with the system's reason
    (ADR-022); one that does not exist passes, and registration says it is not a
    git work tree. The CLI resolves its paths against the caller's directory instead.
    """
    try:
        path = Path(text).expanduser()
    except RuntimeError:  # ~user for a user this machine does not know
        path = Path(text)
    if not path.is_absolute():
        raise BadRequest(
            f"{text!r} is not an absolute path; give the work tree's full path on the hub's machine"
        )
    try:
        path.stat()
    except FileNotFoundError:
        pass  # registration says it is not a git work tree
    except OSError as error:
        raise BadRequest(f"cannot look up {text[:200]!r}: {error.strerror}") from None
    return path


class Hub:
    """Open with ``with Hub(settings) as hub:``; leaving the block closes the cache's connections."""

    def __init__(
        self,
        settings: Settings,
        *,
        reconcile: bool = True,
        rebuilding: bool = False,
        event_kinds: EventKinds | None = None,
        metrics: HubMetrics | None = None,
    ) -> None:
        """Open the cache; ``reconcile`` brings it up to date with hub.toml and the files now.

        Commands that refresh or rebuild themselves pass ``reconcile=False`` so their
        report shows what they did rather than finding nothing left to do.
        ``rebuilding`` (with ``reconcile=False``) is for a caller that calls :meth:`rebuild` at
        once (``statehub rebuild``): a cache found missing or of another schema version is left
        empty for it rather than rebuilt here first, which rebuilt it twice.
        ``event_kinds`` is every kind of event the hub accepts (default: the workplan
        and fleet kinds, ``registry.hub_event_kinds``), built here once and read by
        intake and write-back. ``metrics`` is where the hub counts what happens
        (``statehub.metrics``; the server passes its app's): None, the default, counts
        nothing and never loads the metrics library (a command answers at once, canon/ADR-033).
        """
        settings.ensure_dirs()
        self.settings = settings
        self.metrics = metrics
        self._event_kinds = event_kinds
        self.hub_file = HubFile(settings.hub_file)
        self.engine: Engine
        self.engine, created = open_cache(settings.database_url, dead_peer_s=settings.pg_dead_peer_s)
        self.reads: Engine = (
            self.engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.engine.dialect.name == "postgresql"
            else self.engine
        )
        """The engine for reads that write nothing (``with hub.reads.connect() as conn``): on
        PostgreSQL each statement runs on its own, as it would in a READ COMMITTED transaction,
        without a BEGIN and a ROLLBACK round trip per request; and, with no ROLLBACK to clear them,
        psycopg's prepared statements survive from request to request (ADR-047). The same engine
        as ``engine`` on SQLite."""
        self.write_lock = threading.RLock()
        """Serialises index writes: the API, the watcher and sweeps share one cache."""
        self.on_repos_changed: list[Callable[[], None]] = []
        """Called (from any thread) after a repo is registered or removed."""
        self.watching: Callable[[], bool] = lambda: False
        """Whether a file watcher keeps this cache in step with the files (the server sets it)."""
        self.freshness_memo = FreshnessMemo()
        """Each repo's freshness, worked out at most once a second (``forget()`` to ask again now)."""
        self.candidate_memo = CandidateMemo()
        """The claimable list's cache reads, remembered per cache generation (``cache.queries``)."""
        self._changes: ChangeLog | None = None
        self._changes_lock = threading.Lock()
        if reconcile or (created and not rebuilding):
            try:
                with setting_up(self.engine):  # one hub's start-up at a time on PostgreSQL (ADR-054)
                    self.reconcile(rebuild=created)
            except BaseException:
                self.engine.dispose()  # a broken hub.toml must not leak the cache's connections
                raise

    @property
    def event_kinds(self) -> EventKinds:
        """Every kind of event the hub accepts, built when first asked for (the event machinery, its
        parsers and writers, is not loaded by commands that only index or read; canon/ADR-033)."""
        if self._event_kinds is None:
            from registry.event_kinds import hub_event_kinds

            self._event_kinds = hub_event_kinds()
        return self._event_kinds

    def close(self) -> None:
        self.engine.dispose()
        if self._changes is not None:
            self._changes.close()

    # the change log (statehub.changes, canon/ADR-038) ----------------------------------------------------

    @property
    def changes(self) -> ChangeLog:
        """The change log (the data dir's file, or the PostgreSQL state schema: canon/ADR-050),
        opened when first asked for (a read command never opens it)."""
        with self._changes_lock:
            if self._changes is None:
                from statehub.changes import CHANGES_FILE, ChangeLog
                from statehub.state_stores import state_location

                self._changes = ChangeLog(
                    state_location(self.settings, CHANGES_FILE),
                    keep=self.settings.stream_keep,
                    keep_s=self.settings.stream_keep_days * 86_400,
                )
            return self._changes

    @property
    def changes_lost(self) -> int:
        """Changes this process could not store in the change log (0 while it is not open)."""
        changes = self._changes
        return changes.lost if changes is not None else 0

    def announce(self, changes: Sequence[Change]) -> None:
        """Append ``changes`` to the change log (nothing when empty); call it after the change committed."""
        if changes:
            self.changes.append(changes)

    @staticmethod
    def snapshot(conn: Connection, repos: Iterable[str] | None, prefixes: Iterable[str] = ()) -> RowSnapshot:
        """The rows of ``repos`` (None: all) before a change, inside the changing transaction; the
        dependents also of ``prefixes`` (``RowSnapshot.take``)."""
        from statehub.changes import RowSnapshot

        return RowSnapshot.take(conn, None if repos is None else set(repos), prefixes)

    def tracker(self) -> Tracker:
        """The indexer's ``before_change`` hook for one change (``statehub.changes.Tracker``)."""
        from statehub.changes import Tracker

        return Tracker(self._declared_prefixes)

    def _declared_prefixes(self, slug: str) -> tuple[str, ...]:
        """The prefixes a registered repo's manifest declares now (none when it is not registered)."""
        try:
            root = next((r.path for r in self.repos() if r.slug == slug), None)
        except HubFileBroken:  # never read whole yet: the change goes on, its dependents as stored
            return ()
        return () if root is None else declared_prefixes(root, self.settings.file_limits)

    def compare(
        self, conn: Connection, before: RowSnapshot, cause: str, reports: Sequence[IndexReport]
    ) -> list[Change]:
        """What changed since ``before`` (inside the same transaction, after the change); only the
        reports of the repos ``before`` holds say ``repo.indexed``."""
        if before.repos is not None:
            reports = [r for r in reports if r.repo in before.repos]
        after = self.snapshot(conn, before.repos, before.prefixes)
        after.commits.update(last_indexed_commits(conn, [report.repo for report in reports]))
        return before.changes(after, cause, reports)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def freshness(self, slugs: Iterable[str] | None = None) -> Freshness:
        """How fresh answers drawn from ``slugs`` (None: every registered repo) are: each repo's last
        index and whether its files changed since (``statehub.cache.freshness``, worked out at most
        once a second), and whether a watcher runs. Slugs not registered are left out."""

        def execute(sql: str) -> Sequence[Sequence[Any]]:
            with self.reads.connect() as conn:
                return conn.exec_driver_sql(sql).all()

        registered = [(r.slug, r.path) for r in self.repos()]
        if slugs is None:  # the busiest case (every unfiltered list): one object a second
            return self.freshness_memo.everything(execute, registered, watching=self.watching())
        repos, checked_at = self.freshness_memo.repos(execute, registered)
        wanted = list(dict.fromkeys(slugs))
        return freshness(
            [repos[s] for s in wanted if s in repos], watching=self.watching(), checked_at=checked_at
        )

    # registration --------------------------------------------------------------------------------

    def repos(self) -> list[RegisteredRepo]:
        return self.hub_file.repos()

    def repo(self, slug: str) -> RegisteredRepo:
        for repo in self.repos():
            if repo.slug == slug:
                return repo
        raise unknown_repo(slug)

    def register(self, path: Path) -> IndexReport:
        """Register a git work tree and index it; registering it again only refreshes it."""
        from statehub.gitrepo import work_tree_root  # gitpython: not loaded by commands that only index

        root = work_tree_root(path.expanduser().resolve())
        slug = _slug_for(root, self.settings.file_limits)
        for known in self.repos():
            if known.slug == slug and known.path != root:
                raise Conflict(
                    f"slug {slug!r} is already registered for {known.path}; set a different "
                    f"[repo] slug in {root / MANIFEST_PATH} or remove the other repo first"
                )
            if known.path == root and known.slug != slug:
                self.remove(known.slug)
        self._refuse_taken_prefixes(slug, root)
        listed = any(known.slug == slug for known in self.repos())
        with self.write_lock:
            # hub.toml lists the repo before the cache holds its rows: a reconcile in another process
            # (a server's watcher, armed by this very write) drops rows hub.toml does not list, and
            # would drop them between the two writes were they the other way round.
            self.hub_file.add(RegisteredRepo(slug, root))  # Conflict: the slug went to another path
            try:
                with self.engine.begin() as conn:
                    full = not self._has_rows(conn, slug)
                    tracker = self.tracker()
                    report = index_repo(
                        conn, slug, root, full=full, limits=self.settings.file_limits, before_change=tracker
                    )
                    changes = self.compare(conn, tracker.before, "repo-added", [report])
            except BaseException:
                if not listed:  # not registered after all
                    self.hub_file.remove(slug)
                raise
            self.announce(changes)
        self.freshness_memo.forget()
        self._announce()
        return report

    def _refuse_taken_prefixes(self, slug: str, root: Path) -> None:
        """Conflict when ``root`` declares a prefix another registered repo declares (ADR-022):
        a prefix belongs to one repo, and the hub cannot tell which claim is the real one."""
        prefixes = set(declared_prefixes(root, self.settings.file_limits))
        if not prefixes:
            return
        with self.engine.connect() as conn:
            others = conn.execute(select(REPOS.c.slug, REPOS.c.prefixes).where(REPOS.c.slug != slug)).all()
        for other in others:
            shared = sorted(prefixes & set(other.prefixes or ()))
            if shared:
                raise Conflict(
                    f"prefix {', '.join(shared)} is already declared by repo {other.slug!r}; "
                    f"declare other prefixes in {root / MANIFEST_PATH} or remove that repo first"
                )

    def remove(self, slug: str) -> None:
        self.repo(slug)
        with self.write_lock:
            with self.engine.begin() as conn:
                before = self.snapshot(conn, [slug])
                remove_repo_rows(conn, slug, limits=self.settings.file_limits)
                recompute_derived(conn)
                changes = self.compare(conn, before, "repo-removed", [])
                self.hub_file.remove(slug)
            self.announce(changes)
        self._announce()

    def _announce(self) -> None:
        for listener in self.on_repos_changed:
            listener()

    def refresh(
        self, slug: str | None = None, progress: Progress | None = None, *, cause: str = "file-edit"
    ) -> list[IndexReport]:
        """Re-index what changed on disk: one repo, or every registered repo.

        A repo whose work tree is missing loses its rows and gets one file error at
        path ``.`` saying so, as a rebuild would give (statehub.cache.indexer, ADR-030).
        What changed goes to the change log with ``cause`` (``statehub.changes.CAUSES``).
        """
        targets = [self.repo(slug)] if slug else self.repos()
        reports = []
        with self.write_lock:
            for repo in targets:
                self.changes.let_deliver()  # the change stream's fan-out first (ADR-038)
                started = time.perf_counter()
                with self.engine.begin() as conn:
                    tracker = self.tracker()
                    reports.append(
                        index_repo(
                            conn,
                            repo.slug,
                            repo.path,
                            limits=self.settings.file_limits,
                            before_change=tracker,
                        )
                    )
                    self.changes.let_deliver()
                    changes = self.compare(conn, tracker.before, cause, reports[-1:])
                self.announce(changes)
                if self.metrics is not None:
                    self.metrics.index_seconds.labels(repo.slug).observe(time.perf_counter() - started)
                if progress:
                    progress(repo.slug)
            self.freshness_memo.forget([repo.slug for repo in targets] if slug else None)
        return reports

    def refresh_changed(self, slug: str, paths: Sequence[str]) -> list[IndexReport] | None:
        """Re-index ``slug`` after the file watcher saw ``paths`` (repo-relative) change, unless each
        is a source file the cache holds as it is now; None when nothing needed re-indexing.

        The hub's own writes (an event's write-back, a room's save) are indexed under the write lock
        in the same hold that wrote them, so by the time the watcher gets the lock their files have
        the size, times and inode the cache recorded (``source_file``), exactly the stat identity a
        refresh compares before reading anything (canon/ADR-003, ADR-030): the refresh would read
        nothing and change nothing, and is not run (canon/ADR-048). Any other path (a directory, the
        work tree, a link or special file, a file gone or new) refreshes the whole repo as before.
        """
        with self.write_lock:
            if paths and self._as_indexed(slug, self.repo(slug).path, paths):
                return None
            return self.refresh(slug)

    def _as_indexed(self, slug: str, root: Path, paths: Sequence[str]) -> bool:
        """Whether every one of ``paths`` is a source file whose stat identity is the one the cache
        recorded (a regular file, not refused), or is absent from both the work tree and the cache."""
        from statehub.cache.reading import REFUSED_SHA
        from statehub.cache.scan import ScannedFile, kind_of
        from statehub.cache.schema import SOURCE_FILES
        from statehub.repofiles import lstat_repo_path

        wanted = sorted(set(paths))
        if len(wanted) > _AS_INDEXED_MAX or any(kind_of(path) is None for path in wanted):
            return False
        with self.engine.connect() as conn:
            known = {
                row.path: row
                for row in conn.execute(
                    select(
                        SOURCE_FILES.c.path,
                        SOURCE_FILES.c.sha,
                        SOURCE_FILES.c.mtime_ns,
                        SOURCE_FILES.c.size,
                        SOURCE_FILES.c.ctime_ns,
                        SOURCE_FILES.c.inode,
                    ).where(SOURCE_FILES.c.repo == slug, SOURCE_FILES.c.path.in_(wanted))
                )
            }
        for path in wanted:
            try:
                info = lstat_repo_path(root, path)
            except (RepoPathError, OSError):  # a link, a special file, a directory on the way gone
                return False
            row = known.get(path)
            if info is None or row is None:
                if info is not None or row is not None:
                    return False
                continue
            now = ScannedFile.of("", info)
            if row.sha == REFUSED_SHA or (row.mtime_ns, row.size, row.ctime_ns, row.inode) != (
                now.mtime_ns,
                now.size,
                now.ctime_ns,
                now.inode,
            ):
                return False
        return True

    def rebuild(
        self,
        progress: Progress | None = None,
        *,
        worker: bool = True,
        found: Iterator[Gathered] | None = None,
    ) -> list[IndexReport]:
        """Drop the cache and index every registered repo from its files.

        Every repo's declared prefixes are read first, so each file is read, parsed and judged once
        (``statehub.cache.reading.gather_repo``); with ``worker`` (the default) a second process
        gathers part of the repos meanwhile (``statehub.cache.gathering``): forked where this
        process runs no other thread, else (a server) a fresh ``python -m
        statehub.cache.gathering``; ``worker=False`` gathers here alone. ``found`` is the
        registered repos already being gathered, in hub.toml's order
        (``statehub.cache.gathering.gathered``, entered by the caller): ``statehub rebuild``
        starts it, and its worker, before it opens the hub, so the worker gathers while this process
        imports SQLAlchemy and opens the cache (canon/ADR-043)."""
        from statehub.cache.gathering import gathered
        from statehub.cache.indexer import write_gathered

        with ExitStack() as stack:
            stack.enter_context(self.write_lock)
            stack.enter_context(_collector_paused())
            if found is None:
                repos = [(r.slug, r.path) for r in self.repos()]
                sqlite = self.engine.dialect.name == "sqlite"
                limits = self.settings.file_limits
                found = stack.enter_context(gathered(repos, limits, worker=worker, for_sqlite=sqlite))
            try:
                with self.engine.connect() as conn:
                    before = self.snapshot(conn, None)
            except Exception:  # noqa: BLE001 - a cache too broken to read is rebuilt all the same
                from statehub.changes import RowSnapshot

                before = RowSnapshot(None)
            try:
                with replacing(self.engine) as conn, loading(conn):
                    reports = write_gathered(conn, found, progress)
                    if conn.dialect.name == "postgresql":
                        # Flags first, indexes after: each flipped row would also update six indexes
                        # (a GIN one among them), three times the cost of the flags themselves; the
                        # full recompute reads by hash joins and needs none (ADR-047).
                        recompute_derived(conn)
                        create_indexes(conn)
                    else:
                        create_indexes(conn)  # SQLite's ready query looks dependencies up by ref index
                        recompute_derived(conn)
                    changes = self.compare(conn, before, "rebuild", reports)
            except OperationalError as error:  # a full disk, a read-only or locked database
                raise SetupError(
                    f"the cache could not be rebuilt ({error.orig}); it holds what it held before"
                ) from error
            finally:
                self.freshness_memo.forget()
            self.announce(changes)
        return reports

    def reconcile(self, *, rebuild: bool = False, cause: str = "file-edit") -> None:
        """Make the cache hold exactly the repos hub.toml lists, each up to date with its files
        (a missing work tree noted as ``refresh`` notes it); the watcher calls it whenever the
        set of work trees or hub.toml changes."""
        if rebuild:
            self.rebuild()
            return
        listed = {r.slug for r in self.repos()}
        with self.write_lock:
            with self.engine.begin() as conn:
                cached = set(conn.execute(select(REPOS.c.slug)).scalars())
                tracker = self.tracker()
                scope: Scope | None = Scope()
                for slug in cached - listed:
                    tracker(conn, slug)
                    remove_repo_rows(conn, slug, limits=self.settings.file_limits)
                    scope = None  # a whole repo went away: recompute everything
                reports = []
                for repo in self.repos():  # a missing work tree gets its note (cache.indexer.missing_tree)
                    report = index_repo(
                        conn,
                        repo.slug,
                        repo.path,
                        derive=False,
                        limits=self.settings.file_limits,
                        before_change=tracker,
                    )
                    reports.append(report)
                    if scope is not None:
                        scope.merge(report.scope)
                recompute_derived(conn, scope)
                changes = self.compare(conn, tracker.before, cause, reports)
            self.announce(changes)
        self.freshness_memo.forget()

    @staticmethod
    def _has_rows(conn: Connection, slug: str) -> bool:
        return conn.execute(select(REPOS.c.slug).where(REPOS.c.slug == slug)).first() is not None


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a rebuild runs.

    Parsing thousands of files allocates tens of thousands of dicts and lists,
    which keeps triggering collections that walk every object the process
    holds; that cost 0.3 s of a 1.5 s rebuild (bench/rebuild.py: 1.55x the
    floor with it, 1.33x without). The rows hold no cycles worth chasing, and
    the collector runs again as soon as the rebuild is done.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _slug_for(root: Path, limits: FileLimits) -> str:
    """The manifest's slug, else the directory name made into a valid slug.

    The manifest is read like every repo file (ADR-022): a link, a special file
    or one over the manifest limit is not read, and the index reports it.
    """
    try:
        text = read_repo_file(root, MANIFEST_PATH, limits.manifest_bytes).decode("utf-8")
        declared = parse_manifest(text).slug
    except (OSError, RepoPathError, FormatError, UnicodeDecodeError):
        declared = None
    if declared:
        return declared
    slug = "".join(c if c.isalnum() or c in "._-" else "-" for c in root.name.lower()).strip("-.")
    return slug if slug and SLUG.fullmatch(slug) else "repo"
