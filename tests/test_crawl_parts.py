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
from bilipop.crawl.crawler import crawl_plan
from bilipop.crawl.failures import Backoff
from bilipop.crawl.http import HttpClient, cookie_from_env
from bilipop.crawl.ratelimit import RateLimiter
from bilipop.crawl.schema import SCHEMA_VERSION
from bilipop.crawl.store import Store
from bilipop.data.io import read_table
from bilipop.errors import CrawlError, InputError

runner = CliRunner()

VIDEO = {
    "aid": 170001, "bvid": "BV17x411w7KC", "tid": 201, "tidv2": 2094, "tnamev2": "科学科普", "pid_v2": 1010,
    "title": "为什么天是蓝的", "pic": "http://i0.hdslb.com/bfs/archive/a.jpg",
    "pubdate": 1700000000, "duration": 300, "owner": {"mid": 42, "name": "科普君", "face": ""},
    "stat": {"view": 1000, "like": 20, "coin": 3, "favorite": 4, "share": 1, "danmaku": 5, "reply": 6, "vt": 0},
    "rights": {"bp": 0}, "some_new_field": [1, 2, 3],
}


def test_parse_video_ignores_unknown_fields_and_defaults_missing_optional_ones():
    video = api.parse_video(VIDEO)
    assert (video.bvid, video.owner_mid, video.views, video.likes, video.replies) == ("BV17x411w7KC", 42, 1000, 20, 6)
    assert (video.tid, video.tid_v2, video.pid_v2, video.knowledge) == (201, 2094, 1010, True)  # list-item names
    single = api.parse_video({**{k: v for k, v in VIDEO.items() if k not in ("tidv2", "pid_v2")}, "tid_v2": 2088,
                              "tid": 21, "tname": "", "tname_v2": ""})
    assert (single.tid, single.tid_v2, single.pid_v2, single.knowledge) == (21, 2088, 1010, True)  # old tid 21
    other = api.parse_video({**VIDEO, "tid": 122, "tidv2": 2112, "pid_v2": 1012})
    assert not other.knowledge  # an old Knowledge tid does not decide
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


def test_hot_list_items_with_bad_ids_are_skipped_and_counted():
    items = [VIDEO, {**VIDEO, "bvid": "BV/../../../"}, {**VIDEO, "bvid": "BV../../../x"}, {"bvid": "BV17x411w7KD"}]
    videos, bad_ids, bad = api.parse_video_list({"code": 0, "data": {"list": items}}, "popular")
    assert [v.bvid for v in videos] == ["BV17x411w7KC"] and (bad_ids, bad) == (2, 1)


@pytest.mark.parametrize("bvid", ["BV/../../../", "BV../../../x", "BV17x411w7K", "BV17x411w7KCC", "BV0Ox411w7KC",
                                  "BV27x411w7KC", "bv17x411w7KC", "BV17x411w7K/"])
def test_a_bvid_must_be_bv1_and_nine_base58_characters(bvid):
    with pytest.raises(api.BadId):
        api.check_bvid(bvid, "item")


def test_uploads_detail_and_voucher_replies_parse():
    uploads = {"code": 0, "data": {"list": {"vlist": [
        {"aid": 1, "bvid": "BV17x411w7KC", "mid": 42, "created": 1700000000, "typeid": 21, "play": 5},
        {"aid": 2, "bvid": "BV/../../../", "mid": 42}]}, "page": {"pn": 1, "ps": 30, "count": 2}}}
    page = api.parse_uploads(uploads, "arc/search")
    assert [(u.bvid, u.mid, u.typeid) for u in page.uploads] == [("BV17x411w7KC", 42, 21)]
    assert (page.bad_items, page.count) == (1, 2)
    view = {**{k: v for k, v in VIDEO.items() if k not in ("tidv2", "pid_v2")}, "tid_v2": 2094,
            "honor_reply": {"honor": [{"type": 4}, {"type": 3}]}}
    detail = api.parse_detail({"code": 0, "data": {"View": view, "Card": {"card": {"mid": "42", "fans": 99}},
                                                   "Related": [{**VIDEO, "bvid": "BV17x411w7KD"}, {"bvid": 1}]}},
                              "view/detail")
    assert (detail.video.pid_v2, detail.honors, detail.followers) == (1010, [4, 3], 99)
    assert [r.bvid for r in detail.related] == ["BV17x411w7KD"] and detail.bad_related == 1
    assert api.is_voucher_only({"code": 0, "data": {"v_voucher": "voucher_x"}})
    assert not api.is_voucher_only({"code": 0, "data": {"v_voucher": "x", "list": []}})


def test_follower_from_relation_stat_or_card():
    assert api.parse_follower({"code": 0, "data": {"mid": 1, "follower": 1234}}, "stat") == 1234
    assert api.parse_follower({"code": 0, "data": {"card": {"mid": "1", "fans": 99}}}, "card") == 99
    with pytest.raises(api.ApiFormatError):
        api.parse_follower({"code": 0, "data": {"mid": 1}}, "stat")


def test_honours_and_keys():
    assert api.parse_honor_types({"honor_reply": {}}, "view") == []
    assert api.parse_honor_types({"honor_reply": {"honor": [{"type": 4}, {"type": 3}]}}, "view") == [4, 3]
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


