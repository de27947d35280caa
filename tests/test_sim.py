"""The local Bilibili-compatible server: shapes, signing, paging, covers, robots, faults, blocks, ground truth."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
import time
from collections import Counter
from urllib.robotparser import RobotFileParser

import pytest
import requests
from PIL import Image

from bilipop.crawl import wbi
from bilipop.crawl.api import KNOWLEDGE_V2, OLD_KNOWLEDGE_TIDS
from bilipop.crawl.wbi import anti_bot_fields
from bilipop.errors import InputError
from bilipop.sim import FaultConfig, SimServer, World
from bilipop.sim.__main__ import main as sim_main
from bilipop.sim.partitions import V2_NAMES

VIDEOS = 200


class Client:
    """The minimum a crawler does: fetch the WBI keys from nav, then sign every request."""

    def __init__(self, sim: SimServer) -> None:
        self.base = sim.base_url
        self.http = requests.Session()
        self.refresh_keys()

    def refresh_keys(self) -> None:
        img = self.http.get(self.base + "/x/web-interface/nav", timeout=5).json()["data"]["wbi_img"]
        self.mixin = wbi.mixin_key(wbi.key_from_url(img["img_url"]), wbi.key_from_url(img["sub_url"]))

    def get(self, path: str, headers: dict | None = None, **params: object) -> requests.Response:
        return self.http.get(self.base + path, params=wbi.sign(params, self.mixin), timeout=5, headers=headers)

    def api(self, path: str, headers: dict | None = None, **params: object) -> dict:
        return self.get(path, headers=headers, **params).json()


@pytest.fixture(scope="module")
def sim():
    with SimServer(videos=VIDEOS, seed=7) as server:
        yield server


@pytest.fixture(scope="module")
def client(sim):
    return Client(sim)


def uploads_of(client: Client, mid: int, ps: int) -> list[dict]:
    items, pn = [], 1
    while True:
        data = client.api("/x/space/wbi/arc/search", headers={"Referer": f"https://space.bilibili.com/{mid}"},
                          mid=mid, pn=pn, ps=ps, **anti_bot_fields(random.Random(pn)))["data"]
        items += data["list"]["vlist"]
        if not data["list"]["vlist"] or pn * ps >= data["page"]["count"]:
            return items
        pn += 1


# -- shapes ----------------------------------------------------------------------------------------------------
def test_nav_answers_logged_out_with_the_keys(sim):
    reply = requests.get(sim.base_url + "/x/web-interface/nav", timeout=5).json()
    assert reply["code"] == -101
    keys = [wbi.key_from_url(reply["data"]["wbi_img"][k]) for k in ("img_url", "sub_url")]
    assert all(len(k) == 32 and int(k, 16) >= 0 for k in keys)
    spi = requests.get(sim.base_url + "/x/frontend/finger/spi", timeout=5).json()
    assert spi["code"] == 0 and spi["data"]["b_3"].endswith("infoc") and spi["data"]["b_4"]


def test_v2_names_match_the_recorded_table():
    # docs/reference.md, "Partitions", as recorded.
    recorded = ("2084 应试教育, 2085 非应试语言学习, 2086 大学专业知识, 2087 商业财经, 2088 社会观察, 2089 时政解读, "
                "2090 人文历史, 2091 设计艺术, 2092 心理杂谈, 2093 职场发展, 2094 科学科普, 2095 其他知识杂谈")
    table = dict(item.split(" ") for item in recorded.split(", "))
    assert {str(k): v for k, v in KNOWLEDGE_V2.items()} == table
    assert all(V2_NAMES[int(k)] == v for k, v in table.items()) and V2_NAMES[2094] == "科学科普"


def test_list_items_and_single_video_objects_carry_the_recorded_field_names(sim, client):
    reply = client.api("/x/web-interface/popular", pn=1, ps=5)
    assert reply["code"] == 0 and reply["message"] == "0" and reply["ttl"] == 1
    item = reply["data"]["list"][0]
    for key in ("aid", "bvid", "tid", "tname", "tidv2", "tnamev2", "pid_v2", "pid_name_v2", "pic", "title",
                "pubdate", "duration", "stat", "owner"):
        assert key in item
    assert "tid_v2" not in item
    assert set(item["owner"]) == {"mid", "name", "face"}
    assert {"view", "like", "coin", "favorite", "share", "danmaku", "reply", "his_rank"} <= set(item["stat"])
    assert item["bvid"].startswith("BV1") and len(item["bvid"]) == 12
    assert not set(item["bvid"][2:]) & set("0OIl")
    assert item["pic"].startswith(sim.base_url + "/bfs/archive/")
    view = client.api("/x/web-interface/view", bvid=item["bvid"])["data"]
    assert "tid_v2" in view and "tname_v2" in view and "pid_v2" not in view and "tidv2" not in view
    assert view["tid_v2"] == item["tidv2"]
    views = [client.api("/x/web-interface/view", bvid=b)["data"] for b in list(sim.world.by_bvid)[::4]
             if sim.world.by_bvid[b].visible]
    assert any(v["tname"] == "" for v in views) and any(v["tname_v2"] == "" for v in views)


def test_view_detail_answers_view_card_and_related_in_one_reply(sim, client):
    truth = sim.truth()
    bvid, row = next((b, r) for b, r in truth["videos"].items() if r["visible"] and r["knowledge"])
    reply = client.api("/x/web-interface/wbi/view/detail", bvid=bvid, need_elec=0)
    data = reply["data"]
    assert reply["code"] == 0 and {"View", "Card", "Related"} <= set(data)
    assert (data["View"]["stat"]["view"], data["View"]["tid_v2"]) == (row["views"], row["tid_v2"])
    followers = truth["uploaders"][row["owner_mid"]]["followers"]
    assert data["Card"]["follower"] == data["Card"]["card"]["fans"] == followers
    assert data["Card"]["card"]["mid"] == str(row["owner_mid"])
    related = data["Related"]
    assert 0 < len(related) <= 40 and all("pid_v2" in r and "tidv2" in r and "view" in r["stat"] for r in related)
    assert any(r["owner"]["mid"] == row["owner_mid"] for r in related)  # a few of the same uploader's videos
    same = client.api("/x/web-interface/archive/related", bvid=bvid)["data"]
    assert [r["bvid"] for r in same] == [r["bvid"] for r in related]
    assert client.api("/x/web-interface/view/detail", bvid=bvid)["data"]["View"]["bvid"] == bvid


def test_view_relation_and_card_agree_with_truth(sim, client):
    truth = sim.truth()
    bvid, row = next((b, r) for b, r in truth["videos"].items() if r["visible"])
    data = client.api("/x/web-interface/view", bvid=bvid)["data"]
    assert (data["stat"]["view"], data["stat"]["like"], data["owner"]["mid"]) == (
        row["views"], row["likes"], row["owner_mid"])
    assert client.api("/x/web-interface/view", aid=row["aid"])["data"]["bvid"] == bvid
    assert "honor_reply" in data and data["pages"][0]["cid"] == data["cid"]
    followers = truth["uploaders"][row["owner_mid"]]["followers"]
    assert client.api("/x/relation/stat", vmid=row["owner_mid"])["data"]["follower"] == followers


def test_unknown_and_bad_requests_get_the_documented_codes(client):
    assert client.api("/x/web-interface/view", bvid="BV1xx411c7mD")["code"] == -404
    assert client.api("/x/web-interface/view", bvid="not-a-bvid")["code"] == -400
    assert client.api("/x/web-interface/popular/series/one", number=99999)["code"] == -404
    assert client.api("/x/relation/stat", vmid=1)["code"] == -404


def test_the_old_partition_listings_are_dead_exactly_as_recorded(client):
    for rid in (36, 201, 124):
        reply = client.api("/x/web-interface/newlist", rid=rid, pn=1, ps=20, type=0)
        assert (reply["code"], reply["message"]) == (0, "OK")
        assert reply["data"]["archives"] == [] and reply["data"]["page"]["count"] == 0
        reply = client.api("/x/web-interface/dynamic/region", rid=rid, pn=1, ps=20)
        assert (reply["code"], reply["message"], reply["data"]) == (-404, "啥都木有", None)


def test_an_uploaders_uploads_page_through_every_upload_exactly_once(sim, client):
    mid = max(sim.world.uploads, key=lambda m: len(sim.world.uploads[m]))
    items = uploads_of(client, mid, ps=3)
    assert [v["bvid"] for v in items] == [v.bvid for v in sim.world.uploads[mid]]
    assert len(items) == len({v["bvid"] for v in items}) and len(items) >= 4
    first = items[0]
    assert {"aid", "bvid", "title", "pic", "created", "length", "play", "video_review", "comment", "typeid",
            "mid"} <= set(first)
    assert not {"tidv2", "pid_v2", "tid_v2", "stat"} & set(first)  # no v2 ids, no full counters here
    created = [v["created"] for v in items]
    assert created == sorted(created, reverse=True)


def test_arc_search_refuses_requests_without_the_anti_bot_fields_or_the_space_referer(sim, client):
    mid = next(iter(sim.world.uploaders))
    for headers, extra in (({"Referer": f"https://space.bilibili.com/{mid}"}, {}),
                           ({}, anti_bot_fields(random.Random(1)))):
        reply = client.get("/x/space/wbi/arc/search", headers=headers, mid=mid, pn=1, ps=30, **extra)
        body = reply.json()
        assert body["code"] == -352 and body["data"]["v_voucher"].startswith("voucher_")
        assert reply.headers["x-bili-gaia-vvoucher"] == body["data"]["v_voucher"]
    # a wrong signature: code 0 with nothing but v_voucher, a block posing as success
    params = wbi.sign({"mid": mid, "pn": 1, "ps": 30, **anti_bot_fields(random.Random(2))}, "0" * 32)
    body = requests.get(sim.base_url + "/x/space/wbi/arc/search", params=params, timeout=5,
                        headers={"Referer": f"https://space.bilibili.com/{mid}"}).json()
    assert body["code"] == 0 and set(body["data"]) == {"v_voucher"}


def test_hot_lists_and_honours_match_ground_truth(sim, client):
    truth = sim.truth()
    mids, pn = set(), 1
    while True:
        data = client.api("/x/web-interface/popular", pn=pn, ps=20)["data"]
        mids |= {v["owner"]["mid"] for v in data["list"]}
        assert all(set(v["rcmd_reason"]) == {"content", "corner_mark"} for v in data["list"])
        if data["no_more"]:
            break
        pn += 1
    issues = client.api("/x/web-interface/popular/series/list")["data"]["list"]
    assert len(issues) >= 10
    for issue in issues:
        one = client.api("/x/web-interface/popular/series/one", number=issue["number"])["data"]
        assert one["config"]["number"] == issue["number"] and all(isinstance(v["rcmd_reason"], str)
                                                                  for v in one["list"])
        mids |= {v["owner"]["mid"] for v in one["list"]}
    precious = client.api("/x/web-interface/popular/precious", page_size=100, page=1)["data"]
    assert precious["explain"] and all("achievement" in v for v in precious["list"])
    mids |= {v["owner"]["mid"] for v in precious["list"]}
    ranking = client.api("/x/web-interface/ranking/v2", rid=1010, type="all")["data"]["list"]
    assert ranking and all(v["pid_v2"] == 1010 and "score" in v for v in ranking)
    mids |= {v["owner"]["mid"] for v in ranking}
    assert mids == truth["hot_mids_lists"]
    # The hot lists are site-wide: other sections are on them too.
    assert any(v["pid_v2"] != 1010 for v in client.api("/x/web-interface/popular", pn=1, ps=50)["data"]["list"])

    honour_mids, types = set(), Counter()
    for row in truth["videos"].values():
        honours = client.api("/x/web-interface/view", bvid=row["bvid"])["data"]["honor_reply"].get("honor", [])
        assert sorted(h["type"] for h in honours) == sorted(row["honors"])
        types.update(h["type"] for h in honours)
        if any(h["type"] in (1, 2, 4, 7) for h in honours):
            honour_mids.add(row["owner_mid"])
    assert honour_mids == truth["hot_mids_honors"]
    assert {1, 2, 3, 4, 7} <= set(types)
    assert truth["hot_mids_honors"] - truth["hot_mids_lists"], "type 7 should make some uploaders hot off-list"


def test_the_precious_list_holds_98_and_a_page_of_85_cuts_it_short():
    with SimServer(videos=500, seed=1) as sim:
        client = Client(sim)
        full = client.api("/x/web-interface/popular/precious", page_size=100, page=1)["data"]["list"]
        short = client.api("/x/web-interface/popular/precious", page_size=85, page=1)["data"]["list"]
    assert len(full) == 98 and len(short) == 85


def test_ranking_takes_rid_not_tid_and_an_old_rid_answers_stale_data(sim, client):
    knowledge = client.api("/x/web-interface/ranking/v2", rid=1010, type="all")["data"]["list"]
    with_tid = client.api("/x/web-interface/ranking/v2", tid=1010, type="all")["data"]["list"]
    stale = client.api("/x/web-interface/ranking/v2", rid=36, type="all")["data"]["list"]
    assert all(v["pid_v2"] == 1010 for v in knowledge)
    assert any(v["pid_v2"] != 1010 for v in with_tid)  # silently the whole-site list
    assert stale and {v["bvid"] for v in stale} != {v["bvid"] for v in knowledge}


def test_the_region_feed_is_a_stream_that_runs_dry(sim, client):
    seen, page = [], 1
    while True:
        archives = client.api("/x/web-interface/region/feed/rcmd", display_id=page, request_cnt=15, from_region=1010,
                              device="web", plat=30, web_location="333.40138")["data"]["archives"]
        if not archives:
            break
        seen += archives
        page += 1
    assert seen and all({"aid", "bvid", "cid", "title", "cover", "duration", "pubdate", "stat", "author"} <= set(v)
                        for v in seen)
    assert all(sim.world.by_bvid[v["bvid"]].knowledge for v in seen)


# -- the world ---------------------------------------------------------------------------------------------------
def test_the_world_mixes_sections_the_way_a_2026_crawl_meets_them():
    world = World(300, 1)
    truth = world.truth("http://x")
    videos, hot = truth["videos"], truth["hot_mids_lists"]
    assert len({v["pid_v2"] for v in videos.values()}) >= 3
    by_owner: dict[int, set[bool]] = {}
    for v in videos.values():
        by_owner.setdefault(v["owner_mid"], set()).add(v["knowledge"])
    assert any(by_owner[m] == {True, False} for m in hot)  # hot uploaders with both kinds of uploads
    assert any(by_owner[m] == {False} for m in hot)  # hot uploaders of other sections only
    never_hot = {v["bvid"] for v in videos.values() if v["knowledge"] and v["owner_mid"] not in hot}
    assert never_hot and not never_hot & truth["must_hold"]
    assert any(videos[b]["tid"] not in OLD_KNOWLEDGE_TIDS for b in truth["must_hold"])  # e.g. old tid 21 日常
    assert any(v["tid"] == 122 and not v["knowledge"] for v in videos.values())  # an old Knowledge tid elsewhere
    assert truth["must_hold"] == {b for b, v in videos.items() if v["knowledge"] and v["visible"]
                                  and v["owner_mid"] in hot}


# -- signing ---------------------------------------------------------------------------------------------------
def test_signed_endpoints_refuse_unsigned_or_stale_requests_in_their_recorded_ways(sim, client):
    bvid = next(b for b, v in sim.world.by_bvid.items() if v.visible)
    url = sim.base_url + "/x/web-interface/popular/series/one"
    unsigned = requests.get(url, params={"number": 1}, timeout=5).json()
    assert unsigned["code"] == -352 and "v_voucher" in unsigned["data"]
    assert client.api("/x/web-interface/popular/series/one", number=1)["code"] == 0
    detail = sim.base_url + "/x/web-interface/wbi/view/detail"
    signed = wbi.sign({"bvid": bvid}, client.mixin)
    assert requests.get(detail, params={**signed, "w_rid": "0" * 32}, timeout=5).json()["code"] == -403
    assert requests.get(detail, params=signed, timeout=5).json()["code"] == 0
    feed = requests.get(sim.base_url + "/x/web-interface/region/feed/rcmd", params={"from_region": 1010},
                        timeout=5).json()
    assert feed["code"] == 0 and set(feed["data"]) == {"v_voucher"}
    # unchecked endpoints answer unsigned requests, as the real ones do
    assert requests.get(sim.base_url + "/x/web-interface/popular", timeout=5).json()["code"] == 0


def test_rotated_keys_invalidate_old_signatures():
    with SimServer(videos=50, seed=3) as sim:
        client = Client(sim)
        old = client.mixin
        assert client.api("/x/web-interface/popular/series/one", number=1)["code"] == 0
        sim.rotate_keys()
        assert client.api("/x/web-interface/popular/series/one", number=1)["code"] == -352
        client.refresh_keys()
        assert client.mixin != old
        assert client.api("/x/web-interface/popular/series/one", number=1)["code"] == 0


# -- covers ----------------------------------------------------------------------------------------------------
def test_cover_suffix_gives_a_jpeg_within_the_limit(sim):
    truth = sim.truth()
    rows = sorted(truth["videos"].values(), key=lambda r: (r["cover_height"] > r["cover_width"], r["pic"]))
    for row in (rows[0], rows[-1]):  # a landscape and a portrait cover
        reply = requests.get(row["pic"] + "@480w_270h_1c.jpg", timeout=10)
        img = Image.open(io.BytesIO(reply.content))
        assert reply.headers["Content-Type"] == "image/jpeg" and img.format == "JPEG"
        assert img.width <= 480 and img.height <= 270
        ratio = row["cover_width"] / row["cover_height"]
        assert abs(img.width / img.height - ratio) < 0.05  # aspect kept
    webp = requests.get(rows[0]["pic"] + "@320w.webp", timeout=10)
    assert Image.open(io.BytesIO(webp.content)).format == "WEBP"


def test_source_covers_have_their_documented_size_and_format(sim):
    rows = list(sim.truth()["videos"].values())
    formats = {r["pic"].rsplit(".", 1)[1] for r in rows}
    assert formats == {"jpg", "png", "webp"}
    sizes = {(r["cover_width"], r["cover_height"]) for r in rows}
    assert any(w < h for w, h in sizes) and any(w > h for w, h in sizes) and len(sizes) >= 5
    for ext in ("png", "webp"):
        row = next(r for r in rows if r["pic"].endswith(ext))
        img = Image.open(io.BytesIO(requests.get(row["pic"], timeout=10).content))
        assert img.format == {"png": "PNG", "webp": "WEBP"}[ext]
        assert img.size == (row["cover_width"], row["cover_height"])


def test_covers_differ_and_are_deterministic(sim):
    rows = sorted(sim.truth()["videos"].values(), key=lambda r: r["pic"])[:6]
    first = [requests.get(r["pic"] + "@64w_40h.png", timeout=10).content for r in rows]
    assert len(set(first)) == len(first)
    with SimServer(videos=VIDEOS, seed=7) as twin:
        again = [requests.get(r["pic"].replace(sim.base_url, twin.base_url) + "@64w_40h.png", timeout=10).content
                 for r in rows]
    assert again == first


def test_bad_cover_urls_get_http_errors(sim):
    pic = next(iter(sim.truth()["videos"].values()))["pic"]
    assert requests.get(pic + "@480x270.jpg", timeout=5).status_code == 400
    assert requests.get(pic + "@480w.gif", timeout=5).status_code == 400
    assert requests.get(pic.rsplit(".", 1)[0] + ".bmp", timeout=5).status_code == 404
    assert requests.get(sim.base_url + "/bfs/archive/" + "0" * 40 + ".jpg", timeout=5).status_code == 404


# -- robots, cookie, request log -------------------------------------------------------------------------------
@pytest.mark.parametrize(("robots", "api_allowed", "covers_allowed"), [
    ("allow", True, True),
    ("disallow", False, False),
    ("User-agent: *\nDisallow: /x/\n", False, True),
])
def test_robots_modes(robots, api_allowed, covers_allowed):
    with SimServer(videos=20, seed=1, robots=robots) as sim:
        reply = requests.get(sim.base_url + "/robots.txt", timeout=5)
        parser = RobotFileParser(sim.base_url + "/robots.txt")
        parser.parse(reply.text.splitlines())
        assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("text/plain")
        assert parser.can_fetch("Mozilla/5.0", sim.base_url + "/x/web-interface/view?bvid=x") is api_allowed
        assert parser.can_fetch("Mozilla/5.0", sim.base_url + "/bfs/archive/a.jpg") is covers_allowed


def test_home_page_sets_buvid3_and_requests_are_logged(sim):
    before = len(sim.requests)
    reply = requests.get(sim.base_url + "/", params={"from": "test"}, timeout=5)
    assert reply.cookies.get("buvid3", "").endswith("infoc")
    stamp, method, path, query = sim.requests[before]
    assert (method, path, query) == ("GET", "/", {"from": "test"}) and stamp <= time.monotonic()


# -- faults ----------------------------------------------------------------------------------------------------
def _faulty(**kwargs: float) -> SimServer:
    return SimServer(videos=30, seed=2, faults=FaultConfig(**kwargs))


def test_drop_closes_the_connection_without_a_reply():
    with _faulty(drop=1.0) as sim, pytest.raises(requests.ConnectionError):
        requests.get(sim.base_url + "/x/web-interface/nav", timeout=5)


def test_server_error_answers_5xx():
    with _faulty(server_error=1.0) as sim:
        codes = {requests.get(sim.base_url + "/x/web-interface/nav", timeout=5).status_code for _ in range(8)}
    assert codes <= {500, 503} and codes


def test_slow_delays_the_reply():
    with _faulty(slow=1.0) as sim:
        start = time.monotonic()
        assert requests.get(sim.base_url + "/x/web-interface/nav", timeout=5).status_code == 200
        assert time.monotonic() - start >= 0.25


def test_json_block_and_malformed_json():
    with _faulty(json_block=1.0) as sim:
        reply = requests.get(sim.base_url + "/x/web-interface/nav", timeout=5)
        assert reply.status_code == 200 and reply.json()["code"] in (-799, -412)
    with _faulty(malformed_json=1.0) as sim:
        reply = requests.get(sim.base_url + "/x/web-interface/nav", timeout=5)
        assert reply.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(reply.text)


def test_the_2026_block_signals_can_be_switched_on():
    url = "/x/web-interface/nav"
    with _faulty(voucher=1.0) as sim:
        body = requests.get(sim.base_url + url, timeout=5).json()
        assert body["code"] == 0 and set(body["data"]) == {"v_voucher"}
    with _faulty(risk_control=1.0) as sim:
        reply = requests.get(sim.base_url + url, timeout=5)
        assert reply.json()["code"] == -352 and reply.headers["x-bili-gaia-vvoucher"] == reply.json()["data"][
            "v_voucher"]
    with _faulty(unauthorized=1.0) as sim:
        assert requests.get(sim.base_url + url, timeout=5).json()["code"] == -401
    with SimServer(videos=30, seed=2, faults=FaultConfig(too_many=1.0, retry_after_s=7)) as sim:
        reply = requests.get(sim.base_url + url, timeout=5)
        assert reply.status_code == 429 and reply.headers["Retry-After"] == "7"


def test_bad_image_is_not_a_readable_image():
    with _faulty(bad_image=1.0) as sim:
        pic = next(iter(sim.truth()["videos"].values()))["pic"]
        for _ in range(4):
            body = requests.get(pic, timeout=10).content
            with pytest.raises(OSError):
                Image.open(io.BytesIO(body)).load()


def test_faults_are_drawn_per_request_so_a_retry_can_succeed():
    with _faulty(json_block=0.5) as sim:
        codes = [requests.get(sim.base_url + "/x/web-interface/nav", timeout=5).json()["code"] for _ in range(30)]
    assert -101 in codes and set(codes) & {-799, -412}


def test_invisible_videos_answer_62xxx_and_are_not_visible_in_truth():
    with _faulty(invisible=0.3) as sim:
        client, truth = Client(sim), sim.truth()
        hidden = [r for r in truth["videos"].values() if not r["visible"]]
        assert 0 < len(hidden) < len(truth["videos"])
        for row in truth["videos"].values():
            code = client.api("/x/web-interface/view", bvid=row["bvid"])["code"]
            assert code == 0 if row["visible"] else code in (62002, 62004, 62012)
    plain = World(30, 2)  # switching invisibility on changes nothing else
    assert [v.stat for v in plain.videos] == [v.stat for v in sim.world.videos]


def test_fault_all_switches_everything_on():
    faults = FaultConfig.all(0.1)
    assert faults.rate_limit_412 and all(getattr(faults, k) == 0.1 for k in (
        "json_block", "server_error", "slow", "drop", "bad_image", "malformed_json", "invisible", "voucher",
        "risk_control", "unauthorized", "too_many"))


def test_412_above_the_rate_and_not_below():
    with SimServer(videos=20, seed=1, rate_limit=5.0) as sim:
        session = requests.Session()
        url = sim.base_url + "/x/web-interface/nav"
        below = []
        for _ in range(6):
            below.append(session.get(url, timeout=5).status_code)
            time.sleep(0.4)
        assert set(below) == {200}
        above = [session.get(url, timeout=5) for _ in range(15)]
        blocked = [r for r in above if r.status_code == 412]
        assert blocked and "出错啦! - bilibili.com" in blocked[0].text
        assert blocked[0].headers["Content-Type"].startswith("text/html")
        # Images are not API requests and are never rate limited.
        pic = next(iter(sim.truth()["videos"].values()))["pic"]
        assert session.get(pic + "@32w.jpg", timeout=5).status_code == 200


@pytest.mark.parametrize("kwargs", [{"drop": 1.5}, {"slow": -0.1}, {"rate_limit_412": 0}])
def test_fault_config_rejects_bad_values(kwargs):
    with pytest.raises(InputError, match="must be"):
        FaultConfig(**kwargs)


def test_sim_server_rejects_bad_arguments():
    with pytest.raises(InputError, match="at least 10"):
        SimServer(videos=3)
    with pytest.raises(InputError, match="robots"):
        SimServer(videos=20, robots="")


# -- ground truth ----------------------------------------------------------------------------------------------
def test_ground_truth_is_deterministic_for_a_seed():
    a, b, c = World(300, 11), World(300, 11), World(300, 12)
    assert a.truth("http://x") == b.truth("http://x")
    assert a.truth("http://x")["videos"] != c.truth("http://x")["videos"]


def test_world_is_heavy_tailed_and_has_the_documented_edge_cases():
    truth = World(500, 1).truth("http://x")
    views = sorted(r["views"] for r in truth["videos"].values())
    median = views[len(views) // 2]
    assert views[0] == 0 and views[-1] > 200 * median and views[len(views) // 10] < 100
    assert any(r["likes"] > r["views"] for r in truth["videos"].values())
    followers = [u["followers"] for u in truth["uploaders"].values()]
    assert 20 <= len(followers) <= 500 and 500_000 in followers
    assert any(f < 500_000 for f in followers) and any(f > 500_000 for f in followers)
    per_owner = Counter(r["owner_mid"] for r in truth["videos"].values())
    assert min(per_owner.values()) >= 2
    assert any(r["title"].isascii() is False and any(ord(ch) > 0xFFFF for ch in r["title"])
               for r in truth["videos"].values())  # some emoji
    assert len({r["tid_v2"] for r in truth["videos"].values() if r["knowledge"]}) == 12


def test_bump_counters_changes_every_visible_video():
    with SimServer(videos=40, seed=5) as sim:
        client = Client(sim)
        before = sim.truth()["videos"]
        sim.bump_counters(1)
        after = sim.truth()["videos"]
        assert all(after[b]["views"] > before[b]["views"] for b in before)
        some = next(iter(after))
        assert client.api("/x/web-interface/view", bvid=some)["data"]["stat"]["view"] == after[some]["views"]


def test_stop_returns_promptly_with_an_open_keep_alive_connection():
    sim = SimServer(videos=20, seed=1).start()
    session = requests.Session()
    assert session.get(sim.base_url + "/robots.txt", timeout=5).status_code == 200
    start = time.monotonic()
    sim.stop()
    assert time.monotonic() - start < 2
    with pytest.raises(requests.ConnectionError):
        session.get(sim.base_url + "/robots.txt", timeout=2)


# -- python -m bilipop.sim -------------------------------------------------------------------------------------
def test_module_prints_a_url_that_answers():
    proc = subprocess.Popen([sys.executable, "-m", "bilipop.sim", "--port", "0", "--videos", "30", "--seed", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert requests.get(url + "/robots.txt", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0


@pytest.mark.parametrize(("argv", "message"), [
    (["--videos", "3"], "at least 10"),
    (["--robots", "/no/such/robots.txt"], "cannot read robots file"),
    (["--faults", "2"], "--faults is a probability"),
    (["--rate-limit", "0"], "rate_limit must be a positive number"),
])
def test_module_rejects_bad_input(argv, message, capsys):
    assert sim_main(["--port", "0", *argv]) == 1
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""
