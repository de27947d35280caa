"""Tolerant parsing of Bilibili's JSON replies (docs/reference.md, "The Bilibili web API as bilipop uses it"):
unknown fields are ignored, missing optional ones get a default, and a field of the wrong type is reported with its
path instead of being guessed at.

Field names differ by endpoint (docs/reference.md, "Partitions"): list items (hot lists, Related) carry ``tidv2`` and
``pid_v2``; single-video objects (``view``, ``view/detail``'s ``View``) carry ``tid_v2`` and no main id, which is
then taken from this module's own table (``tname`` and ``tname_v2`` are often empty).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, overload

from bilipop.crawl import wbi
from bilipop.errors import CrawlError

#: The JSON API's origin on the real site: crawl's default ``api_base`` (``--api-base``).
DEFAULT_API_BASE = "https://api.bilibili.com"

#: The 2025 ("v2") Knowledge main partition and its sub-partitions (docs/reference.md, "Partitions").
KNOWLEDGE_MAIN = 1010
KNOWLEDGE_V2: dict[int, str] = {
    2084: "应试教育",
    2085: "非应试语言学习",
    2086: "大学专业知识",
    2087: "商业财经",
    2088: "社会观察",
    2089: "时政解读",
    2090: "人文历史",
    2091: "设计艺术",
    2092: "心理杂谈",
    2093: "职场发展",
    2094: "科学科普",
    2095: "其他知识杂谈",
}
#: The old (before 2025) Knowledge main partition 36 and its sub-partitions: still on old videos, kept for analysis,
#: never used to decide membership.
OLD_KNOWLEDGE_MAIN = 36
OLD_KNOWLEDGE_TIDS: dict[int, str] = {
    201: "科学科普",
    124: "社科·法律·心理",
    228: "人文历史",
    207: "财经商业",
    208: "校园学习",
    209: "职业职场",
    229: "设计·创意",
    122: "野生技术协会",
}
SECTIONS = {"knowledge": (KNOWLEDGE_MAIN, KNOWLEDGE_V2)}

#: ``honor_reply.honor[].type`` values that mean "on the hot list": 入站必刷, 每周必看, 热门, 热门收录.
HOT_HONOR_TYPES = frozenset({1, 2, 4, 7})
#: ``view`` codes that are facts about one video (gone, under review, private, bad request), not crawl failures.
VIDEO_SKIP_CODES = frozenset({62002, 62004, 62012, -404, -400, -403})

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
#: ``BV1`` + 9 base58 characters (no 0, O, I or l): anything else is never used in a path or a request.
BVID = re.compile(r"BV1[1-9A-HJ-NP-Za-km-z]{9}")


class ApiFormatError(CrawlError):
    """A reply does not have the documented shape."""


class BadId(ApiFormatError):
    """An item whose ``bvid`` is not a BV id (skipped and counted, never used in a path)."""


@dataclass(frozen=True)
class Video:
    """One video object, as stored."""

    bvid: str
    aid: int | None
    title: str
    tid: int | None
    tid_v2: int | None
    pid_v2: int | None
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

    @property
    def knowledge(self) -> bool:
        """In the Knowledge section by its v2 ids (the old ``tid`` does not decide)."""
        return self.pid_v2 == KNOWLEDGE_MAIN or self.tid_v2 in KNOWLEDGE_V2

    @property
    def has_counters(self) -> bool:
        return all(getattr(self, c) is not None for c in STAT_FIELDS.values())


@dataclass(frozen=True)
class Upload:
    """One item of an uploader's upload list (``arc/search``): no v2 ids, no full counters."""

    bvid: str
    mid: int
    created: int | None
    typeid: int | None


@dataclass(frozen=True)
class UploadPage:
    uploads: list[Upload]
    bad_items: int
    count: int | None


@dataclass(frozen=True)
class Detail:
    """``view/detail``: the video, its honours, the uploader's followers and the Related items."""

    video: Video
    honors: list[int]
    followers: int | None
    related: list[Video]
    bad_related: int


def _get(obj: Any, key: str, where: str) -> Any:
    if not isinstance(obj, Mapping):
        raise ApiFormatError(f"{where} should be an object, got {type(obj).__name__}")
    return obj.get(key)


@overload
def as_int(value: Any, where: str, *, default: int | None = None, required: Literal[True]) -> int: ...


@overload
def as_int(value: Any, where: str, *, default: int | None = None, required: bool = False) -> int | None: ...


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


def check_bvid(value: Any, where: str) -> str:
    """The bvid, or BadId: only ``BV1`` + 9 base58 characters is ever used in a request or a file name."""
    bvid = as_str(value, f"{where}.bvid", required=True)
    if not BVID.fullmatch(bvid):
        raise BadId(f"{where}.bvid {bvid[:40]!r} is not a BV id (BV1 + 9 base58 characters)")
    return bvid


