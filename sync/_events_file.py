"""The layout of ``buffer.sqlite3``, version by version: the write buffer's tables and the relay's.

Both live in one file under one ``PRAGMA user_version``, so :class:`~sync.buffer.WriteBuffer`
and :class:`~sync.relay_queue.RelayQueue` open it with the same steps (see :mod:`sync._durable`).
Step 1 is the layout State Hub wrote before the file carried a version (its
statements all say ``IF NOT EXISTS``, so such a file is adopted as it is).
Append a step to change the layout; never edit one that has shipped.

:data:`EVENTS_PG_STEPS` is the same layout in the PostgreSQL state schema (canon/ADR-049),
recorded there as the store :data:`EVENTS_STORE`: the same tables and columns (``seq`` and the
other ids from identity columns, times of leases as ``double precision``, everything else
``text`` as on the file) and the same indexes, as one step of its own; a change to the layout
appends a step to both lists.
"""

from __future__ import annotations

__all__ = ["EVENTS_FILE_STEPS", "EVENTS_PG_STEPS", "EVENTS_STORE"]

_V1 = """
CREATE TABLE IF NOT EXISTS event (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    repo TEXT NOT NULL,
    workplan TEXT,
    task TEXT,
    payload TEXT NOT NULL,
    event TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'applied', 'rejected')),
    reason TEXT,
    accepted_at TEXT NOT NULL,
    applied_at TEXT,
    commit_sha TEXT
);
CREATE INDEX IF NOT EXISTS event_state_repo ON event (state, repo, seq);
CREATE INDEX IF NOT EXISTS event_repo ON event (repo, seq);
CREATE INDEX IF NOT EXISTS event_task_add ON event (workplan, task) WHERE kind = 'task.add';
CREATE TABLE IF NOT EXISTS writeback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repo TEXT NOT NULL,
    head TEXT,
    keys TEXT NOT NULL,
    files TEXT NOT NULL,
    started_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS writeback_repo ON writeback (repo, id);
CREATE TABLE IF NOT EXISTS buffer_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO buffer_meta (key, value) VALUES ('schema_version', '1');

CREATE TABLE IF NOT EXISTS relay (
    key TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'sent', 'confirmed', 'parked')),
    attempts INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    queued_at TEXT NOT NULL,
    sent_at TEXT,
    confirmed_at TEXT
);
CREATE INDEX IF NOT EXISTS relay_state_seq ON relay (state, seq);
CREATE TABLE IF NOT EXISTS relay_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS relay_decision (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    event TEXT,
    at TEXT NOT NULL
);
"""

_V2 = """
CREATE TABLE lease (
    ref TEXT PRIMARY KEY,
    repo TEXT NOT NULL,
    workplan TEXT NOT NULL,
    task TEXT NOT NULL,
    actor TEXT NOT NULL,
    claim_key TEXT NOT NULL,
    prior_owner TEXT,
    lease_s REAL NOT NULL,
    claimed_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('held', 'released')),
    release_key TEXT,
    released_at REAL,
    released_by TEXT
);
CREATE INDEX lease_held ON lease (state, expires_at);
CREATE INDEX lease_claim_key ON lease (claim_key);
CREATE INDEX event_pending_task ON event (workplan, task, kind, seq) WHERE state = 'pending';
"""
"""Version 2: the lease store (``sync.leases``, ADR-032): one row per task that was ever claimed,
its live or last claim; and an index for the pending events of one task (what a claim overlays on
the cache)."""

_V3 = """
ALTER TABLE writeback ADD COLUMN checkout TEXT NOT NULL DEFAULT '';
"""
"""Version 3: the checkout a write-back was made in (``<host>:<work tree>``): replicas with their own
clones on one state schema each resolve only their own leftovers (canon/ADR-053); a record from
before names none and is anyone's, as it was."""

_V4 = """
ALTER TABLE writeback ADD COLUMN place TEXT NOT NULL DEFAULT '';
"""
"""Version 4: a record's checkout is the id kept in the clone itself (``.git/statehub-checkout``), so
it survives a renamed host and a moved work tree; ``place`` says where that clone was when the
record was written (``<host>:<git dir>``), which tells a copy of the clone from the clone moved
(canon/ADR-053, second addendum). Records of version 3 keep their ``<host>:<work tree>``."""

EVENTS_FILE_STEPS: tuple[str, ...] = (_V1, _V2, _V3, _V4)
"""``EVENTS_FILE_STEPS[n - 1]`` takes the file from version ``n - 1`` to ``n``."""

EVENTS_STORE = "buffer"
"""The store name of the write buffer's tables in the state schema's migrations table."""

_PG_V1 = """
CREATE TABLE event (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key text NOT NULL UNIQUE,
    kind text NOT NULL,
    repo text NOT NULL,
    workplan text,
    task text,
    payload text NOT NULL,
    event text NOT NULL,
    state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'applied', 'rejected')),
    reason text,
    accepted_at text NOT NULL,
    applied_at text,
    commit_sha text
);
CREATE INDEX event_state_repo ON event (state, repo, seq);
CREATE INDEX event_repo ON event (repo, seq);
CREATE INDEX event_task_add ON event (workplan, task) WHERE kind = 'task.add';
CREATE INDEX event_pending_task ON event (workplan, task, kind, seq) WHERE state = 'pending';
CREATE TABLE writeback (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repo text NOT NULL,
    head text,
    keys text NOT NULL,
    files text NOT NULL,
    started_at text NOT NULL
);
CREATE INDEX writeback_repo ON writeback (repo, id);

CREATE TABLE relay (
    key text PRIMARY KEY,
    seq bigint NOT NULL,
    state text NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'sent', 'confirmed', 'parked')),
    attempts integer NOT NULL DEFAULT 0,
    reason text,
    queued_at text NOT NULL,
    sent_at text,
    confirmed_at text
);
CREATE INDEX relay_state_seq ON relay (state, seq);
CREATE TABLE relay_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE relay_decision (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key text NOT NULL,
    decision text NOT NULL,
    reason text NOT NULL,
    actor text NOT NULL,
    event text,
    at text NOT NULL
);

CREATE TABLE lease (
    ref text PRIMARY KEY,
    repo text NOT NULL,
    workplan text NOT NULL,
    task text NOT NULL,
    actor text NOT NULL,
    claim_key text NOT NULL,
    prior_owner text,
    lease_s double precision NOT NULL,
    claimed_at double precision NOT NULL,
    expires_at double precision NOT NULL,
    state text NOT NULL CHECK (state IN ('held', 'released')),
    release_key text,
    released_at double precision,
    released_by text
);
CREATE INDEX lease_held ON lease (state, expires_at);
CREATE INDEX lease_claim_key ON lease (claim_key);
"""

_PG_V2 = """
ALTER TABLE writeback ADD COLUMN checkout text NOT NULL DEFAULT '';
"""

_PG_V3 = """
ALTER TABLE writeback ADD COLUMN place text NOT NULL DEFAULT '';
"""

EVENTS_PG_STEPS: tuple[str, ...] = (_PG_V1, _PG_V2, _PG_V3)
"""The file's version 2 as one step in the state schema (``buffer_meta``, which nothing reads, left
out); ``EVENTS_PG_STEPS[n - 1]`` takes the store from version ``n - 1`` to ``n``."""
