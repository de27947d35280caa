"""The simulated world's popularity model: the stated cause of every video's views.

Each video's log views is a sum of independent parts, all drawn from the world's seed::

    log E[views] = BASE + cover_effect(look) + title_effect(style) + PULL * uploader.pull + luck   (= appeal)
                 + log age_curve(age)

``appeal`` is the age-free part: the log views the video would reach once mature, relative to ``BASE``. The
counters served are ``views ~ Poisson(E[views])`` and likes, coins, favourites, shares, danmaku and replies as
noisy ratios of views around the medians of docs/reference.md, "Real records".

What a cover shows that raises views (``COVER_EFFECTS``, in log-views units): a brighter and a more saturated
picture, a caption band with big letters, a face. What a title says that raises views (``TITLE_EFFECTS``): a hook
word (``bilipop.sim.words.HOOKS``: 震惊！, 万万没想到, 保姆级, ...), a number (``5分钟``, ``7个``), an emoji.
Nothing else in a cover or a title (its hue, partition, shapes, topic or tag) changes views.

``STATED_SHARES`` is the share of the variance of log views that each part explains over the videos of a world;
``explained_shares`` measures it on a generated world, and a test holds the two together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Median views of a mature video with average cover, title and uploader (before luck and viral hits).
BASE = math.log(900)
#: Log views per standard deviation of the uploader's hidden pull.
PULL = 0.85
#: Standard deviation of a video's own luck (log views), and the odd viral hit on top of it.
LUCK = 0.6
VIRAL_SHARE, VIRAL_BOOST = 0.015, (3.0, 5.5)

#: How a cover's look is drawn: brightness and saturation uniform in these ranges (HSV value and saturation of
#: the background), a caption band and a face each with this probability.
BRIGHTNESS, SATURATION = (0.35, 0.95), (0.15, 0.9)
CAPTION_P, FACE_P = 0.5, 0.4
#: Log views added per unit of brightness and saturation (centred on the middle of their range), and by a caption
#: band and a face (centred on their probability, so that the average cover adds nothing).
COVER_EFFECTS = {"brightness": 6.5, "saturation": 3.9, "caption": 2.3, "face": 2.1}

#: How a title's style is drawn, and the log views each element adds (centred likewise).
HOOK_P, NUMBER_P, EMOJI_P = 0.5, 0.5, 0.25
TITLE_EFFECTS = {"hook": 2.5, "number": 1.4, "emoji": 1.6}

#: Ages: 12% of the videos are young (log-uniform between five minutes and 14 days), the rest older than two
#: weeks (exponential, mean 180 days, at most two years).
YOUNG_SHARE, YOUNG_RANGE_S = 0.12, (300.0, 14 * 86400.0)
OLD_MEAN_S, OLD_MAX_S = 180 * 86400.0, 730 * 86400.0
#: The age curve: views(t) = mature views * t / (t + HALF_S) * (1 + t / SLOW_S) ** SLOW_POWER. Half of the early
#: views come in the first 1.5 days, then growth slows to a trickle (about +20% from two weeks to a year).
HALF_S, SLOW_S, SLOW_POWER = 1.5 * 86400.0, 60 * 86400.0, 0.15

#: The share of the variance of log E[views] explained by each part over a world's videos (the README quotes
#: these; ``explained_shares`` measures them, within a few points for a world of a few thousand videos). Cover and
#: title explain about three quarters, so that a model that sees them can reach about the study's 62 % ordinal
#: accuracy from the two thousand videos the demo crawls (benchmarks/README.md, "How the demo's settings were
#: chosen").
STATED_SHARES = {"cover": 0.46, "title": 0.27, "uploader": 0.09, "age": 0.12, "luck": 0.06}

# Median ratio to views and log-normal sigma fitted to the documented 90th percentile, per counter.
RATIOS = {
    "likes": (0.019, math.log(0.06 / 0.019) / 1.2816),
    "favorites": (0.0033, math.log(0.016 / 0.0033) / 1.2816),
    "coins": (0.0003, math.log(0.004 / 0.0003) / 1.2816),
    "shares": (0.0001, math.log(0.002 / 0.0001) / 1.2816),
    "danmaku": (0.003, 1.0),
    "replies": (0.0015, 1.0),
}
COUNTERS = ("views", "likes", "coins", "favorites", "shares", "danmaku", "replies")


@dataclass(frozen=True)
class CoverLook:
    """What a cover shows that matters to views (``bilipop.sim.images`` draws exactly this)."""

    brightness: float  # HSV value of the background, in BRIGHTNESS
    saturation: float  # HSV saturation of the background, in SATURATION
    caption: bool  # a caption band with big letters across the lower third
    face: bool  # a face on the right


@dataclass(frozen=True)
class TitleStyle:
    """What a title says that matters to views (``bilipop.sim.words.make_title`` writes exactly this)."""

    hook: bool  # starts with a hook word (words.HOOKS)
    number: bool  # a number, as in "5分钟" or "7个"
    emoji: bool  # an emoji at the start or the end


#: The most and the least appealing looks and styles, for the demo's creator question.
BEST_LOOK = CoverLook(brightness=BRIGHTNESS[1], saturation=SATURATION[1], caption=True, face=True)
WORST_LOOK = CoverLook(brightness=BRIGHTNESS[0], saturation=SATURATION[0], caption=False, face=False)
BEST_STYLE = TitleStyle(hook=True, number=True, emoji=True)
WORST_STYLE = TitleStyle(hook=False, number=False, emoji=False)


def cover_effect(look: CoverLook) -> float:
    """Log views that ``look`` adds to a video (0 for the average cover)."""
    e = COVER_EFFECTS
    return (e["brightness"] * (look.brightness - sum(BRIGHTNESS) / 2)
            + e["saturation"] * (look.saturation - sum(SATURATION) / 2)
            + e["caption"] * (look.caption - CAPTION_P) + e["face"] * (look.face - FACE_P))


def title_effect(style: TitleStyle) -> float:
    """Log views that ``style`` adds to a video (0 for the average title)."""
    e = TITLE_EFFECTS
    return (e["hook"] * (style.hook - HOOK_P) + e["number"] * (style.number - NUMBER_P)
            + e["emoji"] * (style.emoji - EMOJI_P))


def age_curve(age_s: np.ndarray | float) -> np.ndarray:
    """The share of its mature views a video has at ``age_s`` seconds: fast in the first days, then slower."""
    t = np.maximum(np.asarray(age_s, dtype=np.float64), 1.0)
    return t / (t + HALF_S) * (1.0 + t / SLOW_S) ** SLOW_POWER


def draw_looks(gen: np.random.Generator, n: int) -> list[CoverLook]:
    bright, sat = gen.uniform(*BRIGHTNESS, n), gen.uniform(*SATURATION, n)
    caption, face = gen.random(n) < CAPTION_P, gen.random(n) < FACE_P
    return [CoverLook(float(b), float(s), bool(c), bool(f)) for b, s, c, f in zip(bright, sat, caption, face,
                                                                                  strict=True)]


def draw_styles(gen: np.random.Generator, n: int) -> list[TitleStyle]:
    hook, number, emoji = gen.random(n) < HOOK_P, gen.random(n) < NUMBER_P, gen.random(n) < EMOJI_P
    return [TitleStyle(bool(h), bool(k), bool(e)) for h, k, e in zip(hook, number, emoji, strict=True)]


def draw_ages(gen: np.random.Generator, n: int) -> np.ndarray:
    """Ages in seconds at the world's "now"."""
    low, high = np.log(YOUNG_RANGE_S[0]), np.log(YOUNG_RANGE_S[1])
    young = np.exp(gen.uniform(low, high, n))
    old = np.minimum(YOUNG_RANGE_S[1] + gen.exponential(OLD_MEAN_S, n), OLD_MAX_S)
    return np.where(gen.random(n) < YOUNG_SHARE, young, old)


