"""bilipop.crawl.http: an unreachable host fails within about 30 s with one line, and cookies come from the
environment only."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from bilipop.crawl.failures import Backoff
from bilipop.crawl.http import HttpClient, cookie_from_env
from bilipop.errors import CrawlError


def test_an_unreachable_host_fails_within_about_30_seconds_with_one_line(caplog):
    # Before: ~8 minutes of retries. A fake clock counts the waits the real back-off would make.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clock = [0.0]

    def sleep(seconds):
        clock[0] += seconds

    client = HttpClient(f"http://127.0.0.1:{port}", rate=0, sleep=sleep, clock=lambda: clock[0])
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG, logger="bilipop"), pytest.raises(CrawlError) as info:
        client.get_json("/x/web-interface/nav", signed=False)
    assert Backoff().unreachable_s <= 30 and 29 <= clock[0] <= 31, clock[0]
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert "\n" not in message and "cannot reach" in message and "connection refused" in message
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) == 1, loud  # said once while trying, not once per retry


def test_cookies_come_from_the_environment_only():
    cookies = cookie_from_env({"BILIPOP_COOKIE": "SESSDATA=abc123; bili_jct=xyz ; broken"})
    assert cookies == {"SESSDATA": "abc123", "bili_jct": "xyz"}
    client = HttpClient("https://api.bilibili.com", cookies=cookies)
    assert list(client.session.cookies) == []  # no jar: a Cookie header goes to the API host only
    assert "python" not in client.session.headers["User-Agent"].lower()
    assert client.session.headers["Referer"] == "https://www.bilibili.com/"
    assert client.session.headers["Origin"] == "https://www.bilibili.com"
