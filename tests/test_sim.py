"""The local Bilibili-compatible server: shapes, signing, paging, covers, robots, faults, blocks, ground truth."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections import Counter
from urllib.robotparser import RobotFileParser

import pytest
import requests
from PIL import Image

from bilipop.crawl import wbi
from bilipop.errors import InputError
from bilipop.sim import FaultConfig, SimServer, World
from bilipop.sim.__main__ import main as sim_main

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

    def get(self, path: str, **params: object) -> requests.Response:
        return self.http.get(self.base + path, params=wbi.sign(params, self.mixin), timeout=5)

    def api(self, path: str, **params: object) -> dict:
        return self.get(path, **params).json()


@pytest.fixture(scope="module")
def sim():
    with SimServer(videos=VIDEOS, seed=7) as server:
        yield server


@pytest.fixture(scope="module")
def client(sim):
    return Client(sim)


def listed(client: Client, path: str, tid: int, ps: int) -> list[dict]:
    archives, pn = [], 1
    while True:
        data = client.api(path, rid=tid, pn=pn, ps=ps, type=0)["data"]
        archives += data["archives"]
        if not data["archives"] or pn * ps >= data["page"]["count"]:
            return archives
        pn += 1


# -- shapes ----------------------------------------------------------------------------------------------------
def test_nav_answers_logged_out_with_the_keys(sim):
    reply = requests.get(sim.base_url + "/x/web-interface/nav", timeout=5).json()
    assert reply["code"] == -101
    keys = [wbi.key_from_url(reply["data"]["wbi_img"][k]) for k in ("img_url", "sub_url")]
    assert all(len(k) == 32 and int(k, 16) >= 0 for k in keys)


def test_listing_video_objects_carry_the_documented_fields(sim, client):
    reply = client.api("/x/web-interface/newlist", rid=201, pn=1, ps=5, type=0)
    assert reply["code"] == 0 and reply["message"] == "0" and reply["ttl"] == 1
    assert reply["data"]["page"] == {"count": reply["data"]["page"]["count"], "num": 1, "size": 5}
    video = reply["data"]["archives"][0]
    for key in ("aid", "bvid", "tid", "tname", "tid_v2", "pic", "title", "pubdate", "ctime", "duration"):
        assert key in video
    assert set(video["owner"]) == {"mid", "name", "face"}
    assert set(video["stat"]) == {"aid", "view", "danmaku", "reply", "favorite", "coin", "share", "now_rank",
                                  "his_rank", "like", "dislike", "vt", "vv"}
    assert video["bvid"].startswith("BV") and len(video["bvid"]) == 12
    assert not set(video["bvid"][2:]) & set("0OIl")
    assert video["pic"].startswith(sim.base_url + "/bfs/archive/")
    pubdates = [v["pubdate"] for v in reply["data"]["archives"]]
    assert pubdates == sorted(pubdates, reverse=True)  # newest first


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
    card = client.api("/x/web-interface/card", mid=row["owner_mid"])["data"]
    assert card["follower"] == card["card"]["fans"] == followers and card["card"]["mid"] == str(row["owner_mid"])


def test_unknown_and_bad_requests_get_the_documented_codes(client):
    assert client.api("/x/web-interface/view", bvid="BV1xx411c7mD")["code"] == -404
    assert client.api("/x/web-interface/view", bvid="not-a-bvid")["code"] == -400
    assert client.api("/x/web-interface/newlist", rid="abc")["code"] == -400
    assert client.api("/x/web-interface/popular/series/one", number=99999)["code"] == -404
    assert client.api("/x/relation/stat", vmid=1)["code"] == -404


def test_main_partition_36_lists_nothing_and_page_size_is_capped(client):
    empty = client.api("/x/web-interface/newlist", rid=36, pn=1, ps=20)["data"]
    assert empty["archives"] == [] and empty["page"]["count"] == 0
    assert client.api("/x/web-interface/newlist", rid=201, pn=1, ps=500)["data"]["page"]["size"] == 50


def test_paging_covers_every_video_exactly_once(sim, client):
    truth = sim.truth()
    seen = []
    for tid in truth["tids"]:
        path = "/x/web-interface/newlist" if tid % 2 else "/x/web-interface/dynamic/region"
        seen += [v["bvid"] for v in listed(client, path, tid, ps=7)]
    assert sorted(seen) == sorted(truth["videos"])
    assert [v["bvid"] for v in listed(client, "/x/web-interface/newlist", 201, 50)] == [
        v["bvid"] for v in listed(client, "/x/web-interface/dynamic/region", 201, 3)]


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
    mids |= {v["owner"]["mid"] for v in
             client.api("/x/web-interface/popular/precious", page_size=85, page=1)["data"]["list"]}
    assert mids == truth["hot_mids_lists"]

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


# -- signing ---------------------------------------------------------------------------------------------------
def test_unsigned_or_wrongly_signed_requests_get_352(sim, client):
    url = sim.base_url + "/x/web-interface/view"
    bvid = next(iter(sim.truth()["videos"]))
    assert requests.get(url, params={"bvid": bvid}, timeout=5).json()["code"] == -352
    signed = wbi.sign({"bvid": bvid}, client.mixin)
    assert requests.get(url, params={**signed, "w_rid": "0" * 32}, timeout=5).json()["code"] == -352
    assert requests.get(url, params={**signed, "bvid": "BV1xx411c7mD"}, timeout=5).json()["code"] == -352
    assert requests.get(url, params=signed, timeout=5).json()["code"] == 0


def test_rotated_keys_invalidate_old_signatures():
    with SimServer(videos=50, seed=3) as sim:
        client = Client(sim)
        old = client.mixin
        assert client.api("/x/web-interface/popular", pn=1, ps=5)["code"] == 0
        sim.rotate_keys()
        assert client.api("/x/web-interface/popular", pn=1, ps=5)["code"] == -352
        client.refresh_keys()
        assert client.mixin != old
        assert client.api("/x/web-interface/popular", pn=1, ps=5)["code"] == 0


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
        "json_block", "server_error", "slow", "drop", "bad_image", "malformed_json", "invisible"))


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
    assert 20 <= len(followers) <= 300 and 500_000 in followers
    assert any(f < 500_000 for f in followers) and any(f > 500_000 for f in followers)
    per_owner = Counter(r["owner_mid"] for r in truth["videos"].values())
    assert min(per_owner.values()) >= 2
    assert any(r["title"].isascii() is False and any(ord(ch) > 0xFFFF for ch in r["title"])
               for r in truth["videos"].values())  # some emoji
    assert len({r["tid"] for r in truth["videos"].values()}) == 8


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
