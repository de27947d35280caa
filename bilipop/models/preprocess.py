"""Turning a cover file and a title into model inputs: the one implementation used by training, the cover cache,
evaluation and prediction, so that all of them see exactly the same tensors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from bilipop.data.schema import blank_title
from bilipop.errors import InputError


def resolve_cover(value: object, data: Path, table_path: Path) -> Path:
    """Where a table's ``cover_path`` points: absolute as is; relative, against the dataset folder ``data``, else
    against the table's own folder when only that one holds the file. A missing value gives ``Path("")``.

    The one rule shared by training and evaluation, so both read the same files.
    """
    if value is None or value != value or not str(value).strip():
        return Path("")
    path = Path(str(value))
    if path.is_absolute():
        return path
    in_data, beside = Path(data) / path, Path(table_path).parent / path
    return in_data if in_data.exists() or not beside.exists() else beside


def decode_cover(path: str | Path, size: int, *, what: str = "") -> np.ndarray:
    """Decode an image file to RGB and resize it to (size, size): uint8 array (size, size, 3).

    JPEGs are decoded at a reduced scale when the file is much larger than ``size`` (Pillow's draft mode), which
    is the main saving over a plain decode followed by a resize.

    Raises:
        InputError: the file is missing, truncated, or not a JPEG, PNG or WebP (no other decoder ever sees it).
    """
    from PIL import Image

    from bilipop.images import FORMATS_TEXT, DamagedImage, ImageTooLarge, open_image

    path = Path(path)
    label = f"{what} " if what else ""
    if path == Path(""):  # an empty cover_path (resolve_cover)
        raise InputError(f"no cover file is given{' ' + what if what else ''}; fill in cover_path")
    # ``what`` names a dataset's video: only its covers come from a crawl. A cover of the user's own (predict)
    # gets advice about that file instead.
    if not path.is_file():
        raise InputError(f"cover {label}{path} does not exist; " + (
            "download the covers again (bilipop crawl) or fix cover_path" if what else "check the path"))
    try:
        with open_image(path) as image:
            image.draft("RGB", (size, size))
            if image.mode != "RGB":
                image = image.convert("RGB")  # an RGB image is resized as it is: no full-size copy
            rgb = image.resize((size, size), Image.Resampling.BILINEAR)
    except ImageTooLarge as exc:
        raise InputError(f"cover {label}{path} is too large to decode safely ({exc}); use a smaller image") from exc
    except DamagedImage as exc:
        raise InputError(f"cover {label}{path} is {exc}; " + (
            "download it again or remove the row" if what else "save the image again or use another file")) from exc
    except InputError as exc:  # UnsupportedImage
        raise InputError(f"cover {label}{path} is not an image bilipop reads ({FORMATS_TEXT}); "
                         "convert it or use another file") from exc
    return np.array(rgb, dtype=np.uint8)


def check_cover(path: str | Path, *, what: str = "") -> None:
    """Cheap full check of a cover: header, then a decode at 1/8 scale (catches truncated JPEGs too).

    Raises:
        InputError: as ``decode_cover``.
    """
    decode_cover(path, 8, what=what)


def to_tensor(pixels: np.ndarray | torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (H, W, 3) or (B, H, W, 3) -> float32 (3, H, W) or (B, 3, H, W), normalised per channel.

    Training moves the uint8 batch to the device first and calls this there: the same arithmetic either way.
    """
    if isinstance(pixels, np.ndarray):
        pixels = torch.from_numpy(np.array(pixels, dtype=np.uint8))  # a copy: memmaps are read-only
    x = pixels.float().div_(255.0).movedim(-1, -3)
    m = torch.tensor(mean, dtype=torch.float32, device=x.device)[:, None, None]
    s = torch.tensor(std, dtype=torch.float32, device=x.device)[:, None, None]
    return (x - m) / s


def tokenize(tokenizer, titles: Sequence[str], max_tokens: int, offsets: bool = False) -> dict[str, torch.Tensor]:
    """Titles -> {"input_ids", "attention_mask"} (B, T) long, T <= max_tokens; with ``offsets`` also
    "offset_mapping" (B, T, 2), each token's character span (a fast tokenizer's offsets).

    Raises:
        InputError: a title is empty or blank.
    """
    check_titles(titles)
    enc = tokenizer(list(titles), padding=True, truncation=True, max_length=max_tokens, return_tensors="pt",
                    **({"return_offsets_mapping": True} if offsets else {}))
    out = {"input_ids": enc["input_ids"].long(), "attention_mask": enc["attention_mask"].long()}
    if offsets:
        out["offset_mapping"] = enc["offset_mapping"].long()
    return out


def check_titles(titles: Sequence[str]) -> None:
    """Raises InputError naming the first empty or blank title."""
    for i, title in enumerate(titles):
        if blank_title(title):
            raise InputError(f"title number {i + 1} is empty; every video needs a title")
