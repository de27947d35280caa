"""End-to-end crawls against the 2026 stand-in (bilipop.sim): ground truth, faults and block signals, robots, rate,
refresh, widening, cookies, and a crawler built on the old listings."""

from __future__ import annotations

import math
import shutil
import sqlite3
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from bilipop.cli import app
from bilipop.crawl.api import listed_nothing
from bilipop.crawl.crawler import crawl
from bilipop.crawl.failures import Backoff
from bilipop.crawl.http import HttpClient
from bilipop.data.io import read_table
from bilipop.errors import CrawlError
from bilipop.sim import FaultConfig, SimServer

runner = CliRunner()
FAST = Backoff(base_s=0.005, block_base_s=0.005, max_s=0.05, pause_s=0.05, blocks_before_pause=5, max_pauses=3,
               timeout_s=5, empty_wait_s=0.01)
FIELDS = ("aid", "title", "tid", "tid_v2", "pid_v2", "owner_mid", "views", "likes", "coins", "favorites", "shares",
          "danmaku", "replies", "pubdate", "duration")


def check_against_truth(table, truth, folder, expected=None) -> None:
    """The store holds exactly the videos a complete crawl must hold, each equal to the server's ground truth."""
    expected = truth["must_hold"] if expected is None else expected
    assert sorted(table["bvid"]) == sorted(expected)
    hot = truth["hot_mids_lists"] | truth["hot_mids_honors"]
    for row in table.to_dict("records"):
        video = truth["videos"][row["bvid"]]
        assert video["knowledge"] and row["pid_v2"] == 1010
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
    """A world with invisible videos, crawled once."""
    folder = tmp_path_factory.mktemp("crawl") / "data"
    with SimServer(videos=120, seed=5, faults=FaultConfig(invisible=0.1)) as sim:
        summary = crawl(folder, api_base=sim.base_url, rate=0)
        yield {"truth": sim.truth(), "summary": summary, "table": read_table(folder / "bilipop.db"),
               "folder": folder, "requests": list(sim.requests), "headers": list(sim.request_headers)}


def test_a_crawl_holds_every_knowledge_video_of_every_hot_listed_uploader_and_nothing_else(crawled):
    truth, summary, table = crawled["truth"], crawled["summary"], crawled["table"]
    check_against_truth(table, truth, crawled["folder"])
    videos = truth["videos"]
    # The world has what makes this hard: other sections' uploads of hot uploaders, Knowledge videos of uploaders
    # never on a hot list, and Knowledge videos whose old tid (21 日常) is outside 36.
    hot = truth["hot_mids_lists"]
    assert any(not v["knowledge"] and v["owner_mid"] in hot for v in videos.values())
    assert truth["knowledge"] - truth["must_hold"]
    assert any(videos[b]["tid"] == 21 for b in table["bvid"])
    assert not any(v["knowledge"] for v in videos.values() if v["tid"] == 122 and not v["knowledge"])
    assert summary.covers_failed == 0 and summary.new_videos == len(truth["must_hold"])
    uploads = {b for b, v in videos.items() if v["owner_mid"] in hot}
    invisible = {b for b in uploads if not videos[b]["visible"]}
    assert invisible and summary.skipped == len(invisible)
    assert summary.examined == len(uploads)
    assert summary.other_sections == len({b for b in uploads if not videos[b]["knowledge"]} - invisible)


def test_each_candidate_is_fetched_at_most_once_and_arc_search_looks_like_a_browser(crawled):
    paths = [(path, query) for _, _, path, query in crawled["requests"]]
    details = [q["bvid"] for p, q in paths if p.endswith("view/detail")]
    assert len(details) == len(set(details)) and len(details) < crawled["summary"].examined
    assert not any(p in ("/x/web-interface/newlist", "/x/web-interface/dynamic/region") for p, _ in paths)
    searches = [(q, h) for (_, _, p, q), h in zip(crawled["requests"], crawled["headers"], strict=True)
                if p == "/x/space/wbi/arc/search"]
    assert searches
    for query, headers in searches:
        assert query["dm_img_list"] == "[]" and query["web_location"] == "333.1387" and "w_rid" in query
        assert headers["referer"] == f"https://space.bilibili.com/{query['mid']}"
    precious = [q for p, q in paths if p.endswith("precious")]
    assert precious == [{**precious[0], "page_size": "100", "page": "1"}]
    ranking = [q for p, q in paths if p.endswith("ranking/v2")]
    assert ranking[0]["rid"] == "1010" and "tid" not in ranking[0]
    # finger/spi's anonymous buvid3 is sent to the API afterwards
    later = crawled["headers"][[p for p, _ in paths].index("/x/frontend/finger/spi") + 1:]
    assert any("buvid3=" in h.get("cookie", "") for h in later)


