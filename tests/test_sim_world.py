"""bilipop.sim.world: the sections mixed as a 2026 crawl meets them, a heavy-tailed world with its documented edge
cases, ground truth deterministic for a seed, and counters that move."""

from __future__ import annotations

from collections import Counter

from bilipop.crawl.api import OLD_KNOWLEDGE_TIDS
from bilipop.sim import SimServer, World


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


def test_bump_counters_changes_every_visible_video(sim_client):
    with SimServer(videos=40, seed=5) as sim:
        client = sim_client(sim)
        before = sim.truth()["videos"]
        sim.bump_counters(1)
        after = sim.truth()["videos"]
        assert all(after[b]["views"] > before[b]["views"] for b in before)
        some = next(iter(after))
        assert client.api("/x/web-interface/view", bvid=some)["data"]["stat"]["view"] == after[some]["views"]
