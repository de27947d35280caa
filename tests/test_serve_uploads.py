"""bilipop serve against hostile files (bilipop.serve.uploads): EPS uploads never reach Ghostscript, and a decoder
that fails unexpectedly is a 400, not a 500."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

pytest.importorskip("starlette", reason="the web extra is not installed (pip install -e '.[web]')")

from PIL import Image  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from bilipop.serve import app as web  # noqa: E402
from bilipop.serve.server import load_served_run  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

TITLE = "一分钟看懂宇宙 讲解"

CLIENT = {"X-Bilipop": "1"}

needs_gs = pytest.mark.skipif(shutil.which("gs") is None,
                              reason="Ghostscript (gs) is not installed; .ci/run installs it")


@pytest.fixture(scope="module")
def run(tiny_run):
    return load_served_run(tiny_run["run"])


@pytest.fixture(scope="module")
def app(run):
    return web.create_app(run)


def _client(app, host: str = "127.0.0.1:8765", **headers) -> TestClient:
    return TestClient(app, base_url=f"http://{host}", headers=headers, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def cover(tiny_run):
    table = pd.read_parquet(tiny_run["table"])
    return (tiny_run["data"] / table["cover_path"].iloc[0]).read_bytes()


# -- hostile files -----------------------------------------------------------------------------------------------
@needs_gs
@pytest.mark.parametrize("path,explain", [("/api/predict", False), ("/api/predict", True), ("/api/rank", False)])
def test_an_eps_upload_is_a_400_and_its_postscript_never_runs(app, cover, tmp_path, hostile_eps, path, explain):
    marker = tmp_path / "marker"
    files = [("cover", ("evil.jpg", hostile_eps(marker), "image/jpeg"))]
    if path == "/api/rank":
        files.insert(0, ("cover", ("good.jpg", cover, "image/jpeg")))
    data = {"title": TITLE, **({"explain": "1"} if explain else {})}
    with _client(app, **CLIENT) as client:
        response = client.post(path, files=files, data=data)
    assert response.status_code == 400, response.text
    assert "evil.jpg is not an image bilipop reads (JPEG, PNG or WebP)" in response.json()["error"]
    assert not marker.exists()


def test_an_unexpected_decoder_exception_is_a_400_not_a_500(app, monkeypatch):
    from PIL import PngImagePlugin

    def explode(self, *args):
        raise RuntimeError("decoder bug")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", explode)
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (9, 9, 9)).save(buffer, format="PNG")
    with _client(app, **CLIENT) as client:
        for explain in ("0", "1"):
            response = client.post("/api/predict", files=[("cover", ("a.png", buffer.getvalue(), "image/png"))],
                                   data={"title": TITLE, "explain": explain})
            assert response.status_code == 400, response.text
            assert "a.png is truncated or damaged (RuntimeError: decoder bug)" in response.json()["error"]
