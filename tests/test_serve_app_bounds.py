"""bilipop serve (bilipop.serve.app) under load it did not ask for: predictions in a pool of their own, few
explanations at once, and an explanation of a huge cover within a memory bound."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the web extra is not installed (pip install -e '.[web]')")

import httpx  # noqa: E402
from helpers import CLIENT, noise_png  # noqa: E402
from PIL import Image  # noqa: E402

from bilipop.serve import app as web  # noqa: E402
from bilipop.serve.server import serving  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

TITLE = "一分钟看懂宇宙 讲解"


def _latency(http: httpx.Client, path: str) -> float:
    start = time.monotonic()
    assert http.get(path).status_code == 200
    return time.monotonic() - start


def test_held_predictions_never_take_the_threads_of_the_page(served_run, cover_bytes, monkeypatch):
    # 45 predictions held inside the model: more than Starlette's 40 threads. The page and /api/model answer at
    # once all the same, because predictions wait in a pool of their own.
    release = threading.Event()
    entered = []
    real = web.predict_one

    def held(*args, **kwargs):
        entered.append(1)
        assert release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(web, "predict_one", held)
    files = [("cover", ("a.jpg", cover_bytes, "image/jpeg"))]
    limits = httpx.Limits(max_connections=64)
    with (serving(served_run) as url, httpx.Client(base_url=url, timeout=120, headers=CLIENT, limits=limits) as http,
          ThreadPoolExecutor(45) as pool):
        pending = [pool.submit(http.post, "/api/predict", files=files, data={"title": TITLE}) for _ in range(45)]
        deadline = time.monotonic() + 30
        while len(entered) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # every request has arrived and waits
        try:
            assert max(_latency(http, "/api/model"), _latency(http, "/")) < 0.5
            assert len(entered) == web.PREDICT_WORKERS  # the rest queue behind the pool
        finally:
            release.set()
        assert all(f.result(timeout=120).status_code == 200 for f in pending)


def test_only_a_few_explanations_run_at_once(served_run, cover_bytes, monkeypatch):
    release = threading.Event()
    inside, most = [0], [0]
    lock = threading.Lock()
    real = web.predict_one

    def counted(*args, **kwargs):
        if not kwargs.get("explain"):
            return real(*args, **kwargs)
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        try:
            assert release.wait(60)
            return real(*args, **kwargs)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(web, "predict_one", counted)
    files = [("cover", ("a.jpg", cover_bytes, "image/jpeg"))]
    with (serving(served_run) as url, httpx.Client(base_url=url, timeout=120, headers=CLIENT) as http,
          ThreadPoolExecutor(6) as pool):
        pending = [pool.submit(http.post, "/api/predict", files=files, data={"title": TITLE, "explain": "1"})
                   for _ in range(6)]
        time.sleep(2)
        assert most[0] == web.MAX_EXPLAINING
        plain = http.post("/api/predict", files=files, data={"title": TITLE}, timeout=5)  # not behind them
        release.set()
        assert plain.status_code == 200
        assert all(f.result(timeout=120).status_code == 200 for f in pending)
    assert most[0] == web.MAX_EXPLAINING


def test_the_page_answers_within_half_a_second_while_six_heavy_explanations_run(served_run):
    big = noise_png(1600, 1600)  # 2.6 MP of noise (7.7 MB): decoding, drawing and encoding all cost
    files = [("cover", ("big.png", big, "image/png"))]
    with (serving(served_run) as url, httpx.Client(base_url=url, timeout=300, headers=CLIENT) as http,
          ThreadPoolExecutor(6) as pool):
        pending = [pool.submit(http.post, "/api/predict", files=files, data={"title": TITLE, "explain": "1"})
                   for _ in range(6)]
        time.sleep(0.5)
        waits = []
        while not all(f.done() for f in pending) and len(waits) < 40:
            waits += [_latency(http, "/api/model"), _latency(http, "/")]
            time.sleep(0.1)
        assert all(f.result().status_code == 200 for f in pending)
    print(f"six explanations: {len(waits)} answers of / and /api/model, slowest {max(waits) * 1000:.0f} ms")
    assert len(waits) >= 4, "the explanations ended before the page was asked"
    assert max(waits) < 0.5, sorted(waits)[-5:]


MEMORY_PROBE = r"""
import json, sys
import torch
from starlette.testclient import TestClient
from bilipop.serve.app import create_app
from bilipop.serve.server import load_served_run

torch.set_num_threads(1)
run, small, big = sys.argv[1:4]
client = TestClient(create_app(load_served_run(run)), base_url="http://127.0.0.1", headers={"X-Bilipop": "1"})
def explain(path, name):
    files = [("cover", (name, open(path, "rb").read(), "application/octet-stream"))]
    return client.post("/api/predict", files=files, data={"title": "t", "explain": "1"})
assert explain(small, "small.jpg").status_code == 200  # warm: everything but the big cover is loaded
def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # Linux: the peak (VmHWM) starts again from the present size
before = status("VmRSS")
response = explain(big, "big.png")
peak = status("VmHWM")
print(json.dumps({"status": response.status_code, "before": before, "peak": peak,
                  "heatmap_chars": len((response.json().get("explanation") or {}).get("heatmap") or "")}))
"""


def _sparse_png(side: int) -> bytes:
    """A side x side PNG, small on disk (one noisy row in 97) and not blank."""
    rng = np.random.default_rng(0)
    pixels = np.zeros((side, side, 3), dtype=np.uint8)
    pixels[::97] = rng.integers(0, 256, (len(pixels[::97]), side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_one_49_megapixel_explanation_adds_at_most_400_mb(tiny_run, cover_bytes, tmp_path):
    import os

    small, big = tmp_path / "small.jpg", tmp_path / "big.png"
    small.write_bytes(cover_bytes)
    big.write_bytes(_sparse_png(7000))  # made here: the probe's peak is the server's own
    probe = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(tiny_run["run"]), str(small), str(big)],
                           capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert probe.returncode == 0, probe.stderr[-2000:]
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    added = (result["peak"] - result["before"]) / 2**20
    print(f"49 MP explanation ({big.stat().st_size / 1e6:.1f} MB PNG): peak added {added:.0f} MiB")
    assert result["status"] == 200 and result["heatmap_chars"] > 0
    assert added <= 400, f"one 49 MP explanation added {added:.0f} MiB"