@dataclass
class Popularity:
    """Every video's drawn causes and the counters they give (arrays in the order of the uploader pulls)."""

    looks: list[CoverLook]
    styles: list[TitleStyle]
    ages_s: np.ndarray
    parts: dict[str, np.ndarray]  # cover, title, uploader, age, luck: the terms of log E[views] - BASE
    appeal: np.ndarray  # age-free: cover + title + uploader + luck
    stats: dict[str, np.ndarray]  # the seven counters


def draw_popularity(gen: np.random.Generator, pulls: np.ndarray) -> Popularity:
    """Draw looks, styles, ages, luck and counters for videos whose uploaders have hidden ``pulls``."""
    n = len(pulls)
    looks, styles = draw_looks(gen, n), draw_styles(gen, n)
    ages = draw_ages(gen, n)
    luck = LUCK * gen.normal(size=n) + np.where(gen.random(n) < VIRAL_SHARE, gen.uniform(*VIRAL_BOOST, n), 0.0)
    parts = {
        "cover": np.array([cover_effect(x) for x in looks]),
        "title": np.array([title_effect(x) for x in styles]),
        "uploader": PULL * np.asarray(pulls, dtype=np.float64),
        "age": np.log(age_curve(ages)),
        "luck": luck,
    }
    appeal = parts["cover"] + parts["title"] + parts["uploader"] + parts["luck"]
    expected = np.exp(np.minimum(BASE + appeal + parts["age"], 40.0))
    views = gen.poisson(np.minimum(expected, 1e15)).astype(np.int64)
    return Popularity(looks, styles, ages, parts, appeal, counters(gen, views))


def counters(gen: np.random.Generator, views: np.ndarray) -> dict[str, np.ndarray]:
    """Likes, favourites, coins, shares, danmaku and replies as correlated noisy ratios of ``views``."""
    n = len(views)
    engagement = gen.normal(size=n)
    stats: dict[str, np.ndarray] = {"views": views}
    for name, (median, sigma) in RATIOS.items():
        ratio = median * np.exp(sigma * (0.6 * engagement + 0.8 * gen.normal(size=n)))
        stats[name] = gen.poisson(views * np.minimum(ratio, 1.0)).astype(np.int64)
    # A few rows with more likes than views, as seen in real records.
    odd = np.flatnonzero((gen.random(n) < 0.02) & (views < 5000))
    stats["likes"][odd] = views[odd] + gen.integers(1, 40, len(odd))
    return stats


def explained_shares(parts: dict[str, np.ndarray]) -> dict[str, float]:
    """The share of the variance of log E[views] that each part explains (the parts are drawn independently, so
    the shares add up to about 1)."""
    total = np.var(sum(parts.values()))
    return {name: float(np.var(values) / total) for name, values in parts.items()}
