"""PNG figures drawn with Pillow alone (matplotlib is not a dependency): the confusion matrix, training curves and
the reliability diagram.

Both figures are written atomically, so an interrupted evaluation never leaves a half-drawn PNG behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bilipop.errors import InputError
from bilipop.files import atomic_write

_BG = (255, 255, 255)
_INK = (30, 30, 30)
_GRID = (225, 225, 225)
_TRAIN = (31, 119, 180)
_VALID = (214, 39, 40)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font, still legible
        return ImageFont.load_default()


def _centered(draw, xy: tuple[float, float], text: str, font, fill=_INK) -> None:
    draw.text(xy, text, font=font, fill=fill, anchor="mm")


def _save(image, path: Path) -> Path:
    return atomic_write(Path(path), lambda tmp: image.save(tmp, format="PNG"))


def confusion_png(confusion: Sequence[Sequence[int]], labels: Sequence[str], path: str | Path,
                  title: str = "Confusion matrix") -> Path:
    """Draw ``confusion`` (rows true, columns predicted) as a heatmap with the count and row share in each cell.

    Raises:
        InputError: the matrix is not square or does not match ``labels``.
    """
    from PIL import Image, ImageDraw

    k = len(labels)
    if len(confusion) != k or any(len(row) != k for row in confusion):
        raise InputError(f"the confusion matrix must be {k}x{k} to match the class names")
    cell, left, top = 96, 170, 90
    width, height = left + k * cell + 40, top + k * cell + 55
    image = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(image)
    big, font, small = _font(20), _font(14), _font(12)
    _centered(draw, (width / 2, 26), title, big)
    _centered(draw, (left + k * cell / 2, top - 40), "predicted class", font)
    for j, name in enumerate(labels):
        _centered(draw, (left + j * cell + cell / 2, top - 14), f"{j}: {name}", small)
    # Colour by the share of the true class's row, so a small class is as readable as a large one.
    for i, row in enumerate(confusion):
        total = sum(row)
        _centered(draw, (left - 70, top + i * cell + cell / 2), f"{i}: {labels[i]}", small)
        for j, count in enumerate(row):
            share = count / total if total else 0.0
            shade = (int(255 - 215 * share), int(255 - 160 * share), int(255 - 60 * share))
            x0, y0 = left + j * cell, top + i * cell
            draw.rectangle((x0, y0, x0 + cell, y0 + cell), fill=shade, outline=_INK if i == j else _GRID,
                           width=2 if i == j else 1)
            ink = _BG if share > 0.55 else _INK
            _centered(draw, (x0 + cell / 2, y0 + cell / 2 - 9), str(count), font, ink)
            _centered(draw, (x0 + cell / 2, y0 + cell / 2 + 11), f"{share:.0%}", small, ink)
    draw.text((12, top + k * cell / 2), "true", font=font, fill=_INK, anchor="lm")
    n = sum(sum(row) for row in confusion)
    _centered(draw, (width / 2, top + k * cell + 30),
              f"n = {n}; cell colour = share of the true class's row; diagonal outlined", small)
    return _save(image, Path(path))


def _nice_range(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    pad = (hi - lo) * 0.08
    return lo - pad, hi + pad


def _panel(draw, box: tuple[int, int, int, int], epochs: list[int], series: dict[str, list[float | None]],
           title: str, fonts, fixed: tuple[float, float] | None = None) -> None:
    big, font, small = fonts
    x0, y0, x1, y1 = box
    _centered(draw, ((x0 + x1) / 2, y0 - 18), title, font)
    values = [v for ys in series.values() for v in ys if v is not None]
    lo, hi = _nice_range(values or [0.0, 1.0]) if fixed is None else fixed
    e_lo, e_hi = min(epochs), max(epochs)
    span = max(e_hi - e_lo, 1)

    def px(epoch: float, value: float) -> tuple[float, float]:
        x = x0 + 30 + (epoch - e_lo) / span * (x1 - x0 - 60) if e_hi > e_lo else (x0 + x1) / 2
        return x, y1 - (value - lo) / (hi - lo) * (y1 - y0)

    for i in range(5):
        value = lo + (hi - lo) * i / 4
        _, y = px(e_lo, value)
        draw.line((x0, y, x1, y), fill=_GRID)
        draw.text((x0 - 6, y), f"{value:.3f}", font=small, fill=_INK, anchor="rm")
    draw.rectangle(box, outline=_INK)  # after the grid, which would otherwise paint over its edges
    for epoch in epochs:
        x, _ = px(epoch, lo)
        draw.line((x, y1, x, y1 + 5), fill=_INK)
        draw.text((x, y1 + 8), str(epoch), font=small, fill=_INK, anchor="mt")
    _centered(draw, ((x0 + x1) / 2, y1 + 34), "epoch", small)
    last = []
    for (name, ys), colour in zip(series.items(), (_TRAIN, _VALID), strict=False):
        if ys and ys[-1] is not None:
            last.append(f"{name} {ys[-1]:.3f}")
        points = [px(e, v) for e, v in zip(epochs, ys, strict=True) if v is not None]
        if len(points) > 1:
            draw.line(points, fill=colour, width=3)
        for x, y in points:
            draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=colour)
    if last:
        _centered(draw, ((x0 + x1) / 2, y1 + 52), "last epoch: " + ", ".join(last), small)


def _legend(draw, centre: float, y: float, font) -> None:
    """One legend for both panels, above them, so it never hides a point."""
    x = centre - 110
    for name, colour in (("train", _TRAIN), ("valid", _VALID)):
        draw.line((x, y, x + 28, y), fill=colour, width=3)
        draw.ellipse((x + 10, y - 4, x + 18, y + 4), fill=colour)
        draw.text((x + 36, y), name, font=font, fill=_INK, anchor="lm")
        x += 110


def curves_png(history: Sequence[dict], path: str | Path, title: str = "Training curves",
               valid_part: str = "valid") -> Path:
    """Draw loss and ordinal accuracy per epoch, train and valid, side by side, from ``history.jsonl`` rows.

    Raises:
        InputError: the history is empty or lacks the epoch column.
    """
    from PIL import Image, ImageDraw

    if not history:
        raise InputError("history.jsonl has no epochs; train the run for at least one epoch")
    if any("epoch" not in row for row in history):
        raise InputError("history.jsonl rows need an 'epoch' field; the run folder looks damaged")
    epochs = [int(row["epoch"]) for row in history]
    width, height = 1100, 520
    image = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(image)
    fonts = (_font(20), _font(15), _font(12))
    _centered(draw, (width / 2, 22), title, fonts[0])
    _legend(draw, width / 2, 54, fonts[1])
    for box, metric, label, fixed in (((90, 110, 520, 430), "loss", "cross-entropy loss", None),
                                      ((620, 110, 1050, 430), "ordinal_accuracy", "ordinal accuracy", (0.0, 1.0))):
        series = {split: [_number(row.get(f"{split}_{metric}")) for row in history] for split in ("train", "valid")}
        _panel(draw, box, epochs, series, label, fonts, fixed)
    caption = ("valid = the run's test part (split.json; --select-on test, as the study)" if valid_part == "test"
               else "valid = the run's valid part (split.json), on which the kept epoch was chosen")
    _centered(draw, (width / 2, height - 14), caption, fonts[2])
    return _save(image, Path(path))


def _number(value: object) -> float | None:
    if not isinstance(value, (int, float, str)):  # None (a missing figure) or anything else a history row holds
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number == number else None


def calibration_png(bins: Sequence[dict], path: str | Path, title: str = "Reliability diagram",
                    ece: float | None = None) -> Path:
    """Draw a reliability diagram: per confidence bin, the accuracy of its rows (bar) against the diagonal of
    perfect calibration, the gap shaded, and below it how many rows fall in each bin.

    Raises:
        InputError: no bins.
    """
    from PIL import Image, ImageDraw

    if not bins:
        raise InputError("the reliability diagram needs at least one bin")
    width, height = 780, 790
    image = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(image)
    big, font, small = _font(20), _font(15), _font(12)
    _centered(draw, (width / 2, 24), title, big)
    x0, y0, x1, y1 = 120, 70, 720, 530  # accuracy panel
    h0, h1 = 580, 700  # counts panel

    def x(value: float) -> float:
        return x0 + value * (x1 - x0)

    def y(value: float) -> float:
        return y1 - value * (y1 - y0)

    for i in range(6):
        v = i / 5
        draw.line((x0, y(v), x1, y(v)), fill=_GRID)
        draw.text((x0 - 8, y(v)), f"{v:.1f}", font=small, fill=_INK, anchor="rm")
        draw.text((x(v), h1 + 8), f"{v:.1f}", font=small, fill=_INK, anchor="mt")
    for b in bins:
        if not b["n"]:
            continue
        left, right = x(b["lo"]) + 2, x(b["hi"]) - 2
        top, bottom = sorted((y(b["accuracy"]), y(b["confidence"])))
        draw.rectangle((left, top, right, bottom), fill=(244, 180, 180))  # the gap, seen above a short bar
        draw.rectangle((left, y(b["accuracy"]), right, y1), fill=(173, 198, 231), outline=_TRAIN)
        draw.rectangle((left, top, right, bottom), outline=_VALID, width=2)  # the gap, also inside a tall one
        draw.line((left, y(b["confidence"]), right, y(b["confidence"])), fill=_INK, width=2)
    draw.line((x(0), y(0), x(1), y(1)), fill=_INK, width=2)
    draw.rectangle((x0, y0, x1, y1), outline=_INK)
    draw.text((x0 - 75, (y0 + y1) / 2), "accuracy", font=font, fill=_INK, anchor="mm")
    peak = max(b["n"] for b in bins) or 1
    for b in bins:
        if b["n"]:
            top = h1 - b["n"] / peak * (h1 - h0)
            draw.rectangle((x(b["lo"]) + 2, top, x(b["hi"]) - 2, h1), fill=(200, 200, 200), outline=_INK)
            _centered(draw, ((x(b["lo"]) + x(b["hi"])) / 2, top - 9), str(b["n"]), small)
    draw.rectangle((x0, h0, x1, h1), outline=_INK)
    draw.text((x0 - 75, (h0 + h1) / 2), "rows", font=font, fill=_INK, anchor="mm")
    _centered(draw, ((x0 + x1) / 2, h1 + 30), "confidence (probability of the predicted class)", font)
    n = sum(b["n"] for b in bins)
    note = f"n = {n}" + (f"; expected calibration error (ECE) = {ece:.4f}" if ece is not None else "")
    _centered(draw, (width / 2, height - 30), note, small)
    _centered(draw, (width / 2, height - 12), "blue bar: accuracy of the bin's rows; black line: their mean "
              "confidence; red box: the gap between them (0 on the diagonal)", small)
    return _save(image, Path(path))
