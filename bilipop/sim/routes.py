"""The JSON endpoints of the 2026 site: parameter checks, the checks each endpoint makes (WBI signature, anti-bot
fields, Referer), and the envelope it answers with (docs/reference.md, "The Bilibili web API as bilipop uses it").

Endpoints that check nothing still answer signed requests ("harmless where unchecked"). ``series/one`` refuses an
unsigned request with -352; ``arc/search`` answers -352 (with ``v_voucher``) without the anti-bot fields or a space
Referer, and code 0 with only ``data.v_voucher`` on a bad signature; the ``wbi/`` video paths answer -403 on a stale
signature; ``region/feed/rcmd`` answers code 0 with only ``v_voucher``. The old partition listings are dead as
recorded: ``newlist`` lists nothing, ``dynamic/region`` answers -404.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bilipop.crawl import wbi
from bilipop.crawl.api import KNOWLEDGE_MAIN
from bilipop.sim import payloads
from bilipop.sim.payloads import envelope, voucher

if TYPE_CHECKING:
    from bilipop.sim.server import SimServer

_BVID = re.compile(r"BV1[1-9A-HJ-NP-Za-km-z]{9}")
MAX_PS = 50
MAX_UPLOADS_PS = 50
ANTI_BOT = ("dm_img_list", "dm_img_str", "dm_cover_img_str", "dm_img_inter")


class _BadRequest(Exception):
    pass


@dataclass
class Reply:
    """An envelope plus the headers to send with it."""

    body: dict
    headers: dict[str, str]


def _int(query: Mapping[str, str], name: str, default: int | None = None, low: int = 1,
         high: int | None = None) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        if default is None:
            raise _BadRequest(name)
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadRequest(name) from None
    if value < low:
        raise _BadRequest(name)
    return min(value, high) if high is not None else value


def _video(sim: SimServer, query: Mapping[str, str]):  # noqa: ANN202
    bvid = query.get("bvid")
    if bvid:
        if not _BVID.fullmatch(bvid):
            raise _BadRequest("bvid")
        return sim.world.video(bvid=bvid)
    return sim.world.video(aid=_int(query, "aid"))


def nav(sim: SimServer, query: Mapping[str, str]) -> dict:
    # Logged out, nav still answers with the keys (code -101), as the real one does.
    return envelope(-101, {
        "isLogin": False,
        "wbi_img": {"img_url": f"https://i0.hdslb.com/bfs/wbi/{sim.img_key}.png",
                    "sub_url": f"https://i0.hdslb.com/bfs/wbi/{sim.sub_key}.png"},
    })


def finger_spi(sim: SimServer, query: Mapping[str, str]) -> dict:
    n = sim.next_visitor()
    return envelope(0, {"b_3": f"{n:08X}-5C1B-4A8E-9D7F-{n:012X}infoc", "b_4": f"{n:08X}-B4-{n:06X}-ab12cd-infoc"})


def newlist(sim: SimServer, query: Mapping[str, str]) -> dict:
    # Dead since 2025, politely: code 0, "OK", nothing listed, whatever the rid.
    pn, ps = _int(query, "pn", 1), _int(query, "ps", 20, high=MAX_PS)
    return envelope(0, {"archives": [], "page": {"count": 0, "num": pn, "size": ps}}, "OK")


def dynamic_region(sim: SimServer, query: Mapping[str, str]) -> dict:
    return envelope(-404)


def popular(sim: SimServer, query: Mapping[str, str]) -> dict:
    pn, ps = _int(query, "pn", 1), _int(query, "ps", 20, high=MAX_PS)
    return envelope(0, payloads.popular_data(sim.world, pn, ps, sim.base_url))


def ranking(sim: SimServer, query: Mapping[str, str]) -> dict:
    # ``rid``, not ``tid``: with tid (or no rid) the whole-site list; an old rid gives stale 2025 data.
    rid = _int(query, "rid", 0, low=0)
    world = sim.world
    videos = world.ranking if rid == KNOWLEDGE_MAIN else world.site_ranking if rid == 0 else world.stale_ranking
    return envelope(0, payloads.ranking_data(world, videos, sim.base_url))


def series_list(sim: SimServer, query: Mapping[str, str]) -> dict:
    return envelope(0, payloads.series_list_data(sim.world))


def series_one(sim: SimServer, query: Mapping[str, str]) -> dict:
    number = _int(query, "number")
    issue = next((i for i in sim.world.issues if i.number == number), None)
    if issue is None:
        return envelope(-404)
    return envelope(0, payloads.series_one_data(sim.world, issue, sim.base_url))


def precious(sim: SimServer, query: Mapping[str, str]) -> dict:
    page, size = _int(query, "page", 1), _int(query, "page_size", 85, high=100)
    return envelope(0, payloads.precious_data(sim.world, page, size, sim.base_url))


def uploads(sim: SimServer, query: Mapping[str, str]) -> dict:
    mid = _int(query, "mid")
    pn, ps = _int(query, "pn", 1), _int(query, "ps", 30, high=MAX_UPLOADS_PS)
    if mid not in sim.world.uploaders:
        return envelope(-404)
    return envelope(0, payloads.uploads_data(sim.world, mid, pn, ps, sim.base_url))


def _video_reply(shape: Callable) -> Callable[[SimServer, Mapping[str, str]], dict]:
    """An endpoint about one video: -404 when there is none, its own code when it is not visible, else ``shape``."""
    def route(sim: SimServer, query: Mapping[str, str]) -> dict:
        video = _video(sim, query)
        if video is None:
            return envelope(-404)
        if not video.visible:
            return envelope(video.code)
        return envelope(0, shape(sim.world, video, sim.base_url))
    return route


view = _video_reply(payloads.view_data)
view_detail = _video_reply(payloads.detail_data)


def archive_related(sim: SimServer, query: Mapping[str, str]) -> dict:
    video = _video(sim, query)
    if video is None or not video.visible:
        return envelope(-404)
    return envelope(0, [payloads.list_item(sim.world, r, sim.base_url) for r in sim.world.related(video)])


def region_feed(sim: SimServer, query: Mapping[str, str]) -> dict:
    if _int(query, "from_region", 0, low=0) != KNOWLEDGE_MAIN:
        return envelope(0, {"archives": []})
    display_id, count = _int(query, "display_id", 1), _int(query, "request_cnt", 15, high=30)
    return envelope(0, payloads.feed_data(sim.world, display_id, count, sim.base_url))


def relation_stat(sim: SimServer, query: Mapping[str, str]) -> dict:
    mid = _int(query, "vmid")
    if mid not in sim.world.uploaders:
        return envelope(-404)
    return envelope(0, payloads.relation_data(sim.world, mid))


def card(sim: SimServer, query: Mapping[str, str]) -> dict:
    mid = _int(query, "mid")
    if mid not in sim.world.uploaders:
        return envelope(-404)
    return envelope(0, payloads.card_data(sim.world, mid, sim.base_url))


ROUTES: dict[str, Callable[[SimServer, Mapping[str, str]], dict]] = {
    "/x/web-interface/nav": nav,
    "/x/frontend/finger/spi": finger_spi,
    "/x/web-interface/newlist": newlist,
    "/x/web-interface/dynamic/region": dynamic_region,
    "/x/web-interface/popular": popular,
    "/x/web-interface/ranking/v2": ranking,
    "/x/web-interface/popular/series/list": series_list,
    "/x/web-interface/popular/series/one": series_one,
    "/x/web-interface/popular/precious": precious,
    "/x/space/wbi/arc/search": uploads,
    "/x/web-interface/view": view,
    "/x/web-interface/wbi/view": view,
    "/x/web-interface/view/detail": view_detail,
    "/x/web-interface/wbi/view/detail": view_detail,
    "/x/web-interface/archive/related": archive_related,
    "/x/web-interface/region/feed/rcmd": region_feed,
    "/x/relation/stat": relation_stat,
    "/x/web-interface/card": card,
}
#: path -> what a missing or bad WBI signature gets: "352" (code -352 with v_voucher), "voucher" (code 0 with
#: only data.v_voucher) or "403" (a stale key on the wbi/ video paths). Other paths do not check.
SIGNED = {
    "/x/web-interface/popular/series/one": "352",
    "/x/space/wbi/arc/search": "voucher",
    "/x/web-interface/wbi/view": "403",
    "/x/web-interface/wbi/view/detail": "403",
    "/x/web-interface/region/feed/rcmd": "voucher",
}


def risk_reply(seed: str) -> Reply:
    """-352 risk control: ``data.v_voucher`` and the ``x-bili-gaia-vvoucher`` header."""
    token = voucher(seed)
    return Reply(envelope(-352, {"v_voucher": token}), {"x-bili-gaia-vvoucher": token})


def voucher_reply(seed: str) -> Reply:
    """Code 0 with nothing but ``data.v_voucher``: a block that looks like success."""
    return Reply(envelope(0, {"v_voucher": voucher(seed)}), {})


def _anti_bot_ok(query: Mapping[str, str], headers: Mapping[str, str]) -> bool:
    """The fields a browser sends to ``arc/search`` (docs/reference.md, "Enumeration") and the space page as Referer."""
    if any(not query.get(k) for k in ANTI_BOT) or query.get("dm_img_list") != "[]":
        return False
    for key in ("dm_img_str", "dm_cover_img_str"):
        try:
            base64.b64decode(query[key] + "==", validate=True)
        except (binascii.Error, ValueError):
            return False
    try:
        inter = json.loads(query["dm_img_inter"])
    except ValueError:
        return False
    if not isinstance(inter, dict) or {"ds", "wh", "of"} - set(inter):
        return False
    return headers.get("referer", "").startswith("https://space.bilibili.com/")


def answer(sim: SimServer, path: str, query: Mapping[str, str], headers: Mapping[str, str]) -> Reply:
    """The reply to one API request (``headers`` with lower-case names)."""
    route = ROUTES.get(path.rstrip("/"))
    if route is None:
        return Reply(envelope(-404), {})
    check = SIGNED.get(path.rstrip("/"))
    seed = f"{path}?{query.get('wts')}"
    if check == "voucher" and path.endswith("arc/search") and not _anti_bot_ok(query, headers):
        return risk_reply(seed)
    if check and not wbi.verify(query, sim.mixin):
        if check == "352":
            return risk_reply(seed)
        if check == "voucher":
            return voucher_reply(seed)
        return Reply(envelope(-403), {})
    try:
        with sim.lock:
            return Reply(route(sim, query), {})
    except _BadRequest as exc:
        return Reply(envelope(-400, None, f"请求错误: invalid parameter {exc.args[0]}"), {})
