"""The JSON shapes the simulated API answers with, following BILIBILI_API.md (plus a few fields nobody needs, so
parsers learn to ignore them)."""

from __future__ import annotations

from bilipop.crawl.api import KNOWLEDGE_TIDS
from bilipop.sim.world import NAME_CHANGE, Issue, Video, World, cover_url

MESSAGES = {
    0: "0", -101: "账号未登录", -352: "-352", -400: "请求错误", -404: "啥都木有", -412: "请求被拦截",
    -799: "请求过于频繁，请稍后再试", 62002: "稿件不可见", 62004: "稿件审核中", 62012: "仅UP主自己可见",
}
PROVINCES = ["北京", "上海", "广东", "浙江", "四川", "湖北", "江苏", "陕西"]


def envelope(code: int, data: object = None, message: str | None = None) -> dict:
    return {"code": code, "message": message or MESSAGES.get(code, str(code)), "ttl": 1, "data": data}


def face_url(base_url: str, world: World, mid: int) -> str:
    return f"{base_url}/bfs/face/{world.uploaders[mid].face}.jpg"


def video_object(world: World, v: Video, base_url: str) -> dict:
    """A video as listings and ``view`` give it."""
    owner = world.uploaders[v.owner_mid]
    s = v.stat
    return {
        "aid": v.aid, "videos": 1, "tid": v.tid, "tid_v2": v.tid_v2,
        "tname": KNOWLEDGE_TIDS[v.tid] if v.pubdate < NAME_CHANGE else "", "tname_v2": "",
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


def page_of(items: list, pn: int, ps: int) -> list:
    return items[(pn - 1) * ps: pn * ps]


def listing_data(world: World, tid: int, pn: int, ps: int, base_url: str) -> dict:
    videos = world.listing(tid)
    return {
        "archives": [video_object(world, v, base_url) for v in page_of(videos, pn, ps)],
        "page": {"count": len(videos), "num": pn, "size": ps},
    }


def popular_data(world: World, pn: int, ps: int, base_url: str) -> dict:
    items = []
    for bvid in page_of(world.popular, pn, ps):
        v = world.by_bvid[bvid]
        obj = video_object(world, v, base_url)
        big = v.stat["views"] >= 1_000_000
        obj["rcmd_reason"] = {"content": "百万播放" if big else "", "corner_mark": 0}
        items.append(obj)
    return {"list": items, "no_more": pn * ps >= len(world.popular)}


def series_list_data(world: World) -> dict:
    return {"list": [{"number": i.number, "subject": i.subject, "status": 2, "name": i.name}
                     for i in reversed(world.issues)]}


def series_one_data(world: World, issue: Issue, base_url: str) -> dict:
    items = []
    for bvid in issue.bvids:
        obj = video_object(world, world.by_bvid[bvid], base_url)
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
    for bvid in page_of(world.precious, page, page_size):
        obj = video_object(world, world.by_bvid[bvid], base_url)
        obj["achievement"] = "站内高质量内容"
        items.append(obj)
    return {"title": "入站必刷", "media_id": 1234567, "explain": "收录站内超高人气优质内容", "list": items}


def relation_data(world: World, mid: int) -> dict:
    u = world.uploaders[mid]
    return {"mid": mid, "following": u.following, "whisper": 0, "black": 0, "follower": u.followers}


def card_data(world: World, mid: int, base_url: str) -> dict:
    u = world.uploaders[mid]
    videos = [v for v in world.videos if v.owner_mid == mid]
    card = {
        "mid": str(mid), "name": u.name, "approve": False, "sex": "保密", "rank": "10000",
        "face": face_url(base_url, world, mid), "fans": u.followers, "friend": u.following,
        "attention": u.following, "sign": "", "level_info": {"current_level": 5 + mid % 2},
        "official": {"role": 0, "title": "", "desc": "", "type": -1}, "vip": {"type": 0, "status": 0},
    }
    return {"card": card, "space": {"s_img": "", "l_img": ""}, "following": False,
            "archive_count": len(videos), "article_count": 0, "follower": u.followers,
            "like_num": sum(v.stat["likes"] for v in videos)}
