"""Why a prediction came out as it did, for about the cost of the prediction: ONE forward and backward pass of the
whole fusion model, with gradients on the cover's pixels and on the title's token embeddings (gradient x input).

The predicted class's log-odds, log(p / (1 - p)), is differentiated once (the log-odds rather than p itself: the
gradient of a confident p is nearly 0 everywhere and would rank noise). A ViT's heatmap is Chefer et al.'s
gradient-weighted attention rollout over its patches (plain gradient x pixel misses what a ViT uses: its layer norms
make it nearly blind to a patch's scale). A VGG's is gradient x pixel summed over each cell, the first-order
estimate of how much the log-odds drop when that cell is hidden (set to 0, the normalised mean colour). For a title
token, gradient x embedding estimates the drop (converted to probability: d p = p (1 - p) d log-odds) when the
token's embedding is zeroed; tokens are summed into the pieces the user wrote (one CJK character, one Latin word or
number, or one symbol) through the tokenizer's character offsets. Each input is encoded once, the gradient reaches
only the inputs and attention maps (no weight gradients are computed), and it works for either cover encoder (ViT or
VGG) and for a run whose cover or title weight is 0 (that part of the explanation is then empty).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bilipop.errors import InputError, ModelError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from bilipop.models.run import LoadedRun

GRID = 8
TOP_TOKENS = 5
_PIECE = re.compile(r"[A-Za-z0-9_]+|[^\sA-Za-z0-9_]")


@dataclass
class Attribution:
    """One pass's result: the class probabilities, the explained class, the cover's (grid, grid) heat (None
    without a cover branch) and each title piece's estimated drop (span -> drop; empty without a title branch)."""

    probabilities: np.ndarray
    label: int
    heat: np.ndarray | None
    pieces: list[tuple[tuple[int, int], float]]


@dataclass(frozen=True)
class TokenDrop:
    """A piece of the title and the estimated drop in the explained class's probability without it."""

    token: str
    position: int  # the piece's first character in the title
    drop: float

    def to_json(self) -> dict[str, Any]:
        """``{"token", "position", "drop"}``, as ``predict --json`` documents it."""
        return {"token": self.token, "position": self.position, "drop": self.drop}


@dataclass
class Explanation:
    """Why a prediction came out as it did: the cover heatmap's PNG path (None without a cover branch) and the
    title pieces that mattered most, largest drop first (empty without a title branch)."""

    heatmap: str | None
    tokens: list[TokenDrop]

    def to_json(self) -> dict[str, Any]:
        """The ``explanation`` object of ``predict --json --explain``."""
        return {"heatmap": self.heatmap, "tokens": [t.to_json() for t in self.tokens]}


def heatmap_path(cover: str | Path) -> Path:
    """Where the heatmap of ``cover`` goes: ``<stem>.explain.png`` in the cover's folder."""
    cover = Path(cover)
    return cover.with_name(f"{cover.stem}.explain.png")


def heat_grid(run: LoadedRun, grid: int = GRID) -> int:
    """Cells per side of the heatmap: a ViT's patch grid (24 for ViT-B/16 at 384 px), else ``grid``."""
    vision = (run.config.get("model") or {}).get("vision") or {}
    if vision.get("kind") == "vit":
        spec = vision["spec"]
        return int(spec["image_size"]) // int(spec["patches"])
    return grid


def attribute(run: LoadedRun, image: torch.Tensor | None, title: str | None, label: int | None = None,
              grid: int | None = None) -> Attribution:
    """Probabilities and attributions of one cover (3, H, W, preprocessed) and title in one forward + backward.

    ``label`` is the class explained (None: the most likely one). ``image`` or ``title`` is ignored (may be None)
    when the run has no such branch.

    Raises:
        ModelError: the run was quantized to int8 (its layers have no gradient).
        InputError: an empty title.
    """
    import numpy as np
    import torch

    from bilipop.models.ordinal import probabilities

    if run.quantized:
        raise ModelError(f"explanations need the model's gradients, which --quantize {run.quantized} removes: "
                         "run without --quantize to explain")
    model = run.model
    grid = grid or heat_grid(run)
    inputs: list[torch.Tensor] = []
    attentions: list[torch.Tensor] = []
    cover_vec = title_vec = pixels = embeds = None
    with torch.enable_grad():
        if model.has_vision:
            pixels = image[None].to(run.device).detach().requires_grad_()  # type: ignore[index]  # given with covers
            cover_vec = model.encode_cover(pixels, attentions)
            inputs.append(pixels)
        if model.has_text:
            tokens = run.tokenize([title], offsets=True)  # type: ignore[list-item]  # given with titles
            ids, mask = tokens["input_ids"].to(run.device), tokens["attention_mask"].to(run.device)
            embeds = model.token_embeddings(ids).detach().requires_grad_()  # (1, T, E)
            title_vec = model.encode_title(None, mask, embeds=embeds)
            inputs.append(embeds)
        # float64 from the logits on, so that a confident class's probability does not round to 1
        probs = probabilities(model.fuse(cover_vec, title_vec).double(), run.loss)[0]  # (5,)
        label = int(probs.argmax()) if label is None else int(label)
        others = torch.cat((probs[:label], probs[label + 1:])).sum()
        log_odds = torch.log(probs[label].clamp_min(1e-300)) - torch.log(others.clamp_min(1e-300))
        grads = torch.autograd.grad(log_odds, inputs + attentions)
    heat = pieces = None
    if attentions:  # a ViT: gradient-weighted attention rollout over its patches
        heat = _rollout(attentions, grads[len(inputs):])
    elif pixels is not None:
        per_pixel = (grads[0] * pixels).sum(1)[0].detach().cpu().double().numpy()  # (H, W)
        heat = np.clip(_cell_sums(per_pixel, grid), 0, None)
    if embeds is not None:
        # d p = p (1 - p) d log-odds: the tokens' estimates in probability, the unit predict and the page show
        p = float(probs[label].detach())
        per_token = p * (1 - p) * (grads[len(inputs) - 1] * embeds).sum(-1)[0].detach().cpu().double().numpy()
        pieces = _piece_drops(run, title, tokens, per_token)  # type: ignore[arg-type]  # given with titles
    return Attribution(probs.detach().double().cpu().numpy(), label, heat, pieces or [])


