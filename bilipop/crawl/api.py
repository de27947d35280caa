"""Tolerant parsing of Bilibili's JSON replies (BILIBILI_API.md): unknown fields are ignored, missing optional ones
get a default, and a field of the wrong type is reported with its path instead of being guessed at.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bilipop.crawl import wbi
from bilipop.errors import CrawlError

#: Knowledge (知识, main partition 36) sub-partitions of the old ``tid`` scheme; ``tname`` comes back empty in 2026.
KNOWLEDGE_TIDS: dict[int, str] = {
    201: "科学科普",
    124: "社科·法律·心理",
    228: "人文历史",
    207: "财经商业",
    208: "校园学习",
    209: "职业职场",
    229: "设计·创意",
    122: "野生技术协会",
}
SECTIONS = {"knowledge": KNOWLEDGE_TIDS}

#: ``honor_reply.honor[].type`` values that mean "on the hot list": 入站必刷, 每周必看, 热门, 热门收录.
HOT_HONOR_TYPES = frozenset({1, 2, 4, 7})
#: ``view`` codes that are facts about one video (gone, under review, private, no permission), not crawl failures.
VIDEO_SKIP_CODES = frozenset({62002, 62004, 62012, -404, -403})

#: stat field -> store column. ``None`` when missing: the filter step drops and counts such rows.
STAT_FIELDS = {
    "view": "views",
    "like": "likes",
    "coin": "coins",
    "favorite": "favorites",
    "share": "shares",
    "danmaku": "danmaku",
    "reply": "replies",
}


class ApiFormatError(CrawlError):
    """A reply does not have the documented shape."""


@dataclass(frozen=True)
class Video:
    """One video object, as stored."""

    bvid: str
    aid: int | None
    title: str
    tid: int | None
    tid_v2: int | None
    pic: str
    pubdate: int | None
    duration: int | None
    owner_mid: int
    owner_name: str
    views: int | None
    likes: int | None
    coins: int | None
    favorites: int | None
    shares: int | None
    danmaku: int | None
    replies: int | None


@dataclass(frozen=True)
class ListingPage:
    videos: list[Video]
    bad_items: int  # archives that could not be parsed (logged and skipped)
    count: int | None  # total videos in the listing, when given
    size: int


def _get(obj: Any, key: str, where: str) -> Any:
    if not isinstance(obj, Mapping):
        raise ApiFormatError(f"{where} should be an object, got {type(obj).__name__}")
    return obj.get(key)


def as_int(value: Any, where: str, *, default: int | None = None, required: bool = False) -> int | None:
    """An integer field: ints, integral floats and digit strings (``card.mid`` is a string) are accepted."""
    if value is None:
        if required:
            raise ApiFormatError(f"{where} is missing")
        return default
    if isinstance(value, bool):
        raise ApiFormatError(f"{where} should be a number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise ApiFormatError(f"{where} should be a number, got {value!r}")


def as_str(value: Any, where: str, *, default: str = "", required: bool = False) -> str:
    """A text field; numbers are accepted as their text."""
    if value is None:
        if required:
            raise ApiFormatError(f"{where} is missing")
        return default
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ApiFormatError(f"{where} should be text, got {type(value).__name__}")


def data_of(envelope: Mapping[str, Any], where: str) -> Any:
    """The ``data`` of a successful reply."""
    data = envelope.get("data")
    if data is None:
        raise ApiFormatError(f"{where}: the reply has no data")
    return data


def parse_video(obj: Any, where: str = "video") -> Video:
    """A video object from a listing, a hot list or ``view``.

    Raises:
        ApiFormatError: ``bvid`` or ``owner.mid`` is missing, or a field has the wrong type.
    """
    bvid = as_str(_get(obj, "bvid", where), f"{where}.bvid", required=True)
    if not (bvid.startswith("BV") and len(bvid) == 12):
        raise ApiFormatError(f"{where}.bvid {bvid!r} is not a BV id")
    owner = _get(obj, "owner", where) or {}
    stat = _get(obj, "stat", where) or {}
    counters = {
        column: as_int(_get(stat, field, f"{where}.stat"), f"{where}.stat.{field}")
        for field, column in STAT_FIELDS.items()
    }
    for column, value in counters.items():
        if value is not None and value < 0:
            counters[column] = None  # a negative counter is a site quirk, not a number to train on
    return Video(
        bvid=bvid,
        aid=as_int(obj.get("aid"), f"{where}.aid"),
        title=as_str(obj.get("title"), f"{where}.title"),
        tid=as_int(obj.get("tid"), f"{where}.tid"),
        tid_v2=as_int(obj.get("tid_v2"), f"{where}.tid_v2"),
        pic=as_str(obj.get("pic"), f"{where}.pic"),
        pubdate=as_int(obj.get("pubdate"), f"{where}.pubdate"),
        duration=as_int(obj.get("duration"), f"{where}.duration"),
        owner_mid=as_int(_get(owner, "mid", f"{where}.owner"), f"{where}.owner.mid", required=True),
        owner_name=as_str(_get(owner, "name", f"{where}.owner"), f"{where}.owner.name"),
        **counters,
    )


def parse_listing(envelope: Mapping[str, Any], where: str) -> ListingPage:
    """A page of ``newlist`` or ``dynamic/region``; unparseable archives are counted, not fatal."""
    data = data_of(envelope, where)
    archives = _get(data, "archives", where) or []
    if not isinstance(archives, list):
        raise ApiFormatError(f"{where}.archives should be a list")
    page = _get(data, "page", where) or {}
    videos, bad = [], 0
    for i, item in enumerate(archives):
        try:
            videos.append(parse_video(item, f"{where}.archives[{i}]"))
        except ApiFormatError:
            bad += 1
    return ListingPage(
        videos=videos,
        bad_items=bad,
        count=as_int(_get(page, "count", f"{where}.page"), f"{where}.page.count"),
        size=as_int(_get(page, "size", f"{where}.page"), f"{where}.page.size", default=len(archives)) or 0,
    )


def parse_owner_mids(envelope: Mapping[str, Any], where: str) -> list[tuple[int, str]]:
    """``(owner.mid, bvid)`` of each item of a hot list (popular, a weekly issue, precious); bad items skipped."""
    data = data_of(envelope, where)
    items = _get(data, "list", where) or []
    if not isinstance(items, list):
        raise ApiFormatError(f"{where}.list should be a list")
    found = []
    for i, item in enumerate(items):
        try:
            owner = _get(item, "owner", f"{where}.list[{i}]") or {}
            mid = as_int(_get(owner, "mid", f"{where}.list[{i}].owner"), f"{where}.list[{i}].owner.mid",
                         required=True)
            found.append((mid, as_str(item.get("bvid"), f"{where}.list[{i}].bvid")))
        except ApiFormatError:
            continue
    return found


def parse_no_more(envelope: Mapping[str, Any], where: str) -> bool:
    """Whether a paged hot list says it has no further page (absent: assume none)."""
    value = _get(data_of(envelope, where), "no_more", where)
    return bool(value) if value is not None else True


def parse_series_numbers(envelope: Mapping[str, Any], where: str) -> list[int]:
    """The issue numbers of the weekly must-watch series list."""
    items = _get(data_of(envelope, where), "list", where) or []
    if not isinstance(items, list):
        raise ApiFormatError(f"{where}.list should be a list")
    return [as_int(_get(item, "number", f"{where}.list[{i}]"), f"{where}.list[{i}].number", required=True)
            for i, item in enumerate(items)]


def parse_honor_types(envelope: Mapping[str, Any], where: str) -> list[int]:
    """Honour types of a ``view`` reply (``honor_reply.honor[].type``); none when absent."""
    data = data_of(envelope, where)
    reply = _get(data, "honor_reply", where) or {}
    honors = _get(reply, "honor", f"{where}.honor_reply") or []
    if not isinstance(honors, list):
        raise ApiFormatError(f"{where}.honor_reply.honor should be a list")
    return [t for i, h in enumerate(honors)
            if (t := as_int(_get(h, "type", f"{where}.honor[{i}]"), f"{where}.honor[{i}].type")) is not None]


def parse_follower(envelope: Mapping[str, Any], where: str) -> int:
    """``data.follower`` of ``relation/stat`` or ``card`` (``card`` also has ``data.card.fans``)."""
    data = data_of(envelope, where)
    follower = _get(data, "follower", where)
    if follower is None and isinstance(data.get("card"), Mapping):
        follower = data["card"].get("fans")
    return as_int(follower, f"{where}.follower", required=True)


def parse_wbi_keys(envelope: Mapping[str, Any]) -> str:
    """The mixin key from ``nav`` (answered with code -101 when logged out, still carrying ``wbi_img``)."""
    data = data_of(envelope, "nav")
    img = _get(data, "wbi_img", "nav") or {}
    img_key = wbi.key_from_url(as_str(_get(img, "img_url", "nav.wbi_img"), "nav.wbi_img.img_url", required=True))
    sub_key = wbi.key_from_url(as_str(img.get("sub_url"), "nav.wbi_img.sub_url", required=True))
    if len(img_key) != 32 or len(sub_key) != 32:
        raise ApiFormatError("nav.wbi_img does not hold two 32-character keys")
    return wbi.mixin_key(img_key, sub_key)
