"""The one way bilipop opens an image: Pillow limited to an allow-list of formats.

A plain ``Image.open`` tries every format Pillow knows, and some of those hand the file to other programs: an EPS
"cover" runs its PostScript in Ghostscript when that is installed (it can read and write files, or loop forever).
Covers come from strangers (uploads, tables, crawled URLs), so every decoder in bilipop goes through
:func:`open_image`, which only lets Pillow's own JPEG, PNG and WebP decoders look at the bytes, and turns every
failure inside it, however unexpected, into an :class:`ImageError` the caller reports as a refused cover.
tests/test_images.py fails when a bare ``Image.open`` appears anywhere else in the package.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING

from bilipop.errors import InputError

if TYPE_CHECKING:
    from os import PathLike

    from PIL import Image

#: Pillow's names of the formats bilipop decodes (the README's "JPEG, PNG or WebP").
FORMATS = ("JPEG", "PNG", "WEBP")
#: The same, as said to users.
FORMATS_TEXT = "JPEG, PNG or WebP"
#: The longest side of a heatmap drawn over a cover (a Bilibili cover is 1920 x 1080 at most).
MAX_DRAWN_SIDE = 1920


class ImageError(InputError):
    """A file bilipop will not decode; ``str()`` says why in a few words, without the file's name."""


class UnsupportedImage(ImageError):
    """Not a JPEG, PNG or WebP (another image format, or no image at all)."""


class ImageTooLarge(ImageError):
    """A canvas over Pillow's decompression-bomb limit."""


class DamagedImage(ImageError):
    """A file of an allowed format that its decoder fails on (truncated, corrupt, or anything unexpected)."""


@contextmanager
def open_image(source: str | PathLike[str] | IO[bytes]) -> Iterator[Image.Image]:
    """Open ``source`` (a path or a binary file object) with only the allowed decoders, as ``with``.

    Any exception raised inside the block, by Pillow or by the caller's own decoding calls, leaves it as an
    ImageError, so a decoder's surprise can never become a traceback or an HTTP 500. A missing file is the
    caller's to check first (it gets DamagedImage here).

    Raises:
        UnsupportedImage: the bytes are not one of ``FORMATS``.
        ImageTooLarge: the canvas is over Pillow's decompression-bomb limit.
        DamagedImage: anything else that went wrong while the image was open.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source, formats=FORMATS) as image:
            yield image
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise UnsupportedImage(f"not a {FORMATS_TEXT} image") from None
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(str(exc).splitlines()[0][:300]) from None
    except Exception as exc:  # noqa: BLE001 - every decoder failure is a refused file, whatever its type
        raise DamagedImage(f"truncated or damaged ({type(exc).__name__}: {exc})".splitlines()[0][:300]) from exc
