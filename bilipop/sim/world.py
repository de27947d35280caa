"""The simulated world of the 2026 site: uploaders of several sections, their uploads, hot lists and honours.

Structure (docs/reference.md, "Partitions" and "Enumeration"; the ids in ``partitions``): Knowledge is v2 main
partition 1010; a few other sections stand beside it so that the site-wide hot lists and the uploaders' upload lists
mix sections, as the real ones do. Knowledge-home uploaders upload mostly Knowledge videos and a few others,
other-home uploaders now and then a Knowledge one; some uploaders of each kind are on the hot lists, others never
are. Old ``tid`` and v2 ids do not map one to one: some Knowledge videos carry old tid 21 (日常), some videos with an
old Knowledge tid (122) now sit in another section.

Popularity (counters, appeal, ages, what covers and titles show) comes from bilipop.sim.popularity alone, apart
from the structure: log views is the sum of the cover's effect (brightness, saturation, a caption band, a face), the
title's (a hook word, a number, an emoji), the uploader's pull, the video's age (fast growth in the first days,
then slower) and luck, with likes, favourites, coins and shares as noisy ratios of views (heavy-tailed like
docs/reference.md, "Real records").
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np

from bilipop.crawl.api import KNOWLEDGE_MAIN, KNOWLEDGE_V2, OLD_KNOWLEDGE_TIDS
from bilipop.errors import InputError
from bilipop.sim.partitions import DAILY_TID, KNOWLEDGE_WEIGHTS, OLD_FOR_V2, OTHER_SECTIONS, V2_MAIN, av2bv
from bilipop.sim.popularity import COUNTERS, CoverLook, TitleStyle, draw_popularity
from bilipop.sim.words import make_name, make_title

# "Now" of the world, fixed so that a seed always gives the same world (2026-01-01 00:00 UTC).
NOW = 1_767_225_600
NAME_CHANGE = NOW - 120 * 86400  # tname comes back empty for videos published after this
HOT_HONOURS = frozenset({1, 2, 4, 7})
INVISIBLE_CODES = (62002, 62004, 62012)

# (width, height, weight): mostly 16:9 and 16:10 landscape, a few portrait and square covers.
COVER_SIZES = [
    (1920, 1080, 0.25), (1280, 720, 0.2), (1146, 717, 0.1), (960, 600, 0.12), (640, 400, 0.1), (1920, 1200, 0.08),
    (720, 960, 0.05), (1080, 1440, 0.03), (800, 800, 0.04), (1200, 1200, 0.03),
]
COVER_FORMATS = [("jpg", 0.8), ("webp", 0.12), ("png", 0.08)]
PRECIOUS_SIZE = 98  # the precious list held 98 videos in 2026
RELATED_SIZE = 40
RELATED_SAME_OWNER = 6  # Related leads with a few of the same uploader's videos nearest in time

@dataclass
class Uploader:
    mid: int
    name: str
    followers: int
    following: int
    face: str  # 40-hex file name of the avatar
    pull: float  # hidden: how much attention this uploader's videos get
    home: int = KNOWLEDGE_MAIN  # the v2 main partition most of their uploads are in
    hot: bool = False  # has a video on one of the hot lists


@dataclass
class Video:
    aid: int
    bvid: str
    cid: int
    title: str
    tid: int  # old partition id
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

    @property
    def pid_v2(self) -> int:
        return V2_MAIN[self.tid_v2]

    @property
    def knowledge(self) -> bool:
        return self.pid_v2 == KNOWLEDGE_MAIN


@dataclass
class Issue:
    number: int
    name: str
    subject: str
    bvids: list[str]


def draw_followers(gen: np.random.Generator, pulls: np.ndarray) -> np.ndarray:
    """Follower counts: median 150k, about a quarter above the study's 500k cut, a few exactly on it."""
    own = gen.normal(size=len(pulls))
    followers = np.exp(math.log(150_000) + 1.7 * (0.7 * pulls + 0.7 * own)).astype(np.int64)
    followers[: max(1, len(pulls) // 30)] = 500_000
    followers[-1] = int(gen.integers(0, 40))
    return followers


class World:
    """Everything the simulated site knows, generated deterministically from ``(videos, seed, invisible)``.

    Args:
        videos: number of Knowledge videos (at least 10); other sections add about half as many again.
        seed: the seed; the same seed always gives the same world.
        invisible: share of videos whose ``view`` answers 62002/62004/62012 (drawn apart, so switching it on
            changes nothing else).

    Raises:
        InputError: on a size or share out of range.
    """

    def __init__(self, videos: int = 500, seed: int = 1, invisible: float = 0.0) -> None:
        if not isinstance(videos, int) or isinstance(videos, bool) or videos < 10:
            raise InputError(f"videos must be an integer of at least 10, got {videos!r}; pass e.g. videos=200.")
        if not 0.0 <= invisible <= 1.0:
            raise InputError(f"invisible must be a share between 0 and 1, got {invisible!r}.")
        self.size = videos
        self.seed = seed
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
        self.uploads: dict[int, list[Video]] = {mid: [] for mid in self.uploaders}
        for v in sorted(self.videos, key=lambda v: (-v.pubdate, -v.aid)):
            self.uploads[v.owner_mid].append(v)
        self._by_sub: dict[int, list[Video]] = {}
        for v in sorted(self.videos, key=lambda v: (-v.stat["views"], v.aid)):
            if v.visible:
                self._by_sub.setdefault(v.tid_v2, []).append(v)
        self._related: dict[str, list[Video]] = {}
        self.feed = sorted((v for v in self.videos if v.knowledge and v.visible),
                           key=lambda v: random.Random(f"feed-{seed}-{v.aid}").random())

    # -- structure -------------------------------------------------------------------------------------------
    def _make_uploaders(self, rnd: random.Random, gen: np.random.Generator) -> dict[int, Uploader]:
        knowledge = max(12, min(300, self.size // 6))
        others = max(8, knowledge * 2 // 3)
        count = knowledge + others
        pulls = gen.normal(size=count)
        followers = draw_followers(gen, pulls)
        mids: set[int] = set()
        while len(mids) < count:
            # Old accounts have small mids; accounts since 2022 have 16-digit ones (beyond 32 bits).
            mids.add(rnd.randint(3_400_000_000_000_000, 3_550_000_000_000_000) if rnd.random() < 0.2
                     else rnd.randint(10_000, 700_000_000))
        names: set[str] = set()
        homes = [KNOWLEDGE_MAIN] * knowledge + [rnd.choice(list(OTHER_SECTIONS)) for _ in range(others)]
        out = {}
        for i, mid in enumerate(sorted(mids, key=lambda m: rnd.random())):
            out[mid] = Uploader(mid, make_name(rnd, names), int(followers[i]), rnd.randint(0, 800),
                                f"{rnd.getrandbits(160):040x}", float(pulls[i]), homes[i])
        return out

    def _plan_uploads(self, rnd: random.Random, gen: np.random.Generator) -> list[tuple[Uploader, int]]:
        """Who uploads which videos, by v2 sub-partition: ``videos`` Knowledge ones and the other sections'."""
        ups = list(self.uploaders.values())
        home_k = [u for u in ups if u.home == KNOWLEDGE_MAIN]
        home_o = [u for u in ups if u.home != KNOWLEDGE_MAIN]
        n = self.size
        subs, weights = list(KNOWLEDGE_WEIGHTS), list(KNOWLEDGE_WEIGHTS.values())
        # About 8 % of the Knowledge videos come from uploaders of other sections, at most a couple each.
        by_others = [u for u in home_o for _ in range(2)]
        rnd.shuffle(by_others)
        by_others = by_others[: max(1, n * 8 // 100)]
        owners = [u for u in home_k for _ in range(2)][: n - len(by_others)]
        rest = n - len(owners) - len(by_others)
        if rest > 0:
            w = np.exp(0.8 * np.array([u.pull for u in home_k]))
            owners += [home_k[i] for i in gen.choice(len(home_k), size=rest, p=w / w.sum())]
        plan = [(u, rnd.choices(subs, weights)[0]) for u in owners + by_others]
        for u in home_k:  # a few uploads elsewhere; old tid 122 tech videos are v2 科技, not Knowledge
            for _ in range(rnd.choice((0, 0, 1, 1, 2))):
                main = 1012 if rnd.random() < 0.5 else rnd.choice(list(OTHER_SECTIONS))
                plan.append((u, rnd.choice(list(OTHER_SECTIONS[main][1]))))
        for u in home_o:
            for _ in range(rnd.randint(2, 7)):
                plan.append((u, rnd.choice(list(OTHER_SECTIONS[u.home][1]))))
        return plan

    def _make_videos(self, rnd: random.Random, gen: np.random.Generator) -> list[Video]:
        plan = self._plan_uploads(rnd, gen)
        rnd.shuffle(plan)
        pop = draw_popularity(gen, np.array([u.pull for u, _ in plan]))
        sizes, sweights = [s[:2] for s in COVER_SIZES], [s[2] for s in COVER_SIZES]
        fmts, fweights = [f[0] for f in COVER_FORMATS], [f[1] for f in COVER_FORMATS]
        order = np.argsort(-pop.ages_s, kind="stable")  # oldest first, so aids grow with time like the real ones
        aid = 1_130_000_000_000_000 + rnd.randint(0, 10**9)
        videos = []
        for i in order:
            owner, tid_v2 = plan[i]
            aid += rnd.randint(10**6, 10**9)
            tid = rnd.choice(OLD_FOR_V2[tid_v2])
            if tid_v2 in KNOWLEDGE_V2 and rnd.random() < 0.08:
                tid = DAILY_TID  # e.g. a recorded 日常 video that is v2 社会观察 under Knowledge
            pubdate = int(NOW - pop.ages_s[i])
            width, height = rnd.choices(sizes, sweights)[0]
            videos.append(Video(
                aid=aid, bvid=av2bv(aid), cid=rnd.randint(10**10, 4 * 10**10),
                title=make_title(rnd, tid, pop.styles[i]), tid=tid, tid_v2=tid_v2,
                owner_mid=owner.mid, pubdate=pubdate, ctime=pubdate - rnd.randint(60, 86400),
                duration=int(min(7200, max(5, rnd.lognormvariate(math.log(420), 0.9)))),
                cover=f"{rnd.getrandbits(160):040x}", cover_ext=rnd.choices(fmts, fweights)[0],
                cover_width=width, cover_height=height, appeal=float(pop.appeal[i]),
                stat={k: int(pop.stats[k][i]) for k in COUNTERS},
                look=pop.looks[i], style=pop.styles[i], effects={k: float(v[i]) for k, v in pop.parts.items()},
            ))
        return videos

    def _make_hot_lists(self, rnd: random.Random) -> None:
        active = {v.owner_mid for v in self.videos}
        ups = sorted((u for u in self.uploaders.values() if u.mid in active), key=lambda u: u.mid)
        for u in ups:
            odds = (0.9 if u.home == KNOWLEDGE_MAIN else 0.5) * math.exp(0.5 * u.pull)
            u.hot = rnd.random() < odds / (1 + odds)
        home_k = [u for u in ups if u.home == KNOWLEDGE_MAIN]
        for u in home_k[:2]:
            u.hot = True
        for u in home_k[-3:]:
            u.hot = False  # every world has Knowledge uploaders who were never on a hot list
        pool = [v for v in self.videos if self.uploaders[v.owner_mid].hot]
        knowledge_pool = [v for v in pool if v.knowledge]
        weights = {v.bvid: math.sqrt(v.stat["views"]) + 1 for v in pool}

        def pick(candidates: list[Video], k: int, exclude: set[str]) -> list[Video]:
            chosen: list[Video] = []
            left = [v for v in candidates if v.bvid not in exclude]
            while left and len(chosen) < k:
                v = rnd.choices(left, [weights[c.bvid] for c in left])[0]
                chosen.append(v)
                left.remove(v)
            return chosen

        total = len(self.videos)
        popular = pick(pool, max(5, min(100, total // 12)), set())
        self.ranking = sorted(knowledge_pool, key=lambda v: (-v.stat["views"], v.aid))[
            : max(3, min(100, len(knowledge_pool) // 6))]
        self.issues: list[Issue] = []
        used: set[str] = set()
        for number in range(1, max(10, min(80, total // 30)) + 1):
            chosen = pick(pool, rnd.randint(3, 6), used)
            used |= {v.bvid for v in chosen}
            self.issues.append(Issue(number, f"2025第{number}期", f"每周必看·第{number}期", [v.bvid for v in chosen]))
        self.precious = [v.bvid for v in pick(pool, min(PRECIOUS_SIZE, len(pool) // 3), set())]
        listed = {v.bvid for v in popular} | used | set(self.precious) | {v.bvid for v in self.ranking}
        sighted = {self.by_bvid[b].owner_mid for b in listed}
        for u in ups:  # every hot uploader is on some list: their most viewed video makes the popular list
            if u.hot and u.mid not in sighted:
                popular.append(max((v for v in pool if v.owner_mid == u.mid), key=lambda v: v.stat["views"]))
        self.popular = [v.bvid for v in sorted(popular, key=lambda v: (-v.stat["views"], v.aid))]
        # The whole-site ranking (``ranking/v2`` without rid, or with tid): the most viewed listed videos.
        everything = {b for b in self.popular} | listed
        self.site_ranking = sorted((self.by_bvid[b] for b in everything), key=lambda v: (-v.stat["views"], v.aid))[:100]
        # An old rid answers stale 2025 data: old-tid Knowledge videos of anyone, published before the renumbering.
        self.stale_ranking = sorted((v for v in self.videos if v.tid in OLD_KNOWLEDGE_TIDS and v.pubdate < NOW
                                     - 240 * 86400), key=lambda v: (-v.stat["views"], v.aid))[:20]
        for v in self.site_ranking[:10]:
            v.his_rank = self.site_ranking.index(v) + 1
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
        others = [u.mid for u in ups if not u.hot]
        rnd.shuffle(others)
        share = max(1, len(others) // 6)
        for mids, kind in ((others[:share], 7), (others[-share:], 3)):
            for mid in mids:
                v = rnd.choice([v for v in self.videos if v.owner_mid == mid])
                if kind == 7:
                    v.honors.append({"aid": v.aid, "type": 7, "desc": "热门收录", "weekly_recommend_num": 0})
                else:
                    v.his_rank = v.his_rank or rnd.randint(11, 100)
                    v.honors.append({"aid": v.aid, "type": 3, "desc": f"全站排行榜最高第{v.his_rank}名",
                                     "weekly_recommend_num": 0})

    # -- queries ---------------------------------------------------------------------------------------------
    def video(self, bvid: str | None = None, aid: int | None = None) -> Video | None:
        return self.by_bvid.get(bvid) if bvid is not None else self.by_aid.get(aid) if aid is not None else None

    def related(self, v: Video) -> list[Video]:
        """Up to 40 related videos: a few of the same uploader's nearest in time, then popular ones of the same
        v2 sub-partition (deterministic per video)."""
        if v.bvid in self._related:
            return self._related[v.bvid]
        own = [u for u in self.uploads[v.owner_mid] if u is not v and u.visible]
        own.sort(key=lambda u: (abs(u.pubdate - v.pubdate), u.aid))
        chosen = own[:RELATED_SAME_OWNER]
        taken = {v.bvid, *(u.bvid for u in chosen)}
        pool = [u for u in self._by_sub.get(v.tid_v2, [])[:200] if u.bvid not in taken]
        rnd = random.Random(f"related-{self.seed}-{v.aid}")
        chosen += rnd.sample(pool, min(len(pool), RELATED_SIZE - len(chosen)))
        self._related[v.bvid] = chosen
        return chosen

    def hot_mids_lists(self) -> set[int]:
        """Owners of the items of the hot lists a crawler reads: popular, weekly issues, precious, ranking 1010."""
        bvids = set(self.popular) | set(self.precious) | {b for issue in self.issues for b in issue.bvids}
        bvids |= {v.bvid for v in self.ranking}
        return {self.by_bvid[b].owner_mid for b in bvids if self.by_bvid[b].visible}

    def hot_mids_honors(self) -> set[int]:
        return {v.owner_mid for v in self.videos if v.visible and any(h["type"] in HOT_HONOURS for h in v.honors)}

    def must_hold(self) -> set[str]:
        """What a complete crawl holds: every visible Knowledge video of every uploader on the hot lists."""
        hot = self.hot_mids_lists()
        return {v.bvid for v in self.videos if v.knowledge and v.visible and v.owner_mid in hot}

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
                "pid_v2": v.pid_v2, "knowledge": v.knowledge,
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
            "uploaders": {u.mid: {"name": u.name, "followers": u.followers, "home": u.home, "hot": u.hot}
                          for u in self.uploaders.values()},
            "hot_mids_lists": self.hot_mids_lists(),
            "hot_mids_honors": self.hot_mids_honors(),
            "must_hold": self.must_hold(),
            "knowledge": {v.bvid for v in self.videos if v.knowledge and v.visible},
        }


def cover_url(base_url: str, video: Video) -> str:
    return f"{base_url}/bfs/archive/{video.cover}.{video.cover_ext}"
