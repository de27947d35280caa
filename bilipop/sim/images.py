"""Cover and avatar images: drawn with Pillow on first request, cached as bytes, resized by the ``@`` suffix.

A cover shows its video's ``CoverLook`` (bilipop.sim.popularity): brightness, saturation, a caption band and a
face raise views, as the popularity model states; the partition's hue and a few random shapes are noise.
Covers asked for at a smaller size (the ``@480w_270h_1c.jpg`` the crawler asks for) are drawn at that size.
"""

from __future__ import annotations

import colorsys
import io
import math
import random
import re
import threading
from collections import OrderedDict

from PIL import Image, ImageDraw

from bilipop.sim.popularity import WORST_LOOK, CoverLook
from bilipop.sim.world import Video

FORMATS = {"jpg": ("JPEG", "image/jpeg"), "jpeg": ("JPEG", "image/jpeg"), "png": ("PNG", "image/png"),
           "webp": ("WEBP", "image/webp"), "avif": ("AVIF", "image/avif")}
TID_HUES = {201: 210, 124: 280, 228: 30, 207: 120, 208: 190, 209: 0, 229: 320, 122: 60, 21: 40, 17: 260, 65: 250,
            172: 300, 95: 200, 230: 170, 231: 150, 76: 20, 212: 10}
# Other parameters the real image server knows (e for edge mode, s, ...) are accepted and ignored.
_TOKEN = re.compile(r"(\d+)([a-z]+)")


class BadSuffix(ValueError):
    """An ``@...`` suffix the image server does not understand."""


class ByteCache:
    """A thread-safe LRU of encoded images bounded by total size, so thousands of covers never pile up."""

    def __init__(self, max_bytes: int = 96 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: str, data: bytes) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = data
            self._size += len(data)
            while self._size > self.max_bytes and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self._size -= len(old)


def _rgb(hue: float, sat: float, val: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb((hue % 360) / 360, min(max(sat, 0.0), 1.0), min(max(val, 0.0), 1.0))
    return int(r * 255), int(g * 255), int(b * 255)


def fitted_size(width: int, height: int, max_width: int | None, max_height: int | None) -> tuple[int, int]:
    """The size of a ``width`` x ``height`` image fitted inside the maximum size, aspect kept, never enlarged."""
    scale = min(1.0, (max_width or math.inf) / width, (max_height or math.inf) / height)
    if scale >= 1.0:
        return width, height
    return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))


def draw_cover(video: Video, size: tuple[int, int] | None = None) -> Image.Image:
    """The cover of ``video``, at its source size or at ``size`` (the same picture: every position is a fraction
    of the size, and the random choices are seeded by the cover's file name alone)."""
    look = video.look or WORST_LOOK
    hue = TID_HUES.get(video.tid, 0)
    return draw_look(look, hue, video.cover, size or (video.cover_width, video.cover_height))