def _rollout(attentions: list, grads: tuple) -> np.ndarray:
    """Chefer et al.'s gradient-weighted attention rollout (2021): R = I, then per block R += mean over heads of
    relu(grad * attention) @ R; the class token's row over the patches, as the (n, n) patch grid."""
    import torch

    seq = attentions[0].shape[-1]
    relevance = torch.eye(seq, dtype=torch.float64)
    for probs, grad in zip(attentions, grads, strict=True):
        cam = (grad * probs)[0].clamp(min=0).mean(0).detach().cpu().double()  # (S, S)
        relevance = relevance + cam @ relevance
    patches = relevance[0, 1:].numpy()  # (P,)
    side = int(round(len(patches) ** 0.5))
    return patches.reshape(side, side)


def _cell_sums(values: np.ndarray, grid: int) -> np.ndarray:
    """Sum a (H, W) array over a (grid, grid) partition of near-equal cells."""
    import numpy as np

    h, w = values.shape
    ys = np.linspace(0, h, grid + 1).round().astype(int)
    xs = np.linspace(0, w, grid + 1).round().astype(int)
    rows = np.add.reduceat(values, ys[:-1], axis=0)  # (grid, W)
    return np.add.reduceat(rows, xs[:-1], axis=1)  # (grid, grid)


def _piece_drops(run: LoadedRun, title: str, tokens: dict, per_token: np.ndarray
                 ) -> list[tuple[tuple[int, int], float]]:
    """Each title piece's span and the sum of its tokens' scores (tokens cut off by max_tokens count nothing)."""
    spans = title_pieces(title)
    totals = [0.0] * len(spans)
    starts = [a for a, _ in spans]
    offsets = tokens["offset_mapping"][0].tolist()
    mask = tokens["attention_mask"][0].tolist()
    for (a, b), keep, score in zip(offsets, mask, per_token, strict=True):
        if not keep or b <= a:
            continue  # padding, [CLS], [SEP]
        i = bisect.bisect_right(starts, a) - 1
        if i >= 0 and a < spans[i][1]:
            totals[i] += float(score)
    return list(zip(spans, totals, strict=True))


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


def top_tokens(title: str, pieces: list[tuple[tuple[int, int], float]]) -> list[TokenDrop]:
    """The TOP_TOKENS pieces with the largest estimated drop."""
    if len(pieces) < 2:
        return []  # a one-piece title: there is nothing to rank it against
    drops = [TokenDrop(title[a:b], a, drop) for (a, b), drop in pieces]
    return sorted(drops, key=lambda d: -d.drop)[:TOP_TOKENS]


def explain_prediction(run: LoadedRun, cover: str | Path, title: str,
                       label: int | None = None) -> tuple[np.ndarray, Explanation]:
    """The class probabilities of one cover and title and their explanation: ``heatmap`` (PNG path or None) and
    ``tokens`` (largest estimated drop first), all from one forward and backward pass.

    Raises:
        InputError: a bad cover or title, or the heatmap cannot be written beside the cover.
        ModelError: the run was quantized to int8.
    """
    image = run.preprocess_cover(cover) if run.uses_cover else None  # (3, H, W)
    found = attribute(run, image, title if run.uses_title else None, label)
    heatmap = None
    if found.heat is not None:
        heatmap = heatmap_path(cover)
        try:
            save_heatmap(cover, found.heat, heatmap)
        except OSError as exc:
            raise InputError(f"cannot write the heatmap {heatmap}: {exc.strerror or exc}; "
                             "copy the cover to a folder you can write to") from None
    tokens = top_tokens(title, found.pieces) if run.uses_title else []
    return found.probabilities, Explanation(str(heatmap) if heatmap else None, tokens)
