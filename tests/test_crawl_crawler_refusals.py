"""The site as it behaves at the end of 2026, against the stand-in's refusal modes: rotating WBI keys are not
blocks, a silent site is reported within a minute, one video never stops a crawl, and the 412 challenge and the
region 412 stop with one line saying what to do."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest
from typer.testing import CliRunner

from bilipop.cli import app
from bilipop.crawl.crawler import crawl
from bilipop.crawl.failures import Backoff
from bilipop.crawl.http import HttpClient
from bilipop.data.io import read_table
from bilipop.errors import CrawlError
from bilipop.sim import FaultConfig, SimServer

runner = CliRunner()
FAST = Backoff(base_s=0.005, block_base_s=0.005, max_s=0.05, pause_s=0.05, timeout_s=5, empty_wait_s=0.01)
#: A back-off that would make any wait obvious: a refused signature that waited it could not finish in seconds.
SLOW_BLOCKS = Backoff(base_s=0.005, max_s=60, block_base_s=30, pause_s=900, timeout_s=5, empty_wait_s=0.01)
DETAIL = "/x/web-interface/wbi/view/detail"


def _errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def _fast_cli(monkeypatch, backoff: Backoff = FAST) -> None:
    """``bilipop crawl`` with a short back-off (the CLI has no flag for it)."""
    import bilipop.crawl.crawler as crawler

    real = crawler.crawl
    monkeypatch.setattr(crawler, "crawl", lambda **kwargs: real(**kwargs, backoff=backoff))


def _details(sim: SimServer) -> list[str]:
    return [q.get("bvid", "") for _, _, p, q in sim.requests if p.endswith("view/detail")]


# -- 1. a refused signature is not a block ----------------------------------------------------------------------
def test_keys_rotating_under_the_crawl_cost_a_key_fetch_each_never_a_block_or_a_wait(tmp_path):
    with SimServer(videos=40, seed=4) as sim:
        served = []

        def rotate_every_10th(handler, path, query):  # a schedule counted in requests: deterministic
            if path.startswith("/x/") and path != "/x/web-interface/nav":
                served.append(path)
                if len(served) % 10 == 0:
                    sim.rotate_keys()
            return False

        sim.intercept = rotate_every_10th
        started = time.monotonic()
        summary = crawl(tmp_path, api_base=sim.base_url, rate=0, backoff=SLOW_BLOCKS)
        elapsed = time.monotonic() - started
        truth = sim.truth()
        navs = sum(1 for r in sim.requests if r[2] == "/x/web-interface/nav")
    assert sim.keys.generation >= 3 and summary.key_refreshes >= 1
    assert summary.blocks == 0 and summary.pauses == 0 and elapsed < 20  # a single block would wait 15-30 s
    assert navs >= 1 + summary.key_refreshes
    assert set(read_table(tmp_path / "bilipop.db")["bvid"]) == truth["must_hold"]


def test_keys_rotating_on_the_sims_schedule_change_what_nav_answers():
    with SimServer(videos=20, seed=4, faults=FaultConfig(key_rotation_s=0.2)) as sim:
        client = HttpClient(sim.base_url, rate=0, backoff=FAST)
        first = client.get_json("/x/web-interface/nav", signed=False)["data"]["wbi_img"]["img_url"]
        time.sleep(0.5)
        second = client.get_json("/x/web-interface/nav", signed=False)["data"]["wbi_img"]["img_url"]
        client.close()
    assert first != second and sim.keys.generation >= 2


def test_a_refusal_that_repeats_with_fresh_keys_is_a_block():
    with SimServer(videos=20, seed=4) as sim:
        sim.tamper = lambda path, query, body: ({"code": 0, "message": "0", "ttl": 1, "data": {"v_voucher": "v"}}
                                                if path.endswith("arc/search") else body)
        backoff = dataclasses.replace(FAST, blocks_before_pause=2, max_pauses=1)
        client = HttpClient(sim.base_url, rate=0, backoff=backoff)
        with pytest.raises(CrawlError, match="keeps refusing this crawl .*v_voucher") as info:
            client.get_json("/x/space/wbi/arc/search", {"mid": 1})
        client.close()
    assert client.stats.key_refreshes == 1  # the first refusal: new keys, at once
    assert client.stats.blocks == 4 and client.stats.pauses == 1  # every refusal of fresh keys after it
    assert "BILIPOP_COOKIE" in str(info.value) and "\n" not in str(info.value)


# -- 2. a silent site is reported within a minute ---------------------------------------------------------------
def test_empty_hot_lists_are_asked_again_a_few_times_then_named_in_one_line(tmp_path, monkeypatch):
    _fast_cli(monkeypatch)
    with SimServer(videos=20, seed=2, faults=FaultConfig(empty_hot_lists=True)) as sim:
        result = runner.invoke(app, ["crawl", "--data", str(tmp_path), "--api-base", sim.base_url, "--rate", "0"])
        rankings = [r for r in sim.requests if r[2].endswith("ranking/v2")]
    errors = _errors(result.output)
    assert result.exit_code == 1 and len(errors) == 1, result.output
    line = errors[0]
    assert "the Knowledge ranking listed nothing (4 answer(s)" in line
    assert "answered with nothing" in line and "changed its API or refuses this client" in line
    assert "BILIPOP_COOKIE" in line and "newer bilipop" in line
    assert len(rankings) == 1 + FAST.empty_retries


@pytest.mark.slow
def test_a_silent_site_is_reported_within_a_minute_with_the_real_waits(tmp_path):
    # The default back-off and --rate 1, as a user runs it: no blocks, no long pause, one line in under 60 s.
    with SimServer(videos=20, seed=2, faults=FaultConfig(empty_hot_lists=True)) as sim:
        started = time.monotonic()
        result = runner.invoke(app, ["crawl", "--data", str(tmp_path), "--api-base", sim.base_url, "--rate", "1"])
        elapsed = time.monotonic() - started
    assert result.exit_code == 1 and len(_errors(result.output)) == 1, result.output
    assert "answered with nothing" in result.output
    assert 20 < elapsed < 60, elapsed  # it did wait and ask again (3 x 8 s), and said so within the minute


def test_every_upload_list_empty_stops_the_crawl_in_one_line(tmp_path, monkeypatch):
    _fast_cli(monkeypatch)
    with SimServer(videos=40, seed=2, faults=FaultConfig(empty_uploads=True)) as sim:
        result = runner.invoke(app, ["crawl", "--data", str(tmp_path), "--api-base", sim.base_url, "--rate", "0"])
        searched = {q["mid"] for _, _, p, q in sim.requests if p.endswith("arc/search")}
        hot = sim.truth()["hot_mids_lists"]
    errors = _errors(result.output)
    assert result.exit_code == 1 and len(errors) == 1, result.output
    assert "listed nothing" in errors[0] and "answered with nothing" in errors[0]
    assert len(searched) == min(10, len(hot))  # ten uploaders in a row, not every one of them


# -- 3. one video never stops a crawl ---------------------------------------------------------------------------
def test_a_video_redirected_to_another_host_is_skipped_counted_and_tried_again_next_run(tmp_path):
    with SimServer(videos=60, seed=5) as sim:  # which Knowledge videos does a crawl ask view/detail for?
        crawl(tmp_path / "probe", api_base=sim.base_url, rate=0)
        chosen = frozenset(sorted(set(_details(sim)) & sim.truth()["must_hold"])[:2])
    data = tmp_path / "data"
    with SimServer(videos=60, seed=5) as sim:
        sim.redirected = chosen
        result = runner.invoke(app, ["crawl", "--data", str(data), "--api-base", sim.base_url, "--rate", "0"],
                               env={"COLUMNS": "200"})
        victims = set(_details(sim)) & sim.redirected
        first = set(read_table(data / "bilipop.db")["bvid"])
        truth = sim.truth()
        assert result.exit_code == 0, result.output
        assert victims == chosen and len(chosen) == 2 and not victims & first
        assert first == truth["must_hold"] - victims  # every other video and cover is there
        assert "tried again next run" in result.output and f"redirected to another host: {len(victims)}" in \
            result.output
        sim.redirected = frozenset()  # the site stops redirecting them
        crawl(data, api_base=sim.base_url, rate=0)  # examines them again (by view/detail or a Related item's facts)
    table = read_table(data / "bilipop.db")
    assert set(table["bvid"]) == truth["must_hold"] and (table["cover_path"] != "").all()


def test_a_reply_that_stays_malformed_or_is_too_large_skips_that_video_only(tmp_path):
    with SimServer(videos=40, seed=4) as sim:
        crawl(tmp_path / "probe", api_base=sim.base_url, rate=0)
        broken, huge = sorted(set(_details(sim)) & sim.truth()["must_hold"])[:2]

    def hostile(handler, path, query):
        if not path.endswith("view/detail") or query.get("bvid") not in (broken, huge):
            return False
        body = b'{"code":0,"data":{"View":' if query["bvid"] == broken else b" " * (9 * 2**20)
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        try:
            handler.wfile.write(body)
        except OSError:
            handler.close_connection = True
        return True

    with SimServer(videos=40, seed=4) as sim:
        sim.intercept = hostile
        summary = crawl(tmp_path / "crawl", api_base=sim.base_url, rate=0, backoff=FAST)
        asked = [b for b in _details(sim) if b == broken]
        sim.intercept = None
        crawl(tmp_path / "crawl", api_base=sim.base_url, rate=0, backoff=FAST)
        truth = sim.truth()
    assert summary.failed == {("videos", "kept failing: a reply that is not valid JSON"): 1,
                              ("videos", "a reply over the size cap"): 1}
    assert len(asked) == FAST.retries + 1
    assert summary.videos == len(truth["must_hold"]) - 2
    assert set(read_table(tmp_path / "crawl" / "bilipop.db")["bvid"]) == truth["must_hold"]


def test_a_video_that_was_not_visible_is_asked_for_again_on_the_next_run(tmp_path):
    with SimServer(videos=60, seed=5, faults=FaultConfig(invisible=0.1)) as sim:
        first = crawl(tmp_path, api_base=sim.base_url, rate=0)
        gone = [b for b in _details(sim) if not sim.truth()["videos"][b]["visible"]]
        back = next(b for b in gone if sim.truth()["videos"][b]["knowledge"])
        sim.world.video(bvid=back).code = 0  # out of review
        asked_before = len(sim.requests)
        second = crawl(tmp_path, api_base=sim.base_url, rate=0)
        again = {q.get("bvid") for _, _, p, q in sim.requests[asked_before:] if p.endswith("view/detail")}
    assert first.skipped == len(set(gone)) and set(gone) <= again
    assert back in set(read_table(tmp_path / "bilipop.db")["bvid"]) and second.skipped == first.skipped - 1


def test_the_same_failure_on_ten_videos_in_a_row_is_the_sites_and_stops_the_crawl(tmp_path):
    def broken(path, query, body):
        return json.loads('{"code": 0, "data": {"View": 5}}') if path.endswith("view/detail") else body

    with SimServer(videos=60, seed=5) as sim:
        sim.tamper = broken
        started = time.monotonic()
        with pytest.raises(CrawlError) as info:
            crawl(tmp_path, api_base=sim.base_url, rate=0, backoff=FAST)
        elapsed = time.monotonic() - started
        asked = _details(sim)
    message = str(info.value)
    assert message.startswith("the last 10 videos all failed the same way") and "\n" not in message
    assert "View should be an object" in message and "run the same command again" in message
    assert len(set(asked)) == 10 == len(asked) and elapsed < 15


# -- 4. the 2026 refusals, named ----------------------------------------------------------------------------------
def test_the_412_challenge_stops_at_once_naming_it_and_what_to_do(tmp_path):
    with SimServer(videos=20, seed=2, faults=FaultConfig(sec_challenge=True)) as sim:
        result = runner.invoke(app, ["crawl", "--data", str(tmp_path), "--api-base", sim.base_url, "--rate", "0"])
        api_requests = [r[2] for r in sim.requests if r[2].startswith("/x/")]
    errors = _errors(result.output)
    assert result.exit_code == 1 and len(errors) == 1, result.output
    line = errors[0]
    assert "HTTP 412" in line and "X-BILI-SEC-TOKEN, type pow" in line and "bilipop does not" in line
    assert "BILIPOP_COOKIE" in line and "lower --rate" in line and "wait" in line
    assert "eyJ" not in result.output  # the token itself is never shown
    assert api_requests == ["/x/frontend/finger/spi"]  # no retry, no back-off: the first answer decides


def test_view_refused_while_nav_answers_is_this_network_refused_in_one_line(tmp_path):
    with SimServer(videos=30, seed=4, faults=FaultConfig(region_412=True)) as sim:
        result = runner.invoke(app, ["crawl", "--data", str(tmp_path), "--api-base", sim.base_url, "--rate", "0"])
        asked = [r[2] for r in sim.requests if r[2].startswith("/x/")]
    errors = _errors(result.output)
    assert result.exit_code == 1 and len(errors) == 1, result.output
    line = errors[0]
    assert "refuses this network" in line and "mainland" in line and "HTTPS_PROXY" in line
    assert "run the same command again" in line
    after = asked[asked.index(DETAIL):]
    assert after.count(DETAIL) == 3 and after.count("/x/web-interface/nav") >= 3


def test_a_412_on_view_while_nav_is_blocked_too_is_an_ordinary_block(tmp_path):
    # A rate limit refuses every endpoint: that is waited out, never called a refused network.
    with SimServer(videos=20, seed=2, faults=FaultConfig(rate_limit_412=0.001)) as sim:
        with pytest.raises(CrawlError, match="keeps refusing") as info:
            crawl(tmp_path, api_base=sim.base_url, rate=0, backoff=FAST)
    assert "network" not in str(info.value)


# -- the claim: 10 % faults with keys rotating every few seconds cost at most 3x the time -------------------------
def _scaled(factor: float) -> Backoff:
    """The default back-off with every wait divided by ``factor``: the real site's policy at ``factor`` x the
    default rate, so that a test of seconds stands for a crawl of minutes."""
    real = Backoff()
    waits = ("base_s", "block_base_s", "max_s", "pause_s", "empty_wait_s")
    return dataclasses.replace(real, **{w: getattr(real, w) / factor for w in waits})


def test_ten_percent_faults_with_keys_rotating_every_few_seconds_take_under_3x_a_clean_crawl(tmp_path):
    rate = 30.0  # 30x the default rate, with the default waits divided by 30; covers unlimited
    backoff = _scaled(rate)
    with SimServer(videos=300, seed=8) as sim:
        started = time.monotonic()
        crawl(tmp_path / "clean", api_base=sim.base_url, rate=rate, cover_rate=0, backoff=backoff)
        clean = time.monotonic() - started
    with SimServer(videos=300, seed=8, faults=FaultConfig.mix(0.1, key_rotation_s=1.0)) as sim:
        started = time.monotonic()
        summary = crawl(tmp_path / "faults", api_base=sim.base_url, rate=rate, cover_rate=0, backoff=backoff)
        faulty = time.monotonic() - started
        truth, generations = sim.truth(), sim.keys.generation
    assert generations >= 3 and summary.retries >= 10 and summary.blocks >= 1 and summary.key_refreshes >= 3
    assert faulty < 3 * clean, (faulty, clean, summary.rows())
    table = read_table(tmp_path / "faults" / "bilipop.db")
    assert set(table["bvid"]) == truth["must_hold"] and (table["cover_path"] != "").all()
    assert summary.failed == {}
