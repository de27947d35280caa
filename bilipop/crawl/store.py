"""The crawl store: one SQLite file, ``DIR/bilipop.db``, in WAL mode.

Every unit of crawl work (a hot-list page, a page of an uploader's uploads with its cursor, the examination of one
candidate video, a cover) is written in one transaction, so a crawl killed at any moment loses at most the unit in
flight and a rerun continues from the cursors without duplicates (``bvid``, ``mid`` and sightings are keys).

The tables (``schema``): ``videos`` (the dataset: kept Knowledge videos, ``status = 'ok'``), ``uploaders``
(followers and the state of the walk through their uploads), ``sightings`` (where an uploader was seen on a hot
list, or a hot honour), ``candidates`` (every upload to examine, and what it turned out to be), ``facts`` (video
facts known from list items, so that a candidate already described by a list needs no request), ``cursors`` and
``covers``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bilipop.crawl.api import KNOWLEDGE_MAIN, Video
from bilipop.crawl.schema import COUNTER_COLUMNS, open_store
from bilipop.errors import InputError
from bilipop.layout import COVERS_DIR

if TYPE_CHECKING:
    import pandas as pd

_VIDEO_FIELDS = ("bvid", "aid", "title", "tid", "tid_v2", "pid_v2", "pic", "pubdate", "duration", "owner_mid",
                 *COUNTER_COLUMNS)

class Store:
    """The crawl store of one dataset folder, open for writing.

    Raises:
        InputError: the file is not a bilipop store, or was written by another schema.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = open_store(self.path, create=True)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def one(self, sql: str, params: Sequence = ()) -> Any:
        """The first column of the first row (None: no row); typed Any because SQLite's values carry no type."""
        row = self.conn.execute(sql, params).fetchone()
        return row[0] if row else None

    # -- cursors -----------------------------------------------------------------------------------------------
    def cursor(self, name: str) -> tuple[int | None, bool]:
        row = self.conn.execute("SELECT value, done FROM cursors WHERE name = ?", (name,)).fetchone()
        return (row[0], bool(row[1])) if row else (None, False)

    def _set_cursor(self, name: str, value: int | None, done: bool, now: int) -> None:
        self.conn.execute(
            "INSERT INTO cursors VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value, "
            "done = excluded.done, updated_at = excluded.updated_at", (name, value, int(done), now))

    def clear_cursor(self, name: str) -> None:
        with self.transaction():
            self.conn.execute("DELETE FROM cursors WHERE name = ?", (name,))

    def _add_count(self, name: str, n: int, now: int) -> None:
        if n:
            self.conn.execute("INSERT INTO cursors VALUES (?, ?, 0, ?) ON CONFLICT(name) DO UPDATE SET "
                              "value = COALESCE(value, 0) + excluded.value, updated_at = excluded.updated_at",
                              (name, n, now))

    # -- videos ------------------------------------------------------------------------------------------------
    def _upsert_video(self, video: Video, now: int, status: str = "ok") -> None:
        values = [getattr(video, f) for f in _VIDEO_FIELDS]
        updates = ", ".join(f"{f} = COALESCE(excluded.{f}, {f})" for f in _VIDEO_FIELDS[1:])
        self.conn.execute(
            f"INSERT INTO videos ({', '.join(_VIDEO_FIELDS)}, fetched_at, status) VALUES "
            f"({', '.join('?' * len(values))}, ?, ?) ON CONFLICT(bvid) DO UPDATE SET {updates}, "
            "fetched_at = excluded.fetched_at, status = excluded.status, skip_code = NULL", (*values, now, status))
        self._upsert_uploader(video.owner_mid, video.owner_name)

    def _upsert_uploader(self, mid: int, name: str) -> None:
        self.conn.execute(
            "INSERT INTO uploaders (mid, name) VALUES (?, ?) ON CONFLICT(mid) DO UPDATE SET "
            "name = CASE WHEN excluded.name != '' THEN excluded.name ELSE name END", (mid, name))

    def video_count(self) -> int:
        return int(self.one("SELECT COUNT(*) FROM videos WHERE status = 'ok'"))

    def _save_facts(self, videos: Iterable[Video], source: str, now: int) -> None:
        self.conn.executemany(
            "INSERT INTO facts VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(bvid) DO UPDATE SET pid_v2 = excluded.pid_v2, "
            "video = excluded.video, source = excluded.source, seen_at = excluded.seen_at",
            [(v.bvid, v.owner_mid, v.pid_v2, json.dumps(_flat(v), ensure_ascii=False), source, now)
             for v in videos])

    def facts(self, bvid: str) -> Video | None:
        text = self.one("SELECT video FROM facts WHERE bvid = ?", (bvid,))
        return Video(**json.loads(str(text))) if text else None

    # -- hot lists ---------------------------------------------------------------------------------------------
    def save_hot_page(self, source: str, ref: str, videos: Sequence[Video], bad_ids: int, now: int, *,
                      cursor: str, value: int | None, done: bool) -> None:
        """One page of a hot list: sightings of every owner, the items' facts, and the list's cursor."""
        with self.transaction():
            for video in videos:
                self._upsert_uploader(video.owner_mid, video.owner_name)
            self.conn.executemany("INSERT OR IGNORE INTO sightings VALUES (?, ?, ?, ?, ?)",
                                  [(v.owner_mid, source, ref, v.bvid, now) for v in videos])
            self._save_facts(videos, source, now)
            self._add_count("bad_ids", bad_ids, now)
            self._set_cursor(cursor, value, done, now)

    def rank_sighted_uploaders(self, now: int) -> int:
        """Mark every uploader sighted on a hot list for walking (Knowledge sightings first); returns how many."""
        with self.transaction():
            rows = self.conn.execute(
                "SELECT s.mid, MAX(COALESCE(f.pid_v2, 0) = ?) AS k FROM sightings s LEFT JOIN facts f "
                "ON f.bvid = s.bvid WHERE s.source != 'honor' GROUP BY s.mid ORDER BY k DESC, s.mid",
                (KNOWLEDGE_MAIN,)).fetchall()
            for rank, (mid, _) in enumerate(rows):
                self.conn.execute("UPDATE uploaders SET via = 'hot', walk_rank = ? WHERE mid = ? AND "
                                  "(via IS NULL OR via != 'hot')", (rank, mid))
            return len(rows)

    # -- walking uploaders ---------------------------------------------------------------------------------------
    def uploaders_to_walk(self) -> list[tuple[int, int]]:
        """``(mid, next page)`` of uploaders whose upload list is not read to the end, in walking order."""
        return [(r[0], r[1] or 1) for r in self.conn.execute(
            "SELECT mid, walk_next FROM uploaders WHERE via IS NOT NULL AND walk_done = 0 "
            "ORDER BY via = 'related', walk_rank, mid")]

    def walk_counts(self) -> tuple[int, int]:
        """``(walked, to walk)`` uploaders."""
        row = self.conn.execute("SELECT SUM(walk_done), COUNT(*) FROM uploaders WHERE via IS NOT NULL").fetchone()
        return int(row[0] or 0), int(row[1] or 0)

    def save_upload_page(self, mid: int, page: int, bvids: Sequence[str], count: int | None, bad_ids: int,
                         done: bool, now: int) -> None:
        """A page of an uploader's uploads: new candidates (in list order) and the walk cursor, together."""
        with self.transaction():
            base = int(self.one("SELECT COALESCE(MAX(seq), -1) FROM candidates WHERE mid = ?", (mid,))) + 1
            self.conn.executemany("INSERT OR IGNORE INTO candidates (bvid, mid, seq, updated_at) VALUES (?, ?, ?, ?)",
                                  [(b, mid, base + i, now) for i, b in enumerate(bvids)])
            self.conn.execute("UPDATE uploaders SET walk_next = ?, walk_done = ?, uploads = ? WHERE mid = ?",
                              (page + 1, int(done), count, mid))
            self._add_count("bad_ids", bad_ids, now)

    # -- examining candidates ----------------------------------------------------------------------------------
    def candidates_to_examine(self) -> list[tuple[str, int]]:
        """``(bvid, mid)`` of candidates not yet examined, or not visible when last asked (a video under review or
        private may be back), uploader by uploader in walking order."""
        return [(r[0], r[1]) for r in self.conn.execute(
            "SELECT c.bvid, c.mid FROM candidates c LEFT JOIN uploaders u ON u.mid = c.mid "
            "WHERE c.state IN ('todo', 'gone') "
            "ORDER BY u.via = 'related', u.walk_rank, c.mid, c.seq")]

    def followers_of(self, mid: int) -> int | None:
        value = self.one("SELECT followers FROM uploaders WHERE mid = ?", (mid,))
        return None if value is None else int(value)

    def save_examined(self, bvid: str, state: str, now: int, *, video: Video | None = None,
                      followers: int | None = None, honors: Sequence[int] = (), hot_types: Iterable[int] = (),
                      related: Sequence[Video] = (), nominate: Iterable[int] = (), code: int | None = None) -> None:
        """Everything one examination learnt, in one transaction: the candidate's state, the video when kept, the
        uploader's followers, hot honours as sightings, facts of Related items and uploaders found by widening."""
        with self.transaction():
            self.conn.execute("UPDATE candidates SET state = ?, code = ?, updated_at = ? WHERE bvid = ?",
                              (state, code, now, bvid))
            if video is not None:
                self._save_facts([video], "detail", now)
                if state == "kept":
                    self._upsert_video(video, now)
                    self.conn.execute("UPDATE videos SET honors_checked_at = ? WHERE bvid = ?", (now, bvid))
                elif self.one("SELECT 1 FROM videos WHERE bvid = ?", (bvid,)):
                    self.conn.execute("UPDATE videos SET status = 'other' WHERE bvid = ?", (bvid,))
                owner = video.owner_mid
                self._upsert_uploader(owner, video.owner_name)
                if followers is not None:
                    self.conn.execute("UPDATE uploaders SET followers = ?, fetched_at = ?, error = NULL WHERE "
                                      "mid = ?", (followers, now, owner))
                hot = sorted(set(honors) & set(hot_types))
                self.conn.executemany("INSERT OR IGNORE INTO sightings VALUES (?, 'honor', ?, ?, ?)",
                                      [(owner, f"{bvid}:{t}", bvid, now) for t in hot])
            elif state == "gone":
                self.conn.execute("UPDATE videos SET status = 'skipped', skip_code = ? WHERE bvid = ?", (code, bvid))
                self.conn.execute("DELETE FROM covers WHERE bvid = ?", (bvid,))
            self._save_facts(related, "related", now)
            for mid in nominate:
                self.conn.execute("INSERT INTO uploaders (mid, via, walk_rank) VALUES (?, 'related', 0) "
                                  "ON CONFLICT(mid) DO UPDATE SET via = COALESCE(via, 'related'), "
                                  "walk_rank = COALESCE(walk_rank, 0)", (mid,))

    def walked_mids(self) -> set[int]:
        return {r[0] for r in self.conn.execute("SELECT mid FROM uploaders WHERE via IS NOT NULL")}

    # -- refresh -----------------------------------------------------------------------------------------------
    def videos_to_refresh(self, after: int, until: int) -> list[tuple[int, str]]:
        """``(rowid, bvid)`` of dataset videos with a rowid in ``(after, until]``."""
        return [(r[0], r[1]) for r in self.conn.execute(
            "SELECT rowid, bvid FROM videos WHERE status = 'ok' AND rowid > ? AND rowid <= ? ORDER BY rowid",
            (after, until))]

    def max_rowid(self) -> int:
        return int(self.one("SELECT COALESCE(MAX(rowid), 0) FROM videos"))

    def start_refresh(self, now: int) -> tuple[int, int]:
        """The refresh range: a new refresh covers the videos stored now; a resumed one keeps its range."""
        after, _ = self.cursor("refresh")
        until, _ = self.cursor("refresh_end")
        if until is None:
            after, until = 0, self.max_rowid()
            with self.transaction():
                self._set_cursor("refresh", 0, False, now)
                self._set_cursor("refresh_end", until, False, now)
        return after or 0, until

    def save_refresh(self, rowid: int, bvid: str, video: Video | None, code: int | None, now: int) -> None:
        """One refreshed video: fresh counters (or its per-video code) and the refresh cursor, together."""
        with self.transaction():
            if video is not None:
                self._upsert_video(video, now, status="ok" if video.knowledge else "other")
            elif code is not None:
                self.conn.execute("UPDATE videos SET status = 'skipped', skip_code = ?, fetched_at = ? WHERE "
                                  "bvid = ?", (code, now, bvid))
                self.conn.execute("DELETE FROM covers WHERE bvid = ?", (bvid,))
            self._set_cursor("refresh", rowid, False, now)

    def finish_refresh(self) -> None:
        with self.transaction():
            self.conn.execute("DELETE FROM cursors WHERE name IN ('refresh', 'refresh_end')")

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
        one = lambda sql: int(self.one(sql) or 0)  # noqa: E731
        return {
            "videos": one("SELECT COUNT(*) FROM videos WHERE status = 'ok'"),
            "skipped": one("SELECT COUNT(*) FROM candidates WHERE state = 'gone'"),
            "examined": one("SELECT COUNT(*) FROM candidates WHERE state != 'todo'"),
            "candidates": one("SELECT COUNT(*) FROM candidates"),
            "other_sections": one("SELECT COUNT(*) FROM candidates WHERE state = 'other'"),
            "bad_ids": one("SELECT COALESCE(MAX(value), 0) FROM cursors WHERE name = 'bad_ids'"),
            "uploaders": one("SELECT COUNT(*) FROM uploaders"),
            "uploaders_with_followers": one("SELECT COUNT(*) FROM uploaders u WHERE followers IS NOT NULL AND "
                                            "EXISTS (SELECT 1 FROM videos v WHERE v.owner_mid = u.mid AND "
                                            "v.status = 'ok')"),
            "uploaders_in_dataset": one("SELECT COUNT(DISTINCT owner_mid) FROM videos WHERE status = 'ok'"),
            "uploaders_walked": one("SELECT COUNT(*) FROM uploaders WHERE walk_done = 1"),
            "hot_uploaders": one("SELECT COUNT(DISTINCT mid) FROM sightings"),
            "covers": one("SELECT COUNT(*) FROM covers WHERE status = 'ok'"),
            "covers_failed": one("SELECT COUNT(*) FROM covers WHERE status = 'failed'"),
        }


