"""Why a prediction came out as it did: occlusion of the cover and leave-one-token-out on the title.

Occlusion works for every vision branch (ViT or VGG) and needs nothing from the model's internals: each patch of
the preprocessed cover is replaced by 0 (the normalised mean colour) and the drop in the predicted class's
probability is that patch's importance. Title pieces (one CJK character, one Latin word or number, or one
symbol) are removed one at a time and the title re-tokenised, so the reported tokens are pieces the user wrote.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bilipop.errors import InputError

if TYPE_CHECKING:
    import numpy as np

    from bilipop.models.run import LoadedRun

GRID = 8
TOP_TOKENS = 5
_PIECE = re.compile(r"[A-Za-z0-9_]+|[^\sA-Za-z0-9_]")


def heatmap_path(cover: str | Path) -> Path:
    """Where the heatmap of ``cover`` goes: ``<stem>.explain.png`` in the cover's folder."""
    cover = Path(cover)
    return cover.with_name(f"{cover.stem}.explain.png")


def occlusion_map(run: LoadedRun, image, input_ids, attention_mask, label: int, grid: int = GRID) -> np.ndarray:
    """A (grid, grid) array: how much the probability of ``label`` drops when each patch is hidden (>= 0)."""
    import numpy as np
    import torch

    _, h, w = image.shape  # (3, H, W)
    ys = np.linspace(0, h, grid + 1).round().astype(int)
    xs = np.linspace(0, w, grid + 1).round().astype(int)
    base = run.class_probabilities(image[None], input_ids, attention_mask)[0, label]
    variants = []
    for i in range(grid):
        for j in range(grid):
            hidden = image.clone()
            hidden[:, ys[i]:ys[i + 1], xs[j]:xs[j + 1]] = 0
            variants.append(hidden)
    drops = []
    for start in range(0, len(variants), 32):
        batch = torch.stack(variants[start:start + 32])  # (b, 3, H, W)
        ids = mask = None
        if input_ids is not None:
            ids = input_ids.expand(len(batch), -1)
            mask = attention_mask.expand(len(batch), -1)
        drops.append(base - run.class_probabilities(batch, ids, mask)[:, label])
    return np.clip(np.concatenate(drops), 0, None).reshape(grid, grid)


def save_heatmap(cover: str | Path, heat: np.ndarray, path: Path) -> Path:
    """Overlay ``heat`` in red on the cover and save it as a PNG atomically.

    The overlay is drawn at the cover's own size up to ``MAX_DRAWN_SIDE`` pixels on its long side, and shrunk to
    that beyond: a 7000 x 7000 upload costs a 1920 x 1920 drawing, not three 49-megapixel ones. JPEGs are decoded
    at a reduced scale already; other formats are decoded once and shrunk in place.

    Raises:
        InputError: the cover is not a JPEG, PNG or WebP, or cannot be decoded.
    """
    import numpy as np
    from PIL import Image

    from bilipop.files import atomic_write
    from bilipop.images import MAX_DRAWN_SIDE, ImageError, open_image

    try:
        with open_image(cover) as img:
            img.draft("RGB", (MAX_DRAWN_SIDE, MAX_DRAWN_SIDE))
            img.thumbnail((MAX_DRAWN_SIDE, MAX_DRAWN_SIDE), Image.Resampling.BILINEAR)  # in place; never enlarges
            base = img.convert("RGB") if img.mode != "RGB" else img.copy()  # at most 1920 x 1920: cheap
    except ImageError as exc:
        raise InputError(f"cannot draw the heatmap over {cover}: it is {exc}; use a JPEG, PNG or WebP cover"
                         ) from exc
    peak = float(heat.max())
    scaled = (heat / peak if peak > 0 else heat) * 255
    mask = Image.fromarray(scaled.astype(np.uint8), mode="L").resize(base.size, Image.Resampling.BILINEAR)
    red = Image.new("RGB", base.size, (230, 20, 20))
    # Where the model does not care the cover shows through dimmed; where it does, red covers up to 65% of it.
    dimmed = Image.blend(base, Image.new("RGB", base.size, (0, 0, 0)), 0.25)
    overlay = Image.composite(red, dimmed, mask.point(lambda v: int(v * 0.65)))
    return atomic_write(path, lambda tmp: overlay.save(tmp, format="PNG"))


def title_pieces(title: str) -> list[tuple[int, int]]:
    """Spans of the pieces of ``title`` a user would call tokens."""
    return [m.span() for m in _PIECE.finditer(title)]


def token_drops(run: LoadedRun, images, title: str, label: int) -> list[dict[str, Any]]:
    """The title pieces whose removal lowers the probability of ``label`` most (largest drop first)."""
    spans = title_pieces(title)
    if len(spans) < 2:
        return []  # removing the only piece leaves no title to compare with
    variants = [title[:a] + title[b:] for a, b in spans]
    tokens = run.tokenize([title, *variants])
    ids, mask = tokens["input_ids"].to(run.device), tokens["attention_mask"].to(run.device)
    if images is not None:
        images = images.expand(len(variants) + 1, -1, -1, -1)
    probs = run.class_probabilities(images, ids, mask)[:, label]
    drops = [{"token": title[a:b], "position": a, "drop": float(probs[0] - p)}
             for (a, b), p in zip(spans, probs[1:], strict=True)]
    return sorted(drops, key=lambda d: -d["drop"])[:TOP_TOKENS]


def explain_prediction(run: LoadedRun, cover: str | Path, title: str, label: int) -> dict[str, Any]:
    """The explanation of one prediction: ``heatmap`` (PNG path or None) and ``tokens`` (largest drop first).

    Raises:
        InputError: the heatmap cannot be written beside the cover.
    """
    use_cover, use_title = run.uses_cover, run.uses_title
    image = run.preprocess_cover(cover).to(run.device) if use_cover else None  # (3, H, W)
    ids = mask = None
    if use_title:
        tokens = run.tokenize([title])
        ids, mask = tokens["input_ids"].to(run.device), tokens["attention_mask"].to(run.device)
    heatmap = None
    if image is not None:
        heat = occlusion_map(run, image, ids, mask, label)
        heatmap = heatmap_path(cover)
        try:
            save_heatmap(cover, heat, heatmap)
        except OSError as exc:
            raise InputError(f"cannot write the heatmap {heatmap}: {exc.strerror or exc}; "
                             "copy the cover to a folder you can write to") from None
    tokens_out = token_drops(run, image[None] if image is not None else None, title, label) if use_title else []
    return {"heatmap": str(heatmap) if heatmap else None, "tokens": tokens_out}
