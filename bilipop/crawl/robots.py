"""robots.txt: read once per host, obeyed unless the user has said they have the right to crawl anyway."""

from __future__ import annotations

import logging
import urllib.robotparser
from collections.abc import Callable
from urllib.parse import urlsplit

from bilipop.crawl import transport
from bilipop.errors import CrawlError

log = logging.getLogger(__name__)


def origin_of(url: str) -> str:
    """``scheme://host[:port]``, lower-cased: the unit robots.txt, cookies and redirects are judged by."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class Robots:
    """The robots.txt rules of every host the crawl calls.

    Args:
        user_agent: the agent the rules are read for.
        fetch: ``fetch(origin)`` returns the reply to ``origin/robots.txt`` (the client's own retries and limits).
        ignore: fetch what the rules disallow (the user has announced the right to crawl anyway); said once per
            host.
    """

    def __init__(self, user_agent: str, fetch: Callable[[str], transport.Reply], *, ignore: bool = False) -> None:
        self.user_agent, self.fetch, self.ignore = user_agent, fetch, ignore
        self._parsers: dict[str, urllib.robotparser.RobotFileParser] = {}
        self._ignored: set[str] = set()

    def check(self, url: str) -> None:
        """Raise CrawlError if robots.txt of ``url``'s host forbids it (unless ``ignore``)."""
        if self.allowed(url):
            return
        origin = origin_of(url)
        if self.ignore:
            if origin not in self._ignored:
                self._ignored.add(origin)
                log.info("robots.txt of %s disallows %s; fetching it anyway (--ignore-robots)",
                         origin, urlsplit(url).path)
            return
        raise CrawlError(
            f"robots.txt of {origin} disallows {urlsplit(url).path}, so bilipop stopped before requesting it. "
            "Crawl only where you are allowed; if you have the right to crawl this site anyway (your own server, "
            "written permission), run the same command again with --ignore-robots")

    def allowed(self, url: str) -> bool:
        origin = origin_of(url)
        if origin not in self._parsers:
            self._parsers[origin] = self._read(origin)
        return self._parsers[origin].can_fetch(self.user_agent, url)

    def _read(self, origin: str) -> urllib.robotparser.RobotFileParser:
        parser = urllib.robotparser.RobotFileParser(origin + "/robots.txt")
        reply = self.fetch(origin)
        # The usual reading of robots.txt answers: 401/403 forbid everything, other 4xx (and 3xx) allow everything.
        # They are read as the equivalent files, through the parser's public API.
        if reply.status in (401, 403):
            parser.parse(["User-agent: *", "Disallow: /"])
        elif reply.status >= 300:
            parser.parse([])
        else:
            parser.parse(reply.body.decode("utf-8", "replace").splitlines())
        return parser
