"""bilipop.crawl.robots: how each answer to robots.txt is read, without a network."""

from __future__ import annotations

import pytest
import requests

from bilipop.crawl.robots import Robots
from bilipop.crawl.transport import Reply
from bilipop.errors import CrawlError

RULES = b"User-agent: *\nDisallow: /private/\n"


def _robots(status: int, body: bytes = b"", *, ignore: bool = False) -> tuple[Robots, list[str]]:
    asked: list[str] = []

    def fetch(origin: str) -> Reply:
        asked.append(origin)
        return Reply(status, requests.structures.CaseInsensitiveDict(), body)

    return Robots("bilipop-test", fetch, ignore=ignore), asked


@pytest.mark.parametrize("status", [401, 403])
def test_an_unauthorised_robots_txt_forbids_everything(status):
    robots, _ = _robots(status)
    assert not robots.allowed("http://site.test/")
    assert not robots.allowed("http://site.test/x/web-interface/view")


@pytest.mark.parametrize("status", [301, 404, 410])
def test_a_missing_robots_txt_allows_everything(status):
    robots, _ = _robots(status, b"User-agent: *\nDisallow: /\n")  # a body beside such a status is not rules
    assert robots.allowed("http://site.test/x/web-interface/view")


def test_a_robots_txt_is_obeyed_and_read_once_per_host():
    robots, asked = _robots(200, RULES)
    assert robots.allowed("http://site.test/open")
    assert not robots.allowed("http://site.test/private/page")
    with pytest.raises(CrawlError, match="disallows /private/page"):
        robots.check("http://site.test/private/page")
    assert asked == ["http://site.test"]


def test_ignore_fetches_what_the_rules_disallow():
    robots, _ = _robots(403, ignore=True)
    robots.check("http://site.test/anything")  # no CrawlError