def test_an_unreachable_host_fails_within_about_30_seconds_with_one_line(caplog):
    # Before: ~8 minutes of retries. A fake clock counts the waits the real back-off would make.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clock = [0.0]

    def sleep(seconds):
        clock[0] += seconds

    client = HttpClient(f"http://127.0.0.1:{port}", rate=0, sleep=sleep, clock=lambda: clock[0])
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG, logger="bilipop"), pytest.raises(CrawlError) as info:
        client.get_json("/x/web-interface/nav", signed=False)
    assert Backoff().unreachable_s <= 30 and 29 <= clock[0] <= 31, clock[0]
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert "\n" not in message and "cannot reach" in message and "connection refused" in message
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) == 1, loud  # said once while trying, not once per retry


def test_backoff_grows_and_stays_capped():
    backoff = Backoff(base_s=1.0, max_s=8.0)
    assert 0.5 <= backoff.delay(1) <= 1.0
    assert 2.0 <= backoff.delay(3) <= 4.0
    assert backoff.delay(20) <= 8.0


def test_cookies_come_from_the_environment_only():
    cookies = cookie_from_env({"BILIPOP_COOKIE": "SESSDATA=abc123; bili_jct=xyz ; broken"})
    assert cookies == {"SESSDATA": "abc123", "bili_jct": "xyz"}
    client = HttpClient("https://api.bilibili.com", cookies=cookies)
    assert list(client.session.cookies) == []  # no jar: a Cookie header goes to the API host only
    assert "python" not in client.session.headers["User-Agent"].lower()
    assert client.session.headers["Referer"] == "https://www.bilibili.com/"
    assert client.session.headers["Origin"] == "https://www.bilibili.com"


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


def test_a_store_of_an_older_schema_is_refused(tmp_path):
    # No release wrote an older schema, so there is nothing to migrate: it is refused like a newer one.
    Store(tmp_path / "bilipop.db").close()
    with sqlite3.connect(tmp_path / "bilipop.db") as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION - 1),))
    with pytest.raises(InputError, match="development version of bilipop"):
        Store(tmp_path / "bilipop.db")
    with pytest.raises(InputError, match="development version of bilipop"):
        read_table(tmp_path / "bilipop.db")


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
    (["--tids", "2094,999"], "999 is not a knowledge sub-partition"),
    (["--tids", "201"], "201 is an old (before 2025) partition id; Bilibili renumbered its partitions in 2025"),
    (["--tids", "36"], "now main partition 1010 with sub-partitions 2084 应试教育"),
    (["--tids", "science"], "--tids takes v2 sub-partition ids"),
    (["--max-videos", "0"], "--max-videos must be at least 1"),
    (["--rate", "-1"], "--rate must be"),
    (["--rate", "0"], "only for a local server"),
    (["--api-base", "ftp://example.com"], "--api-base must be an http"),
])
def test_bad_crawl_options_exit_1_before_anything_is_written(tmp_path, args, message):
    data = tmp_path / "data"
    result = runner.invoke(app, ["crawl", "--data", str(data), *args])
    assert result.exit_code == 1, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not data.exists()


def test_cli_flags_reach_crawl_under_their_own_names(tmp_path, monkeypatch):
    import bilipop.crawl.crawler as crawler

    seen = {}

    def fake_crawl(**kwargs):
        seen.update(kwargs)
        return crawler.CrawlSummary(tmp_path / "bilipop.db", 3, 3, 0, 5, 2, 0, 2, 2, 2, 1, 3, 0, 9, 9, 0, 0, 0, 0.5)

    monkeypatch.setattr(crawler, "crawl", fake_crawl)
    result = runner.invoke(app, ["crawl", "--data", str(tmp_path), "--max-videos", "3", "--tids", "2094,2090",
                                 "--rate", "0.5", "--api-base", "http://127.0.0.1:1", "--widen", "--refresh"])
    assert result.exit_code == 0, result.output
    assert {k: v for k, v in seen.items() if k not in ("progress", "on_plan")} == {
        "data": tmp_path, "section": "knowledge", "max_videos": 3, "tids": "2094,2090", "rate": 0.5,
        "api_base": "http://127.0.0.1:1", "ignore_robots": False, "widen": True, "refresh": True}
    assert "videos in the dataset" in result.output
    for row in ("videos examined", "kept as Knowledge", "skipped as other sections"):
        assert row in result.output


def test_the_plan_estimates_the_studys_size_at_the_chosen_rate(tmp_path):
    plan = crawl_plan(tmp_path, rate=1.0)
    assert "27,000 Knowledge videos" in plan.lines[-1] and "at --rate 1" in plan.lines[-1]
    assert plan.seconds is not None and 8 * 3600 < plan.seconds < 30 * 3600  # an overnight job
    assert crawl_plan(tmp_path, rate=2.0).seconds == pytest.approx(plan.seconds / 2)
    assert "with --widen also uploaders found in Related" in crawl_plan(tmp_path, rate=1.0, widen=True).lines[1]
    assert "with --widen" not in plan.lines[1]
