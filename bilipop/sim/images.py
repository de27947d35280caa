"""Cover and avatar images: drawn with Pillow on first request, cached as bytes, resized by the ``@`` suffix.

A cover's look follows its video's hidden ``appeal`` (brighter, more saturated, busier, caption bands and faces)
and its partition (base hue), so an image model trained on simulated data has a real signal to find.
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


def draw_cover(video: Video) -> Image.Image:
    """The cover of ``video`` at its source size (deterministic: seeded by the cover's file name)."""
    rnd = random.Random(video.cover)
    w, h, a = video.cover_width, video.cover_height, video.appeal
    hue = TID_HUES.get(video.tid, 0) + rnd.gauss(0, 20)
    # Appeal shifts colour and busyness, with enough noise that covers alone never give the class away.
    sat = min(1.0, max(0.1, 0.4 + 0.12 * a + rnd.gauss(0, 0.15)))
    val = min(1.0, max(0.3, 0.62 + 0.08 * a + rnd.gauss(0, 0.12)))
    top, bottom = _rgb(hue, sat, val), _rgb(hue + 30, sat, val - 0.15)
    mask = Image.linear_gradient("L").resize((w, h))
    img = Image.composite(Image.new("RGB", (w, h), bottom), Image.new("RGB", (w, h), top), mask)
    draw = ImageDraw.Draw(img)
    side = min(w, h)
    for _ in range(min(9, max(1, round(3 + a + rnd.gauss(0, 1.2))))):
        colour = _rgb(hue + 180 + rnd.gauss(0, 40), sat + 0.2, val + 0.2 * rnd.random())
        r = int(side * rnd.uniform(0.05, 0.25))
        x, y = rnd.randint(0, w), rnd.randint(0, h)
        kind = rnd.randrange(3)
        if kind == 0:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        elif kind == 1:
            draw.rectangle((x - r, y - r // 2, x + r, y + r // 2), fill=colour)
        else:
            draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=colour)
    if rnd.random() < 1 / (1 + math.exp(-1.2 * a)):
        # A caption band with big "letters", the way clickable covers shout their title.
        band = (int(w * 0.05), int(h * 0.68), int(w * 0.95), int(h * 0.92))
        draw.rectangle(band, fill=rnd.choice([(255, 230, 0), (255, 255, 255), (230, 30, 40)]))
        x, step = band[0] + side // 30, max(8, side // 12)
        while x + step < band[2] - side // 30:
            draw.rectangle((x, band[1] + step // 3, x + int(step * 0.8), band[3] - step // 3), fill=(20, 20, 20))
            x += step
    if a > 0.3 and rnd.random() < 0.6:
        cx, cy, r = int(w * rnd.uniform(0.6, 0.8)), int(h * 0.4), int(side * 0.22)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(240, 200, 170))
        for ex in (cx - r // 3, cx + r // 3):
            draw.ellipse((ex - r // 10, cy - r // 4, ex + r // 10, cy - r // 20), fill=(30, 30, 30))
        draw.arc((cx - r // 2, cy, cx + r // 2, cy + r // 2), 20, 160, fill=(120, 30, 30), width=max(2, r // 15))
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
    img = Image.open(io.BytesIO(source))
    img.load()
    scale = min(1.0, (width or math.inf) / img.width, (height or math.inf) / img.height)
    if scale < 1.0:
        size = (max(1, math.floor(img.width * scale)), max(1, math.floor(img.height * scale)))
        img = img.resize(size, Image.Resampling.LANCZOS)
    return encode(img, fmt, quality), FORMATS[fmt][1]
