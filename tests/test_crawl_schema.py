"""bilipop.crawl.schema: a store of the previous version is migrated with one message; a newer one, or a
database that is not a store, is refused."""

from __future__ import annotations

import logging
import sqlite3

import pytest
from typer.testing import CliRunner

from bilipop.cli import app
from bilipop.crawl.schema import SCHEMA_VERSION
from bilipop.crawl.store import Store
from bilipop.data.io import read_table
from bilipop.errors import InputError

runner = CliRunner()
V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE videos (bvid TEXT PRIMARY KEY, aid INTEGER, title TEXT NOT NULL, tid INTEGER, tid_v2 INTEGER,
    pic TEXT NOT NULL, pubdate INTEGER, duration INTEGER, owner_mid INTEGER NOT NULL, views INTEGER, likes INTEGER,
    coins INTEGER, favorites INTEGER, shares INTEGER, danmaku INTEGER, replies INTEGER, fetched_at INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'ok', skip_code INTEGER, honors_checked_at INTEGER);
CREATE TABLE uploaders (mid INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '', followers INTEGER,
    fetched_at INTEGER, error TEXT);
CREATE TABLE sightings (mid INTEGER NOT NULL, source TEXT NOT NULL, ref TEXT NOT NULL, bvid TEXT,
    seen_at INTEGER NOT NULL, PRIMARY KEY (mid, source, ref));
CREATE TABLE cursors (name TEXT PRIMARY KEY, value INTEGER, done INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL);
CREATE TABLE covers (bvid TEXT PRIMARY KEY, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, error TEXT,
    width INTEGER, height INTEGER, updated_at INTEGER NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO videos (bvid, title, tid, tid_v2, pic, owner_mid, views, fetched_at) VALUES
    ('BV17x411w7KC', 'k', 201, 2094, 'http://x/a.jpg', 42, 5, 1),
    ('BV17x411w7KD', 'o', 122, 2112, 'http://x/b.jpg', 42, 5, 1),
    ('BV17x411w7KE', 'u', 201, NULL, 'http://x/c.jpg', 42, 5, 1);
INSERT INTO uploaders VALUES (42, 'n', 7, 1, NULL);
"""


def test_a_store_of_the_previous_version_is_migrated_with_one_message(tmp_path, caplog):
    with sqlite3.connect(tmp_path / "bilipop.db") as conn:
        conn.executescript(V1_SCHEMA)
    with caplog.at_level(logging.WARNING, logger="bilipop"):
        table = read_table(tmp_path / "bilipop.db")
        Store(tmp_path / "bilipop.db").close()  # opening it again says nothing more
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "from schema 1 to 2" in messages[0], messages
    assert "1 stored video(s) are in another section" in messages[0]
    assert list(table["bvid"]) == ["BV17x411w7KC"] and table["pid_v2"].tolist() == [1010]
    store = Store(tmp_path / "bilipop.db")
    store.requeue_unverified(2)  # the one without v2 ids is examined again by the next crawl
    assert store.candidates_to_examine() == [("BV17x411w7KE", 42)]
    store.close()


def _newer_store(folder):
    Store(folder / "bilipop.db").close()
    with sqlite3.connect(folder / "bilipop.db") as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))


def test_a_store_from_a_newer_schema_is_refused(tmp_path):
    _newer_store(tmp_path)
    with pytest.raises(InputError, match="newer bilipop"):
        Store(tmp_path / "bilipop.db")
    result = runner.invoke(app, ["filter", "-i", str(tmp_path / "bilipop.db"), "-o", str(tmp_path / "f.csv")])
    assert result.exit_code == 1 and "newer bilipop" in result.output
    assert not (tmp_path / "f.csv").exists()
    result = runner.invoke(app, ["crawl", "--data", str(tmp_path), "--api-base", "http://127.0.0.1:9"])
    assert result.exit_code == 1 and "newer bilipop" in result.output


def test_a_database_that_is_not_a_store_is_refused(tmp_path):
    with sqlite3.connect(tmp_path / "other.db") as conn:
        conn.execute("CREATE TABLE t (x)")
    result = runner.invoke(app, ["filter", "-i", str(tmp_path / "other.db"), "-o", str(tmp_path / "f.csv")])
    assert result.exit_code == 1 and "not a bilipop crawl store" in result.output
    assert not (tmp_path / "f.csv").exists()
