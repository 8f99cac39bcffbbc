"""The cache's schema version, apart from the tables so a reader can check it without SQLAlchemy.

Bump it on any change to the tables (``statehub.cache.schema``): the cache is
dropped and rebuilt from files, never migrated (ADR-001).
"""

from __future__ import annotations

__all__ = ["SCHEMA_VERSION"]

SCHEMA_VERSION = 9
"""3: covering list indexes; 4: fleet registry tables (fleet_schema.py); 5: BIGINT mtimes for PostgreSQL;
6: ``task.cyclic`` and ``cycle`` file errors (dependency cycles, cache/derived.py); 7: ``source_file``
keeps ctime and inode too (an editor's atomic rename with the same size and mtime is seen, ADR-030);
8: the full-text search index over workplan, task and canon (cache/search.py, ADR-034);
9: ``ix_task_ready`` covers the claimable list (ref and status after the list order, bench/claims.py)."""