def main_of(tid_v2: int | None) -> int | None:
    """The v2 main partition of a v2 sub-partition, from our own table (None when not Knowledge or unknown)."""
    return KNOWLEDGE_MAIN if tid_v2 in KNOWLEDGE_V2 else None


def data_of(envelope: Mapping[str, Any], where: str) -> Any:
    """The ``data`` of a successful reply."""
    data = envelope.get("data")
    if data is None:
        raise ApiFormatError(f"{where}: the reply has no data")
    return data


def is_voucher_only(envelope: Mapping[str, Any]) -> bool:
    """Code 0 whose data holds only ``v_voucher``: a refused signature or risk control, not an empty success."""
    data = envelope.get("data")
    return envelope.get("code") == 0 and isinstance(data, Mapping) and set(data) == {"v_voucher"}


def parse_video(obj: Any, where: str = "video") -> Video:
    """A video object: a list item (``tidv2``/``pid_v2``) or a single-video object (``tid_v2``).

    Raises:
        BadId: ``bvid`` is not a BV id.
        ApiFormatError: ``bvid`` or ``owner.mid`` is missing, or a field has the wrong type.
    """
    bvid = check_bvid(_get(obj, "bvid", where), where)
    owner = _get(obj, "owner", where) or {}
    stat = _get(obj, "stat", where) or {}
    counters = {
        column: as_int(_get(stat, field, f"{where}.stat"), f"{where}.stat.{field}")
        for field, column in STAT_FIELDS.items()
    }
    for column, value in counters.items():
        if value is not None and value < 0:
            counters[column] = None  # a negative counter is a site quirk, not a number to train on
    tid_v2 = as_int(obj.get("tid_v2"), f"{where}.tid_v2")
    if tid_v2 is None:
        tid_v2 = as_int(obj.get("tidv2"), f"{where}.tidv2")
    pid_v2 = as_int(obj.get("pid_v2"), f"{where}.pid_v2")
    if pid_v2 is None:
        pid_v2 = main_of(tid_v2)
    return Video(
        bvid=bvid,
        aid=as_int(obj.get("aid"), f"{where}.aid"),
        title=as_str(obj.get("title"), f"{where}.title"),
        tid=as_int(obj.get("tid"), f"{where}.tid"),
        tid_v2=tid_v2,
        pid_v2=pid_v2,
        pic=as_str(obj.get("pic"), f"{where}.pic"),
        pubdate=as_int(obj.get("pubdate"), f"{where}.pubdate"),
        duration=as_int(obj.get("duration"), f"{where}.duration"),
        owner_mid=as_int(_get(owner, "mid", f"{where}.owner"), f"{where}.owner.mid", required=True),
        owner_name=as_str(_get(owner, "name", f"{where}.owner"), f"{where}.owner.name"),
        **counters,
    )


def _items(data: Any, key: str, where: str) -> list:
    items = _get(data, key, where) or []
    if not isinstance(items, list):
        raise ApiFormatError(f"{where}.{key} should be a list")
    return items


def parse_video_list(envelope: Mapping[str, Any], where: str) -> tuple[list[Video], int, int]:
    """The items of a hot list (``data.list``): ``(videos, bad ids, other bad items)``; bad items are skipped."""
    videos, bad_ids, bad = [], 0, 0
    for i, item in enumerate(_items(data_of(envelope, where), "list", where)):
        try:
            videos.append(parse_video(item, f"{where}.list[{i}]"))
        except BadId:
            bad_ids += 1
        except ApiFormatError:
            bad += 1
    return videos, bad_ids, bad


def parse_no_more(envelope: Mapping[str, Any], where: str) -> bool:
    """Whether a paged hot list says it has no further page (absent: assume none)."""
    value = _get(data_of(envelope, where), "no_more", where)
    return bool(value) if value is not None else True


def parse_series_numbers(envelope: Mapping[str, Any], where: str) -> list[int]:
    """The issue numbers of the weekly must-watch series list."""
    items = _items(data_of(envelope, where), "list", where)
    return [as_int(_get(item, "number", f"{where}.list[{i}]"), f"{where}.list[{i}].number", required=True)
            for i, item in enumerate(items)]


