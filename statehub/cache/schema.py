"""The disposable cache's tables. Bump SCHEMA_VERSION on any change: the cache is
dropped and rebuilt from files, never migrated (ADR-001)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Table
from sqlmodel import Field, SQLModel

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
    "CacheMeta",
    "CanonRow",
    "DependencyRow",
    "FileErrorRow",
    "RepoRow",
    "SourceFileRow",
    "TaskRow",
    "WorkplanRow",
]

SCHEMA_VERSION = 7
"""3: covering list indexes; 4: fleet registry tables (fleet_schema.py); 5: BIGINT mtimes for PostgreSQL;
6: ``task.cyclic`` and ``cycle`` file errors (dependency cycles, cache/derived.py);
7: the full-text search index over workplan, task and canon (cache/search.py, ADR-034)."""


def _json() -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class CacheMeta(SQLModel, table=True):
    __tablename__ = "cache_meta"
    key: str = Field(primary_key=True)
    value: str


class RepoRow(SQLModel, table=True):
    __tablename__ = "repo"
    slug: str = Field(primary_key=True)
    path: str
    title: str | None = None
    prefixes: list[str] = _json()
    default_branch: str | None = None


class SourceFileRow(SQLModel, table=True):
    """What was indexed from each file, so a refresh re-parses only what changed."""

    __tablename__ = "source_file"
    repo: str = Field(primary_key=True)
    path: str = Field(primary_key=True)
    kind: str
    sha: str
    mtime_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    """Nanoseconds since the epoch: beyond a 32-bit INTEGER, so BIGINT on PostgreSQL."""
    size: int = Field(sa_column=Column(BigInteger, nullable=False))


class FileErrorRow(SQLModel, table=True):
    __tablename__ = "file_error"
    __table_args__ = (Index("ix_file_error_repo_path", "repo", "path"),)
    id: int | None = Field(default=None, primary_key=True)
    repo: str
    path: str
    line: int | None = None
    message: str
    origin: str = "parse"
    """'parse' for problems inside the file, 'prefix' for an id outside its repo's prefixes,
    'duplicate' for ids claimed twice across files, 'cycle' for a task in a dependency cycle."""


class WorkplanRow(SQLModel, table=True):
    __tablename__ = "workplan"
    repo: str = Field(primary_key=True)
    path: str = Field(primary_key=True)
    id: str = Field(index=True)
    title: str
    status: str = Field(index=True)
    owner: str | None = Field(default=None, index=True)
    related: list[str] = _json()
    body: str
    extra: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    task_count: int
    conflicted: bool = False


class TaskRow(SQLModel, table=True):
    __tablename__ = "task"
    __table_args__ = (
        # Each list filter, then conflicted (every list excludes conflicted rows), then
        # the list order: counts are index-only and pages need no sort (bench/query.py).
        Index("ix_task_status_owner", "status", "owner", "conflicted", "workplan_id", "position"),
        Index("ix_task_ready", "ready", "conflicted", "workplan_id", "position"),
        Index("ix_task_order", "workplan_id", "position"),
        # ref first, then what ready asks of a dependency: SQLite then resolves a
        # dependency by its ref instead of scanning every done task (bench/rebuild.py).
        Index("ix_task_ref_status", "ref", "status", "conflicted"),
    )
    repo: str = Field(primary_key=True)
    path: str = Field(primary_key=True)
    task_id: str = Field(primary_key=True)
    ref: str
    workplan_id: str
    position: int
    title: str
    status: str
    owner: str | None = Field(default=None, index=True)
    depends_on: list[str] = _json()
    extra: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    ready: bool = False
    conflicted: bool = False
    cyclic: bool = False
    """In a dependency cycle (a self-dependency included): never ready (cache/derived.py)."""


class DependencyRow(SQLModel, table=True):
    """One edge per ``depends_on`` entry, resolved to a hub-wide task reference."""

    __tablename__ = "task_dependency"
    repo: str = Field(primary_key=True)
    path: str = Field(primary_key=True)
    task_id: str = Field(primary_key=True)
    depends_on: str = Field(primary_key=True, index=True)


class CanonRow(SQLModel, table=True):
    __tablename__ = "canon"
    repo: str = Field(primary_key=True)
    path: str = Field(primary_key=True)
    id: str = Field(index=True)
    title: str
    kind: str = Field(index=True)
    status: str = Field(index=True)
    date: str | None = None
    supersedes: list[str] = _json()
    body: str
    extra: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    conflicted: bool = False


def _core(model: type[SQLModel]) -> Table:
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


# Core tables: the indexer and queries work in SQLAlchemy Core, which is what keeps them fast.
META = _core(CacheMeta)
REPOS = _core(RepoRow)
SOURCE_FILES = _core(SourceFileRow)
FILE_ERRORS = _core(FileErrorRow)
WORKPLANS = _core(WorkplanRow)
TASKS = _core(TaskRow)
DEPENDENCIES = _core(DependencyRow)
CANON = _core(CanonRow)
