"""Checking what a browser or script uploads before any of it reaches the model.

Every limit is here, with the reason, so that the page, the API docs and the tests share one set of numbers.
Uploaded covers are written to a private temporary folder under names the server makes up (``cover-0`` ...):
the client's file name is only ever echoed back as text, never used as a path.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bilipop.data.schema import blank_title
from bilipop.errors import InputError

#: At most this many covers and this many titles per request (the page's 1-4; 16 combinations at most).
MAX_CANDIDATES = 4
#: One cover file may be at most this large (a Bilibili cover is well under 2 MB).
MAX_FILE_BYTES = 10 * 1024 * 1024
#: A whole request may be at most this large: four covers at the limit plus the form's text.
MAX_BODY_BYTES = MAX_CANDIDATES * MAX_FILE_BYTES + 1024 * 1024
#: Covers with more pixels are refused before decoding (a 48-megapixel phone photo passes; a decompression bomb,
#: a small file that claims a huge canvas, does not). Pillow's own limit is about 89 million, and only warns there.
MAX_PIXELS = 50_000_000
#: Longer titles are refused: Bilibili allows 80 characters, and --explain's cost grows with the title's length.
MAX_TITLE_CHARS = 200


class UploadError(InputError):
    """A request the server refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Cover:
    """An uploaded cover: the name the client gave it and its bytes."""

    name: str
    data: bytes


@dataclass
class Upload:
    """The covers and titles of one request, written to ``folder`` by :meth:`save`."""

    covers: list[Cover]
    titles: list[str]
    folder: tempfile.TemporaryDirectory | None = field(default=None, repr=False)
    paths: list[Path] = field(default_factory=list)

    def save(self) -> list[Path]:
        """Write the covers to a new private temporary folder and check each one's header.

        Raises:
            UploadError: a cover that is not an image or claims more than MAX_PIXELS pixels.
        """
        self.folder = tempfile.TemporaryDirectory(prefix="bilipop-serve-")
        root = Path(self.folder.name)
        self.paths = []
        for i, cover in enumerate(self.covers):
            path = root / f"cover-{i}"
            path.write_bytes(cover.data)
            check_header(path, cover.name)
            self.paths.append(path)
        return self.paths

    def close(self) -> None:
        """Delete the temporary folder and everything written in it (heatmaps included)."""
        if self.folder is not None:
            self.folder.cleanup()
            self.folder = None

    def client_name(self, path: str | Path) -> str:
        """The client's name for one of the saved covers (``path`` itself when it is not one of them)."""
        for saved, cover in zip(self.paths, self.covers, strict=False):
            if str(path) in (str(saved), saved.name):  # the whole path, or only the file name
                return cover.name
        return str(path)

    def public_message(self, message: str) -> str:
        """``message`` with the server's temporary paths replaced by the client's file names."""
        for saved, cover in zip(self.paths, self.covers, strict=False):
            message = message.replace(str(saved), cover.name)
        if self.folder is not None:
            message = message.replace(self.folder.name, "")
        return message


def check_header(path: Path, name: str) -> None:
    """Read only the image header: refuse what is no image, and a canvas over MAX_PIXELS, before decoding.

    Raises:
        UploadError: 400 for a file that is not a JPEG, PNG or WebP, or is damaged; 413 for too many pixels.
    """
    from bilipop.images import FORMATS_TEXT, ImageTooLarge, UnsupportedImage, open_image

    try:
        with open_image(path) as image:
            width, height = image.size
    except UnsupportedImage:
        raise UploadError(f"cover {name} is not an image bilipop reads ({FORMATS_TEXT}); pick an image file") from None
    except ImageTooLarge:
        raise UploadError(f"cover {name} claims too many pixels to decode safely (over {MAX_PIXELS:,}); "
                          "use a smaller image", status=413) from None
    except InputError as exc:  # DamagedImage: whatever the decoder raised
        raise UploadError(f"cover {name} is {exc}; save it again") from None
    if width * height > MAX_PIXELS:
        raise UploadError(f"cover {name} is {width} x {height} pixels, over the limit of {MAX_PIXELS:,}; "
                          "use a smaller image (a Bilibili cover is 1920 x 1080 at most)", status=413)


def _unique(names: list[str]) -> list[str]:
    """Names made unique (``a.jpg``, ``a.jpg (2)``), so that a ranking's ``cover`` names one upload."""
    seen: dict[str, int] = {}
    result = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        result.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return result


def check_counts(covers: int, titles: int, *, single: bool) -> None:
    """Raises UploadError unless there are 1-4 covers and 1-4 titles (exactly one of each when ``single``)."""
    if single:
        if covers != 1 or titles != 1:
            raise UploadError(f"/api/predict takes one cover and one title, got {covers} and {titles}; "
                              "use /api/rank for several")
        return
    for count, what in ((covers, "cover"), (titles, "title")):
        if count == 0:
            raise UploadError(f"no {what} given; send 1 to {MAX_CANDIDATES} form fields named {what}")
        if count > MAX_CANDIDATES:
            raise UploadError(f"{count} {what}s given; at most {MAX_CANDIDATES} can be compared at once")


def check_title_text(title: str, number: int) -> str:
    """``title`` when usable; UploadError for an empty or over-long one (``number`` counts from 1)."""
    if blank_title(title):
        raise UploadError(f"title {number} is empty; type the video's title")
    if len(title) > MAX_TITLE_CHARS:
        raise UploadError(f"title {number} has {len(title)} characters, over the limit of {MAX_TITLE_CHARS} "
                          "(Bilibili allows 80)")
    return title


def cover_name(filename: str | None, number: int) -> str:
    """A display name for an uploaded file: its base name as the client sent it, or ``cover N``."""
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return base[:120] or f"cover {number}"


def make_upload(covers: list[tuple[str | None, bytes]], titles: list[str], *, single: bool) -> Upload:
    """Check counts, sizes and titles of a parsed form: ``covers`` as (file name, bytes) pairs.

    Raises:
        UploadError: 400 for a wrong count or a bad title, 413 for a file over MAX_FILE_BYTES.
    """
    check_counts(len(covers), len(titles), single=single)
    names = _unique([cover_name(name, i + 1) for i, (name, _) in enumerate(covers)])
    for name, (_, data) in zip(names, covers, strict=True):
        if len(data) > MAX_FILE_BYTES:
            raise UploadError(f"cover {name} is {len(data) / 2**20:.1f} MB, over the limit of "
                              f"{MAX_FILE_BYTES // 2**20} MB; save it smaller", status=413)
        if not data:
            raise UploadError(f"cover {name} is an empty file; pick an image file")
    checked = [check_title_text(t, i + 1) for i, t in enumerate(titles)]
    return Upload(covers=[Cover(n, d) for n, (_, d) in zip(names, covers, strict=True)], titles=checked)
