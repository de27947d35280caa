"""bilipop serve's HTTP protocol (bilipop.serve.protocol): slow or huge request headers are cut off."""

from __future__ import annotations

import socket
import time

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed (pip install -e '.[web]')")

import httpx  # noqa: E402
from helpers import CLIENT, noise_png  # noqa: E402

from bilipop.serve.server import serving  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

TITLE = "一分钟看懂宇宙 讲解"


# -- slow and huge request headers ---------------------------------------------------------------------------------
def _closed_within(sock: socket.socket, seconds: float) -> bytes | None:
    """What the server sent before closing ``sock``, or None when it is still open after ``seconds``."""
    sock.settimeout(0.2)
    received, deadline = b"", time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    return None


def test_slow_and_huge_request_headers_are_cut_off(served_run):
    with serving(served_run, header_timeout=1.0) as url:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        trickling, idle = [], []
        for _ in range(20):  # bounded: 20 trickling and 10 silent connections, a few seconds in all
            sock = socket.create_connection((host, int(port)))
            sock.sendall(b"GET /api/model HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            trickling.append(sock)
        idle = [socket.create_connection((host, int(port))) for _ in range(10)]
        start = time.monotonic()
        while time.monotonic() - start < 0.8:  # one more header byte at a time, never the blank line
            for sock in trickling:
                sock.sendall(b"X")
            time.sleep(0.1)
        answers = [_closed_within(sock, 3) for sock in trickling + idle]
        assert all(a is not None for a in answers), "connections still open after the header timeout"
        assert all(a.startswith(b"HTTP/1.1 408") for a in answers), {a[:20] for a in answers}

        huge = socket.create_connection((host, int(port)))
        try:
            huge.sendall(b"GET /api/model HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (1 << 20))
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = _closed_within(huge, 3)
        assert answer is not None and answer.startswith(b"HTTP/1.1 431"), answer
        for sock in [*trickling, *idle, huge]:
            sock.close()
        # Nothing else was harmed: a normal request, and a large upload whose body follows its headers.
        assert httpx.get(f"{url}/api/model", timeout=10).status_code == 200
        body = httpx.post(f"{url}/api/predict", headers=CLIENT, timeout=60,
                          files=[("cover", ("big.png", noise_png(700, 700), "image/png"))], data={"title": TITLE})
        assert body.status_code == 200, body.text
