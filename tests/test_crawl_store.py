"""bilipop.crawl.store: a hot page's walk and examination commit together, and the store exports as a table."""

from __future__ import annotations

import sqlite3

from helpers import VIDEO  # noqa: E402

from bilipop.crawl import api
from bilipop.crawl.store import Store
from bilipop.data.io import read_table


def test_store_hot_page_walk_and_examination_commit_together_and_export(tmp_path):
    store = Store(tmp_path / "bilipop.db")
    video = api.parse_video(VIDEO)
    store.save_hot_page("weekly", "7", [video], 1, 1, cursor="weekly:7", value=None, done=True)
    assert store.cursor("weekly:7") == (None, True) and store.rank_sighted_uploaders(2) == 1
    assert store.uploaders_to_walk() == [(42, 1)]
    store.save_upload_page(42, 1, [video.bvid, "BV17x411w7KD"], 2, 0, True, 3)
    store.save_upload_page(42, 1, [video.bvid], 2, 0, True, 3)  # a page read again adds nothing
    assert store.uploaders_to_walk() == [] and store.candidates_to_examine() == [
        ("BV17x411w7KC", 42), ("BV17x411w7KD", 42)]
    assert store.facts(video.bvid) == video  # the hot-list item describes the candidate already
    store.save_examined(video.bvid, "kept", 4, video=video, followers=10_000)
    store.save_examined("BV17x411w7KD", "other", 4)
    counts = store.counts()
    store.close()
    assert (counts["examined"], counts["videos"], counts["other_sections"], counts["bad_ids"]) == (2, 1, 1, 1)
    assert sqlite3.connect(tmp_path / "bilipop.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    table = read_table(tmp_path / "bilipop.db")
    row = table.iloc[0]
    assert len(table) == 1 and row["followers"] == 10_000 and bool(row["on_hot_list"])
    assert (row["tid"], row["tid_v2"], row["pid_v2"]) == (201, 2094, 1010)
    assert row["hot_sources"] == "weekly" and row["cover_path"] == "" and row["owner_name"] == "科普君"
