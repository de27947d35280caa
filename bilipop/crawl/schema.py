"""The crawl store's tables, and opening a store: refuse what is not a store of this schema.

A store from a newer bilipop is refused, never half-read. One from an older schema is refused too: no release wrote
one (the schema starts at this version with 0.1.0), so there is nothing to migrate yet.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bilipop.crawl.api import STAT_FIELDS
from bilipop.errors import InputError

#: Bumped on every change to the tables below, with a migration from the previous version once a release has
#: written stores of it; a store from a newer bilipop is refused, never half-read.
SCHEMA_VERSION = 2
COUNTER_COLUMNS = tuple(STAT_FIELDS.values())

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS videos (
    bvid TEXT PRIMARY KEY, aid INTEGER, title TEXT NOT NULL, tid INTEGER, tid_v2 INTEGER, pic TEXT NOT NULL,
    pubdate INTEGER, duration INTEGER, owner_mid INTEGER NOT NULL,
    {", ".join(f"{c} INTEGER" for c in COUNTER_COLUMNS)},
    fetched_at INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'ok',   -- 'ok' (in the dataset), else 'skipped', 'other': kept out
    skip_code INTEGER,
    honors_checked_at INTEGER,
    pid_v2 INTEGER
);
CREATE TABLE IF NOT EXISTS uploaders (
    mid INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '', followers INTEGER, fetched_at INTEGER, error TEXT,
    via TEXT,                 -- why their uploads are walked: 'hot' (a hot list), 'related' (widening), NULL: not
    walk_rank INTEGER,        -- walking order (uploaders sighted with a Knowledge video first)
    walk_next INTEGER,        -- next page of their uploads to read
    walk_done INTEGER NOT NULL DEFAULT 0,
    uploads INTEGER           -- the upload count their list reported
);
CREATE TABLE IF NOT EXISTS sightings (
    mid INTEGER NOT NULL, source TEXT NOT NULL, ref TEXT NOT NULL, bvid TEXT, seen_at INTEGER NOT NULL,
    PRIMARY KEY (mid, source, ref)
);
CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, value INTEGER, done INTEGER NOT NULL DEFAULT 0,
                                    updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS covers (
    bvid TEXT PRIMARY KEY, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, error TEXT,
    width INTEGER, height INTEGER, updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS candidates (
    bvid TEXT PRIMARY KEY, mid INTEGER NOT NULL, seq INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'todo',  -- 'todo', 'kept', 'other' (another section), 'gone' (a per-video code)
    code INTEGER, updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS candidates_todo ON candidates (state, mid, seq);
CREATE TABLE IF NOT EXISTS facts (
    bvid TEXT PRIMARY KEY, mid INTEGER NOT NULL, pid_v2 INTEGER, video TEXT NOT NULL, source TEXT NOT NULL,
    seen_at INTEGER NOT NULL
);
"""


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        conn.execute("PRAGMA busy_timeout = 30000")
        return conn
    except sqlite3.Error as exc:
        raise InputError(f"cannot open the crawl store {path}: {exc}") from exc


def _version(conn: sqlite3.Connection, path: Path, *, create: bool) -> int | None:
    """The store's schema version (None: an empty file that may become a store)."""
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in tables:
            if create and not tables:
                return None
            raise InputError(f"{path} is not a bilipop crawl store (no meta table); crawl into an empty --data "
                             "folder or give the right file")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise InputError(f"{path} is not a readable SQLite crawl store ({exc}); check the file") from exc
    version = int(row[0]) if row and str(row[0]).isdigit() else None
    if version is None:
        raise InputError(f"{path} has no schema version; it was not written by bilipop crawl")
    if version > SCHEMA_VERSION:
        raise InputError(
            f"{path} was written by a newer bilipop (store schema {version}; this version reads up to "
            f"{SCHEMA_VERSION}); upgrade bilipop (pip install -U bilipop) or crawl into another --data folder")
    if version < SCHEMA_VERSION:
        raise InputError(
            f"{path} was written by a development version of bilipop (store schema {version}; this version reads "
            f"{SCHEMA_VERSION}); crawl into another --data folder")
    return version


def open_store(path: Path, *, create: bool) -> sqlite3.Connection:
    """Connect, refuse what is not a store of this schema, and create the tables in an empty file."""
    conn = _connect(path)
    try:
        _version(conn, path, create=create)
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL is durable against a killed process in WAL mode; only an OS crash can lose the last commits.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE SET "
                         "value = excluded.value", (str(SCHEMA_VERSION),))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return conn
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise InputError(f"{path} is not a usable SQLite crawl store ({exc}); check the file") from exc
    except BaseException:
        conn.close()
        raise


def check_store(path: str | Path) -> None:
    """Refuse an existing file that is not a store this bilipop can write (before any network work).

    Raises:
        InputError: not a bilipop store, or written by another schema.
    """
    conn = _connect(Path(path))
    try:
        _version(conn, Path(path), create=True)
    finally:
        conn.close()
