"""Hostile image files at every decoder: only JPEG, PNG and WebP are ever decoded.

An EPS "cover" whose PostScript writes a marker file is the probe: Pillow's EPS plugin hands it to Ghostscript
(``gs``, installed by .ci/run) when ``Image.open`` may pick any format. The first test proves the probe is live on
this machine; every other test gives it to one entry point and checks the refusal and that the marker never
appears. The server's entry points are in test_serve_uploads.py.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from bilipop.cli import app
from bilipop.errors import InputError
from bilipop.images import DamagedImage, UnsupportedImage, open_image

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner()
TITLE = "一分钟看懂宇宙 讲解"
PACKAGE = Path(__file__).resolve().parents[1] / "bilipop"
needs_gs = pytest.mark.skipif(shutil.which("gs") is None,
                              reason="Ghostscript (gs) is not installed; .ci/run installs it")


@pytest.fixture
def eps(tmp_path, hostile_eps):
    """(cover file named .jpg holding the EPS, marker path that must never exist)."""
    marker = tmp_path / "marker"
    cover = tmp_path / "cover.jpg"  # the name says JPEG: only the bytes count
    cover.write_bytes(hostile_eps(marker))
    return cover, marker


@pytest.fixture(scope="module")
def covers(tiny_run):
    table = pd.read_parquet(tiny_run["table"])
    return [tiny_run["data"] / p for p in table["cover_path"].iloc[:2]]


def _refused(res, *needles: str) -> str:
    assert res.exit_code == 1, (res.exit_code, res.output, res.exception)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@needs_gs
def test_the_probe_runs_its_postscript_when_any_format_may_open_it(eps):
    cover, marker = eps
    with Image.open(cover) as image:  # the permissive open every decoder used before
        image.load()
    assert marker.read_text() == "ran"


@needs_gs
def test_open_image_refuses_the_eps(eps):
    cover, marker = eps
    with pytest.raises(UnsupportedImage, match="JPEG, PNG or WebP"), open_image(cover) as image:
        image.load()
    assert not marker.exists()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_the_documented_formats_open(tmp_path, fmt):
    path = tmp_path / f"a.{fmt.lower()}"
    Image.new("RGB", (20, 10), (200, 30, 30)).save(path, format=fmt)
    with open_image(path) as image:
        assert image.format == fmt and image.size == (20, 10)


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF", "PPM"])
def test_other_pillow_formats_are_refused(tmp_path, fmt):
    path = tmp_path / "a.jpg"
    Image.new("RGB", (8, 8)).save(path, format=fmt)
    with pytest.raises(UnsupportedImage), open_image(path):
        pass


def test_an_unexpected_exception_inside_the_decoder_is_a_damaged_image(tmp_path, monkeypatch):
    from PIL import PngImagePlugin

    path = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(path)

    def explode(self, *args):
        raise RuntimeError("decoder bug")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", explode)
    with pytest.raises(DamagedImage, match="RuntimeError: decoder bug"), open_image(path) as image:
        image.load()


def test_no_bare_image_open_outside_bilipop_images():
    """Every decoder goes through bilipop.images.open_image; a new bare Image.open fails here."""
    bare = re.compile(r"\bImage\.open\s*\(|from\s+PIL\.Image\s+import\s+[^\n]*\bopen\b|\bImage\s*\.\s*open\b")
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{n}"
                 for path in sorted(PACKAGE.rglob("*.py")) if path.name != "images.py" or path.parent != PACKAGE
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
                 if bare.search(line)]
    assert offenders == []
    assert bare.search((PACKAGE / "images.py").read_text(encoding="utf-8"))  # the pattern finds the one call


# -- every entry point -----------------------------------------------------------------------------------------
@needs_gs
def test_predict_one_refuses_the_eps(tiny_run, eps):
    cover, marker = eps
    _refused(runner.invoke(app, ["predict", str(cover), TITLE, "--model", str(tiny_run["run"]), "--explain"]),
             "not an image bilipop reads (JPEG, PNG or WebP)")
    assert not marker.exists() and not list(cover.parent.glob("*.explain.png"))


@needs_gs
def test_predict_ranking_refuses_the_eps(tiny_run, covers, eps):
    cover, marker = eps
    res = runner.invoke(app, ["predict", "--cover", str(covers[0]), "--cover", str(cover), "--title", TITLE,
                              "--model", str(tiny_run["run"])])
    _refused(res, "cover.jpg", "not an image bilipop reads")
    assert not marker.exists()


@needs_gs
def test_predict_batch_refuses_the_eps_and_writes_nothing(tiny_run, covers, eps, tmp_path):
    cover, marker = eps
    pd.DataFrame({"cover": [str(covers[0]), str(cover)], "title": [TITLE, TITLE]}).to_csv(tmp_path / "in.csv",
                                                                                         index=False)
    res = runner.invoke(app, ["predict", "--batch", str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv"),
                              "--model", str(tiny_run["run"])])
    _refused(res, "not an image bilipop reads")
    assert not marker.exists() and not (tmp_path / "out.csv").exists()


@needs_gs
def test_the_training_and_evaluation_loader_counts_eps_covers_as_bad(tiny_run, tmp_path, hostile_eps):
    from bilipop.train.dataset import load_examples

    table = pd.read_parquet(tiny_run["table"]).head(6).copy()
    markers = [tmp_path / f"marker{i}" for i in range(2)]
    for i, marker in enumerate(markers):  # two rows of a stranger's table name EPS files as their covers
        evil = tmp_path / f"evil{i}.jpg"
        evil.write_bytes(hostile_eps(marker))
        table.loc[table.index[i + 1], "cover_path"] = str(evil)
    table.to_parquet(tmp_path / "labeled.parquet")
    with pytest.raises(InputError, match=r"not an image bilipop reads.*\(1 more unusable cover\(s\)\)"):
        load_examples(tmp_path / "labeled.parquet", tiny_run["data"], covers=True, titles=True)
    assert not any(m.exists() for m in markers)


@needs_gs
def test_train_refuses_an_eps_cover_in_one_line(tiny_run, tmp_path, hostile_eps):
    data = tmp_path / "data"
    shutil.copytree(tiny_run["data"], data)
    table = pd.read_parquet(data / tiny_run["table"].name)
    marker = tmp_path / "marker"
    (data / table["cover_path"].iloc[3]).write_bytes(hostile_eps(marker))  # a crawled cover replaced
    res = runner.invoke(app, ["-q", "train", "--data", str(data), "--out", str(tmp_path / "out"), "--vit", "tiny",
                              "--bert", "tiny", "--epochs", "1", "--num-workers", "0", "--devices", "cpu"])
    _refused(res, "not an image bilipop reads")
    assert not marker.exists()


@needs_gs
def test_the_crawls_cover_check_counts_an_eps_as_a_bad_cover(tmp_path, hostile_eps):
    from bilipop.crawl.covers import BadCover, to_jpeg

    marker = tmp_path / "marker"
    with pytest.raises(BadCover, match="not a complete JPEG, PNG or WebP image"):
        to_jpeg(hostile_eps(marker))
    assert not marker.exists()


@needs_gs
def test_the_heatmap_refuses_an_eps_cover(eps, tmp_path):
    from bilipop.prediction.explain import save_heatmap

    cover, marker = eps
    with pytest.raises(InputError, match="JPEG, PNG or WebP"):
        save_heatmap(cover, np.ones((8, 8)), tmp_path / "heat.png")
    assert not marker.exists() and not (tmp_path / "heat.png").exists()


def test_the_heatmap_is_drawn_at_most_1920_pixels_long(tmp_path):
    from bilipop.prediction.explain import save_heatmap

    big, small = tmp_path / "big.png", tmp_path / "small.jpg"
    Image.new("RGB", (4000, 1000), (10, 200, 10)).save(big)
    Image.new("RGB", (640, 360), (10, 200, 10)).save(small)
    with Image.open(save_heatmap(big, np.eye(8), tmp_path / "h1.png")) as heat:
        assert heat.size == (1920, 480)
    with Image.open(save_heatmap(small, np.eye(8), tmp_path / "h2.png")) as heat:
        assert heat.size == (640, 360)


def test_an_unexpected_decoder_exception_in_predict_is_one_line(tiny_run, tmp_path, monkeypatch):
    from PIL import PngImagePlugin

    cover = tmp_path / "a.png"
    Image.new("RGB", (40, 30), (1, 2, 3)).save(cover)

    def explode(self, *args):
        raise RuntimeError("decoder bug")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", explode)
    _refused(runner.invoke(app, ["predict", str(cover), TITLE, "--model", str(tiny_run["run"]), "--json"]),
             "a.png", "damaged (RuntimeError: decoder bug)")


@needs_gs
def test_evaluate_refuses_an_eps_cover_in_one_line(tiny_run, tmp_path, hostile_eps):
    run, data = tmp_path / "run", tmp_path / "data"
    shutil.copytree(tiny_run["run"], run, ignore=shutil.ignore_patterns("eval"))
    shutil.copytree(tiny_run["data"], data)
    marker = tmp_path / "marker"
    for cover in (data / "covers").glob("*.jpg"):  # every cover, so that whichever rows the split tests get one
        cover.write_bytes(hostile_eps(marker))
    res = runner.invoke(app, ["-q", "evaluate", str(run), "--data", str(data)])
    _refused(res, "not an image bilipop reads")
    assert not marker.exists() and not (run / "eval").exists()
