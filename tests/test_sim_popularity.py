"""The simulated world's stated cause: covers and titles show what raises views, in the documented shares."""

import io

import numpy as np
import pytest
import requests
from PIL import Image, ImageStat

from bilipop.sim import SimServer, World, images, popularity
from bilipop.sim.popularity import BEST_LOOK, BEST_STYLE, WORST_LOOK, WORST_STYLE, CoverLook, TitleStyle
from bilipop.sim.words import EMOJI, HOOKS, make_title


def _parts(world: World) -> dict[str, np.ndarray]:
    return {k: np.array([v.effects[k] for v in world.videos]) for k in popularity.STATED_SHARES}


@pytest.mark.parametrize("seed", [0, 1])
def test_measured_shares_of_log_views_match_the_stated_ones(seed):
    shares = popularity.explained_shares(_parts(World(3000, seed)))
    for name, stated in popularity.STATED_SHARES.items():
        assert shares[name] == pytest.approx(stated, abs=0.05), name
    assert sum(shares.values()) == pytest.approx(1.0, abs=0.05)  # independent parts: nothing left unexplained


def test_views_follow_the_stated_cause():
    world = World(3000, 2)
    parts = _parts(world)
    log_views = np.log1p([v.stat["views"] for v in world.videos])
    cause = parts["cover"] + parts["title"]
    # cover and title alone explain a clear share of the served counters, after the Poisson draw
    assert np.corrcoef(cause, log_views)[0, 1] > 0.6
    looks = [v.look for v in world.videos]
    caption = np.array([x.caption for x in looks])
    assert np.median(log_views[caption]) > np.median(log_views[~caption]) + 1.0
    hooked = np.array([v.style.hook for v in world.videos])
    assert np.median(log_views[hooked]) > np.median(log_views[~hooked]) + 1.0


def test_appeal_is_age_free_and_views_grow_fast_then_slowly_with_age():
    day = 86400.0
    curve = popularity.age_curve(np.array([3600, day, 7 * day, 30 * day, 365 * day]))
    assert list(curve) == sorted(curve) and curve[0] < 0.05
    assert curve[2] - curve[1] > curve[4] - curve[3]  # the first week adds more than the following eleven months
    truth = World(2000, 3).truth("http://x")["videos"].values()
    appeal = np.array([r["appeal"] for r in truth])
    age = np.array([r["age_days"] for r in truth])
    log_views = np.log1p([r["views"] for r in truth])
    assert abs(np.corrcoef(appeal, np.log(age))[0, 1]) < 0.08  # appeal does not depend on age
    young = age < 2
    assert young.any() and np.median(log_views[young]) < np.median(log_views[~young]) - 2
    # removing the age curve leaves log views closer to the age-free appeal
    adjusted = log_views - np.log(popularity.age_curve(age * day))
    assert np.corrcoef(adjusted, appeal)[0, 1] > np.corrcoef(log_views, appeal)[0, 1] + 0.05


def test_effects_have_the_documented_sign():
    assert popularity.cover_effect(BEST_LOOK) > 2 > -2 > popularity.cover_effect(WORST_LOOK)
    assert popularity.title_effect(BEST_STYLE) > 1 > -1 > popularity.title_effect(WORST_STYLE)
    plain = CoverLook(0.6, 0.5, caption=False, face=False)
    assert popularity.cover_effect(CoverLook(0.6, 0.5, caption=True, face=False)) > popularity.cover_effect(plain)
    assert popularity.cover_effect(CoverLook(0.9, 0.5, caption=False, face=False)) > popularity.cover_effect(plain)


def test_titles_say_exactly_what_their_style_asks_for():
    import random

    rnd = random.Random(0)
    for _ in range(200):
        style = TitleStyle(hook=rnd.random() < 0.5, number=rnd.random() < 0.5, emoji=rnd.random() < 0.5)
        title = make_title(rnd, 201, style)
        assert any(title.lstrip("".join(EMOJI)).startswith(h) for h in HOOKS) is style.hook, title
        assert any(e in title for e in EMOJI) is style.emoji, title
        assert any(ch.isdigit() for ch in title.replace("DNA", "")) is style.number, title


def test_covers_show_their_look_at_any_size():
    world = World(200, 4)
    bright = max(world.videos, key=lambda v: v.look.brightness)
    dark = min(world.videos, key=lambda v: v.look.brightness)
    small = [images.draw_cover(v, (48, 27)) for v in (bright, dark)]
    means = [sum(ImageStat.Stat(im.convert("L")).mean) for im in small]
    assert means[0] > means[1] + 40
    # the small cover is the big one drawn smaller, not another picture
    big = images.draw_cover(bright).resize((48, 27), Image.Resampling.BILINEAR)
    diff = np.abs(np.asarray(big, dtype=float) - np.asarray(small[0], dtype=float)).mean()
    assert diff < 20


def test_the_crawlers_cover_size_is_drawn_at_that_size():
    with SimServer(videos=20, seed=1) as sim:
        video = max(sim.world.videos, key=lambda v: v.cover_width)
        reply = requests.get(f"{sim.base_url}/bfs/archive/{video.cover}.{video.cover_ext}@480w_270h_1c.jpg",
                             timeout=10)
        img = Image.open(io.BytesIO(reply.content))
        assert img.format == "JPEG" and img.size == images.fitted_size(video.cover_width, video.cover_height,
                                                                       480, 270)
        assert f"{video.cover}@480w_270h_1c.jpg" in sim.images._items  # cached: a retry costs nothing
        assert video.cover not in sim.images._items  # the full-size source was never drawn


def test_truth_exposes_the_cause():
    row = next(iter(World(50, 5).truth("http://x")["videos"].values()))
    assert set(row["effects"]) == set(popularity.STATED_SHARES)
    assert row["appeal"] == pytest.approx(sum(v for k, v in row["effects"].items() if k != "age"))
    assert row["age_days"] > 0
