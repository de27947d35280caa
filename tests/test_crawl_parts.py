"""The crawler's parts that need no server: API parsing, rate limiter, covers, the store, and bad CLI input."""

from __future__ import annotations

import io
import logging
import socket
import sqlite3
import time

import pytest
from PIL import Image
from typer.testing import CliRunner

from bilipop.cli import app
from bilipop.crawl import api, covers
from bilipop.crawl.http import Backoff, HttpClient, RateLimiter, cookie_from_env
from bilipop.crawl.store import SCHEMA_VERSION, Store, read_store_table
from bilipop.errors import CrawlError, InputError

runner = CliRunner()

VIDEO = {
    "aid": 170001, "bvid": "BV17x411w7KC", "tid": 201, "title": "为什么天是蓝的", "pic": "http://i0.hdslb.com/bfs/archive/a.jpg",
    "pubdate": 1700000000, "duration": 300, "owner": {"mid": 42, "name": "科普君", "face": ""},
    "stat": {"view": 1000, "like": 20, "coin": 3, "favorite": 4, "share": 1, "danmaku": 5, "reply": 6, "vt": 0},
    "rights": {"bp": 0}, "some_new_field": [1, 2, 3],
}


def test_parse_video_ignores_unknown_fields_and_defaults_missing_optional_ones():
    video = api.parse_video(VIDEO)
    assert (video.bvid, video.owner_mid, video.views, video.likes, video.replies) == ("BV17x411w7KC", 42, 1000, 20, 6)
    assert video.tid_v2 is None  # absent from this listing object
    sparse = api.parse_video({"bvid": "BV17x411w7KC", "owner": {"mid": "42"}, "stat": {"view": "7"}})
    assert (sparse.owner_mid, sparse.views, sparse.likes, sparse.title) == (42, 7, None, "")


@pytest.mark.parametrize(("change", "where"), [
    ({"stat": {**VIDEO["stat"], "view": "lots"}}, "stat.view"),
    ({"owner": {"name": "x"}}, "owner.mid"),
    ({"bvid": 12345}, "bvid"),
    ({"tid": True}, "tid"),
])
def test_parse_video_reports_wrong_types_with_their_path(change, where):
    with pytest.raises(api.ApiFormatError, match=where.replace(".", r"\.")):
        api.parse_video({**VIDEO, **change})


def test_listing_skips_bad_items_and_counts_them():
    envelope = {"code": 0, "data": {"archives": [VIDEO, {"bvid": "oops"}], "page": {"count": 2, "num": 1, "size": 50}}}
    page = api.parse_listing(envelope, "newlist")
    assert [v.bvid for v in page.videos] == ["BV17x411w7KC"]
    assert (page.bad_items, page.count, page.size) == (1, 2, 50)


def test_follower_from_relation_stat_or_card():
    assert api.parse_follower({"code": 0, "data": {"mid": 1, "follower": 1234}}, "stat") == 1234
    assert api.parse_follower({"code": 0, "data": {"card": {"mid": "1", "fans": 99}}}, "card") == 99
    with pytest.raises(api.ApiFormatError):
        api.parse_follower({"code": 0, "data": {"mid": 1}}, "stat")


def test_honours_and_keys():
    assert api.parse_honor_types({"data": {"honor_reply": {}}}, "view") == []
    assert api.parse_honor_types({"data": {"honor_reply": {"honor": [{"type": 4}, {"type": 3}]}}}, "view") == [4, 3]
    nav = {"code": -101, "data": {"wbi_img": {"img_url": "https://i0.hdslb.com/bfs/wbi/7cd084941338484aae1ad9425b84077c.png",
                                               "sub_url": "https://i0.hdslb.com/bfs/wbi/4932caff0ff746eab6f01bf08b70ac45.png"}}}
    assert api.parse_wbi_keys(nav) == "ea1db124af3c7062474693fa704f4ff8"


def test_rate_limiter_never_starts_two_requests_closer_than_one_over_rate():
    limiter, starts = RateLimiter(50.0), []
    for _ in range(25):
        limiter.wait()
        starts.append(time.monotonic())
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps) >= 1 / 50 * 0.999
    assert (starts[-1] - starts[0]) / 24 < 1 / 50 * 1.5  # and it does not crawl far below the rate


@pytest.mark.parametrize("rate", [1.25, 0.15, 1.0, 7.7])
def test_rate_limiter_keeps_every_10_second_window_at_or_below_the_rate(rate):
    # Spacing alone (1/rate plus jitter) lets 13 starts into 10 s at rate 1.25, i.e. 1.3 per second.
    clock = [1000.0]

    def sleep(seconds):
        clock[0] += seconds

    limiter, starts = RateLimiter(rate, sleep=sleep, clock=lambda: clock[0]), []
    for _ in range(300):
        limiter.wait()
        starts.append(clock[0])
        clock[0] += 0.001  # the request itself
    worst = max(sum(1 for u in starts if t <= u <= t + 10.0) for t in starts)
    assert worst <= max(1, rate * 10), worst
    assert (len(starts) - 1) / (starts[-1] - starts[0]) >= 0.9 * rate or rate * 10 < 10


def test_a_persistent_fault_is_reported_while_retrying(caplog):
    # An unreachable --api-base retries for minutes with the real back-off; the user must hear about it meanwhile.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = HttpClient(f"http://127.0.0.1:{port}", rate=0, backoff=Backoff(base_s=0.001, max_s=0.002, retries=4))
    with caplog.at_level(logging.DEBUG, logger="bilipop"), pytest.raises(CrawlError, match="after 4 retries"):
        client.get_json("/x/web-interface/nav", signed=False)
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) == 1 and "ConnectionError (3 times in a row)" in loud[0], loud


