"""The disposable cache: schema, build and refresh, queries. Only `statehub` touches it."""

from statehub.cache import fleet_index as fleet_index  # registers registry/fleet.toml as a kind
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
