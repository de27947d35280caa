"""The JSON shapes the simulated API answers with, built from the recorded shapes (docs/reference.md, "The
Bilibili web API as bilipop uses it"), plus a few fields nobody needs, so parsers learn to ignore them.

List items (hot lists, Related, the ranking) carry ``tidv2``/``tnamev2``/``pid_v2``/``pid_name_v2``; single-video
objects (``view``, ``view/detail``'s ``View``) carry ``tid_v2``/``tname_v2`` and no main id; ``tname`` and
``tname_v2`` are often empty strings, as recorded.
"""

from __future__ import annotations

import hashlib

from bilipop.sim.partitions import OLD_NAMES, SECTION_NAMES, V2_NAMES
from bilipop.sim.world import NAME_CHANGE, Issue, Video, World, cover_url

MESSAGES = {
    0: "0", -101: "账号未登录", -352: "-352", -400: "请求错误", -401: "未认证", -403: "访问权限不足",
    -404: "啥都木有", -412: "请求被拦截", -799: "请求过于频繁，请稍后再试", 62002: "稿件不可见", 62004: "稿件审核中",
    62012: "仅UP主自己可见",
}
PROVINCES = ["北京", "上海", "广东", "浙江", "四川", "湖北", "江苏", "陕西"]


def envelope(code: int, data: object = None, message: str | None = None) -> dict:
    return {"code": code, "message": message or MESSAGES.get(code, str(code)), "ttl": 1, "data": data}


def voucher(seed: str) -> str:
    digest = hashlib.md5(seed.encode()).hexdigest()
    return f"voucher_{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def face_url(base_url: str, world: World, mid: int) -> str:
    return f"{base_url}/bfs/face/{world.uploaders[mid].face}.jpg"


def _common(world: World, v: Video, base_url: str) -> dict:
    owner = world.uploaders[v.owner_mid]
    s = v.stat
    return {
        "aid": v.aid, "videos": 1, "tid": v.tid,
        "tname": OLD_NAMES.get(v.tid, "") if v.pubdate < NAME_CHANGE else "",
        "copyright": 1 + (v.aid % 7 == 0), "pic": cover_url(base_url, v), "title": v.title,
        "pubdate": v.pubdate, "ctime": v.ctime, "desc": "-" if v.aid % 3 else f"{v.title}\n欢迎一键三连",
        "state": 0, "duration": v.duration,
        "rights": {"bp": 0, "elec": 0, "download": 1, "movie": 0, "pay": 0, "hd5": int(v.cover_width >= 1920),
                   "no_reprint": 1, "autoplay": 1, "ugc_pay": 0, "is_cooperation": 0},
        "owner": {"mid": owner.mid, "name": owner.name, "face": face_url(base_url, world, owner.mid)},
        "stat": {
            "aid": v.aid, "view": s["views"], "danmaku": s["danmaku"], "reply": s["replies"],
            "favorite": s["favorites"], "coin": s["coins"], "share": s["shares"], "now_rank": 0,
            "his_rank": v.his_rank, "like": s["likes"], "dislike": 0, "vt": 0, "vv": s["views"],
        },
        "dynamic": "", "cid": v.cid,
        "dimension": {"width": 1920, "height": 1080, "rotate": 0},
        "short_link_v2": f"https://b23.tv/{v.bvid}", "bvid": v.bvid,
        "first_frame": f"{base_url}/bfs/storyff/{v.cover}_firsti.jpg",
        "pub_location": PROVINCES[v.aid % len(PROVINCES)], "season_type": 0, "is_ogv": False, "ogv_info": None,
        "enable_vt": 0, "ai_rcmd": None,
    }


def list_item(world: World, v: Video, base_url: str) -> dict:
    """A video as the hot lists, the ranking and Related give it: ``tidv2``, ``pid_v2`` and full ``stat``."""
    item = _common(world, v, base_url)
    item.update({"tidv2": v.tid_v2, "tnamev2": V2_NAMES[v.tid_v2], "pid_v2": v.pid_v2,
                 "pid_name_v2": SECTION_NAMES[v.pid_v2]})
    return item


