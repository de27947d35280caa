"""bilipop serve's JSON API (bilipop.serve.app) through an HTTP client: every endpoint, every bad input,
concurrency, and the same numbers as ``predict --json``."""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("starlette", reason="the web extra is not installed (pip install -e '.[web]')")

import httpx  # noqa: E402
from helpers import CLIENT, cli_json  # noqa: E402
from PIL import Image  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from bilipop.serve import app as web  # noqa: E402
from bilipop.serve.server import serving  # noqa: E402
from bilipop.serve.uploads import MAX_FILE_BYTES  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

TITLES = ["一分钟看懂宇宙 讲解", "编程 入门 其实很简单"]

#: The header the page sends with every API post (the server refuses posts without it), and a local Host.

LOCAL = "http://127.0.0.1:8765"


@pytest.fixture(scope="module")
def client(served_run):
    with TestClient(web.create_app(served_run), base_url=LOCAL, headers=CLIENT, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def covers(tiny_run):
    """Two covers of different classes, as paths."""
    table = pd.read_parquet(tiny_run["table"])
    first = table.drop_duplicates("label").sort_values("label")
    return [tiny_run["data"] / p for p in first["cover_path"].iloc[[0, -1]]]


def _files(covers, titles, **extra):
    files = [("cover", (Path(c).name, Path(c).read_bytes(), "image/jpeg")) for c in covers]
    return files, {"title": list(titles), **extra}


# ---------------------------------------------------------------------------------------------------------------
# The same numbers as predict --json
def test_predict_answers_exactly_what_predict_json_prints(client, tiny_run, covers):
    files, data = _files(covers[:1], TITLES[:1])
    response = client.post("/api/predict", files=files, data=data)
    assert response.status_code == 200, response.text
    expected = cli_json("predict", str(covers[0]), TITLES[0], "--model", str(tiny_run["run"]), "--json")
    assert response.json() == expected
    assert response.headers["server-timing"].startswith("app;dur=")  # what bench_serve.py reads


def test_rank_answers_exactly_what_the_ranking_form_prints(client, tiny_run, covers):
    files, data = _files(covers, TITLES)
    response = client.post("/api/rank", files=files, data=data)
    assert response.status_code == 200, response.text
    expected = cli_json("predict", "--cover", str(covers[0]), "--cover", str(covers[1]), "--title", TITLES[0],
                         "--title", TITLES[1], "--model", str(tiny_run["run"]), "--json")
    for candidate in expected["candidates"]:  # the CLI names a cover by its path, the API by the uploaded name
        candidate["cover"] = Path(candidate["cover"]).name
    got = response.json()
    assert got == expected
    assert len(got["candidates"]) == 4
    values = [c["expected_class"] for c in got["candidates"]]
    assert values == sorted(values, reverse=True)


def test_explain_returns_the_heatmap_itself_and_the_title_tokens(client, covers):
    files, data = _files(covers[1:], TITLES[:1], explain="1")
    response = client.post("/api/predict", files=files, data=data)
    assert response.status_code == 200, response.text
    explanation = response.json()["explanation"]
    prefix = "data:image/png;base64,"
    assert explanation["heatmap"].startswith(prefix)
    import base64

    png = base64.b64decode(explanation["heatmap"][len(prefix):])
    with Image.open(io.BytesIO(png)) as heat, Image.open(covers[1]) as original:
        assert heat.format == "PNG" and heat.size == original.size
    assert explanation["tokens"] and all(t["token"] in TITLES[0] for t in explanation["tokens"])


def test_duplicate_file_names_stay_apart_in_the_ranking(client, covers):
    files = [("cover", ("same.jpg", Path(c).read_bytes(), "image/jpeg")) for c in covers]
    response = client.post("/api/rank", files=files, data={"title": TITLES[:1]})
    assert response.status_code == 200, response.text
    assert {c["cover"] for c in response.json()["candidates"]} == {"same.jpg", "same.jpg (2)"}


def test_page_and_static_files_are_served_with_a_strict_policy(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert 'src="/static/app.js"' in page.text and "http" not in page.text.replace("http-equiv", "")
    script = client.get("/static/app.js")
    assert script.status_code == 200
    # No CDN, and user text never goes in as HTML.
    assert "innerHTML" not in script.text and "insertAdjacentHTML" not in script.text and "https://" not in script.text
    assert client.get("/static/app.css").status_code == 200


# ---------------------------------------------------------------------------------------------------------------
# Bad input: 4xx with a JSON error, and the server goes on serving.
def _png_header(width: int, height: int) -> bytes:
    """A small PNG that claims a ``width`` x ``height`` canvas (a decompression bomb's header)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def _bad_requests(covers):
    good = Path(covers[0]).read_bytes()
    jpeg = ("a.jpg", good, "image/jpeg")
    return {
        "not an image": ("/api/predict", [("cover", ("notes.txt", b"hello, not a picture", "text/plain"))],
                         {"title": TITLES[0]}, 400, "not an image"),
        "truncated image": ("/api/predict", [("cover", ("half.jpg", good[: len(good) // 2], "image/jpeg"))],
                            {"title": TITLES[0]}, 400, "half.jpg"),
        "decompression bomb": ("/api/predict", [("cover", ("bomb.png", _png_header(30000, 30000), "image/png"))],
                               {"title": TITLES[0]}, 413, "too many pixels"),
        "huge canvas": ("/api/predict", [("cover", ("big.png", _png_header(9000, 9000), "image/png"))],
                        {"title": TITLES[0]}, 413, "9000 x 9000"),
        "empty title": ("/api/predict", [("cover", jpeg)], {"title": "   "}, 400, "empty"),
        "no title": ("/api/predict", [("cover", jpeg)], {}, 400, "one cover and one title"),
        "no cover": ("/api/predict", [], {"title": TITLES[0]}, 400, "one cover and one title"),
        "cover as text": ("/api/predict", [], {"cover": "a.jpg", "title": TITLES[0]}, 400, "file upload"),
        "empty title in a ranking": ("/api/rank", [("cover", jpeg)], {"title": [TITLES[0], ""]}, 400, "title 2"),
        "five covers": ("/api/rank", [("cover", jpeg)] * 5, {"title": TITLES[0]}, 400, "at most 4"),
        "five titles": ("/api/rank", [("cover", jpeg)], {"title": [f"标题 {i}" for i in range(5)]}, 400, "at most 4"),
        "many covers": ("/api/rank", [("cover", jpeg)] * 40, {"title": TITLES[0]}, 400, "Too many files"),
        "file over 10 MB": ("/api/predict", [("cover", ("big.jpg", good + b"\0" * MAX_FILE_BYTES, "image/jpeg"))],
                            {"title": TITLES[0]}, 413, "10 MB"),
        "title too long": ("/api/predict", [("cover", jpeg)], {"title": "长" * 201}, 400, "200"),
    }


BAD = list(_bad_requests([Path(__file__)]))  # the names only; the requests are built per test


@pytest.mark.parametrize("name", BAD)
def test_bad_input_is_a_4xx_json_error(client, covers, name):
    path, files, data, status, message = _bad_requests(covers)[name]
    response = client.post(path, files=files, data=data)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert message in error
    assert "/tmp" not in error and "cover-0" not in error  # no server paths leak into messages


def test_a_body_over_the_limit_is_refused_before_it_is_read(client):
    response = client.post("/api/rank", content=b"x", headers={"content-length": str(100 * 2**20),
                                                                 "content-type": "multipart/form-data; boundary=b"})
    assert response.status_code == 413 and "MB" in response.json()["error"]


def test_unknown_paths_and_methods_are_json_errors(client):
    assert client.get("/api/nothing").status_code == 404 and "error" in client.get("/api/nothing").json()
    wrong = client.get("/api/predict")
    assert wrong.status_code == 405 and "error" in wrong.json()


def test_a_real_server_keeps_serving_after_every_bad_input(served_run, covers):
    files, data = _files(covers[:1], TITLES[:1])
    with serving(served_run) as url, httpx.Client(base_url=url, timeout=60, headers=CLIENT) as http:
        before = http.post("/api/predict", files=files, data=data).json()
        for name, (path, bad_files, bad_data, status, _) in _bad_requests(covers).items():
            assert http.post(path, files=bad_files, data=bad_data).status_code == status, name
        assert http.get("/api/model").status_code == 200
        assert http.post("/api/predict", files=files, data=data).json() == before


# ---------------------------------------------------------------------------------------------------------------
# Concurrency
def test_concurrent_requests_give_the_sequential_answers(served_run, covers):
    jobs = [("/api/predict", [covers[i % 2]], [TITLES[i // 2 % 2]]) for i in range(8)]
    jobs += [("/api/rank", covers, TITLES)] * 4
    with serving(served_run) as url, httpx.Client(base_url=url, timeout=120, headers=CLIENT) as http:
        def ask(job):
            path, cs, ts = job
            files, data = _files(cs, ts)
            response = http.post(path, files=files, data=data)
            assert response.status_code == 200, response.text
            return response.json()

        sequential = [ask(job) for job in jobs]
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            concurrent = list(pool.map(ask, jobs))
    assert concurrent == sequential


def test_the_page_and_model_answer_while_a_prediction_runs(served_run, covers, monkeypatch):
    started, release = threading.Event(), threading.Event()
    real = web.predict_one

    def slow(*args, **kwargs):
        started.set()
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(web, "predict_one", slow)
    files, data = _files(covers[:1], TITLES[:1])
    with (serving(served_run) as url, httpx.Client(base_url=url, timeout=60, headers=CLIENT) as http,
          ThreadPoolExecutor(1) as pool):
        pending = pool.submit(http.post, "/api/predict", files=files, data=data)
        assert started.wait(30)
        t0 = time.monotonic()
        assert http.get("/api/model").status_code == 200  # served while the prediction is held
        assert http.get("/").status_code == 200
        assert time.monotonic() - t0 < 10 and not pending.done()
        release.set()
        assert pending.result(timeout=60).status_code == 200
