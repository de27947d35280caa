"""The JSON endpoints: parameter checks, the WBI signature check, and the envelope each one answers with."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from bilipop.crawl import wbi
from bilipop.sim import payloads
from bilipop.sim.payloads import envelope

if TYPE_CHECKING:
    from bilipop.sim.server import SimServer

_BVID = re.compile(r"BV1[1-9A-HJ-NP-Za-km-z]{9}")
MAX_PS = 50


class _BadRequest(Exception):
    pass


def _int(query: dict[str, str], name: str, default: int | None = None, low: int = 1, high: int | None = None) -> int:
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


def nav(sim: SimServer, query: dict[str, str]) -> dict:
    # Logged out, nav still answers with the keys (code -101), as the real one does.
    return envelope(-101, {
        "isLogin": False,
        "wbi_img": {"img_url": f"https://i0.hdslb.com/bfs/wbi/{sim.img_key}.png",
                    "sub_url": f"https://i0.hdslb.com/bfs/wbi/{sim.sub_key}.png"},
    })


def listing(sim: SimServer, query: dict[str, str]) -> dict:
    rid = _int(query, "rid")
    pn, ps = _int(query, "pn", 1), _int(query, "ps", 20, high=MAX_PS)
    return envelope(0, payloads.listing_data(sim.world, rid, pn, ps, sim.base_url))


def popular(sim: SimServer, query: dict[str, str]) -> dict:
    pn, ps = _int(query, "pn", 1), _int(query, "ps", 20, high=MAX_PS)
    return envelope(0, payloads.popular_data(sim.world, pn, ps, sim.base_url))


def series_list(sim: SimServer, query: dict[str, str]) -> dict:
    return envelope(0, payloads.series_list_data(sim.world))


def series_one(sim: SimServer, query: dict[str, str]) -> dict:
    number = _int(query, "number")
    issue = next((i for i in sim.world.issues if i.number == number), None)
    if issue is None:
        return envelope(-404)
    return envelope(0, payloads.series_one_data(sim.world, issue, sim.base_url))


def precious(sim: SimServer, query: dict[str, str]) -> dict:
    page, size = _int(query, "page", 1), _int(query, "page_size", 85, high=85)
    return envelope(0, payloads.precious_data(sim.world, page, size, sim.base_url))


def view(sim: SimServer, query: dict[str, str]) -> dict:
    bvid = query.get("bvid")
    if bvid:
        if not _BVID.fullmatch(bvid):
            raise _BadRequest("bvid")
        video = sim.world.video(bvid=bvid)
    else:
        video = sim.world.video(aid=_int(query, "aid"))
    if video is None:
        return envelope(-404)
    if not video.visible:
        return envelope(video.code)
    return envelope(0, payloads.view_data(sim.world, video, sim.base_url))


def relation_stat(sim: SimServer, query: dict[str, str]) -> dict:
    mid = _int(query, "vmid")
    if mid not in sim.world.uploaders:
        return envelope(-404)
    return envelope(0, payloads.relation_data(sim.world, mid))


def card(sim: SimServer, query: dict[str, str]) -> dict:
    mid = _int(query, "mid")
    if mid not in sim.world.uploaders:
        return envelope(-404)
    return envelope(0, payloads.card_data(sim.world, mid, sim.base_url))


ROUTES: dict[str, Callable[[SimServer, dict[str, str]], dict]] = {
    "/x/web-interface/nav": nav,
    "/x/web-interface/newlist": listing,
    "/x/web-interface/dynamic/region": listing,
    "/x/web-interface/popular": popular,
    "/x/web-interface/popular/series/list": series_list,
    "/x/web-interface/popular/series/one": series_one,
    "/x/web-interface/popular/precious": precious,
    "/x/web-interface/view": view,
    "/x/relation/stat": relation_stat,
    "/x/web-interface/card": card,
}
UNSIGNED = {"/x/web-interface/nav"}


def answer(sim: SimServer, path: str, query: dict[str, str]) -> dict:
    """The envelope for one API request (code -352 on a missing or wrong WBI signature)."""
    route = ROUTES.get(path.rstrip("/"))
    if route is None:
        return envelope(-404)
    if path not in UNSIGNED and not wbi.verify(query, sim.mixin):
        digest = hashlib.md5(f"{path}?{query.get('wts')}".encode()).hexdigest()
        return envelope(-352, {"v_voucher": f"voucher_{digest[:8]}-{digest[8:12]}-{digest[12:16]}"})
    try:
        with sim.lock:
            return route(sim, query)
    except _BadRequest as exc:
        return envelope(-400, None, f"请求错误: invalid parameter {exc.args[0]}")
