"""The simulated world: uploaders, Knowledge-section videos, hot lists and honours, generated from a seed.

Counters are heavy-tailed and correlated the way BILIBILI_API.md's "Real records" describe. What causes them is
stated in bilipop.sim.popularity: log views is the sum of the cover's effect (brightness, saturation, a caption
band, a face), the title's (a hook word, a number, an emoji), the uploader's pull, the video's age (fast growth in
the first days, then slower) and luck, with likes, favourites, coins and shares as noisy ratios of views.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np

from bilipop.crawl.api import KNOWLEDGE_TIDS
from bilipop.errors import InputError
from bilipop.sim.popularity import COUNTERS, CoverLook, TitleStyle, draw_popularity
from bilipop.sim.words import TID_V2, TID_V2_PRIMARY, make_name, make_title

# "Now" of the world, fixed so that a seed always gives the same world (2026-01-01 00:00 UTC).
NOW = 1_767_225_600
NAME_CHANGE = NOW - 120 * 86400  # tname comes back empty for videos published after this
HOT_HONOURS = frozenset({1, 2, 4, 7})
INVISIBLE_CODES = (62002, 62004, 62012)
TID_WEIGHTS = {201: 0.25, 124: 0.15, 228: 0.15, 207: 0.12, 208: 0.13, 209: 0.08, 229: 0.06, 122: 0.06}
# (width, height, weight): mostly 16:9 and 16:10 landscape, a few portrait and square covers.
COVER_SIZES = [
    (1920, 1080, 0.25), (1280, 720, 0.2), (1146, 717, 0.1), (960, 600, 0.12), (640, 400, 0.1), (1920, 1200, 0.08),
    (720, 960, 0.05), (1080, 1440, 0.03), (800, 800, 0.04), (1200, 1200, 0.03),
]
COVER_FORMATS = [("jpg", 0.8), ("webp", 0.12), ("png", 0.08)]
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


@dataclass
class Uploader:
    mid: int
    name: str
    followers: int
    following: int
    face: str  # 40-hex file name of the avatar
    pull: float  # hidden: how much attention this uploader's videos get


@dataclass
class Video:
    aid: int
    bvid: str
    cid: int
    title: str
    tid: int
    tid_v2: int
    owner_mid: int
    pubdate: int
    ctime: int
    duration: int
    cover: str  # 40-hex file name
    cover_ext: str
    cover_width: int
    cover_height: int
    appeal: float  # hidden, age-free: log views once mature, relative to popularity.BASE
    stat: dict[str, int]
    his_rank: int = 0
    honors: list[dict] = field(default_factory=list)
    code: int = 0  # 0 when visible, else the error code ``view`` answers with
    look: CoverLook | None = None  # what the cover shows (drawn by bilipop.sim.images)
    style: TitleStyle | None = None  # what the title says
    effects: dict[str, float] = field(default_factory=dict)  # the parts of log views (popularity.Popularity)

    @property
    def visible(self) -> bool:
        return self.code == 0


@dataclass
class Issue:
    number: int
    name: str
    subject: str
    bvids: list[str]


class World:
    """Everything the simulated site knows, generated deterministically from ``(videos, seed, invisible)``.

    Args:
        videos: number of Knowledge videos (at least 10).
        seed: the seed; the same seed always gives the same world.
        invisible: share of videos whose ``view`` answers 62002/62004/62012 (drawn apart, so switching it on
            changes nothing else).

    Raises:
        InputError: on a size or share out of range.
    """

    def __init__(self, videos: int = 500, seed: int = 1, invisible: float = 0.0) -> None:
        if not isinstance(videos, int) or videos < 10:
            raise InputError(f"videos must be an integer of at least 10, got {videos!r}; pass e.g. videos=200.")
        if not 0.0 <= invisible <= 1.0:
            raise InputError(f"invisible must be a share between 0 and 1, got {invisible!r}.")
        self.size = videos
        self.seed = seed
        self.tids = list(KNOWLEDGE_TIDS)
        rnd = random.Random(seed)
        gen = np.random.default_rng(seed)
        self.uploaders = self._make_uploaders(rnd, gen)
        self.videos = self._make_videos(rnd, gen)
        self.by_bvid = {v.bvid: v for v in self.videos}
        self.by_aid = {v.aid: v for v in self.videos}
        self._make_hot_lists(rnd)
        hidden = random.Random(f"invisible-{seed}")
        for v in self.videos:
            if hidden.random() < invisible:
                v.code = hidden.choice(INVISIBLE_CODES)
        self._listings = {
            tid: sorted((v for v in self.videos if v.tid == tid), key=lambda v: (-v.pubdate, -v.aid))
            for tid in self.tids
        }

    # -- generation ------------------------------------------------------------------------------------------
    def _make_uploaders(self, rnd: random.Random, gen: np.random.Generator) -> dict[int, Uploader]:
        count = max(12, min(300, self.size // 6))
        pulls = gen.normal(size=count)
        own = gen.normal(size=count)
        # Median 150k followers, about a quarter above the study's 500k cut.
        followers = np.exp(math.log(150_000) + 1.7 * (0.7 * pulls + 0.7 * own)).astype(np.int64)
        followers[: max(1, count // 30)] = 500_000  # exactly on the boundary
        followers[-1] = int(gen.integers(0, 40))
        mids: set[int] = set()
        while len(mids) < count:
            # Old accounts have small mids; accounts since 2022 have 16-digit ones (beyond 32 bits).
            mids.add(rnd.randint(3_400_000_000_000_000, 3_550_000_000_000_000) if rnd.random() < 0.2
                     else rnd.randint(10_000, 700_000_000))
        names: set[str] = set()
        out = {}
        for i, mid in enumerate(sorted(mids, key=lambda m: rnd.random())):
            out[mid] = Uploader(mid, make_name(rnd, names), int(followers[i]), rnd.randint(0, 800),
                                f"{rnd.getrandbits(160):040x}", float(pulls[i]))
        return out

    def _make_videos(self, rnd: random.Random, gen: np.random.Generator) -> list[Video]:
        n = self.size
        ups = list(self.uploaders.values())
        # Every uploader gets a couple of videos, the prolific (high-pull) ones get the rest.
        owners = [u for u in ups for _ in range(2)][:n]
        weights = np.exp(0.8 * np.array([u.pull for u in ups]))
        extra = gen.choice(len(ups), size=n - len(owners), p=weights / weights.sum()) if n > len(owners) else []
        owners += [ups[i] for i in extra]
        rnd.shuffle(owners)
        # The counters and what causes them: bilipop.sim.popularity.
        pop = draw_popularity(gen, np.array([u.pull for u in owners]))
        ages, stats = pop.ages_s, pop.stats
        tids, tweights = list(TID_WEIGHTS), list(TID_WEIGHTS.values())
        sizes, sweights = [s[:2] for s in COVER_SIZES], [s[2] for s in COVER_SIZES]
        fmts, fweights = [f[0] for f in COVER_FORMATS], [f[1] for f in COVER_FORMATS]
        order = np.argsort(-ages)  # oldest first, so aids grow with time like the real ones
        aid = 1_130_000_000_000_000 + rnd.randint(0, 10**9)
        videos = []
        for i in order:
            aid += rnd.randint(10**6, 10**9)
            tid = rnd.choices(tids, tweights)[0]
            pubdate = int(NOW - ages[i])
            width, height = rnd.choices(sizes, sweights)[0]
            stat = {k: int(stats[k][i]) for k in COUNTERS}
            videos.append(Video(
                aid=aid, bvid=av2bv(aid), cid=rnd.randint(10**10, 4 * 10**10),
                title=make_title(rnd, tid, pop.styles[i]), tid=tid,
                tid_v2=TID_V2_PRIMARY[tid] if rnd.random() < 0.7 else rnd.choice(TID_V2),
                owner_mid=owners[i].mid, pubdate=pubdate, ctime=pubdate - rnd.randint(60, 86400),
                duration=int(min(7200, max(5, rnd.lognormvariate(math.log(420), 0.9)))),
                cover=f"{rnd.getrandbits(160):040x}", cover_ext=rnd.choices(fmts, fweights)[0],
                cover_width=width, cover_height=height, appeal=float(pop.appeal[i]), stat=stat,
                look=pop.looks[i], style=pop.styles[i],
                effects={k: float(v[i]) for k, v in pop.parts.items()},
            ))
        return videos

    def _make_hot_lists(self, rnd: random.Random) -> None:
        ups = sorted(self.uploaders.values(), key=lambda u: u.mid)
        hot = {u.mid for u in ups if rnd.random() < 0.3 * math.exp(0.5 * u.pull) / (1 + 0.3 * math.exp(0.5 * u.pull))}
        candidates = [v for v in self.videos if v.owner_mid in hot]
        weights = [math.sqrt(v.stat["views"]) + 1 for v in candidates]

        def pick(k: int, exclude: set[str]) -> list[Video]:
            chosen: list[Video] = []
            pool = [(v, w) for v, w in zip(candidates, weights, strict=True) if v.bvid not in exclude]
            while pool and len(chosen) < k:
                v = rnd.choices([p[0] for p in pool], [p[1] for p in pool])[0]
                chosen.append(v)
                pool = [p for p in pool if p[0] is not v]
            return chosen

        n = self.size
        popular = sorted(pick(max(5, min(100, n // 10)), set()), key=lambda v: -v.stat["views"])
        self.popular = [v.bvid for v in popular]
        self.issues: list[Issue] = []
        used: set[str] = set()
        for number in range(1, max(10, min(80, n // 30)) + 1):
            chosen = pick(rnd.randint(3, 6), used)
            used |= {v.bvid for v in chosen}
            self.issues.append(Issue(number, f"2025第{number}期", f"每周必看·第{number}期", [v.bvid for v in chosen]))
        self.precious = [v.bvid for v in pick(max(3, min(85, n // 25)), set())]
        for v in popular:
            v.honors.append({"aid": v.aid, "type": 4, "desc": "热门", "weekly_recommend_num": 0})
        for issue in self.issues:
            for bvid in issue.bvids:
                v = self.by_bvid[bvid]
                v.honors.append({"aid": v.aid, "type": 2, "desc": f"第{issue.number}期每周必看",
                                 "weekly_recommend_num": issue.number})
        for bvid in self.precious:
            v = self.by_bvid[bvid]
            v.honors.append({"aid": v.aid, "type": 1, "desc": "入站必刷内容", "weekly_recommend_num": 0})
        # Honours seen only on `view`: type 7 makes an uploader hot without any list, type 3 must not.
        others = sorted({v.owner_mid for v in self.videos} - self.hot_mids_lists())
        rnd.shuffle(others)
        for mids, kind in ((others[: max(1, len(others) // 12)], 7), (others[-max(1, len(others) // 12):], 3)):
            for mid in mids:
                v = rnd.choice([v for v in self.videos if v.owner_mid == mid])
                if kind == 7:
                    v.honors.append({"aid": v.aid, "type": 7, "desc": "热门收录", "weekly_recommend_num": 0})
                else:
                    v.his_rank = rnd.randint(3, 100)
                    v.honors.append({"aid": v.aid, "type": 3, "desc": f"全站排行榜最高第{v.his_rank}名",
                                     "weekly_recommend_num": 0})

    # -- queries ---------------------------------------------------------------------------------------------
    def listing(self, tid: int) -> list[Video]:
        """The videos of a sub-partition, newest first (empty for any other id, including main 36)."""
        return self._listings.get(tid, [])

    def video(self, bvid: str | None = None, aid: int | None = None) -> Video | None:
        return self.by_bvid.get(bvid) if bvid is not None else self.by_aid.get(aid) if aid is not None else None

    def hot_mids_lists(self) -> set[int]:
        bvids = set(self.popular) | set(self.precious) | {b for issue in self.issues for b in issue.bvids}
        return {self.by_bvid[b].owner_mid for b in bvids}

    def hot_mids_honors(self) -> set[int]:
        return {v.owner_mid for v in self.videos if v.visible and any(h["type"] in HOT_HONOURS for h in v.honors)}

    def bump_counters(self, seed: int) -> None:
        """Grow every visible video's counters (views always change), as time passing would."""
        rnd = random.Random(f"bump-{self.seed}-{seed}")
        for v in self.videos:
            if not v.visible:
                continue
            growth = 1.0 + abs(rnd.gauss(0.0, 0.3))
            for k in COUNTERS:
                v.stat[k] = int(v.stat[k] * growth) + rnd.randint(0, 3)
            v.stat["views"] += 1

    def truth(self, base_url: str) -> dict:
        """Ground truth in the shape of ``SimServer.truth()``."""
        videos = {}
        for v in self.videos:
            s = v.stat
            videos[v.bvid] = {
                "aid": v.aid, "bvid": v.bvid, "title": v.title, "tid": v.tid, "tid_v2": v.tid_v2,
                "owner_mid": v.owner_mid, "views": s["views"], "likes": s["likes"], "coins": s["coins"],
                "favorites": s["favorites"], "shares": s["shares"], "danmaku": s["danmaku"], "replies": s["replies"],
                "pubdate": v.pubdate, "duration": v.duration, "pic": cover_url(base_url, v),
                "cover_width": v.cover_width, "cover_height": v.cover_height, "visible": v.visible,
                "honors": [h["type"] for h in v.honors],
                # the stated cause (bilipop.sim.popularity): age-free appeal, age and the parts of log views
                "appeal": v.appeal, "age_days": (NOW - v.pubdate) / 86400,
                "effects": dict(v.effects),
            }
        return {
            "videos": videos,
            "uploaders": {u.mid: {"name": u.name, "followers": u.followers} for u in self.uploaders.values()},
            "hot_mids_lists": self.hot_mids_lists(),
            "hot_mids_honors": self.hot_mids_honors(),
            "tids": list(self.tids),
        }


def cover_url(base_url: str, video: Video) -> str:
    return f"{base_url}/bfs/archive/{video.cover}.{video.cover_ext}"