def draw_look(look: CoverLook, hue: float, seed: str, size: tuple[int, int]) -> Image.Image:
    """A cover showing exactly ``look`` (the stated cause of bilipop.sim.popularity) at ``size``; ``hue`` and the
    shapes seeded by ``seed`` are noise that does not change views.

    Drawn straight at the size asked for: a 480x270 cover costs a few milliseconds, where drawing the 1920x1080
    source and resizing it cost about 40.
    """
    rnd = random.Random(seed)
    w, h = size
    hue += rnd.gauss(0, 20)
    sat, val = look.saturation, look.brightness
    top, bottom = _rgb(hue, sat, val), _rgb(hue + 30, sat, val - 0.1)
    # A vertical gradient from top to bottom: one column of 256 shades stretched over the picture.
    column = Image.new("RGB", (1, 256))
    column.putdata([tuple(round(a + (b - a) * y / 255) for a, b in zip(top, bottom, strict=True))
                    for y in range(256)])
    img = column.resize((w, h), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(img)
    side = min(w, h)
    for _ in range(rnd.randint(1, 5)):
        # Shapes in the complementary hue, as bright and saturated as the background: clutter, not a cause.
        colour = _rgb(hue + 180 + rnd.gauss(0, 40), sat, val + rnd.uniform(-0.1, 0.1))
        r = side * rnd.uniform(0.05, 0.2)
        x, y = w * rnd.random(), h * rnd.random()
        kind = rnd.randrange(3)
        if kind == 0:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        elif kind == 1:
            draw.rectangle((x - r, y - r / 2, x + r, y + r / 2), fill=colour)
        else:
            draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=colour)
    band_colour = rnd.choice([(255, 230, 0), (255, 255, 255), (230, 30, 40)])
    if look.caption:
        # A caption band with big "letters", the way clickable covers shout their title.
        band = (w * 0.05, h * 0.68, w * 0.95, h * 0.92)
        draw.rectangle(band, fill=band_colour)
        step = max(3.0, side / 12)
        x = band[0] + side / 30
        while x + step < band[2] - side / 30:
            draw.rectangle((x, band[1] + step / 3, x + step * 0.8, band[3] - step / 3), fill=(20, 20, 20))
            x += step
    cx = w * rnd.uniform(0.6, 0.8)
    if look.face:
        cy, r = h * 0.4, side * 0.22
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(240, 200, 170))
        for ex in (cx - r / 3, cx + r / 3):
            draw.ellipse((ex - r / 10, cy - r / 4, ex + r / 10, cy - r / 20), fill=(30, 30, 30))
        draw.arc((cx - r / 2, cy, cx + r / 2, cy + r / 2), 20, 160, fill=(120, 30, 30), width=max(1, round(r / 15)))
    return img


def draw_face(name: str) -> Image.Image:
    rnd = random.Random(name)
    img = Image.new("RGB", (96, 96), _rgb(rnd.uniform(0, 360), 0.4, 0.9))
    ImageDraw.Draw(img).ellipse((20, 20, 76, 76), fill=_rgb(rnd.uniform(0, 360), 0.7, 0.6))
    return img


def encode(img: Image.Image, fmt: str, quality: int | None = None) -> bytes:
    pil_format = FORMATS[fmt][0]
    buf = io.BytesIO()
    if pil_format == "JPEG":
        img.convert("RGB").save(buf, "JPEG", quality=quality or 85)
    elif pil_format == "PNG":
        img.save(buf, "PNG", compress_level=6)
    else:
        img.save(buf, pil_format, quality=quality or 80)
    return buf.getvalue()


def parse_suffix(suffix: str) -> tuple[int | None, int | None, int | None, str]:
    """``480w_270h_1c_80q.jpg`` -> (480, 270, 80, "jpg"); a missing size stays None.

    Raises:
        BadSuffix: when the suffix is not of that form or names an unknown format.
    """
    stem, dot, fmt = suffix.rpartition(".")
    fmt = fmt.lower()
    if not dot or fmt not in FORMATS:
        raise BadSuffix(suffix)
    width = height = quality = None
    for token in filter(None, stem.split("_")):
        m = _TOKEN.fullmatch(token)
        if not m:
            raise BadSuffix(suffix)
        value, key = int(m.group(1)), m.group(2)
        if key == "w":
            width = value
        elif key == "h":
            height = value
        elif key == "q":
            quality = min(100, max(1, value))
    if width == 0 or height == 0:
        raise BadSuffix(suffix)
    return width, height, quality, fmt


def variant(source: bytes, suffix: str) -> tuple[bytes, str]:
    """Apply an ``@`` suffix: fit inside the maximum size keeping the aspect ratio (never enlarge), convert.

    Raises:
        BadSuffix: on a suffix that :func:`parse_suffix` rejects.
    """
    width, height, quality, fmt = parse_suffix(suffix)
    img: Image.Image = Image.open(io.BytesIO(source))
    img.load()
    size = fitted_size(img.width, img.height, width, height)
    if size != img.size:
        img = img.resize(size, Image.Resampling.LANCZOS)
    return encode(img, fmt, quality), FORMATS[fmt][1]
