"""One polite HTTP session for the crawl: rate limits, retries with back-off, block handling, WBI keys, robots.txt.

Bilibili answers an impolite client in several ways (BILIBILI_API.md, "Being blocked"): HTTP 412 with an HTML page,
or HTTP 200 with a JSON block code. Every one of them slows the crawl down; if they persist after long pauses the
crawl stops cleanly, because everything fetched so far is already committed and a rerun resumes.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import random
import time
import urllib.robotparser
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from bilipop.crawl import api, wbi
from bilipop.errors import CrawlError

log = logging.getLogger(__name__)

# Bilibili treats "python" or "curl" in a User-Agent as suspicious; this is an ordinary desktop browser.
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
REFERER = "https://www.bilibili.com/"
COOKIE_ENV = "BILIPOP_COOKIE"
#: JSON codes that mean "you are asking too much" (-352 also means: fetch new WBI keys).
BLOCK_CODES = frozenset({-412, -352, -799, -509})
#: JSON codes for a passing server-side failure.
SERVER_CODES = frozenset({-500, -503, -504})
WBI_KEY_LIFETIME_S = 12 * 3600  # keys rotate about daily
_FAILURES_TO_MENTION = 3
RESUME_HINT = "everything fetched so far is saved: run the same command again later to resume"


@dataclass
class Backoff:
    """How long to wait after failures. Defaults suit the real site; tests shrink them."""

    base_s: float = 2.0  # first retry after a fault (timeout, 5xx...) waits about this long, doubling each time
    block_base_s: float = 5.0  # the same after a block: a rate-limit window has to pass before trying again
    max_s: float = 120.0
    retries: int = 10  # per request, for timeouts, dropped connections, 5xx and malformed replies
    blocks_before_pause: int = 5  # consecutive block replies that trigger a long pause
    pause_s: float = 900.0  # the long pause (people report blocks lasting 10-30 minutes)
    max_pauses: int = 3  # long pauses in a row without a success before the crawl stops
    timeout_s: float = 20.0

    def delay(self, attempt: int, *, block: bool = False) -> float:
        """Exponential back-off with jitter, so that restarted clients do not retry in lockstep."""
        base = self.block_base_s if block else self.base_s
        return min(self.max_s, base * 2 ** max(0, attempt - 1)) * random.uniform(0.5, 1.0)


@dataclass
class HttpStats:
    requests: int = 0
    retries: int = 0
    blocks: int = 0
    pauses: int = 0
    recent: collections.deque = field(default_factory=lambda: collections.deque(maxlen=200))

    def request_rate(self, window_s: float = 10.0) -> float:
        """Requests per second over the last ``window_s`` seconds."""
        now = time.monotonic()
        n = sum(1 for t in self.recent if now - t <= window_s)
        if n < 2:
            return 0.0
        span = min(window_s, now - min(t for t in self.recent if now - t <= window_s))
        return n / span if span > 0 else 0.0


class RateLimiter:
    """At most ``rate`` requests per second, over any stretch of time: each request waits until ``1/rate`` (plus
    1-9 % jitter) after the previous one started, and at most ``floor(10 * rate)`` start in any 10 seconds (spacing
    alone lets 13 requests into 10 s at rate 1.25). Jitter only lengthens the waits. ``rate`` 0 means no limit."""

    WINDOW_S = 10.0

    def __init__(self, rate: float, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._next = 0.0
        self._sleep, self._clock = sleep, clock
        self._per_window = max(1, math.floor(rate * self.WINDOW_S + 1e-9))
        self._starts: collections.deque[float] = collections.deque(maxlen=self._per_window)

    def wait(self) -> None:
        """Sleep until the next request may start, and count it as started."""
        if self.rate <= 0:
            return
        earliest = self._next
        if len(self._starts) == self._per_window:
            # 1 % past the window, so that the server's clock sees the oldest start leave it first.
            earliest = max(earliest, self._starts[0] + self.WINDOW_S * 1.01)
        now = self._clock()
        if earliest > now:
            self._sleep(earliest - now)
            now = max(self._clock(), earliest)
        self._starts.append(now)
        self._next = now + (1.0 / self.rate) * random.uniform(1.01, 1.09)


class FailedAttempt(Exception):
    """Internal: one failed attempt that may be retried. ``block`` marks a block signal rather than a fault."""

    def __init__(self, reason: str, *, block: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.block = reason, block


class NotFound(CrawlError):
    """An HTTP 4xx other than 412 (e.g. a cover that no longer exists)."""


def cookie_from_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Cookies given as ``name=value; name2=value2`` in ``$BILIPOP_COOKIE`` (never a flag: flags end up in shell
    history and process lists)."""
    text = (os.environ if env is None else env).get(COOKIE_ENV, "")
    pairs = (part.split("=", 1) for part in text.split(";") if "=" in part)
    return {k.strip(): v.strip() for k, v in pairs if k.strip()}


