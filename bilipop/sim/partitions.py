"""The partitions and ids of the simulated site: Knowledge beside a few other v2 sections, the old tids their videos
carry (loosely, as on the site: docs/reference.md, "Partitions"), and the public av/bv conversion."""

from __future__ import annotations

from bilipop.crawl.api import KNOWLEDGE_MAIN, KNOWLEDGE_V2, OLD_KNOWLEDGE_TIDS

#: Other v2 sections of the stand-in. Their ids and names are the sim's own (the crawler never needs them);
#: only Knowledge's table is recorded (docs/reference.md, "Partitions").
OTHER_SECTIONS: dict[int, tuple[str, dict[int, str]]] = {
    1008: ("游戏", {2100: "单机游戏", 2101: "网络游戏", 2102: "手机游戏"}),
    1012: ("科技", {2110: "数码", 2111: "软件应用", 2112: "计算机技术"}),
    1020: ("美食", {2120: "美食制作", 2121: "美食测评"}),
}
SECTION_NAMES = {KNOWLEDGE_MAIN: "知识", **{main: name for main, (name, _) in OTHER_SECTIONS.items()}}
V2_NAMES: dict[int, str] = {**KNOWLEDGE_V2}
V2_NAMES.update({t: n for _, (_, subs) in OTHER_SECTIONS.items() for t, n in subs.items()})
V2_MAIN: dict[int, int] = {t: KNOWLEDGE_MAIN for t in KNOWLEDGE_V2}
V2_MAIN.update({t: main for main, (_, subs) in OTHER_SECTIONS.items() for t in subs})
#: Old tids a v2 sub-partition's videos carry (loosely, as on the site).
OLD_FOR_V2: dict[int, tuple[int, ...]] = {
    2084: (208,), 2085: (208,), 2086: (208, 201), 2087: (207,), 2088: (124,), 2089: (124,), 2090: (228,),
    2091: (229,), 2092: (124,), 2093: (209,), 2094: (201,), 2095: (122, 201),
    2100: (17,), 2101: (65,), 2102: (172,), 2110: (95,), 2111: (230,), 2112: (231, 122), 2120: (76,), 2121: (212,),
}
OLD_NAMES = {**OLD_KNOWLEDGE_TIDS, 21: "日常", 17: "单机游戏", 65: "网络游戏", 172: "手机游戏", 95: "数码",
             230: "软件应用", 231: "计算机技术", 76: "美食制作", 212: "美食侦探"}
DAILY_TID = 21  # 日常: old tid of some videos that are Knowledge by their v2 ids
KNOWLEDGE_WEIGHTS = {2094: 0.22, 2090: 0.14, 2087: 0.1, 2084: 0.06, 2086: 0.1, 2088: 0.08, 2089: 0.04, 2091: 0.06,
                     2092: 0.07, 2093: 0.06, 2085: 0.03, 2095: 0.04}

_B58 = "FcwAPNKTMug3GV5Lj7EJnHpWsx4tb8haYeviqBz6rkCy12mUSDQX9RdoZf"
_BV_XOR = 23442827791579
_BV_MAX_AID = 1 << 51
_BV_ORDER = (8, 7, 0, 5, 1, 3, 2, 4, 6)


def av2bv(aid: int) -> str:
    """The ``BV1...`` id Bilibili derives from an ``aid`` (the public av/bv conversion)."""
    n = (_BV_MAX_AID | aid) ^ _BV_XOR
    chars = [""] * 9
    for pos in _BV_ORDER:
        chars[pos] = _B58[n % 58]
        n //= 58
    return "BV1" + "".join(chars)