def parse_uploads(envelope: Mapping[str, Any], where: str) -> UploadPage:
    """A page of ``x/space/wbi/arc/search``: ``data.list.vlist[]`` and ``data.page.count``."""
    data = data_of(envelope, where)
    lists = _get(data, "list", where) or {}
    vlist = _items(lists, "vlist", f"{where}.list")
    uploads, bad = [], 0
    for i, item in enumerate(vlist):
        at = f"{where}.list.vlist[{i}]"
        try:
            uploads.append(Upload(bvid=check_bvid(_get(item, "bvid", at), at),
                                  mid=as_int(item.get("mid"), f"{at}.mid", required=True),
                                  created=as_int(item.get("created"), f"{at}.created"),
                                  typeid=as_int(item.get("typeid"), f"{at}.typeid")))
        except ApiFormatError:
            bad += 1
    page = _get(data, "page", where) or {}
    return UploadPage(uploads, bad, as_int(_get(page, "count", f"{where}.page"), f"{where}.page.count"))


def parse_honor_types(view: Any, where: str) -> list[int]:
    """Honour types of a video object (``honor_reply.honor[].type``); none when absent."""
    reply = _get(view, "honor_reply", where) or {}
    honors = _get(reply, "honor", f"{where}.honor_reply") or []
    if not isinstance(honors, list):
        raise ApiFormatError(f"{where}.honor_reply.honor should be a list")
    return [t for i, h in enumerate(honors)
            if (t := as_int(_get(h, "type", f"{where}.honor[{i}]"), f"{where}.honor[{i}].type")) is not None]


def parse_card_followers(card: Any, where: str) -> int | None:
    """``view/detail``'s ``Card``: ``follower``, or ``card.fans``."""
    if card is None:
        return None
    follower = _get(card, "follower", where)
    if follower is None and isinstance(card.get("card"), Mapping):
        follower = card["card"].get("fans")
    return as_int(follower, f"{where}.follower")


def parse_detail(envelope: Mapping[str, Any], where: str) -> Detail:
    """A ``view/detail`` reply (or a plain ``view`` one, whose data is the video itself).

    Raises:
        ApiFormatError: the video object is unusable (Related items in a bad shape are only counted).
    """
    data = data_of(envelope, where)
    view = _get(data, "View", where)
    if view is None:  # plain ``view``
        view, card, related_items = data, None, []
    else:
        card = _get(data, "Card", where)
        related_items = _items(data, "Related", where)
    video = parse_video(view, f"{where}.View")
    if video.pid_v2 is None and video.tid_v2 is not None:
        video = replace(video, pid_v2=main_of(video.tid_v2))
    related, bad = [], 0
    for i, item in enumerate(related_items):
        try:
            related.append(parse_video(item, f"{where}.Related[{i}]"))
        except ApiFormatError:
            bad += 1
    return Detail(video=video, honors=parse_honor_types(view, f"{where}.View"),
                  followers=parse_card_followers(card, f"{where}.Card"), related=related, bad_related=bad)


def parse_follower(envelope: Mapping[str, Any], where: str) -> int:
    """``data.follower`` of ``relation/stat`` or ``card`` (``card`` also has ``data.card.fans``)."""
    followers = parse_card_followers(data_of(envelope, where), where)
    if followers is None:
        raise ApiFormatError(f"{where}.follower is missing")
    return followers


def parse_buvid(envelope: Mapping[str, Any]) -> dict[str, str]:
    """``finger/spi``: the anonymous ``buvid3``/``buvid4`` cookies (``data.b_3``, ``data.b_4``)."""
    data = data_of(envelope, "finger/spi")
    return {name: value for name, key in (("buvid3", "b_3"), ("buvid4", "b_4"))
            if (value := as_str(_get(data, key, "finger/spi"), f"finger/spi.{key}"))}


def parse_wbi_keys(envelope: Mapping[str, Any]) -> str:
    """The mixin key from ``nav`` (answered with code -101 when logged out, still carrying ``wbi_img``)."""
    data = data_of(envelope, "nav")
    img = _get(data, "wbi_img", "nav") or {}
    img_key = wbi.key_from_url(as_str(_get(img, "img_url", "nav.wbi_img"), "nav.wbi_img.img_url", required=True))
    sub_key = wbi.key_from_url(as_str(img.get("sub_url"), "nav.wbi_img.sub_url", required=True))
    if len(img_key) != 32 or len(sub_key) != 32:
        raise ApiFormatError("nav.wbi_img does not hold two 32-character keys")
    return wbi.mixin_key(img_key, sub_key)


def listed_nothing(what: str) -> Callable[[dict], str | None]:
    """An ``expect`` check for ``HttpClient.get_json``: a code-0 reply whose list is empty is not a finished list
    but a failure to report (docs/reference.md, "Enumeration": the dead listings answer politely with nothing)."""
    def check(envelope: dict) -> str | None:
        if envelope.get("code") != 0:
            return None
        data = envelope.get("data")
        items = None
        if isinstance(data, dict):
            items = data.get("list", data.get("archives"))
            if isinstance(items, dict):  # arc/search: data.list.vlist
                items = items.get("vlist")
        return None if items else f"{what} listed nothing"
    return check