class HttpClient:
    """The crawl's only way to the network.

    Args:
        api_base: origin of the JSON API (``https://api.bilibili.com`` or a local server).
        rate: API requests per second (0: no limit). Covers have their own limiter at ``cover_rate``.
        ignore_robots: fetch paths that robots.txt disallows (the caller has announced it).
        cookies: sent to the API origin only; never logged.
    """

    def __init__(self, api_base: str, *, rate: float = 1.0, cover_rate: float | None = None,
                 backoff: Backoff | None = None, ignore_robots: bool = False,
                 cookies: Mapping[str, str] | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.api_base = api_base.rstrip("/")
        self.backoff = backoff or Backoff()
        self.ignore_robots = ignore_robots
        self.stats = HttpStats()
        self.on_wait: Callable[[str], None] | None = None
        self._sleep = sleep
        self._api_limit = RateLimiter(rate, sleep)
        self._cover_limit = RateLimiter(rate if cover_rate is None else cover_rate, sleep)
        self._robots: dict[str, urllib.robotparser.RobotFileParser] = {}
        self._robots_ignored: set[str] = set()
        self._mixin: str | None = None
        self._mixin_at = 0.0
        self._blocks_in_row = 0
        self._pauses_in_row = 0
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": USER_AGENT, "Referer": REFERER,
                                     "Accept": "application/json, text/plain, */*",
                                     "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
        host = urlsplit(self.api_base).hostname or ""
        domain = ".bilibili.com" if host.endswith("bilibili.com") else host
        for name, value in (cookies or {}).items():
            self.session.cookies.set(name, value, domain=domain, path="/")

    def close(self) -> None:
        self.session.close()

    # -- public calls ------------------------------------------------------------------------------------------
    def get_json(self, path: str, params: Mapping[str, Any] | None = None, *, signed: bool = True) -> dict:
        """GET a JSON endpoint of the API origin and return its envelope once it is neither a fault nor a block.

        Codes other than the block and server codes (0, -101, per-video codes...) are returned for the caller.

        Raises:
            CrawlError: robots.txt forbids the path, retries ran out, or blocks persisted after long pauses.
        """
        url = self.api_base + path
        self.check_robots(url)
        failures = 0
        while True:
            query = dict(params or {})
            try:
                if signed:
                    query = wbi.sign(query, self._mixin_key())
                full = f"{url}?{wbi.encode_query(query)}" if query else url
                resp = self._send(full, self._api_limit)
                if resp.status_code >= 400:
                    raise CrawlError(f"{url} answered HTTP {resp.status_code}; check that --api-base "
                                     f"({self.api_base}) is the Bilibili API or a bilipop sim")
                envelope = _decode(resp)
                code = envelope["code"]
                if code == -352:
                    self._mixin = None  # signature refused: the keys have probably rotated
                if code in BLOCK_CODES:
                    raise FailedAttempt(f"code {code} ({envelope.get('message', '')})", block=True)
                if code in SERVER_CODES:
                    raise FailedAttempt(f"code {code}")
            except FailedAttempt as problem:
                failures = self._recover(problem, failures, path)
                continue
            self._succeeded()
            return envelope

    def get_bytes(self, url: str) -> bytes:
        """GET an image (or any non-API URL) through the cover limiter.

        Raises:
            NotFound: HTTP 404 and similar answers; the caller records them.
            CrawlError: as ``get_json``.
        """
        self.check_robots(url)
        failures = 0
        while True:
            try:
                resp = self._send(url, self._cover_limit)
            except FailedAttempt as problem:
                failures = self._recover(problem, failures, urlsplit(url).path)
                continue
            self._succeeded()
            if resp.status_code >= 400:
                raise NotFound(f"{urlsplit(url).path} answered HTTP {resp.status_code}")
            return resp.content

    def visit_home(self, url: str) -> None:
        """Fetch the site's home page for its ``buvid3`` cookie; optional, so robots or failures only skip it."""
        if not self._allowed(url):
            log.debug("robots.txt disallows %s; going on without a buvid3 cookie", url)
            return
        try:
            self._send(url, self._api_limit)
        except (FailedAttempt, CrawlError) as exc:
            log.debug("could not fetch %s (%s); going on without a buvid3 cookie", url, exc)

    # -- internals ---------------------------------------------------------------------------------------------
    def _send(self, url: str, limiter: RateLimiter) -> requests.Response:
        """One attempt. Faults and blocks raise FailedAttempt; every other answer is returned."""
        limiter.wait()
        self.stats.requests += 1
        self.stats.recent.append(time.monotonic())
        try:
            resp = self.session.get(url, timeout=self.backoff.timeout_s)
            resp.content  # noqa: B018 - read the body here so that a dropped connection is retried
        except (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError) as exc:
            raise FailedAttempt(f"{type(exc).__name__}") from None
        if resp.status_code == 412:
            raise FailedAttempt("HTTP 412", block=True)
        if resp.status_code >= 500:
            raise FailedAttempt(f"HTTP {resp.status_code}")
        return resp

    def _recover(self, problem: FailedAttempt, failures: int, what: str) -> int:
        self.stats.retries += 1
        if problem.block:
            self._blocked(problem.reason, what)
            return failures
        failures += 1
        if failures > self.backoff.retries:
            raise CrawlError(f"{what} kept failing ({problem.reason}) after {self.backoff.retries} retries; "
                             f"{RESUME_HINT}")
        delay = self.backoff.delay(failures)
        # Said out loud once a fault persists: an unreachable --api-base would otherwise wait minutes in silence.
        level = logging.WARNING if failures == _FAILURES_TO_MENTION else logging.DEBUG
        log.log(level, "%s: %s (%d times in a row), retrying in %.1f s, at most %d times", what, problem.reason,
                failures, delay, self.backoff.retries)
        self._sleep(delay)
        return failures

    def _blocked(self, reason: str, what: str) -> None:
        self.stats.blocks += 1
        self._blocks_in_row += 1
        if self._blocks_in_row < self.backoff.blocks_before_pause:
            delay = self.backoff.delay(self._blocks_in_row, block=True)
            log.debug("%s: blocked (%s), waiting %.1f s", what, reason, delay)
            self._sleep(delay)
            return
        self._blocks_in_row = 0
        self._pauses_in_row += 1
        if self._pauses_in_row > self.backoff.max_pauses:
            raise CrawlError(
                f"Bilibili keeps blocking this crawl ({reason}) even after {self.backoff.max_pauses} long pauses; "
                f"{RESUME_HINT}, after waiting an hour or so, perhaps with a lower --rate")
        self.stats.pauses += 1
        log.warning("blocked %d times in a row (%s): pausing %.0f s before going on",
                    self.backoff.blocks_before_pause, reason, self.backoff.pause_s)
        if self.on_wait:
            self.on_wait(f"paused {self.backoff.pause_s:.0f} s after repeated blocks")
        self._sleep(self.backoff.pause_s)
        self._mixin = None

    def _succeeded(self) -> None:
        self._blocks_in_row = 0
        self._pauses_in_row = 0

    def _mixin_key(self) -> str:
        if self._mixin is None or time.monotonic() - self._mixin_at > WBI_KEY_LIFETIME_S:
            envelope = self.get_json("/x/web-interface/nav", signed=False)
            self._mixin = api.parse_wbi_keys(envelope)  # answered with -101 when logged out: keys still there
            self._mixin_at = time.monotonic()
        return self._mixin

    def check_robots(self, url: str) -> None:
        """Raise CrawlError if robots.txt of ``url``'s host forbids it (unless ``ignore_robots``)."""
        if self._allowed(url):
            return
        origin = _origin(url)
        if self.ignore_robots:
            if origin not in self._robots_ignored:
                self._robots_ignored.add(origin)
                log.info("robots.txt of %s disallows %s; fetching it anyway (--ignore-robots)",
                         origin, urlsplit(url).path)
            return
        raise CrawlError(
            f"robots.txt of {origin} disallows {urlsplit(url).path}, so bilipop stopped before requesting it. "
            "Crawl only where you are allowed; if you have the right to crawl this site anyway (your own server, "
            "written permission), run the same command again with --ignore-robots")

    def _allowed(self, url: str) -> bool:
        origin = _origin(url)
        if origin not in self._robots:
            self._robots[origin] = self._load_robots(origin)
        return self._robots[origin].can_fetch(USER_AGENT, url)

    def _load_robots(self, origin: str) -> urllib.robotparser.RobotFileParser:
        parser = urllib.robotparser.RobotFileParser(origin + "/robots.txt")
        failures = 0
        while True:
            try:
                resp = self._send(origin + "/robots.txt", self._api_limit)
                break
            except FailedAttempt as problem:
                failures = self._recover(problem, failures, "/robots.txt")
        self._succeeded()
        # The usual reading of robots.txt answers: 401/403 forbid everything, other 4xx allow everything.
        if resp.status_code in (401, 403):
            parser.disallow_all = True
        elif resp.status_code >= 400:
            parser.allow_all = True
        else:
            parser.parse(resp.text.splitlines())
        return parser


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _decode(resp: requests.Response) -> dict:
    """The JSON envelope; an HTML page or broken JSON is a passing fault (checked before parsing)."""
    ctype = resp.headers.get("Content-Type", "")
    if "html" in ctype:
        raise FailedAttempt("an HTML page instead of JSON", block=True)
    try:
        envelope = resp.json()
    except ValueError:
        raise FailedAttempt("a reply that is not valid JSON") from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("code"), int):
        raise FailedAttempt("a JSON reply without a code")
    return envelope
