"""Helpers and data that several test modules share (imported as ``from helpers import ...``: pytest puts tests/ on
the import path). Fixtures that several modules share live in conftest.py."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from typer.testing import CliRunner

from bilipop.cli import app as cli_app

# -- the command line ---------------------------------------------------------------------------------------------
#: Flags that train the tiny models for one quick epoch on the CPU.
TINY_FLAGS = ["--vit", "tiny", "--bert", "tiny", "--epochs", "1", "--batch-size", "8", "--num-workers", "0",
              "--devices", "cpu"]


def invoke(*args: object):
    """``bilipop ARGS`` in this process (paths and numbers given as they are)."""
    return CliRunner().invoke(cli_app, [str(a) for a in args])


def refused(res, *needles: str) -> str:
    """Exit 1 with exactly one line on stderr (containing every needle) and no traceback; returns that line."""
    assert res.exit_code == 1, (res.exit_code, res.output, res.exception)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.output and "\x1b" not in res.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def cli_json(*args: str) -> dict:
    """The JSON that a successful ``bilipop ARGS`` printed."""
    res = CliRunner().invoke(cli_app, list(args))
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


# -- the crawl ----------------------------------------------------------------------------------------------------
#: A ``view`` record in the recorded 2026 shape, plus a field the site might add.
VIDEO = {
    "aid": 170001, "bvid": "BV17x411w7KC", "tid": 201, "tidv2": 2094, "tnamev2": "科学科普", "pid_v2": 1010,
    "title": "为什么天是蓝的", "pic": "http://i0.hdslb.com/bfs/archive/a.jpg",
    "pubdate": 1700000000, "duration": 300, "owner": {"mid": 42, "name": "科普君", "face": ""},
    "stat": {"view": 1000, "like": 20, "coin": 3, "favorite": 4, "share": 1, "danmaku": 5, "reply": 6, "vt": 0},
    "rights": {"bp": 0}, "some_new_field": [1, 2, 3],
}

# -- tables -------------------------------------------------------------------------------------------------------
DAY = 86400
NOW = 1_767_225_600


def aged_table(n=2000, seed=0):
    """Views that grow with age (log-views rise with log-age, fast then slower) on top of an age-free appeal."""
    rng = np.random.default_rng(seed)
    age_days = np.exp(rng.uniform(math.log(0.05), math.log(700), n))
    appeal = rng.normal(size=n)
    log_views = 6 + 1.6 * np.log1p(age_days) + 0.8 * appeal + 0.3 * rng.normal(size=n)
    views = np.exp(log_views).astype(np.int64)
    ratio = np.exp(rng.normal(size=n) * 0.3)
    return pd.DataFrame({
        "bvid": [f"BV1{i:09d}" for i in range(n)],
        "views": views, "likes": (views * 0.02 * ratio).astype(np.int64),
        "coins": (views * 0.003 * ratio).astype(np.int64), "favorites": (views * 0.004 * ratio).astype(np.int64),
        "shares": (views * 0.001 * ratio).astype(np.int64),
        "pubdate": (NOW - age_days * DAY).astype(np.int64), "fetched_at": NOW,
    }), appeal


# -- evaluation ---------------------------------------------------------------------------------------------------
def sklearn_ece(probs, truth, bins=10):
    """ECE from scikit-learn's reliability curve (its uniform bins), each bin weighted by its rows."""
    from sklearn.calibration import calibration_curve

    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == truth).astype(int)
    accuracy, mean_confidence = calibration_curve(correct, confidence, n_bins=bins, strategy="uniform")
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, bins + 1)[1:-1], confidence), minlength=bins)
    return float(np.sum(counts[counts > 0] * np.abs(accuracy - mean_confidence)) / len(truth)), accuracy, \
        mean_confidence


def continuous_predictions(n, seed):
    """Predictions with continuous (Dirichlet) probabilities, so that no confidence falls on a bin edge."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 5, n)
    probs = rng.dirichlet(np.ones(5) * 0.7, n)
    probs[np.arange(n), truth] += rng.random(n)  # the truth tends to win
    probs /= probs.sum(axis=1, keepdims=True)
    return truth, probs.argmax(axis=1), probs


def assert_visible_png(path: Path, min_size: tuple[int, int]) -> None:
    """A PNG at least ``min_size`` that shows something: more than one colour, more than ten of them."""
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.size[0] >= min_size[0] and img.size[1] >= min_size[1]
        extrema = img.convert("RGB").getextrema()
        assert any(lo != hi for lo, hi in extrema), "the image is a single colour"
        colours = img.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 10


def class_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """The share of rows whose most likely class is the same in two (N, 5) probability arrays."""
    return float((a.argmax(1) == b.argmax(1)).mean())


# -- the web server -----------------------------------------------------------------------------------------------
#: The header the page sends with every API post (bilipop.serve.guard).
CLIENT = {"X-Bilipop": "1"}


def site_client(app, host: str = "127.0.0.1:8765", **headers):
    """A Starlette test client of ``app`` that names ``host`` in its Host header."""
    from starlette.testclient import TestClient

    return TestClient(app, base_url=f"http://{host}", headers=headers, raise_server_exceptions=False)


def noise_png(width: int, height: int, seed: int = 0) -> bytes:
    """A PNG that costs real decoding: random pixels (a few MB)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


# -- training -----------------------------------------------------------------------------------------------------
def without_seconds(history):
    """A run's history rows without their wall-clock ``seconds`` (the one figure that differs between runs)."""
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def same_weights(a, b) -> bool:
    """Whether two run folders hold bit-identical weights."""
    import torch
    from safetensors.torch import load_file

    x, y = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
