"""A small labeled dataset with a planted signal, for tests, benchmarks and the demo.

The class of each video is drawn first (balanced), then its content is made from it: with
``signal="cover"`` or ``"both"`` the class decides the cover's dominant colour, with ``"title"`` or ``"both"``
it decides a topic word in the title. A model that learns the cover (or the title) can therefore beat the
majority baseline by a wide margin, and one that only sees the other half cannot. The counters grow with the
class, so ``score`` orders the classes (``bilipop label --quantiles`` gives the same labels back).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from bilipop.data.schema import NUM_CLASSES, STAGE_FILES
from bilipop.data.scoring import score_videos
from bilipop.errors import InputError
from bilipop.files import atomic_write
from bilipop.layout import COVERS_DIR

SIGNALS = ("both", "cover", "title", "none")
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
# Far apart in RGB so that a tiny model separates them after a few epochs.
_PALETTE = np.array(
    [(220, 40, 40), (40, 180, 40), (40, 60, 220), (230, 200, 30), (160, 40, 200)], dtype=np.float64
)
_TOPICS = ("物理", "历史", "数学", "编程", "宇宙")
_FILLER = ("讲解", "入门", "一分钟", "带你", "了解", "科普", "为什么", "原来", "其实", "看懂", "终于", "竟然")


def make_labeled_dataset(folder: str | Path, n: int = 120, seed: int = 0, signal: str = "both",
                         image_size: int = 48) -> Path:
    """Write ``folder/covers/<bvid>.jpg`` and ``folder/labeled.parquet`` and return the parquet path.

    Args:
        folder: dataset folder (created if missing).
        n: number of videos (classes are balanced: sizes differ by at most one).
        seed: the same seed writes the same files.
        signal: "both", "cover", "title" or "none" (labels independent of content).
        image_size: side of the square JPEG covers.

    Raises:
        InputError: ``n`` below 10, an unknown ``signal`` or an ``image_size`` below 8.
    """
    if signal not in SIGNALS:
        raise InputError(f"signal must be one of {', '.join(SIGNALS)}, got {signal!r}")
    if n < 10:
        raise InputError(f"a synthetic dataset needs at least 10 rows, got {n}")
    if image_size < 8:
        raise InputError(f"image_size must be at least 8 pixels, got {image_size}")
    from PIL import Image

    folder = Path(folder)
    covers = folder / COVERS_DIR
    covers.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % NUM_CLASSES)
    colour_class = labels if signal in ("cover", "both") else rng.integers(0, NUM_CLASSES, n)
    topic_class = labels if signal in ("title", "both") else rng.integers(0, NUM_CLASSES, n)

    bvids = _bvids(rng, n)
    rows = []
    for i, bvid in enumerate(bvids):
        base = _PALETTE[colour_class[i]] + rng.normal(0, 12, 3)
        pixels = base + rng.normal(0, 25, (image_size, image_size, 3))
        # A random darker square so covers are not flat colour fields.
        x, y = rng.integers(0, image_size // 2, 2)
        pixels[y:y + image_size // 3, x:x + image_size // 3] *= 0.5
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
        path = covers / f"{bvid}.jpg"
        atomic_write(path, functools.partial(image.save, format="JPEG", quality=90))
        words = list(rng.choice(_FILLER, size=3, replace=False))
        words.insert(int(rng.integers(0, 4)), _TOPICS[topic_class[i]])
        level = int(labels[i])
        views = int(rng.integers(10 ** (2 + level), 10 ** (3 + level)))
        rows.append({
            "bvid": bvid,
            "aid": 100000 + i,
            "title": "".join(words) + f" 第{i + 1}期",
            "cover_path": f"{COVERS_DIR}/{bvid}.jpg",
            "views": views,
            "likes": views // 20,
            "coins": views // 50,
            "favorites": views // 40,
            "shares": views // 200,
            "danmaku": views // 100,
            "replies": views // 150,
            "owner_mid": int(1000 + rng.integers(0, 30)),
            "owner_name": f"up{int(rng.integers(0, 30))}",
            "followers": int(rng.integers(1000, 400_000)),
            "on_hot_list": True,
            "pubdate": 1_700_000_000 + i * 3600,
            "fetched_at": 1_710_000_000,
            "tid": 201,
            "label": level,
        })
    table = pd.DataFrame(rows)
    table.insert(table.columns.get_loc("label"), "score", score_videos(table)["score"])
    out = folder / STAGE_FILES["label"]
    atomic_write(out, lambda tmp: table.to_parquet(tmp, index=False))
    return out


def _bvids(rng: np.random.Generator, n: int) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        bvid = "BV1" + "".join(rng.choice(list(_BASE58), size=9))
        if bvid not in seen:
            seen.add(bvid)
            out.append(bvid)
    return out

