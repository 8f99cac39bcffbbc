"""The disposable cache: schema, build and refresh, queries. Only `statehub` touches it.

The names below are imported on first use (PEP 562): ``statehub.cache.fastread``, the
CLI's read path, must not load SQLAlchemy through this package (canon/ADR-033).
Opening a cache (``database``), indexing (``indexer``) or reading files
(``reading``) registers the fleet registry's kind (``fleet_rows``) first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workplans.lazy import lazy_exports

if TYPE_CHECKING:
    from statehub.cache.database import open_cache, reset_cache
    from statehub.cache.indexer import IndexReport, blob_sha, index_repo, remove_repo_rows
    from statehub.cache.schema import SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION",
    "IndexReport",
    "blob_sha",
    "index_repo",
    "open_cache",
    "remove_repo_rows",
    "reset_cache",
]

_WHERE = {
    "SCHEMA_VERSION": "statehub.cache.schema",
    "IndexReport": "statehub.cache.indexer",
    "blob_sha": "statehub.cache.indexer",
    "index_repo": "statehub.cache.indexer",
    "open_cache": "statehub.cache.database",
    "remove_repo_rows": "statehub.cache.indexer",
    "reset_cache": "statehub.cache.database",
}


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__)