def video_object(world: World, v: Video, base_url: str) -> dict:
    """A single video as ``view`` gives it: ``tid_v2`` and ``tname_v2`` (often empty), no ``pid_v2``."""
    data = _common(world, v, base_url)
    data.update({"tid_v2": v.tid_v2, "tname_v2": "" if v.aid % 4 == 0 else V2_NAMES[v.tid_v2]})
    return data


def view_data(world: World, v: Video, base_url: str) -> dict:
    data = video_object(world, v, base_url)
    data.update({
        "pages": [{"cid": v.cid, "page": 1, "from": "vupload", "part": v.title, "duration": v.duration,
                   "vid": "", "weblink": "", "dimension": data["dimension"]}],
        # Without honours the real API gives an empty object, not an empty list.
        "honor_reply": {"honor": [dict(h) for h in v.honors]} if v.honors else {},
        "desc_v2": [{"raw_text": data["desc"], "type": 1, "biz_id": 0}],
        "is_upower_exclusive": False, "is_chargeable_season": False, "is_story": False,
        "no_cache": False, "subtitle": {"allow_submit": False, "list": []},
    })
    return data


def detail_data(world: World, v: Video, base_url: str) -> dict:
    """``view/detail``: ``View``, ``Card`` (the uploader's followers) and ``Related`` in one reply."""
    return {
        "View": view_data(world, v, base_url),
        "Card": card_data(world, v.owner_mid, base_url),
        "Tags": [{"tag_id": 1000 + v.tid_v2, "tag_name": V2_NAMES[v.tid_v2], "tag_type": "old_channel"}],
        "Reply": {"page": None, "replies": []},
        "Related": [list_item(world, r, base_url) for r in world.related(v)],
        "Spec": None, "hot_share": {"show": False, "list": []}, "elec": None, "emergency": {"no_like": False},
        "view_addition": None, "guide": None, "query_tags": None, "participle": None, "module_ctrl": None,
        "replace_recommend": False,
    }


def page_of(items: list, pn: int, ps: int) -> list:
    return items[(pn - 1) * ps: pn * ps]


def popular_data(world: World, pn: int, ps: int, base_url: str) -> dict:
    items = []
    for bvid in page_of(world.popular, pn, ps):
        v = world.by_bvid[bvid]
        if not v.visible:  # a video that went private or under review leaves every list
            continue
        obj = list_item(world, v, base_url)
        big = v.stat["views"] >= 1_000_000
        obj["rcmd_reason"] = {"content": "百万播放" if big else "", "corner_mark": 0}
        items.append(obj)
    return {"list": items, "no_more": pn * ps >= len(world.popular)}


