"""The crawl store: one SQLite file, ``DIR/bilipop.db``, in WAL mode.

Every unit of crawl work (a listing page with its cursor, an uploader's followers, a hot-list issue, a video's
``view``, a cover) is written in one transaction, so a crawl killed at any moment loses at most the unit in flight
and a rerun continues from the cursors without duplicates (``bvid``, ``mid`` and sightings are primary keys).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from bilipop.crawl.api import STAT_FIELDS, Video
from bilipop.data.schema import COVERS_DIR
from bilipop.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

#: Bumped on every change to the tables below; a store from a newer bilipop is refused, never half-read.
SCHEMA_VERSION = 1
COUNTER_COLUMNS = tuple(STAT_FIELDS.values())

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS videos (
    bvid TEXT PRIMARY KEY, aid INTEGER, title TEXT NOT NULL, tid INTEGER, tid_v2 INTEGER, pic TEXT NOT NULL,
    pubdate INTEGER, duration INTEGER, owner_mid INTEGER NOT NULL,
    {", ".join(f"{c} INTEGER" for c in COUNTER_COLUMNS)},
    fetched_at INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'ok',   -- 'ok', or 'skipped' when view answered a per-video code
    skip_code INTEGER,
    honors_checked_at INTEGER
);
CREATE TABLE IF NOT EXISTS uploaders (
    mid INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '', followers INTEGER, fetched_at INTEGER, error TEXT
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
"""

_VIDEO_FIELDS = ("bvid", "aid", "title", "tid", "tid_v2", "pic", "pubdate", "duration", "owner_mid",
                 *COUNTER_COLUMNS)


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        conn.execute("PRAGMA busy_timeout = 30000")
        return conn
    except sqlite3.Error as exc:
        raise InputError(f"cannot open the crawl store {path}: {exc}") from exc


def _check_version(conn: sqlite3.Connection, path: Path, *, create: bool) -> None:
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in tables:
            if create and not tables:
                return
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