def test_filter_score_label_read_the_store_end_to_end(crawled, tmp_path):
    data = tmp_path / "d"
    shutil.copytree(crawled["folder"], data)
    for args in (["filter", "--data", str(data)], ["score", "--data", str(data)], ["label", "--data", str(data)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    labeled = __import__("pandas").read_parquet(data / "labeled.parquet")
    assert len(labeled) > 0 and labeled["on_hot_list"].all() and (labeled["followers"] < 500_000).all()
    assert (labeled["pid_v2"] == 1010).all()
    assert all((data / p).is_file() for p in labeled["cover_path"])


def test_filter_of_a_store_written_elsewhere_keeps_its_covers_findable(crawled, tmp_path, monkeypatch):
    # `bilipop filter -i d/bilipop.db` writes ./data/filtered.parquet: "covers/<bvid>.jpg" would then be read
    # against ./data, where no cover is, and training would fail on every one of them.
    shutil.copytree(crawled["folder"], tmp_path / "d")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["filter", "-i", "d/bilipop.db", "--no-require-hot"])
    assert result.exit_code == 0, result.output
    paths = __import__("pandas").read_parquet(tmp_path / "data" / "filtered.parquet")["cover_path"]
    assert len(paths) > 0 and all(Path(p).is_absolute() and Path(p).is_file() for p in paths)
    result = runner.invoke(app, ["filter", "--data", "d", "--no-require-hot"])
    assert result.exit_code == 0, result.output
    paths = __import__("pandas").read_parquet(tmp_path / "d" / "filtered.parquet")["cover_path"]
    assert all(p.startswith("covers/") and (tmp_path / "d" / p).is_file() for p in paths)


@pytest.mark.slow  # 18 s; the smaller fault tests here run by default
def test_ten_percent_faults_with_the_2026_block_signals_lose_nothing(tmp_path):
    faults = FaultConfig.all(p=0.1, rate_limit_412=40.0)
    faults.retry_after_s = 0
    with SimServer(videos=30, seed=11, faults=faults) as sim:
        # A little above the server's 412 limit, so that hard blocks happen too.
        backoff = Backoff(base_s=0.005, block_base_s=0.1, max_s=0.5, pause_s=0.5, timeout_s=5)
        summary = crawl(tmp_path, api_base=sim.base_url, rate=60, cover_rate=0, backoff=backoff)
        truth = sim.truth()
        answered = [(p, q) for _, _, p, q in sim.requests]
    assert summary.blocks > 0 and summary.retries > summary.blocks
    check_against_truth(read_table(tmp_path / "bilipop.db"), truth, tmp_path)
    assert [p.name for p in (tmp_path / "covers").iterdir() if p.name.startswith(".")] == []
    assert len(answered) > 100


@pytest.mark.parametrize(("faults", "said"), [
    ({"voucher": 1.0}, "code 0 with only data.v_voucher"),
    ({"risk_control": 1.0}, "code -352"),
    ({"unauthorized": 1.0}, "code -401"),
    ({"too_many": 1.0, "retry_after_s": 0}, "HTTP 429"),
    ({"rate_limit_412": 0.001}, "HTTP 412"),
])
def test_persistent_blocks_back_off_then_stop_with_one_line_saying_what_to_do(tmp_path, faults, said):
    with SimServer(videos=20, seed=2, faults=FaultConfig(**faults)) as sim:
        with pytest.raises(CrawlError) as info:
            crawl(tmp_path, api_base=sim.base_url, rate=0, backoff=FAST)
        api_requests = [r[2] for r in sim.requests if r[2].startswith("/x/")]
    message = str(info.value)
    assert "\n" not in message and said in message
    assert "BILIPOP_COOKIE" in message and "lower --rate" in message and "run the same command again" in message
    # blocks_before_pause blocks per long pause, max_pauses pauses, then one more round before giving up
    assert len(api_requests) >= FAST.blocks_before_pause * (FAST.max_pauses + 1)


def test_hot_lists_or_an_uploader_listing_nothing_is_a_failure_not_a_finished_crawl(tmp_path, monkeypatch):
    import bilipop.crawl.crawler as crawler

    real = crawler.crawl
    monkeypatch.setattr(crawler, "crawl", lambda **kwargs: real(**kwargs, backoff=FAST))

    def empty(path, query, body):
        if path.endswith("/popular") or path.endswith("arc/search"):
            if isinstance(body.get("data"), dict):
                data = dict(body["data"])
                data["list"] = {"vlist": []} if path.endswith("arc/search") else []
                return {**body, "data": data}
        return body

    for what, tamper in (("the popular list listed nothing", empty),):
        with SimServer(videos=20, seed=2) as sim:
            sim.tamper = tamper
            result = runner.invoke(app, ["crawl", "--data", str(tmp_path / "a"), "--api-base", sim.base_url,
                                         "--rate", "0"])
        assert result.exit_code == 1
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and what in errors[0] and "BILIPOP_COOKIE" in errors[0], result.output
    with SimServer(videos=20, seed=2) as sim:
        sim.tamper = lambda path, query, body: empty(path, query, body) if path.endswith("arc/search") else body
        with pytest.raises(CrawlError, match="the upload list of uploader .* listed nothing"):
            crawl(tmp_path / "b", api_base=sim.base_url, rate=0, backoff=FAST)


def test_a_crawler_built_on_the_old_partition_listings_now_fails_loudly():
    # The old crawler paged newlist?rid=<old tid> and fell back on dynamic/region. On the 2026 site both answer
    # politely with nothing, so it "finished" with zero videos; treated as what it is, it stops.
    with SimServer(videos=30, seed=3) as sim:
        client = HttpClient(sim.base_url, rate=0, backoff=FAST)
        reply = client.get_json("/x/web-interface/newlist", {"rid": 201, "pn": 1, "ps": 50, "type": 0})
        assert reply["code"] == 0 and reply["data"]["archives"] == [] and reply["data"]["page"]["count"] == 0
        assert client.get_json("/x/web-interface/dynamic/region", {"rid": 201, "pn": 1})["code"] == -404
        with pytest.raises(CrawlError, match="partition 201 listed nothing"):
            client.get_json("/x/web-interface/newlist", {"rid": 201, "pn": 1, "ps": 50, "type": 0},
                            expect=listed_nothing("partition 201"))
        client.close()


def test_rotated_wbi_keys_are_fetched_again_and_view_detail_403_refetches_them_once(tmp_path):
    with SimServer(videos=30, seed=4) as sim:
        rotated = []

        def rotate_at_first(handler, path, query):
            # New keys just before the first upload list (answered: code 0 with only v_voucher) and the first
            # view/detail (answered: -403, a stale key on a signed call).
            for kind in ("arc/search", "view/detail"):
                if path.endswith(kind) and kind not in rotated:
                    rotated.append(kind)
                    sim.rotate_keys()
            return False

        sim.intercept = rotate_at_first
        summary = crawl(tmp_path, api_base=sim.base_url, rate=0, backoff=FAST)
        navs = [r for r in sim.requests if r[2] == "/x/web-interface/nav"]
        truth = sim.truth()
    assert rotated == ["arc/search", "view/detail"] and len(navs) == 3
    assert summary.blocks == 0  # the voucher reply and the -403 each fetch new keys; neither is a block
    assert summary.key_refreshes == 1  # the voucher's (the -403's refetch is view/detail's own)
    check_against_truth(read_table(tmp_path / "bilipop.db"), truth, tmp_path)


def test_a_video_that_keeps_answering_403_is_skipped_after_one_key_refetch(tmp_path):
    with SimServer(videos=30, seed=4) as sim:  # which Knowledge videos does a crawl ask view/detail for?
        crawl(tmp_path / "probe", api_base=sim.base_url, rate=0, backoff=FAST)
        detailed = {r[3].get("bvid") for r in sim.requests if r[2].endswith("view/detail")}
        victim = sorted(detailed & sim.truth()["must_hold"])[0]
    with SimServer(videos=30, seed=4) as sim:
        sim.tamper = lambda path, query, body: ({"code": -403, "message": "访问权限不足", "ttl": 1, "data": None}
                                                if query.get("bvid") == victim else body)
        summary = crawl(tmp_path / "crawl", api_base=sim.base_url, rate=0, backoff=FAST)
        asked = [r for r in sim.requests if r[3].get("bvid") == victim]
        navs = [r for r in sim.requests if r[2] == "/x/web-interface/nav"]
    table = read_table(tmp_path / "crawl" / "bilipop.db")
    assert victim not in set(table["bvid"]) and summary.skipped >= 1
    assert len(asked) <= 2 and len(navs) <= 2


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
    assert len(read_table(tmp_path / "bilipop.db")) == 5


def test_request_rate_never_exceeds_rate_in_any_window(tmp_path):
    rate = 8.0
    with SimServer(videos=30, seed=6) as sim:
        result = runner.invoke(app, ["crawl", "--data", str(tmp_path), "--api-base", sim.base_url, "--rate",
                                     str(rate), "--max-videos", "6"])
        times = [t for t, _, path, _ in sim.requests if not path.startswith("/bfs/")]
    assert result.exit_code == 0, result.output
    assert "plan: 1) the hot lists" in result.output and "estimate for 6 Knowledge videos" in result.output
    assert "req/s" in result.output  # progress, as plain lines when stderr is not a terminal
    assert len(times) >= 15
    for window in (1.0, 2.0):
        worst = max(sum(1 for u in times if t <= u < t + window) for t in times)
        assert worst <= rate * window, (window, worst)


def test_max_videos_and_tids_then_resume_without_duplicates(tmp_path):
    with SimServer(videos=200, seed=8) as sim:
        crawl(tmp_path, api_base=sim.base_url, rate=0, max_videos=20)
        first = read_table(tmp_path / "bilipop.db")
        crawl(tmp_path, api_base=sim.base_url, rate=0, max_videos=45)
        second = read_table(tmp_path / "bilipop.db")
        chosen = tmp_path / "chosen"
        crawl(chosen, api_base=sim.base_url, rate=0, tids="2094,2090")
        only = read_table(chosen / "bilipop.db")
        truth = sim.truth()
    assert len(first) == 20 and len(second) == 45 and second["bvid"].is_unique
    assert set(first["bvid"]) <= set(second["bvid"]) <= truth["must_hold"]
    assert set(only["bvid"]) == {b for b in truth["must_hold"] if truth["videos"][b]["tid_v2"] in (2094, 2090)}


def test_widening_reaches_knowledge_uploaders_beyond_the_hot_lists(tmp_path):
    with SimServer(videos=60, seed=5) as sim:
        summary = crawl(tmp_path, api_base=sim.base_url, rate=0, widen=True)
        truth = sim.truth()
    table = read_table(tmp_path / "bilipop.db")
    stored = set(table["bvid"])
    assert truth["must_hold"] < stored <= truth["knowledge"]
    extra = set(table["owner_mid"]) - truth["hot_mids_lists"]
    assert extra and summary.uploaders_walked > len(truth["hot_mids_lists"])
    # an uploader reached this way counts as hot only by a hot-list honour on one of their videos
    flags = dict(zip(table["owner_mid"], table["on_hot_list"], strict=False))
    assert any(flags[m] for m in extra & truth["hot_mids_honors"]) or not extra & truth["hot_mids_honors"]
    assert not any(flags[m] for m in extra - truth["hot_mids_honors"])


def test_refresh_picks_up_new_counters(tmp_path):
    with SimServer(videos=40, seed=9) as sim:
        crawl(tmp_path, api_base=sim.base_url, rate=0)
        before = read_table(tmp_path / "bilipop.db").set_index("bvid")
        sim.bump_counters(1)
        crawl(tmp_path, api_base=sim.base_url, rate=0)  # without --refresh, stored counters stay as they were
        unchanged = read_table(tmp_path / "bilipop.db").set_index("bvid")
        result = runner.invoke(app, ["-q", "crawl", "--data", str(tmp_path), "--api-base", sim.base_url,
                                     "--rate", "0", "--refresh"])
        after = read_table(tmp_path / "bilipop.db").set_index("bvid")
        truth = sim.truth()
    assert result.exit_code == 0, result.output
    assert "req/s" not in result.output and "plan:" not in result.output  # -q: no plan, no progress
    assert (unchanged["views"] == before["views"]).all()
    assert all(after.loc[b, "views"] == truth["videos"][b]["views"] for b in after.index)
    assert all(after.loc[b, "likes"] == truth["videos"][b]["likes"] for b in after.index)
    assert (after["views"] > before["views"]).all() and (after["fetched_at"] >= before["fetched_at"]).all()


def test_cookies_reach_the_api_host_only_and_never_logs_errors_or_the_store(tmp_path, monkeypatch):
    secret = "SESSDATA=topsecret1234; bili_jct=alsosecret5678"
    monkeypatch.setenv("BILIPOP_COOKIE", secret)
    with SimServer(videos=20, seed=12) as sim:
        other_host = sim.base_url.replace("127.0.0.1", "localhost")

        def covers_elsewhere(path, query, body):  # covers served from another origin (the same server)
            text = sqlite3.__name__ and __import__("json").dumps(body, ensure_ascii=False)
            return __import__("json").loads(text.replace(f"{sim.base_url}/bfs/archive/",
                                                         f"{other_host}/bfs/archive/"))

        sim.tamper = covers_elsewhere
        ok = runner.invoke(app, ["--verbose", "crawl", "--data", str(tmp_path), "--api-base", sim.base_url,
                                 "--rate", "0", "--max-videos", "8"])
        sent = list(zip(sim.requests, sim.request_headers, strict=True))
    with SimServer(videos=20, seed=12, robots="disallow") as sim:
        refused = runner.invoke(app, ["--debug", "crawl", "--data", str(tmp_path / "x"), "--api-base", sim.base_url])
    assert ok.exit_code == 0 and refused.exit_code != 0, ok.output
    covers = [h for (_, _, p, _), h in sent if p.startswith("/bfs/archive/")]
    api_calls = [h for (_, _, p, _), h in sent if p.startswith("/x/")]
    assert covers and all(h["host"].startswith("localhost") and "cookie" not in h for h in covers)
    assert all("topsecret1234" in h.get("cookie", "") for h in api_calls)
    texts = [ok.output, refused.output, repr(refused.exception)]
    texts += [p.read_bytes().decode("latin-1") for p in tmp_path.iterdir() if p.name.startswith("bilipop.db")]
    assert not any(word in text for text in texts for word in ("topsecret1234", "alsosecret5678"))


def test_a_video_answering_an_unknown_code_waits_for_the_next_run_instead_of_looping(tmp_path):
    with SimServer(videos=30, seed=4) as sim:
        victim = []

        def odd(path, query, body):
            if path.endswith("view/detail"):
                victim[:] = victim or [query["bvid"]]
                if query["bvid"] == victim[0]:
                    return {"code": 88888, "message": "?", "ttl": 1, "data": None}
            return body

        sim.tamper = odd
        summary = crawl(tmp_path, api_base=sim.base_url, rate=0, backoff=FAST)
        asked = [r for r in sim.requests if r[3].get("bvid") == victim[0]]
        sim.tamper = None
        crawl(tmp_path, api_base=sim.base_url, rate=0, backoff=FAST)  # the next run examines it again
        truth = sim.truth()
    assert len(asked) == 1 and any(victim[0] in w for w in summary.warnings)
    check_against_truth(read_table(tmp_path / "bilipop.db"), truth, tmp_path)
