"""Cover images: ask the image host for a small size, check the bytes decode, store an RGB JPEG atomically."""

from __future__ import annotations

import io
import re
from pathlib import Path

from bilipop.errors import CrawlError
from bilipop.files import TEMP_SUFFIX, atomic_write

#: Bilibili's image service resizes on request; 480x270 is the largest 16:9 size the crawl needs (the models
#: resize to 384 anyway) and saves the image host a full-size transfer.
SIZE_SUFFIX = "@480w_270h_1c.jpg"
MAX_WIDTH = 480
JPEG_QUALITY = 90
#: The only file names the covers folder ever gets: ``<bvid>.jpg`` with a valid BV id.
BVID_FILE = re.compile(r"BV1[1-9A-HJ-NP-Za-km-z]{9}\.jpg")


class BadCover(CrawlError):
    """The downloaded bytes are not a complete image."""


def sized_url(pic: str) -> str:
    """The cover URL with the size suffix (any suffix already there is replaced); scheme-less URLs get https."""
    url = pic.strip()
    if url.startswith("//"):
        url = "https:" + url
    return url.split("@", 1)[0] + SIZE_SUFFIX


def to_jpeg(data: bytes) -> tuple[bytes, tuple[int, int]]:
    """The bytes to store for a downloaded cover, and its size.

    A server that ignored the size suffix gets its image shrunk to ``MAX_WIDTH`` here. An RGB JPEG that needs no
    resizing is kept byte for byte (re-encoding would only lose quality).

    Raises:
        BadCover: the bytes are truncated, garbage or not an image.
    """
    from PIL import Image

    from bilipop.images import ImageError, open_image

    try:
        with open_image(io.BytesIO(data)) as image:
            image.load()  # decodes every byte: a truncated file fails here, not later in training
            if image.format == "JPEG" and image.mode == "RGB" and image.width <= MAX_WIDTH:
                return data, image.size
            rgb = _flatten(image)
            if rgb.width > MAX_WIDTH:
                rgb = rgb.resize((MAX_WIDTH, max(1, round(rgb.height * MAX_WIDTH / rgb.width))),
                                 Image.Resampling.LANCZOS)
            buffer = io.BytesIO()
            rgb.save(buffer, "JPEG", quality=JPEG_QUALITY)
            return buffer.getvalue(), rgb.size
    except ImageError as exc:  # another format (EPS never reaches Ghostscript), truncated, or any decoder failure
        raise BadCover(f"not a complete JPEG, PNG or WebP image ({exc})".splitlines()[0]) from exc


def _flatten(image):  # noqa: ANN001, ANN202 - PIL types stay out of the module's import time
    """RGB, with any transparency laid over white (a black background would change how the cover looks)."""
    from PIL import Image

    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def cover_path(covers_dir: Path, bvid: str) -> Path:
    """Where a video's cover lives: ``covers/<bvid>.jpg``.

    Raises:
        ValueError: ``bvid`` is not a BV id (it never becomes a path).
    """
    if not BVID_FILE.fullmatch(f"{bvid}.jpg"):
        raise ValueError(f"not a BV id: {bvid[:40]!r}")
    return covers_dir / f"{bvid}.jpg"


def write_cover(covers_dir: Path, bvid: str, jpeg: bytes) -> Path:
    """Write ``covers/<bvid>.jpg`` through a temporary file and a rename, so a partial cover never exists."""
    return atomic_write(cover_path(covers_dir, bvid), lambda tmp: tmp.write_bytes(jpeg))


def remove_temp_files(covers_dir: Path) -> int:
    """Delete temporary files left by a crawl that was killed mid-write (only one crawl holds the folder)."""
    removed = 0
    if covers_dir.is_dir():
        for path in covers_dir.glob(f".*{TEMP_SUFFIX}"):
            path.unlink(missing_ok=True)
            removed += 1
    return removed
