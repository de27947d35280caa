"""The stand-in's refusal modes (bilipop.sim.faults), each as a crawler meets it over HTTP."""

from __future__ import annotations

import io
import json
import random
import time

import pytest
import requests
from PIL import Image

from bilipop.crawl import wbi
from bilipop.crawl.wbi import anti_bot_fields
from bilipop.errors import InputError
from bilipop.sim import FaultConfig, SimServer, World
from bilipop.sim.__main__ import _parser, config
from bilipop.sim.__main__ import main as sim_main

NAV = "/x/web-interface/nav"


def _get(sim: SimServer, path: str, **params: object) -> requests.Response:
    return requests.get(sim.base_url + path, params=params, allow_redirects=False, timeout=10)


def _signed(sim: SimServer, path: str, **params: object) -> requests.Response:
    return _get(sim, path, **wbi.sign(params, sim.mixin))


# -- faults ----------------------------------------------------------------------------------------------------
def _faulty(**kwargs: float) -> SimServer:
    return SimServer(videos=30, seed=2, faults=FaultConfig(**kwargs))


def test_keys_rotate_on_schedule_and_old_signatures_are_refused():
    with SimServer(videos=20, seed=3, faults=FaultConfig(key_rotation_s=0.3)) as sim:
        keys = _get(sim, NAV).json()["data"]["wbi_img"]["img_url"]
        old = sim.mixin
        time.sleep(0.7)
        assert _get(sim, NAV).json()["data"]["wbi_img"]["img_url"] != keys
        stale = _get(sim, "/x/web-interface/popular/series/one", **wbi.sign({"number": 1}, old)).json()
        fresh = _signed(sim, "/x/web-interface/popular/series/one", number=1).json()
    assert stale["code"] == -352 and "v_voucher" in stale["data"]
    assert fresh["code"] == 0 and sim.keys.generation >= 2


def test_the_challenge_mode_answers_412_with_the_sec_token_cookie_everywhere():
    with SimServer(videos=20, seed=3, faults=FaultConfig(sec_challenge=True)) as sim:
        replies = [_get(sim, path) for path in (NAV, "/x/web-interface/popular")]
        robots = _get(sim, "/robots.txt")
    for reply in replies:
        assert reply.status_code == 412 and "text/html" in reply.headers["Content-Type"]
        kind, token = reply.headers["Set-Cookie"].split(";")[0].removeprefix("X-BILI-SEC-TOKEN=").split(",", 1)
        assert kind == "pow" and token.startswith("eyJ")
    assert robots.status_code == 200


def test_the_region_mode_refuses_view_only():
    with SimServer(videos=20, seed=3, faults=FaultConfig(region_412=True)) as sim:
        bvid = sorted(sim.truth()["must_hold"])[0]
        nav = _get(sim, NAV)
        view = _get(sim, "/x/web-interface/view", bvid=bvid)
        detail = _signed(sim, "/x/web-interface/wbi/view/detail", bvid=bvid)
        popular = _get(sim, "/x/web-interface/popular", pn=1, ps=20)
    assert nav.status_code == 200 and popular.status_code == 200 and popular.json()["data"]["list"]
    assert view.status_code == 412 and detail.status_code == 412 and "Set-Cookie" not in view.headers


def test_the_redirect_mode_sends_a_share_of_videos_to_another_host_the_same_ones_every_time():
    with SimServer(videos=60, seed=3, faults=FaultConfig(redirect=0.2)) as sim:
        victims = sim.redirected
        bvid = sorted(victims)[0]
        other = sorted(set(sim.truth()["videos"]) - victims)[0]
        moved = _get(sim, "/x/web-interface/view/detail", bvid=bvid)
        stays = _get(sim, "/x/web-interface/view", bvid=other)
    again = SimServer(videos=60, seed=3, faults=FaultConfig(redirect=0.2)).redirected
    assert 0 < len(victims) < 30 and again == victims
    assert moved.status_code == 302 and moved.headers["Location"] == f"https://www.bilibili.com/video/{bvid}"
    assert stays.status_code == 200


def test_the_empty_modes_answer_code_0_with_nothing():
    with SimServer(videos=20, seed=3, faults=FaultConfig(empty_hot_lists=True, empty_uploads=True)) as sim:
        mid = next(iter(sim.truth()["hot_mids_lists"]))
        ranking = _get(sim, "/x/web-interface/ranking/v2", rid=1010).json()
        popular = _get(sim, "/x/web-interface/popular", pn=1, ps=20).json()
        params = wbi.sign({"mid": mid, "ps": 30, "pn": 1, **anti_bot_fields(random.Random(0))}, sim.mixin)
        uploads = requests.get(sim.base_url + "/x/space/wbi/arc/search", params=params, timeout=10,
                               headers={"Referer": f"https://space.bilibili.com/{mid}"}).json()
    assert ranking["code"] == popular["code"] == 0 and ranking["data"]["list"] == popular["data"]["list"] == []
    assert uploads["code"] == 0 and uploads["data"]["list"]["vlist"] == [] and uploads["data"]["page"]["count"] == 0


@pytest.mark.parametrize("bad", [{"key_rotation_s": 0}, {"sec_challenge": 1}, {"redirect": 2.0},
                                 {"region_412": "yes"}, {"voucher": True}])
def test_fault_config_refuses_unusable_modes(bad):
    with pytest.raises(InputError):
        FaultConfig(**bad)


def test_the_mix_faults_the_stated_share_of_requests():
    mix = FaultConfig.mix(0.1, key_rotation_s=2.0)
    kinds = ("drop", "server_error", "slow", "json_block", "malformed_json", "voucher", "risk_control",
             "unauthorized", "too_many")
    none = 1.0
    for kind in kinds:
        none *= 1.0 - getattr(mix, kind)
    assert abs((1.0 - none) - 0.1) < 1e-9 and mix.bad_image == 0.1 and mix.key_rotation_s == 2.0


def test_the_command_line_switches_the_modes_on(capsys):
    faults = config(_parser().parse_args(["--mode", "challenge", "--mode", "empty-uploads", "--key-rotation", "5",
                                          "--redirect", "0.1"]))
    assert faults == FaultConfig(sec_challenge=True, empty_uploads=True, key_rotation_s=5.0, redirect=0.1)
    with pytest.raises(SystemExit):
        _parser().parse_args(["--mode", "nonsense"])
    assert sim_main(["--key-rotation", "-1"]) == 1
    assert "key_rotation_s must be a positive number" in capsys.readouterr().err


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


def test_invisible_videos_answer_62xxx_and_are_not_visible_in_truth(sim_client):
    with _faulty(invisible=0.3) as sim:
        client, truth = sim_client(sim), sim.truth()
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