def test_backoff_grows_and_stays_capped():
    backoff = Backoff(base_s=1.0, max_s=8.0)
    assert 0.5 <= backoff.delay(1) <= 1.0
    assert 2.0 <= backoff.delay(3) <= 4.0
    assert backoff.delay(20) <= 8.0


def test_cookies_come_from_the_environment_only_and_stay_on_the_api_host():
    cookies = cookie_from_env({"BILIPOP_COOKIE": "SESSDATA=abc123; bili_jct=xyz ; broken"})
    assert cookies == {"SESSDATA": "abc123", "bili_jct": "xyz"}
    client = HttpClient("https://api.bilibili.com", cookies=cookies)
    assert {c.domain for c in client.session.cookies} == {".bilibili.com"}
    assert "python" not in client.session.headers["User-Agent"].lower()
    assert client.session.headers["Referer"] == "https://www.bilibili.com/"


def _image_bytes(mode: str, size: tuple[int, int], fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (10, 200, 30, 128) if mode == "RGBA" else (10, 200, 30)).save(buffer, fmt)
    return buffer.getvalue()


def test_covers_become_rgb_jpegs_no_wider_than_480():
    jpeg, size = covers.to_jpeg(_image_bytes("RGBA", (1280, 720), "PNG"))
    with Image.open(io.BytesIO(jpeg)) as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (480, 270)) and size == (480, 270)
    small = _image_bytes("RGB", (480, 270), "JPEG")
    assert covers.to_jpeg(small) == (small, (480, 270))  # kept byte for byte


def test_truncated_or_garbage_covers_are_refused():
    data = _image_bytes("RGB", (480, 270), "JPEG")
    for bad in (data[: len(data) // 3], b"\x00garbage" * 200, b""):
        with pytest.raises(covers.BadCover):
            covers.to_jpeg(bad)


def test_cover_url_gets_the_size_suffix():
    assert covers.sized_url("http://i0.hdslb.com/bfs/archive/ab.png") == "http://i0.hdslb.com/bfs/archive/ab.png@480w_270h_1c.jpg"
    assert covers.sized_url("//i1.hdslb.com/bfs/archive/ab.jpg@100w.webp").startswith("https://i1.hdslb.com/bfs/archive/ab.jpg@480w")


def test_cover_writes_leave_no_temp_files_and_leftovers_are_removed(tmp_path):
    covers.write_cover(tmp_path, "BV17x411w7KC", b"jpeg bytes")
    assert [p.name for p in tmp_path.iterdir()] == ["BV17x411w7KC.jpg"]
    (tmp_path / ".BV17x411w7KD.abc123.tmp").write_bytes(b"half a cov")
    assert covers.remove_temp_files(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["BV17x411w7KC.jpg"]


def test_store_page_and_cursor_commit_together_and_export(tmp_path):
    store = Store(tmp_path / "bilipop.db")
    video = api.parse_video(VIDEO)
    assert store.save_listing_page([video, video], "list:201", 2, False, now=1) == 1
    assert store.save_listing_page([video], "list:201", 3, True, now=2) == 0  # a page read again adds nothing
    assert store.cursor("list:201") == (3, True)
    store.save_followers(42, 10_000, now=3)
    store.save_sightings([(42, "weekly", "7", video.bvid)], now=3, cursor="weekly:7")
    store.close()
    assert sqlite3.connect(tmp_path / "bilipop.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    table = read_store_table(tmp_path / "bilipop.db")
    row = table.iloc[0]
    assert len(table) == 1 and row["followers"] == 10_000 and bool(row["on_hot_list"])
    assert row["hot_sources"] == "weekly" and row["cover_path"] == "" and row["owner_name"] == "科普君"


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


@pytest.mark.parametrize(("args", "message"), [
    (["--section", "music"], "only section is: knowledge"),
    (["--tids", "201,999"], "999 is not a knowledge sub-partition"),
    (["--tids", "science"], "--tids takes partition ids"),
    (["--max-videos", "0"], "--max-videos must be at least 1"),
    (["--rate", "-1"], "--rate must be"),
    (["--rate", "0"], "only for a local server"),
    (["--api-base", "ftp://example.com"], "--api-base must be an http"),
])
def test_bad_crawl_options_exit_1_before_anything_is_written(tmp_path, args, message):
    data = tmp_path / "data"
    result = runner.invoke(app, ["crawl", "--data", str(data), *args])
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert not data.exists()


def test_cli_flags_reach_crawl_under_their_own_names(tmp_path, monkeypatch):
    import bilipop.crawl.crawler as crawler

    seen = {}

    def fake_crawl(**kwargs):
        seen.update(kwargs)
        return crawler.CrawlSummary(tmp_path / "bilipop.db", 3, 3, 0, 2, 2, 1, 3, 0, 0, 9, 0, 0, 0, 0.5)

    monkeypatch.setattr(crawler, "crawl", fake_crawl)
    result = runner.invoke(app, ["crawl", "--data", str(tmp_path), "--max-videos", "3", "--tids", "201,124",
                                 "--rate", "0.5", "--api-base", "http://127.0.0.1:1", "--check-honors", "--refresh"])
    assert result.exit_code == 0, result.output
    assert {k: v for k, v in seen.items() if k != "progress"} == {
        "data": tmp_path, "section": "knowledge", "max_videos": 3, "tids": "201,124", "rate": 0.5,
        "api_base": "http://127.0.0.1:1", "ignore_robots": False, "check_honors": True, "refresh": True}
    assert "videos in the dataset" in result.output
