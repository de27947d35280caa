"""End-to-end crawls against the local server (bilipop.sim): ground truth, faults, robots, rate, refresh, cookies."""

from __future__ import annotations

import math
import shutil
import sqlite3
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from bilipop.cli import app
from bilipop.crawl.crawler import crawl
from bilipop.crawl.http import Backoff
from bilipop.crawl.store import read_store_table
from bilipop.errors import CrawlError
from bilipop.sim import FaultConfig, SimServer

runner = CliRunner()
FAST = Backoff(base_s=0.005, block_base_s=0.005, max_s=0.05, pause_s=0.05, blocks_before_pause=5, max_pauses=3,
               timeout_s=5)
FIELDS = ("aid", "title", "tid", "tid_v2", "owner_mid", "views", "likes", "coins", "favorites", "shares",
          "danmaku", "replies", "pubdate", "duration")


def check_against_truth(table, truth, folder, *, honors: bool) -> None:
    """Every row equals the server's ground truth: fields, followers, hot-list flag and cover."""
    expected = {b for b, v in truth["videos"].items() if v["visible"] or not honors}
    assert sorted(table["bvid"]) == sorted(expected)
    hot = truth["hot_mids_lists"] | (truth["hot_mids_honors"] if honors else set())
    for row in table.to_dict("records"):
        video = truth["videos"][row["bvid"]]
        assert {f: row[f] for f in FIELDS} == {f: video[f] for f in FIELDS}, row["bvid"]
        uploader = truth["uploaders"][row["owner_mid"]]
        assert (row["owner_name"], row["followers"]) == (uploader["name"], uploader["followers"])
        assert row["on_hot_list"] == (row["owner_mid"] in hot), row["bvid"]
        assert row["cover_url"] == video["pic"] and row["cover_path"] == f"covers/{row['bvid']}.jpg"
        scale = min(1.0, 480 / video["cover_width"], 270 / video["cover_height"])
        with Image.open(folder / row["cover_path"]) as image:
            image.load()
            assert (image.format, image.mode) == ("JPEG", "RGB") and image.width <= 480
            assert image.size == (math.floor(video["cover_width"] * scale), math.floor(video["cover_height"] * scale))


@pytest.fixture(scope="module")
def crawled(tmp_path_factory):
    """A world with invisible videos, crawled plainly and then again with --check-honors."""
    plain_dir = tmp_path_factory.mktemp("crawl") / "plain"
    honors_dir = plain_dir.parent / "honors"
    with SimServer(videos=120, seed=5, faults=FaultConfig(invisible=0.1)) as sim:
        plain = crawl(plain_dir, api_base=sim.base_url, rate=0)
        shutil.copytree(plain_dir, honors_dir)
        honors = crawl(honors_dir, api_base=sim.base_url, rate=0, check_honors=True)
        yield {"truth": sim.truth(), "plain": (plain, read_store_table(plain_dir / "bilipop.db"), plain_dir),
               "honors": (honors, read_store_table(honors_dir / "bilipop.db"), honors_dir)}


def test_plain_crawl_matches_ground_truth(crawled):
    summary, table, folder = crawled["plain"]
    check_against_truth(table, crawled["truth"], folder, honors=False)
    assert summary.new_videos == len(crawled["truth"]["videos"]) and summary.covers_failed == 0


def test_check_honors_skips_invisible_videos_without_losing_visible_ones(crawled):
    summary, table, folder = crawled["honors"]
    truth = crawled["truth"]
    invisible = {b for b, v in truth["videos"].items() if not v["visible"]}
    assert invisible and summary.skipped == len(invisible)
    check_against_truth(table, truth, folder, honors=True)
    # Honour-only uploaders (type 7) turn hot; invisible videos are kept in the store, marked, without a cover.
    assert truth["hot_mids_honors"] - truth["hot_mids_lists"]
    with sqlite3.connect(folder / "bilipop.db") as conn:
        skipped = {r[0] for r in conn.execute("SELECT bvid FROM videos WHERE status = 'skipped'")}
    assert skipped == invisible
    assert not any((folder / "covers" / f"{b}.jpg").exists() for b in invisible)


