"""Full-text search over the cache: workplan and task titles, workplan bodies (their Progress
notes included) and canon documents, ranked, with a snippet per hit (ADR-034).

The index is part of the disposable cache, built and refreshed with the rows it
covers, never by a step of its own:

- **SQLite**: one FTS5 table per searched table (``workplan_fts``: title, body;
  ``task_fts``: title; ``canon_fts``: title, body), each an *external content*
  table over its cache table keyed by the row's ``rowid``, so the text is
  stored once. Triggers keep it in step with every insert and delete (a file's
  rows are replaced by delete + insert; no code path updates a title or body,
  and an ``UPDATE OF title, body`` trigger covers one that would). A rebuild
  loads rows without the triggers and fills each index in one ``'rebuild'``
  pass when the secondary indexes are built (:func:`build_search`), which costs
  less than indexing row by row. Tokenizer ``porter unicode61``: case- and
  accent-folded words, English stemming.
- **PostgreSQL**: a stored generated ``tsv tsvector`` column on ``workplan``,
  ``task`` and ``canon`` (title weighted ``A``, body ``B``, config ``english``)
  with a GIN index each; ``ts_rank`` ranks, ``ts_headline`` cuts the snippet.

The query language is deliberately plain: the words of ``q`` (runs of letters
and digits, at most :data:`MAX_TERMS`), all of which must occur in a hit (AND),
stemmed alike on both backends. Quotes, operators and punctuation in ``q`` are
separators, never syntax, so no query can make the database raise. Hits are
ordered by rank (best first; ``score`` is the backend's own scale, higher is
better), then kind and reference, so pages are stable.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import Connection, text

from statehub.answers import Page
from statehub.cache.answers import SearchHit
from statehub.errors import BadRequest

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "MAX_QUERY_CHARS",
    "MAX_TERMS",
    "SEARCH_KINDS",
    "build_search",
    "create_search",
    "drop_search",
    "search",
    "search_terms",
]

MAX_QUERY_CHARS = 256
"""Longest ``q`` accepted (characters); longer is 400."""
MAX_TERMS = 16
"""Most words of ``q`` searched for; longer is 400 (each word is one more index lookup)."""
SEARCH_KINDS = ("workplan", "task", "canon")
"""What a hit can be: a workplan (title, body, Progress notes), a task (title), a canon document."""

_SNIPPET_WORDS = 16
_MARK = "**"
_ELLIPSIS = "…"
_WORD = re.compile(r"\w+")

# (kind, table, FTS columns) of every searched table; the cache table's rowid keys its index.
_SOURCES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("workplan", "workplan", ("title", "body")),
    ("task", "task", ("title",)),
    ("canon", "canon", ("title", "body")),
)
_PG_CONFIG = "english"


def search_terms(q: str) -> list[str]:
    """The words searched for in ``q``: runs of letters and digits, case kept (the index folds it).

    Raises BadRequest when ``q`` is longer than :data:`MAX_QUERY_CHARS`, holds no word, or more
    than :data:`MAX_TERMS` words.
    """
    if len(q) > MAX_QUERY_CHARS:
        raise BadRequest(f"q is {len(q)} characters long; search with at most {MAX_QUERY_CHARS}")
    terms = _WORD.findall(q)
    if not terms:
        raise BadRequest("q has no word to search for (letters or digits)")
    if len(terms) > MAX_TERMS:
        raise BadRequest(f"q has {len(terms)} words; search with at most {MAX_TERMS}")
    return terms


# schema --------------------------------------------------------------------------------------------


def create_search(conn: Connection) -> None:
    """Create the search index structures over the (just created, empty) cache tables."""
    if conn.dialect.name == "sqlite":
        for _kind, table, columns in _SOURCES:
            conn.exec_driver_sql(
                f"CREATE VIRTUAL TABLE {table}_fts USING fts5({', '.join(columns)}, "
                f"content='{table}', content_rowid='rowid', tokenize='porter unicode61')"
            )
    elif conn.dialect.name == "postgresql":
        for _kind, table, columns in _SOURCES:
            conn.exec_driver_sql(
                f"ALTER TABLE {table} ADD COLUMN tsv tsvector "
                f"GENERATED ALWAYS AS ({_pg_vector(columns)}) STORED"
            )


def build_search(conn: Connection) -> None:
    """Fill the index from the rows loaded so far and keep it in step from now on.

    Called with the secondary indexes (``statehub.cache.database.create_indexes``);
    running it again is harmless.
    """
    if conn.dialect.name == "sqlite":
        for _kind, table, columns in _SOURCES:
            fts = f"{table}_fts"
            old = ", ".join(f"old.{c}" for c in columns)
            new = ", ".join(f"new.{c}" for c in columns)
            names = ", ".join(columns)
            remove = f"INSERT INTO {fts}({fts}, rowid, {names}) VALUES ('delete', old.rowid, {old});"
            add = f"INSERT INTO {fts}(rowid, {names}) VALUES (new.rowid, {new});"
            if _has_trigger(conn, f"{table}_fts_ai"):
                continue
            conn.exec_driver_sql(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')")
            conn.exec_driver_sql(f"CREATE TRIGGER {table}_fts_ai AFTER INSERT ON {table} BEGIN {add} END")
            conn.exec_driver_sql(f"CREATE TRIGGER {table}_fts_ad AFTER DELETE ON {table} BEGIN {remove} END")
            conn.exec_driver_sql(
                f"CREATE TRIGGER {table}_fts_au AFTER UPDATE OF {names} ON {table} BEGIN {remove} {add} END"
            )
    elif conn.dialect.name == "postgresql":
        for _kind, table, _columns in _SOURCES:
            conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS ix_{table}_tsv ON {table} USING gin (tsv)")


def drop_search(conn: Connection) -> None:
    """Drop the SQLite FTS tables (their triggers go with the cache tables; PostgreSQL's
    column and index go with theirs)."""
    if conn.dialect.name == "sqlite":
        for _kind, table, _columns in _SOURCES:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}_fts")


def _has_trigger(conn: Connection, name: str) -> bool:
    found = conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?", (name,)
    ).first()
    return found is not None


def _pg_vector(columns: Sequence[str]) -> str:
    weights = ("A", "B")
    parts = [
        f"setweight(to_tsvector('{_PG_CONFIG}'::regconfig, coalesce({column}, '')), '{weights[min(i, 1)]}')"
        for i, column in enumerate(columns)
    ]
    return " || ".join(parts)


# queries -------------------------------------------------------------------------------------------


def search(
    conn: Connection,
    q: str,
    *,
    repo: str | None = None,
    kind: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> Page[SearchHit]:
    """Hits for every word of ``q``, best first, with ``total`` over all pages.

    ``repo`` keeps one repo's hits, ``kind`` one of :data:`SEARCH_KINDS`. Raises
    BadRequest for a ``q`` :func:`search_terms` refuses, an unknown kind, or a
    limit outside 1-1000 / a negative offset. Hits of workplans whose id two
    files claim are left out, as in every list.
    """
    from statehub.cache.queries import MAX_LIMIT

    terms = search_terms(q)
    if kind is not None and kind not in SEARCH_KINDS:
        raise BadRequest(f"unknown kind {kind!r}; use one of {', '.join(SEARCH_KINDS)}")
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"invalid limit {limit}: use 1 to {MAX_LIMIT}")
    if offset < 0:
        raise BadRequest(f"invalid offset {offset}: use 0 or more")
    kinds = [k for k in _SOURCES if kind is None or k[0] == kind]
    if conn.dialect.name == "postgresql":
        return _search_postgres(conn, " ".join(terms), kinds, repo, limit, offset)
    match = " ".join('"' + t.replace('"', '""') + '"' for t in terms)
    return _search_sqlite(conn, match, kinds, repo, limit, offset)


_DETAILS = {
    # kind -> (ref, workplan, extra condition) as SQL over the cache table aliased ``d``
    "workplan": ("d.id", "d.id", "d.conflicted = 0"),
    "task": ("d.ref", "d.workplan_id", "d.conflicted = 0"),
    "canon": ("d.id", "NULL", "d.conflicted = 0"),
}


def _search_sqlite(
    conn: Connection,
    match: str,
    kinds: list[tuple[str, str, tuple[str, ...]]],
    repo: str | None,
    limit: int,
    offset: int,
) -> Page[SearchHit]:
    weights = {"workplan": "4.0, 1.0", "task": "4.0", "canon": "4.0, 1.0"}
    repo_sql = " AND d.repo = :repo" if repo else ""
    ranked = " UNION ALL ".join(
        f"SELECT '{k}' AS kind, f.rowid AS id, -bm25({t}_fts, {weights[k]}) AS score, "
        f"{_DETAILS[k][0]} AS ref "
        f"FROM {t}_fts AS f JOIN {t} AS d ON d.rowid = f.rowid "
        f"WHERE {t}_fts MATCH :match AND {_DETAILS[k][2]}{repo_sql}"
        for k, t, _c in kinds
    )
    params: dict[str, Any] = {"match": match, "repo": repo}
    total = conn.execute(text(f"SELECT count(*) FROM ({ranked})"), params).scalar_one()
    page = conn.execute(
        text(
            f"SELECT kind, id, score FROM ({ranked}) "
            "ORDER BY score DESC, kind, ref LIMIT :limit OFFSET :offset"
        ),
        {**params, "limit": limit, "offset": offset},
    ).all()
    hits: dict[tuple[str, int], SearchHit] = {}
    for k, t, _c in kinds:
        ids = [row.id for row in page if row.kind == k]
        if not ids:
            continue
        marks = ", ".join(str(int(i)) for i in ids)
        ref, workplan, _cond = _DETAILS[k]
        for row in conn.execute(
            text(
                f"SELECT f.rowid AS id, {ref} AS ref, {workplan} AS workplan, d.repo, d.path, d.title, "
                f"snippet({t}_fts, -1, '{_MARK}', '{_MARK}', '{_ELLIPSIS}', {_SNIPPET_WORDS}) AS snippet "
                f"FROM {t}_fts AS f JOIN {t} AS d ON d.rowid = f.rowid "
                f"WHERE {t}_fts MATCH :match AND f.rowid IN ({marks})"
            ),
            params,
        ):
            hits[(k, row.id)] = _hit(k, row)
    return Page(_in_order(page, hits), total)


def _search_postgres(
    conn: Connection,
    words: str,
    kinds: list[tuple[str, str, tuple[str, ...]]],
    repo: str | None,
    limit: int,
    offset: int,
) -> Page[SearchHit]:
    config = f"'{_PG_CONFIG}'::regconfig"
    repo_sql = " AND d.repo = :repo" if repo else ""
    ranked = " UNION ALL ".join(
        f"SELECT '{k}' AS kind, d.ctid::text AS id, ts_rank(d.tsv, query) AS score, {_DETAILS[k][0]} AS ref "
        f"FROM {t} AS d, plainto_tsquery({config}, :words) AS query "
        f"WHERE d.tsv @@ query AND {_DETAILS[k][2].replace('= 0', '= false')}{repo_sql}"
        for k, t, _c in kinds
    )
    params: dict[str, Any] = {"words": words, "repo": repo}
    total = conn.execute(text(f"SELECT count(*) FROM ({ranked}) AS hits"), params).scalar_one()
    page = conn.execute(
        text(
            f"SELECT kind, id, score FROM ({ranked}) AS hits "
            "ORDER BY score DESC, kind, ref LIMIT :limit OFFSET :offset"
        ),
        {**params, "limit": limit, "offset": offset},
    ).all()
    hits: dict[tuple[str, str], SearchHit] = {}
    options = f"StartSel={_MARK}, StopSel={_MARK}, MaxWords={_SNIPPET_WORDS}, MinWords=6, MaxFragments=1"
    for k, t, columns in kinds:
        ids = [row.id for row in page if row.kind == k]
        if not ids:
            continue
        ref, workplan, _cond = _DETAILS[k]
        document = " || E'\\n' || ".join(f"coalesce(d.{c}, '')" for c in columns)
        for row in conn.execute(
            text(
                f"SELECT d.ctid::text AS id, {ref} AS ref, {workplan} AS workplan, d.repo, d.path, d.title, "
                f"ts_headline({config}, {document}, query, :options) AS snippet "
                f"FROM {t} AS d, plainto_tsquery({config}, :words) AS query "
                "WHERE d.ctid::text = ANY(:ids)"
            ),
            {**params, "ids": ids, "options": options},
        ):
            hits[(k, row.id)] = _hit(k, row)
    return Page(_in_order(page, hits), total)


def _hit(kind: str, row: Any) -> SearchHit:
    return SearchHit(
        kind=kind,
        ref=row.ref,
        workplan=row.workplan,
        repo=row.repo,
        path=row.path,
        title=row.title,
        snippet=" ".join(str(row.snippet).split()),
        score=0.0,
    )


def _in_order(page: Sequence[Any], hits: dict[Any, SearchHit]) -> list[SearchHit]:
    """The page's hits in rank order with their scores; a row a concurrent refresh removed
    between the two reads is left out."""
    return [
        msgspec.structs.replace(hits[(row.kind, row.id)], score=round(float(row.score), 6))
        for row in page
        if (row.kind, row.id) in hits
    ]
