"""The disposable cache's tables. Bump SCHEMA_VERSION on any change: the cache is
dropped and rebuilt from files, never migrated (ADR-001)."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Column, Index, Integer, MetaData, String, Table

from statehub.cache.version import SCHEMA_VERSION

__all__ = [
    "CANON",
    "DEPENDENCIES",
    "FILE_ERRORS",
    "META",
    "REPOS",
    "SCHEMA_VERSION",
    "SOURCE_FILES",
    "TASKS",
    "WORKPLANS",
    "metadata",
]

metadata = MetaData()
"""Every cache table, the fleet registry's too (``statehub.cache.fleet_schema``): what a reset drops
and creates. Plain SQLAlchemy Core tables: the indexer and queries work in Core, which is what keeps
them fast, and Core alone loads in a fraction of the time an ORM layer does (canon/ADR-033)."""


def _key(name: str) -> Column[str]:
    return Column(name, String, primary_key=True)


def _text(name: str, *, nullable: bool = False, index: bool = False) -> Column[str]:
    return Column(name, String, nullable=nullable, index=index)


def _json(name: str, *, nullable: bool = False) -> Column[object]:
    return Column(name, JSON, nullable=nullable)


def _flag(name: str) -> Column[bool]:
    return Column(name, Boolean, nullable=False, default=False)


META = Table("cache_meta", metadata, _key("key"), _text("value"))

REPOS = Table(
    "repo",
    metadata,
    _key("slug"),
    _text("path"),
    _text("title", nullable=True),
    _json("prefixes"),
    _text("default_branch", nullable=True),
)

SOURCE_FILES = Table(
    "source_file",
    metadata,
    _key("repo"),
    _key("path"),
    _text("kind"),
    _text("sha"),
    # Nanoseconds since the epoch: beyond a 32-bit INTEGER, so BIGINT on PostgreSQL.
    Column("mtime_ns", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False),
    # The inode's change time: a rename onto the path, a chmod or a write moves it (ADR-030).
    Column("ctime_ns", BigInteger, nullable=False),
    # The file's inode number: an atomic-rename save puts a new inode at the path.
    Column("inode", BigInteger, nullable=False),
)
"""What was indexed from each file, so a refresh re-parses only what changed."""

FILE_ERRORS = Table(
    "file_error",
    metadata,
    Column("id", Integer, primary_key=True),
    _text("repo"),
    _text("path"),
    Column("line", Integer, nullable=True),
    _text("message"),
    # 'parse' for problems inside the file, 'prefix' for an id outside its repo's prefixes,
    # 'duplicate' for ids claimed twice across files, 'cycle' for a task in a dependency cycle,
    # 'work-tree' for a registered work tree that is missing (path ``.``, ADR-030).
    Column("origin", String, nullable=False, default="parse"),
    Index("ix_file_error_repo_path", "repo", "path"),
)

WORKPLANS = Table(
    "workplan",
    metadata,
    _key("repo"),
    _key("path"),
    _text("id", index=True),
    _text("title"),
    _text("status", index=True),
    _text("owner", nullable=True, index=True),
    _json("related"),
    _text("body"),
    _json("extra"),
    Column("task_count", Integer, nullable=False),
    _flag("conflicted"),
)

TASKS = Table(
    "task",
    metadata,
    _key("repo"),
    _key("path"),
    _key("task_id"),
    _text("ref"),
    _text("workplan_id"),
    Column("position", Integer, nullable=False),
    _text("title"),
    _text("status"),
    _text("owner", nullable=True, index=True),
    _json("depends_on"),
    _json("extra"),
    _flag("ready"),
    _flag("conflicted"),
    # In a dependency cycle (a self-dependency included): never ready (cache/derived.py).
    _flag("cyclic"),
    # Each list filter, then conflicted (every list excludes conflicted rows), then
    # the list order: counts are index-only and pages need no sort (bench/query.py).
    Index("ix_task_status_owner", "status", "owner", "conflicted", "workplan_id", "position"),
    # ref and status after the order too: the claimable list (ready, unconflicted, todo, in
    # workplan then file order then ref) reads only this index, no row and no sort (bench/claims.py).
    Index("ix_task_ready", "ready", "conflicted", "workplan_id", "position", "ref", "status"),
    Index("ix_task_order", "workplan_id", "position"),
    # ref first, then what ready asks of a dependency: SQLite then resolves a
    # dependency by its ref instead of scanning every done task (bench/rebuild.py).
    Index("ix_task_ref_status", "ref", "status", "conflicted"),
)

DEPENDENCIES = Table(
    "task_dependency",
    metadata,
    _key("repo"),
    _key("path"),
    _key("task_id"),
    Column("depends_on", String, primary_key=True, index=True),
)
"""One edge per ``depends_on`` entry, resolved to a hub-wide task reference."""

CANON = Table(
    "canon",
    metadata,
    _key("repo"),
    _key("path"),
    _text("id", index=True),
    _text("title"),
    _text("kind", index=True),
    _text("status", index=True),
    _text("date", nullable=True),
    _json("supersedes"),
    _text("body"),
    _json("extra"),
    _flag("conflicted"),
)