def ranking_data(world: World, videos: list[Video], base_url: str) -> dict:
    items = []
    for rank, v in enumerate(v for v in videos if v.visible):
        obj = list_item(world, v, base_url)
        obj["score"] = max(1, v.stat["views"] // 10 + v.stat["likes"] * 5 - rank)
        items.append(obj)
    return {"note": "根据稿件内容质量、近期的数据综合展示，动态更新", "list": items}


def series_list_data(world: World) -> dict:
    return {"list": [{"number": i.number, "subject": i.subject, "status": 2, "name": i.name}
                     for i in reversed(world.issues)]}


def series_one_data(world: World, issue: Issue, base_url: str) -> dict:
    items = []
    for bvid in issue.bvids:
        if not world.by_bvid[bvid].visible:
            continue
        obj = list_item(world, world.by_bvid[bvid], base_url)
        obj["rcmd_reason"] = "本周值得一看"
        items.append(obj)
    config = {
        "id": issue.number, "type": "weekly_selected", "number": issue.number, "subject": issue.subject,
        "stime": 1735689600 + issue.number * 7 * 86400, "etime": 1735689600 + (issue.number + 1) * 7 * 86400,
        "status": 2, "name": issue.name, "label": f"第{issue.number}期", "hint": "", "color": 2,
        "cover": "", "share_title": issue.name, "share_subtitle": issue.subject, "media_id": 0,
    }
    return {"config": config, "reminder": "", "list": items}


def precious_data(world: World, page: int, page_size: int, base_url: str) -> dict:
    items = []
    for bvid in page_of([b for b in world.precious if world.by_bvid[b].visible], page, page_size):
        obj = list_item(world, world.by_bvid[bvid], base_url)
        obj["achievement"] = "站内高质量内容"
        items.append(obj)
    return {"title": "入站必刷", "media_id": 1234567, "explain": "收录站内超高人气优质内容", "list": items}


def _length(seconds: int) -> str:
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def uploads_data(world: World, mid: int, pn: int, ps: int, base_url: str) -> dict:
    """``x/space/wbi/arc/search``: ``list.vlist`` newest first and ``page``; no v2 ids, no full counters."""
    uploads = world.uploads.get(mid, [])
    owner = world.uploaders.get(mid)
    vlist = [{
        "comment": v.stat["replies"], "typeid": v.tid, "play": v.stat["views"], "pic": cover_url(base_url, v),
        "subtitle": "", "description": "-", "copyright": "1", "title": v.title, "review": 0,
        "author": owner.name if owner else "", "mid": mid, "created": v.pubdate, "length": _length(v.duration),
        "video_review": v.stat["danmaku"], "aid": v.aid, "bvid": v.bvid, "hide_click": False, "is_pay": 0,
        "is_union_video": 0, "is_steins_gate": 0, "is_live_playback": 0, "meta": None, "is_avoided": 0,
        "attribute": 16512, "is_charging_arc": False, "vt": 0, "enable_vt": 0, "vt_display": "",
    } for v in page_of(uploads, pn, ps)]
    return {"list": {"slist": [], "tlist": None, "vlist": vlist},
            "page": {"pn": pn, "ps": ps, "count": len(uploads)},
            "episodic_button": {"text": "播放全部", "uri": f"//www.bilibili.com/medialist/play/{mid}"},
            "is_risk": False, "gaia_res_type": 0, "gaia_data": None}


def feed_data(world: World, display_id: int, count: int, base_url: str) -> dict:
    """``region/feed/rcmd``: a stream of Knowledge videos in the short recommendation shape; it runs dry."""
    items = []
    for v in page_of(world.feed, display_id, count):
        owner = world.uploaders[v.owner_mid]
        items.append({"id": v.aid, "aid": v.aid, "bvid": v.bvid, "cid": v.cid, "title": v.title,
                      "cover": cover_url(base_url, v), "duration": v.duration, "pubdate": v.pubdate,
                      "stat": {"view": v.stat["views"], "like": v.stat["likes"], "danmaku": v.stat["danmaku"]},
                      "author": {"mid": owner.mid, "name": owner.name, "face": face_url(base_url, world, owner.mid)},
                      "trackid": "web_region_1010", "goto": "av", "rcmd_reason": None})
    return {"archives": items}


def relation_data(world: World, mid: int) -> dict:
    u = world.uploaders[mid]
    return {"mid": mid, "following": u.following, "whisper": 0, "black": 0, "follower": u.followers}


def card_data(world: World, mid: int, base_url: str) -> dict:
    u = world.uploaders[mid]
    videos = world.uploads[mid]
    card = {
        "mid": str(mid), "name": u.name, "approve": False, "sex": "保密", "rank": "10000",
        "face": face_url(base_url, world, mid), "fans": u.followers, "friend": u.following,
        "attention": u.following, "sign": "", "level_info": {"current_level": 5 + mid % 2},
        "official": {"role": 0, "title": "", "desc": "", "type": -1}, "vip": {"type": 0, "status": 0},
    }
    return {"card": card, "space": {"s_img": "", "l_img": ""}, "following": False,
            "archive_count": len(videos), "article_count": 0, "follower": u.followers,
            "like_num": sum(v.stat["likes"] for v in videos)}
