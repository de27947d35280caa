"""bilipop.sim's server over HTTP: reply shapes, signing, paging, hot lists, covers, robots, the cookie page and
the request log."""

from __future__ import annotations

import io
import random
import time
from collections import Counter
from urllib.robotparser import RobotFileParser

import pytest
import requests
from PIL import Image

from bilipop.crawl import wbi
from bilipop.crawl.wbi import anti_bot_fields
from bilipop.errors import InputError
from bilipop.sim import SimServer


def uploads_of(client, mid: int, ps: int) -> list[dict]:
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


def test_the_precious_list_holds_98_and_a_page_of_85_cuts_it_short(sim_client):
    with SimServer(videos=500, seed=1) as sim:
        client = sim_client(sim)
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


def test_rotated_keys_invalidate_old_signatures(sim_client):
    with SimServer(videos=50, seed=3) as sim:
        client = sim_client(sim)
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
    with SimServer(videos=sim.world.size, seed=sim.world.seed) as twin:
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


def test_sim_server_rejects_bad_arguments():
    with pytest.raises(InputError, match="at least 10"):
        SimServer(videos=3)
    with pytest.raises(InputError, match="robots"):
        SimServer(videos=20, robots="")


def test_stop_returns_promptly_with_an_open_keep_alive_connection():
    sim = SimServer(videos=20, seed=1).start()
    session = requests.Session()
    assert session.get(sim.base_url + "/robots.txt", timeout=5).status_code == 200
    start = time.monotonic()
    sim.stop()
    assert time.monotonic() - start < 2
    with pytest.raises(requests.ConnectionError):
        session.get(sim.base_url + "/robots.txt", timeout=2)