class Store:
    """The crawl store of one dataset folder, open for writing.

    Raises:
        InputError: the file is not a bilipop store, or was written by a newer schema.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = _connect(self.path)
        try:
            _check_version(self.conn, self.path, create=True)
            self.conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL is durable against a killed process in WAL mode; only an OS crash can lose the last commits.
            self.conn.execute("PRAGMA synchronous = NORMAL")
            with self.transaction():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise InputError(f"{self.path} is not a usable SQLite crawl store ({exc}); check the file") from exc
        except BaseException:
            self.conn.close()
            raise

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- cursors -----------------------------------------------------------------------------------------------
    def cursor(self, name: str) -> tuple[int | None, bool]:
        row = self.conn.execute("SELECT value, done FROM cursors WHERE name = ?", (name,)).fetchone()
        return (row[0], bool(row[1])) if row else (None, False)

    def _set_cursor(self, name: str, value: int | None, done: bool, now: int) -> None:
        self.conn.execute(
            "INSERT INTO cursors VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value, "
            "done = excluded.done, updated_at = excluded.updated_at", (name, value, int(done), now))

    def set_cursor(self, name: str, value: int | None, done: bool, now: int) -> None:
        with self.transaction():
            self._set_cursor(name, value, done, now)

    def clear_cursor(self, name: str) -> None:
        with self.transaction():
            self.conn.execute("DELETE FROM cursors WHERE name = ?", (name,))

    # -- listing -----------------------------------------------------------------------------------------------
    def save_listing_page(self, videos: Sequence[Video], cursor: str, next_page: int, done: bool,
                          now: int) -> int:
        """Upsert a page of videos and their uploaders together with the listing cursor; returns new videos."""
        with self.transaction():
            before = self.video_count()
            for video in videos:
                self._upsert_video(video, now)
            self._set_cursor(cursor, next_page, done, now)
            return self.video_count() - before

    def _upsert_video(self, video: Video, now: int) -> None:
        values = [getattr(video, f) for f in _VIDEO_FIELDS]
        updates = ", ".join(f"{f} = COALESCE(excluded.{f}, {f})" for f in _VIDEO_FIELDS[1:])
        self.conn.execute(
            f"INSERT INTO videos ({', '.join(_VIDEO_FIELDS)}, fetched_at) VALUES ({', '.join('?' * len(values))}, ?)"
            f" ON CONFLICT(bvid) DO UPDATE SET {updates}, fetched_at = excluded.fetched_at", (*values, now))
        self.conn.execute(
            "INSERT INTO uploaders (mid, name) VALUES (?, ?) ON CONFLICT(mid) DO UPDATE SET "
            "name = CASE WHEN excluded.name != '' THEN excluded.name ELSE name END",
            (video.owner_mid, video.owner_name))

    def video_count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM videos").fetchone()[0]

    # -- uploaders ---------------------------------------------------------------------------------------------
    def uploaders_without_followers(self) -> list[int]:
        return [r[0] for r in self.conn.execute("SELECT mid FROM uploaders WHERE followers IS NULL ORDER BY mid")]

    def save_followers(self, mid: int, followers: int | None, now: int, error: str | None = None) -> None:
        with self.transaction():
            self.conn.execute("UPDATE uploaders SET followers = ?, fetched_at = ?, error = ? WHERE mid = ?",
                              (followers, now, error, mid))

    # -- hot lists ---------------------------------------------------------------------------------------------
    def save_sightings(self, sightings: Iterable[tuple[int, str, str, str]], now: int,
                       cursor: str | None = None) -> None:
        """Record ``(mid, source, ref, bvid)`` sightings (and mark ``cursor`` done) in one transaction."""
        with self.transaction():
            self.conn.executemany("INSERT OR IGNORE INTO sightings VALUES (?, ?, ?, ?, ?)",
                                  [(mid, source, ref, bvid, now) for mid, source, ref, bvid in sightings])
            if cursor:
                self._set_cursor(cursor, None, True, now)

    # -- view pass (honours, refresh) --------------------------------------------------------------------------
    def videos_to_view(self, *, honors: bool, refresh_range: tuple[int, int] | None) -> list[tuple[int, str]]:
        """``(rowid, bvid)`` of dataset videos with unchecked honours (``honors``) or, for a refresh, with a rowid
        in ``(after, until]``: the refresh cursor moves through the videos stored when the refresh began."""
        where = []
        if honors:
            where.append("honors_checked_at IS NULL")
        if refresh_range is not None:
            where.append(f"(rowid > {int(refresh_range[0])} AND rowid <= {int(refresh_range[1])})")
        if not where:
            return []
        sql = f"SELECT rowid, bvid FROM videos WHERE status = 'ok' AND ({' OR '.join(where)}) ORDER BY rowid"
        return [(r[0], r[1]) for r in self.conn.execute(sql)]

    def max_rowid(self) -> int:
        return self.conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM videos").fetchone()[0]

    def save_view(self, bvid: str, video: Video | None, honor_types: Sequence[int], now: int, *,
                  update_counters: bool, hot_types: Iterable[int], cursor: tuple[str, int] | None = None) -> None:
        """Record one ``view`` in one transaction: fresher fields (when ``update_counters``), honours checked,
        hot-list honours as sightings, and the refresh cursor."""
        with self.transaction():
            if video is not None and update_counters:
                self._upsert_video(video, now)
            self.conn.execute("UPDATE videos SET honors_checked_at = ? WHERE bvid = ?", (now, bvid))
            owner = self.conn.execute("SELECT owner_mid FROM videos WHERE bvid = ?", (bvid,)).fetchone()
            hot = sorted(set(honor_types) & set(hot_types))
            if owner and hot:
                self.conn.executemany("INSERT OR IGNORE INTO sightings VALUES (?, 'honor', ?, ?, ?)",
                                      [(owner[0], f"{bvid}:{t}", bvid, now) for t in hot])
            if cursor:
                self._set_cursor(cursor[0], cursor[1], False, now)

    def skip_video(self, bvid: str, code: int, now: int, cursor: tuple[str, int] | None = None) -> None:
        """A per-video code from ``view``: the video stays in the store, out of the dataset, without a cover."""
        with self.transaction():
            self.conn.execute("UPDATE videos SET status = 'skipped', skip_code = ?, honors_checked_at = ?, "
                              "fetched_at = ? WHERE bvid = ?", (code, now, now, bvid))
            self.conn.execute("DELETE FROM covers WHERE bvid = ?", (bvid,))
            if cursor:
                self._set_cursor(cursor[0], cursor[1], False, now)

    # -- covers ------------------------------------------------------------------------------------------------
    def covers_to_fetch(self, covers_dir: Path) -> list[tuple[str, str]]:
        """``(bvid, pic)`` of dataset videos whose cover is not downloaded (or was deleted since)."""
        rows = self.conn.execute(
            "SELECT v.bvid, v.pic, c.status FROM videos v LEFT JOIN covers c ON c.bvid = v.bvid "
            "WHERE v.status = 'ok' AND v.pic != '' ORDER BY v.rowid").fetchall()
        return [(bvid, pic) for bvid, pic, status in rows
                if status != "ok" or not (covers_dir / f"{bvid}.jpg").is_file()]

    def save_cover(self, bvid: str, ok: bool, now: int, *, error: str | None = None,
                   size: tuple[int, int] | None = None) -> None:
        width, height = size or (None, None)
        with self.transaction():
            self.conn.execute(
                "INSERT INTO covers VALUES (?, ?, 1, ?, ?, ?, ?) ON CONFLICT(bvid) DO UPDATE SET "
                "status = excluded.status, attempts = attempts + 1, error = excluded.error, "
                "width = excluded.width, height = excluded.height, updated_at = excluded.updated_at",
                (bvid, "ok" if ok else "failed", error, width, height, now))

    # -- summary -----------------------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        one = lambda sql: self.conn.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "videos": one("SELECT COUNT(*) FROM videos WHERE status = 'ok'"),
            "skipped": one("SELECT COUNT(*) FROM videos WHERE status != 'ok'"),
            "uploaders": one("SELECT COUNT(*) FROM uploaders"),
            "uploaders_with_followers": one("SELECT COUNT(*) FROM uploaders WHERE followers IS NOT NULL"),
            "hot_uploaders": one("SELECT COUNT(DISTINCT mid) FROM sightings"),
            "covers": one("SELECT COUNT(*) FROM covers WHERE status = 'ok'"),
            "covers_failed": one("SELECT COUNT(*) FROM covers WHERE status = 'failed'"),
        }


def check_store(path: str | Path) -> None:
    """Refuse an existing file that is not a store this bilipop can write (before any network work).

    Raises:
        InputError: not a bilipop store, or written by a newer schema.
    """
    conn = _connect(Path(path))
    try:
        _check_version(conn, Path(path), create=True)
    finally:
        conn.close()


def read_store_table(path: str | Path) -> pd.DataFrame:
    """The dataset of a crawl store: one row per video (skipped ones left out) joined with its uploader.

    ``on_hot_list`` is true when the uploader was sighted on any hot list (or, once honours were checked, has a
    hot-list honour); ``hot_sources`` names where; ``cover_path`` is ``covers/<bvid>.jpg`` relative to the dataset
    folder, or empty when the cover is not downloaded.

    Raises:
        InputError: not a bilipop store, or written by a newer schema.
    """
    import pandas as pd

    from bilipop.data.io import normalise_dtypes

    path = Path(path)
    conn = _connect(path)
    try:
        _check_version(conn, path, create=False)
        counters = ", ".join(f"v.{c}" for c in COUNTER_COLUMNS)
        df = pd.read_sql_query(
            f"SELECT v.bvid, v.aid, v.title, v.pic AS cover_url, {counters}, v.owner_mid, "
            "COALESCE(u.name, '') AS owner_name, u.followers, v.pubdate, v.fetched_at, v.duration, v.tid, "
            "v.tid_v2, c.status AS cover_status FROM videos v LEFT JOIN uploaders u ON u.mid = v.owner_mid "
            "LEFT JOIN covers c ON c.bvid = v.bvid WHERE v.status = 'ok' ORDER BY v.bvid", conn)
        sources: dict[int, set[str]] = {}
        for mid, source in conn.execute("SELECT mid, source FROM sightings"):
            sources.setdefault(mid, set()).add(source)
    except sqlite3.DatabaseError as exc:
        raise InputError(f"cannot read the crawl store {path}: {exc}") from exc
    finally:
        conn.close()
    df["on_hot_list"] = df["owner_mid"].map(lambda m: m in sources).astype(bool)
    df["hot_sources"] = df["owner_mid"].map(lambda m: ",".join(sorted(sources.get(m, ())))).astype(object)
    covers_dir = path.parent / COVERS_DIR
    df["cover_path"] = [
        f"{COVERS_DIR}/{b}.jpg" if s == "ok" and (covers_dir / f"{b}.jpg").is_file() else ""
        for b, s in zip(df["bvid"], df["cover_status"], strict=True)
    ]
    df = df.drop(columns="cover_status")
    return normalise_dtypes(df)
