"""bilipop serve against hostile files (bilipop.serve.uploads): EPS uploads never reach Ghostscript, and a decoder
that fails unexpectedly is a 400, not a 500."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed (pip install -e '.[web]')")

from helpers import CLIENT, site_client  # noqa: E402
from PIL import Image  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

TITLE = "一分钟看懂宇宙 讲解"


needs_gs = pytest.mark.skipif(shutil.which("gs") is None,
                              reason="Ghostscript (gs) is not installed; .ci/run installs it")


# -- hostile files -----------------------------------------------------------------------------------------------
@needs_gs
@pytest.mark.parametrize("path,explain", [("/api/predict", False), ("/api/predict", True), ("/api/rank", False)])
def test_an_eps_upload_is_a_400_and_its_postscript_never_runs(
    served_app, cover_bytes, tmp_path, hostile_eps, path, explain
):
    marker = tmp_path / "marker"
    files = [("cover", ("evil.jpg", hostile_eps(marker), "image/jpeg"))]
    if path == "/api/rank":
        files.insert(0, ("cover", ("good.jpg", cover_bytes, "image/jpeg")))
    data = {"title": TITLE, **({"explain": "1"} if explain else {})}
    with site_client(served_app, **CLIENT) as client:
        response = client.post(path, files=files, data=data)
    assert response.status_code == 400, response.text
    assert "evil.jpg is not an image bilipop reads (JPEG, PNG or WebP)" in response.json()["error"]
    assert not marker.exists()


def test_an_unexpected_decoder_exception_is_a_400_not_a_500(served_app, monkeypatch):
    from PIL import PngImagePlugin

    def explode(self, *args):
        raise RuntimeError("decoder bug")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", explode)
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (9, 9, 9)).save(buffer, format="PNG")
    with site_client(served_app, **CLIENT) as client:
        for explain in ("0", "1"):
            response = client.post("/api/predict", files=[("cover", ("a.png", buffer.getvalue(), "image/png"))],
                                   data={"title": TITLE, "explain": explain})
            assert response.status_code == 400, response.text
            assert "a.png is truncated or damaged (RuntimeError: decoder bug)" in response.json()["error"]