def read_store_table(path: str | Path) -> pd.DataFrame:
    """The dataset of a crawl store as its raw query result: one row per kept Knowledge video, joined with its
    uploader (``bilipop.data.io.read_table`` reads a store through this and normalises the column types).

    ``on_hot_list`` is true when the uploader was sighted on any hot list or has a hot-list honour; ``hot_sources``
    names where; ``cover_path`` is ``covers/<bvid>.jpg`` relative to the dataset folder, or empty when the cover is
    not downloaded.

    Raises:
        InputError: not a bilipop store, or written by another schema.
    """
    import pandas as pd

    path = Path(path)
    conn = open_store(path, create=False)
    try:
        counters = ", ".join(f"v.{c}" for c in COUNTER_COLUMNS)
        df = pd.read_sql_query(
            f"SELECT v.bvid, v.aid, v.title, v.pic AS cover_url, {counters}, v.owner_mid, "
            "COALESCE(u.name, '') AS owner_name, u.followers, v.pubdate, v.fetched_at, v.duration, v.tid, "
            "v.tid_v2, v.pid_v2, c.status AS cover_status FROM videos v LEFT JOIN uploaders u ON u.mid = v.owner_mid "
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
    return df.drop(columns="cover_status")  # raw: bilipop.data.io.read_table gives it the dataset's dtypes


_ALL_VIDEO_FIELDS = tuple(f.name for f in fields(Video))


def _flat(video: Video) -> dict:
    """``dataclasses.asdict`` for a Video without its recursive deep copy, which a Video's plain fields do not need
    and which costs a noticeable share of a crawl's time (benchmarks/README.md, the demo's crawl)."""
    return {name: getattr(video, name) for name in _ALL_VIDEO_FIELDS}