def test_filter_score_label_read_the_store_end_to_end(crawled, tmp_path):
    data = tmp_path / "d"
    shutil.copytree(crawled["honors"][2], data)
    for args in (["filter", "--data", str(data)], ["score", "--data", str(data)], ["label", "--data", str(data)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    labeled = __import__("pandas").read_parquet(data / "labeled.parquet")
    assert len(labeled) > 0 and labeled["on_hot_list"].all() and (labeled["followers"] < 500_000).all()
    assert all((data / p).is_file() for p in labeled["cover_path"])
    result = runner.invoke(app, ["filter", "-i", str(data / "bilipop.db"), "-o", str(data / "f.csv"),
                                 "--no-require-hot"])
    assert result.exit_code == 0, result.output
    assert (data / "f.csv").is_file()


def test_filter_of_a_store_written_elsewhere_keeps_its_covers_findable(crawled, tmp_path, monkeypatch):
    # `bilipop filter -i d/bilipop.db` writes ./data/filtered.parquet: "covers/<bvid>.jpg" would then be read
    # against ./data, where no cover is, and training would fail on every one of them.
    shutil.copytree(crawled["plain"][2], tmp_path / "d")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["filter", "-i", "d/bilipop.db", "--no-require-hot"])
    assert result.exit_code == 0, result.output
    paths = __import__("pandas").read_parquet(tmp_path / "data" / "filtered.parquet")["cover_path"]
    assert len(paths) > 0 and all(Path(p).is_absolute() and Path(p).is_file() for p in paths)
    # written beside the store, they stay relative to the dataset folder (SPEC section 3)
    result = runner.invoke(app, ["filter", "--data", "d", "--no-require-hot"])
    assert result.exit_code == 0, result.output
    paths = __import__("pandas").read_parquet(tmp_path / "d" / "filtered.parquet")["cover_path"]
    assert all(p.startswith("covers/") and (tmp_path / "d" / p).is_file() for p in paths)


def test_every_fault_at_once_loses_nothing(tmp_path):
    faults = FaultConfig.all(p=0.1, rate_limit_412=20.0)
    with SimServer(videos=40, seed=11, faults=faults) as sim:
        # A little above the server's 412 limit, so that hard blocks happen too; after a block, waiting for the
        # server's one-second window to pass is what gets the crawl going again.
        backoff = Backoff(base_s=0.005, block_base_s=0.3, max_s=1.0, pause_s=1.0, timeout_s=5)
        summary = crawl(tmp_path, api_base=sim.base_url, rate=40, cover_rate=0, check_honors=True, backoff=backoff)
        truth = sim.truth()
    assert summary.blocks > 0 and summary.retries > summary.blocks
    check_against_truth(read_store_table(tmp_path / "bilipop.db"), truth, tmp_path, honors=True)
    assert [p.name for p in (tmp_path / "covers").iterdir() if p.name.startswith(".")] == []


def test_persistent_blocks_stop_cleanly_with_a_resume_hint(tmp_path):
    with SimServer(videos=20, seed=2, faults=FaultConfig(json_block=1.0)) as sim:
        with pytest.raises(CrawlError, match="run the same command again"):
            crawl(tmp_path, api_base=sim.base_url, rate=0, backoff=FAST)
        paths = [r[2] for r in sim.requests]
    # blocks_before_pause blocks per long pause, max_pauses pauses, then one more round before giving up
    assert len([p for p in paths if p.startswith("/x/")]) == FAST.blocks_before_pause * (FAST.max_pauses + 1)


def test_new_wbi_keys_are_fetched_after_a_rotation(tmp_path):
    with SimServer(videos=30, seed=4) as sim:
        rotated = []

        def rotate_once(_progress):
            if not rotated:
                sim.rotate_keys()
                rotated.append(True)

        summary = crawl(tmp_path, api_base=sim.base_url, rate=0, progress=rotate_once, backoff=FAST)
        navs = [r for r in sim.requests if r[2] == "/x/web-interface/nav"]
        truth = sim.truth()
    assert rotated and len(navs) == 2 and summary.blocks >= 1
    check_against_truth(read_store_table(tmp_path / "bilipop.db"), truth, tmp_path, honors=False)


def test_robots_disallow_refuses_before_any_api_request(tmp_path):
    data = tmp_path / "data"
    with SimServer(videos=20, seed=3, robots="disallow") as sim:
        result = runner.invoke(app, ["crawl", "--data", str(data), "--api-base", sim.base_url, "--rate", "0"])
        paths = [r[2] for r in sim.requests]
    assert result.exit_code == 1
    assert "robots.txt" in result.output and "--ignore-robots" in result.output
    assert paths == ["/robots.txt"] and not data.exists()


def test_ignore_robots_proceeds_and_says_so(tmp_path):
    with SimServer(videos=20, seed=3, robots="disallow") as sim:
        result = runner.invoke(app, ["crawl", "--data", str(tmp_path), "--api-base", sim.base_url, "--rate", "0",
                                     "--ignore-robots", "--max-videos", "5"])
    assert result.exit_code == 0, result.output
    assert result.output.count("--ignore-robots: robots.txt will NOT be obeyed") == 1
    assert len(read_store_table(tmp_path / "bilipop.db")) == 5


def test_request_rate_never_exceeds_rate_in_any_window(tmp_path):
    rate = 8.0
    with SimServer(videos=30, seed=6) as sim:
        result = runner.invoke(app, ["crawl", "--data", str(tmp_path), "--api-base", sim.base_url, "--rate",
                                     str(rate), "--tids", "201", "--max-videos", "6"])
        times = [t for t, _, path, _ in sim.requests if not path.startswith("/bfs/")]
    assert result.exit_code == 0, result.output
    assert "req/s" in result.output  # progress, as plain lines when stderr is not a terminal
    assert len(times) >= 15
    for window in (1.0, 2.0):
        worst = max(sum(1 for u in times if t <= u < t + window) for t in times)
        assert worst <= rate * window, (window, worst)


def test_max_videos_samples_every_partition_and_resumes_without_duplicates(tmp_path):
    with SimServer(videos=200, seed=8) as sim:
        crawl(tmp_path, api_base=sim.base_url, rate=0, max_videos=20, page_size=2)
        first = read_store_table(tmp_path / "bilipop.db")
        crawl(tmp_path, api_base=sim.base_url, rate=0, max_videos=45, page_size=2)
        second = read_store_table(tmp_path / "bilipop.db")
    assert len(first) == 20 and len(second) == 45 and second["bvid"].is_unique
    assert set(first["tid"]) == {201, 124, 228, 207, 208, 209, 229, 122}  # round robin over the partitions
    assert set(first["bvid"]) <= set(second["bvid"])


def test_refresh_picks_up_new_counters(tmp_path):
    with SimServer(videos=40, seed=9) as sim:
        crawl(tmp_path, api_base=sim.base_url, rate=0)
        before = read_store_table(tmp_path / "bilipop.db").set_index("bvid")
        sim.bump_counters(1)
        crawl(tmp_path, api_base=sim.base_url, rate=0)  # without --refresh, stored counters stay as they were
        unchanged = read_store_table(tmp_path / "bilipop.db").set_index("bvid")
        result = runner.invoke(app, ["-q", "crawl", "--data", str(tmp_path), "--api-base", sim.base_url,
                                     "--rate", "0", "--refresh"])
        after = read_store_table(tmp_path / "bilipop.db").set_index("bvid")
        truth = sim.truth()
    assert result.exit_code == 0, result.output
    assert "req/s" not in result.output  # -q: no progress
    assert (unchanged["views"] == before["views"]).all()
    assert all(after.loc[b, "views"] == truth["videos"][b]["views"] for b in after.index)
    assert all(after.loc[b, "likes"] == truth["videos"][b]["likes"] for b in after.index)
    assert (after["views"] > before["views"]).all() and (after["fetched_at"] >= before["fetched_at"]).all()


def test_cookies_from_the_environment_never_reach_logs_errors_or_the_store(tmp_path, monkeypatch):
    secret = "SESSDATA=topsecret1234; bili_jct=alsosecret5678"
    monkeypatch.setenv("BILIPOP_COOKIE", secret)
    with SimServer(videos=20, seed=12) as sim:
        ok = runner.invoke(app, ["--verbose", "crawl", "--data", str(tmp_path), "--api-base", sim.base_url,
                                 "--rate", "0", "--max-videos", "8"])
    with SimServer(videos=20, seed=12, robots="disallow") as sim:
        refused = runner.invoke(app, ["--debug", "crawl", "--data", str(tmp_path / "x"), "--api-base", sim.base_url])
    assert ok.exit_code == 0 and refused.exit_code != 0
    texts = [ok.output, refused.output, repr(refused.exception)]
    texts += [p.read_bytes().decode("latin-1") for p in tmp_path.iterdir() if p.name.startswith("bilipop.db")]
    assert not any(word in text for text in texts for word in ("topsecret1234", "alsosecret5678"))
