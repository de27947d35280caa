"""bilipop.crawl.api: tolerant parsing of Bilibili's replies: unknown fields ignored, wrong types reported with
their path, bad ids skipped and counted."""

from __future__ import annotations

import pytest
from helpers import VIDEO  # noqa: E402

from bilipop.crawl import api


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
