"""bilipop.crawl.covers: covers become RGB JPEGs no wider than 480, bad ones are refused, and writes leave no
temporary files behind."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bilipop.crawl import covers


def _image_bytes(mode: str, size: tuple[int, int], fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (10, 200, 30, 128) if mode == "RGBA" else (10, 200, 30)).save(buffer, fmt)
    return buffer.getvalue()


def test_covers_become_rgb_jpegs_no_wider_than_480():
    jpeg, size = covers.to_jpeg(_image_bytes("RGBA", (1280, 720), "PNG"))
    with Image.open(io.BytesIO(jpeg)) as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (480, 270)) and size == (480, 270)
    small = _image_bytes("RGB", (480, 270), "JPEG")
    assert covers.to_jpeg(small) == (small, (480, 270))  # kept byte for byte


def test_truncated_or_garbage_covers_are_refused():
    data = _image_bytes("RGB", (480, 270), "JPEG")
    for bad in (data[: len(data) // 3], b"\x00garbage" * 200, b""):
        with pytest.raises(covers.BadCover):
            covers.to_jpeg(bad)


def test_cover_url_gets_the_size_suffix():
    assert covers.sized_url("http://i0.hdslb.com/bfs/archive/ab.png") == "http://i0.hdslb.com/bfs/archive/ab.png@480w_270h_1c.jpg"
    assert covers.sized_url("//i1.hdslb.com/bfs/archive/ab.jpg@100w.webp").startswith("https://i1.hdslb.com/bfs/archive/ab.jpg@480w")


def test_cover_writes_leave_no_temp_files_and_leftovers_are_removed(tmp_path):
    covers.write_cover(tmp_path, "BV17x411w7KC", b"jpeg bytes")
    assert [p.name for p in tmp_path.iterdir()] == ["BV17x411w7KC.jpg"]
    (tmp_path / ".BV17x411w7KD.abc123.tmp").write_bytes(b"half a cov")
    assert covers.remove_temp_files(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["BV17x411w7KC.jpg"]
