"""One polite HTTP session for the crawl: rate limits, retries with back-off, block handling, WBI keys, robots.txt.

Bilibili answers an impolite client in several ways (docs/reference.md, "Blocks and politeness"): HTTP 412 with an
HTML page, HTTP 429 with ``Retry-After``, or HTTP 200 with a JSON block code (-412, -352, -799, -509, -401) or even
code 0 with nothing but ``data.v_voucher``. Every one of them slows the crawl down; if they persist after long
pauses the crawl stops with one line, because everything fetched so far is already committed and a rerun resumes.

Every request has a whole deadline and a size cap (``transport``); redirects are never followed to another host
for the API, and cookies go to the API host only. A host that cannot be reached fails within ``unreachable_s``.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import os
import random
import re
import time
import urllib.robotparser
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from bilipop.crawl import api, transport, wbi
from bilipop.errors import CrawlError

log = logging.getLogger(__name__)

# Bilibili treats "python" or "curl" in a User-Agent as suspicious; this is an ordinary desktop browser.
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
REFERER = "https://www.bilibili.com/"
ORIGIN = "https://www.bilibili.com"
COOKIE_ENV = "BILIPOP_COOKIE"
NAV_PATH = "/x/web-interface/nav"
#: One video's page data: where the site's 2026 refusal of non-mainland networks shows.
VIDEO_PATHS = frozenset({"/x/web-interface/view", "/x/web-interface/wbi/view", "/x/web-interface/view/detail",
                         "/x/web-interface/wbi/view/detail"})
#: JSON codes that mean "you are asking too much" or "prove you are a browser" (-352 also: fetch new WBI keys).
BLOCK_CODES = frozenset({-412, -352, -799, -509, -401})
#: JSON codes for a passing server-side failure.
SERVER_CODES = frozenset({-500, -503, -504})
WBI_KEY_LIFETIME_S = 12 * 3600  # keys rotate about daily
MAX_API_BYTES = 8 * 2**20  # the largest real reply (view/detail with 40 Related) is well under 200 KB
MAX_IMAGE_BYTES = 16 * 2**20
MAX_REDIRECTS = 3
_FAILURES_TO_MENTION = 3
RESUME_HINT = "everything fetched so far is saved: run the same command again to resume"
BLOCK_ADVICE = ("log in (export BILIPOP_COOKIE with your browser's cookie), lower --rate, or wait an hour or so; "
                + RESUME_HINT)


@dataclass
class Backoff:
    """How long to wait after failures. Defaults suit the real site; tests shrink them."""

    base_s: float = 2.0  # first retry after a fault (5xx, dropped connection...) waits about this long, doubling
    block_base_s: float = 5.0  # the same after a block: a rate-limit window has to pass before trying again
    max_s: float = 120.0
    retries: int = 10  # per request, for dropped connections, 5xx and malformed replies
    blocks_before_pause: int = 5  # consecutive block replies that trigger a long pause
    pause_s: float = 900.0  # the long pause (people report blocks lasting 10-30 minutes)
    max_pauses: int = 3  # long pauses in a row without a success before the crawl stops
    timeout_s: float = 20.0  # per socket read
    connect_timeout_s: float = 10.0
    deadline_s: float = 30.0  # the whole request, however slowly the reply trickles in
    overdue_retries: int = 2  # requests that miss their deadline this many times more in a row stop the crawl
    unreachable_s: float = 30.0  # a host that cannot be connected to for this long stops the crawl
    empty_retries: int = 3  # a list that should hold content but answers empty is asked again this many times,
    empty_wait_s: float = 8.0  # this long apart (3 x 8 s: a silent site is reported within about 30 s)
    region_checks: int = 3  # 412s on view while nav answers, in a row, that mean "this network is refused"

    def delay(self, attempt: int, *, block: bool = False) -> float:
        """Exponential back-off with jitter, so that restarted clients do not retry in lockstep."""
        base = self.block_base_s if block else self.base_s
        return min(self.max_s, base * 2 ** max(0, attempt - 1)) * random.uniform(0.5, 1.0)


@dataclass
class HttpStats:
    requests: int = 0
    api_requests: int = 0
    cover_requests: int = 0
    retries: int = 0
    blocks: int = 0
    pauses: int = 0
    key_refreshes: int = 0  # new WBI keys fetched after a refused signature (not blocks)
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
    alone lets 13 requests into 10 s at rate 1.25). At a whole-number rate the same holds for any 1 second with a
    5 % margin, so that a request delayed on its way does not give a server-side second one too many (at a
    fractional rate that would cost throughput: 1.25 would become 0.95). Jitter only lengthens the waits.
    ``rate`` 0 means no limit."""

    WINDOW_S = 10.0
    SHORT_WINDOW_S = 1.0
    SHORT_MARGIN = 1.05

    def __init__(self, rate: float, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._next = 0.0
        self._sleep, self._clock = sleep, clock
        self._per_window = max(1, math.floor(rate * self.WINDOW_S + 1e-9))
        self._starts: collections.deque[float] = collections.deque(maxlen=self._per_window)
        self._per_second = round(rate) if rate >= 1 and abs(rate - round(rate)) < 0.01 else 0
        self._recent: collections.deque[float] = collections.deque(maxlen=max(1, self._per_second))

    def wait(self) -> None:
        """Sleep until the next request may start, and count it as started."""
        if self.rate <= 0:
            return
        earliest = self._next
        if len(self._starts) == self._per_window:
            # 1 % past the window, so that the server's clock sees the oldest start leave it first.
            earliest = max(earliest, self._starts[0] + self.WINDOW_S * 1.01)
        if self._per_second >= 1 and len(self._recent) == self._per_second:
            earliest = max(earliest, self._recent[0] + self.SHORT_WINDOW_S * self.SHORT_MARGIN)
        now = self._clock()
        if earliest > now:
            self._sleep(earliest - now)
            now = max(self._clock(), earliest)
        self._starts.append(now)
        self._recent.append(now)
        self._next = now + (1.0 / self.rate) * random.uniform(1.01, 1.09)


class FailedAttempt(Exception):
    """Internal: one failed attempt that may be retried. ``block`` marks a block signal rather than a fault;
    ``wait_s`` is a wait the server asked for (``Retry-After``)."""

    def __init__(self, reason: str, *, block: bool = False, wait_s: float | None = None,
                 unreachable: bool = False, overdue: bool = False, refused: bool = False, empty: bool = False,
                 status: int | None = None) -> None:
        super().__init__(reason)
        self.reason, self.block, self.wait_s = reason, block, wait_s
        self.unreachable, self.overdue = unreachable, overdue
        self.refused, self.empty, self.status = refused, empty, status


class ItemFailed(CrawlError):
    """One request failed in a way that belongs to what it asked for (one video, one upload list), not to the
    whole site: the caller may skip that item and go on. ``reason`` names the failure in a few words."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class RequestFailed(ItemFailed):
    """A request kept failing (5xx, dropped connections, broken JSON...) through all its retries."""


class OffsiteRedirect(ItemFailed):
    """The API redirected a request to another host, where bilipop does not follow it."""


class ReplyTooLarge(ItemFailed):
    """A reply larger than any API answer."""


class ListedNothing(CrawlError):
    """A list that should hold content kept answering code 0 with nothing."""


class Challenged(CrawlError):
    """HTTP 412 with the 2026 proof-of-work challenge (``X-BILI-SEC-TOKEN``), which bilipop does not solve."""


class RegionRefused(CrawlError):
    """``view`` answers HTTP 412 while ``nav`` answers: the site refuses video requests from this network."""


class NotFound(CrawlError):
    """An HTTP 4xx other than 412 and 429 (e.g. a cover that no longer exists)."""


class CoverFailed(CrawlError):
    """One cover could not be fetched (bad URL, robots, unreachable host, too large...): that cover only."""


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
        sleep, clock: injectable for tests.
    """

    def __init__(self, api_base: str, *, rate: float = 1.0, cover_rate: float | None = None,
                 backoff: Backoff | None = None, ignore_robots: bool = False,
                 cookies: Mapping[str, str] | None = None, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._region_suspects = 0
        self.api_base = api_base.rstrip("/")
        self.api_origin = _origin(self.api_base)
        self.backoff = backoff or Backoff()
        self.ignore_robots = ignore_robots
        self.stats = HttpStats()
        self.on_wait: Callable[[str], None] | None = None
        self._sleep, self._clock = sleep, clock
        self._api_limit = RateLimiter(rate, sleep)
        self._cover_limit = RateLimiter(rate if cover_rate is None else cover_rate, sleep)
        self._robots: dict[str, urllib.robotparser.RobotFileParser] = {}
        self._robots_ignored: set[str] = set()
        self._dead_hosts: dict[str, str] = {}
        self._mixin: str | None = None
        self._mixin_at = 0.0
        self._blocks_in_row = 0
        self._pauses_in_row = 0
        self._unreachable_since: float | None = None
        self._overdue_in_row = 0
        self.cookies: dict[str, str] = dict(cookies or {})
        self.session = transport.new_session()
        self.session.headers.update({"User-Agent": USER_AGENT, "Referer": REFERER, "Origin": ORIGIN,
                                     "Accept": "application/json, text/plain, */*",
                                     "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})

    def close(self) -> None:
        self.session.close()

    # -- public calls ------------------------------------------------------------------------------------------
    def get_json(self, path: str, params: Mapping[str, Any] | None = None, *, signed: bool = True,
                 referer: str | None = None, expect: Callable[[dict], str | None] | None = None,
                 retries: int | None = None, empty_retries: int | None = None) -> dict:
        """GET a JSON endpoint of the API origin and return its envelope once it is neither a fault nor a block.

        Codes other than the block and server codes (0, -101, per-video codes...) are returned for the caller.
        ``referer`` replaces the Referer and Origin (the space page for an uploader's endpoints). ``expect``
        returns a reason when a reply that should hold content holds none: it is asked again ``empty_retries``
        times (default ``backoff.empty_retries``), ``backoff.empty_wait_s`` apart, never counted as a block. A
        signed request refused for its signature (-352, or code 0 with only ``v_voucher``) fetches new keys and
        is sent again at once; only a refusal of fresh keys counts as a block. ``retries`` overrides
        ``backoff.retries`` for faults.

        Raises:
            ItemFailed: retries ran out, the API redirected elsewhere, or the reply was too large (the caller may
                skip what it asked for).
            ListedNothing: ``expect`` kept finding nothing.
            Challenged, RegionRefused: the 2026 refusals that waiting does not lift.
            CrawlError: robots.txt forbids the path, the host is unreachable, or blocks persisted after long
                pauses.
        """
        url = self.api_base + path
        self.check_robots(url)
        headers = self._api_headers(referer)
        failures = empties = 0
        refetched = False  # new keys were fetched for this request after a refused signature
        started = self._clock()
        while True:
            query = dict(params or {})
            try:
                if signed:
                    query = wbi.sign(query, self._mixin_key())
                full = f"{url}?{wbi.encode_query(query)}" if query else url
                envelope = _decode(self._fetch_api(full, headers))
                code = envelope["code"]
                if code == -352 or api.is_voucher_only(envelope):
                    self._mixin = None  # a refused signature: the keys have probably rotated
                    reason = (f"code -352 ({envelope.get('message', '')})" if code == -352 else
                              "code 0 with only data.v_voucher (a refused request posing as success)")
                    raise FailedAttempt(reason, block=True, refused=signed and not refetched)
                if code in BLOCK_CODES:
                    raise FailedAttempt(f"code {code} ({envelope.get('message', '')})", block=True)
                if code in SERVER_CODES:
                    raise FailedAttempt(f"code {code}")
                if expect is not None and (empty := expect(envelope)):
                    raise FailedAttempt(empty, empty=True)
            except FailedAttempt as problem:
                if problem.refused:
                    refetched = True
                    self.stats.key_refreshes += 1
                    log.debug("%s: %s; fetching new WBI keys and asking again", path, problem.reason)
                    continue
                if problem.empty:
                    empties += 1
                    self._listed_nothing(problem, empties, empty_retries, started)
                    continue
                if problem.status == 412 and path.split("?")[0] in VIDEO_PATHS:
                    self._check_region(path)
                failures = self._recover(problem, failures, path, retries)
                continue
            self._succeeded()
            if path in VIDEO_PATHS:
                self._region_suspects = 0
            return envelope

    def _api_headers(self, referer: str | None) -> dict[str, str]:
        headers = {"Cookie": _cookie_header(self.cookies)} if self.cookies else {}
        if referer:
            headers.update({"Referer": referer, "Origin": _origin(referer)})
        return headers

    def _listed_nothing(self, problem: FailedAttempt, empties: int, limit: int | None, started: float) -> None:
        """A list answered code 0 with nothing: wait a little and ask again, or say so in one line."""
        limit = self.backoff.empty_retries if limit is None else limit
        if empties > limit:
            waited = self._clock() - started
            raise ListedNothing(
                f"{problem.reason} ({empties} answer(s) over {waited:.0f} s): the site answered with nothing, which "
                "means it changed its API or refuses this client without saying so; check for a newer bilipop, or "
                "log in (export BILIPOP_COOKIE with your browser's cookie) and try again later; " + RESUME_HINT)
        log.info("%s; asking again in %.0f s (%d of %d)", problem.reason, self.backoff.empty_wait_s, empties, limit)
        self._sleep(self.backoff.empty_wait_s)

    def _check_region(self, path: str) -> None:
        """After an HTTP 412 on a video path, ask ``nav``: when it answers, and that repeats
        ``backoff.region_checks`` times in a row, the site refuses this network's video requests (since
        September 2026 ``view`` answers 412 outside mainland China whatever the cookies)."""
        nav = self.api_base + NAV_PATH
        self.check_robots(nav)
        self.stats.api_requests += 1
        try:
            reply = self._send(nav, self._api_limit, self._api_headers(None), MAX_API_BYTES)
            answered = reply.status == 200 and "json" in reply.content_type
        except (FailedAttempt, transport.TooLarge):
            answered = False
        self._region_suspects = self._region_suspects + 1 if answered else 0
        if self._region_suspects >= self.backoff.region_checks:
            raise RegionRefused(
                f"Bilibili refuses this network: {path} answered HTTP 412 {self._region_suspects} times in a row "
                "while nav answered (since September 2026 the site refuses video requests from outside mainland "
                "China, whatever the cookies); run the crawl from a mainland network or through a proxy there "
                f"(HTTPS_PROXY is honoured); {RESUME_HINT}")

    def refresh_keys(self) -> bool:
        """Fetch the WBI keys from ``nav`` now; returns whether they differ from the ones in use (a -403 on a
        signed call made with keys that are still current is a fact about what was asked for)."""
        old, self._mixin = self._mixin, None
        return self._mixin_key() != old

    def get_bytes(self, url: str) -> bytes:
        """GET an image through the cover limiter, following redirects (each host's robots.txt obeyed).

        Raises:
            CoverFailed: this cover cannot be had now (bad URL, HTTP 4xx, robots, dead host, too large, retries).
        """
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise CoverFailed(f"cover URL {url[:80]!r} is not an http(s) address")
            origin = _origin(url)
            if origin in self._dead_hosts:
                raise CoverFailed(f"{origin} could not be reached earlier in this run ({self._dead_hosts[origin]})")
            try:
                self.check_robots(url)
            except CoverFailed:
                raise
            except CrawlError as exc:
                raise CoverFailed(str(exc).split(". ")[0]) from None
            reply = self._fetch_cover(url, origin)
            if reply.status in (301, 302, 303, 307, 308) and reply.headers.get("Location"):
                url = urljoin(url, reply.headers["Location"])
                continue
            if reply.status >= 400:
                raise CoverFailed(f"{parts.path[:80]} answered HTTP {reply.status}")
            return reply.body
        raise CoverFailed(f"more than {MAX_REDIRECTS} redirects")

    def fetch_buvid(self) -> None:
        """Anonymous ``buvid3``/``buvid4`` (``finger/spi``) and ``b_nut`` cookies, unless the user gave theirs.

        Optional: a failure only means going on without them.
        """
        if "buvid3" in self.cookies:
            return
        try:
            envelope = self.get_json("/x/frontend/finger/spi", signed=False)
            found = api.parse_buvid(envelope) if envelope["code"] == 0 else {}
        except (Challenged, RegionRefused):
            raise
        except CrawlError as exc:
            if "robots.txt" in str(exc):
                raise
            log.debug("no buvid cookies (%s); going on without them", exc)
            return
        if found:
            self.cookies.update(found)
            self.cookies.setdefault("b_nut", str(int(time.time())))

    # -- internals ---------------------------------------------------------------------------------------------
    def _fetch_api(self, url: str, headers: dict[str, str]) -> transport.Reply:
        for _ in range(MAX_REDIRECTS + 1):
            self.stats.api_requests += 1  # every attempt, answered or not
            try:
                reply = self._send(url, self._api_limit, headers, MAX_API_BYTES)
            except transport.TooLarge as exc:
                raise ReplyTooLarge(f"{urlsplit(url).path} sent a reply too large to be an API answer ({exc}); "
                                    "check --api-base", "a reply over the size cap") from None
            if reply.status not in (301, 302, 303, 307, 308):
                break
            target = urljoin(url, reply.headers.get("Location", ""))
            if _origin(target) != self.api_origin:
                raise OffsiteRedirect(f"{_origin(url)} redirected an API request to {_origin(target)}; bilipop "
                                      "does not follow the API to another host (nor send it your cookies): check "
                                      "--api-base", "redirected to another host")
            self.check_robots(target)
            url = target
        else:
            raise RequestFailed(f"{urlsplit(url).path} redirected more than {MAX_REDIRECTS} times; check --api-base",
                                "too many redirects")
        if reply.status == 429:
            raise FailedAttempt("HTTP 429 (too many requests)", block=True, wait_s=_retry_after(reply))
        if reply.status >= 400:
            raise CrawlError(f"{url.split('?')[0]} answered HTTP {reply.status}; check that --api-base "
                             f"({self.api_base}) is the Bilibili API or a bilipop sim")
        return reply

    def _fetch_cover(self, url: str, origin: str) -> transport.Reply:
        failures = 0
        while True:
            self.stats.cover_requests += 1
            try:
                reply = self._send(url, self._cover_limit, {"Referer": REFERER}, MAX_IMAGE_BYTES)
                if reply.status == 429 or reply.status >= 500:
                    raise FailedAttempt(f"HTTP {reply.status}", wait_s=_retry_after(reply))
            except FailedAttempt as problem:
                if problem.unreachable:
                    self._dead_hosts[origin] = problem.reason
                    raise CoverFailed(f"{origin} cannot be reached ({problem.reason})") from None
                failures += 1
                if failures > min(self.backoff.retries, 3) or problem.overdue:
                    raise CoverFailed(f"{urlsplit(url).path[:80]}: {problem.reason}") from None
                self.stats.retries += 1
                self._sleep(min(problem.wait_s or self.backoff.delay(failures), self.backoff.max_s))
                continue
            except transport.TooLarge as exc:
                raise CoverFailed(f"cover reply too large ({exc})") from None
            return reply

    def _send(self, url: str, limiter: RateLimiter, headers: dict[str, str], max_bytes: int) -> transport.Reply:
        """One attempt. Faults and blocks raise FailedAttempt; every other answer is returned."""
        limiter.wait()
        self.stats.requests += 1
        self.stats.recent.append(time.monotonic())
        b = self.backoff
        if _origin(url) != self.api_origin:
            headers = {k: v for k, v in headers.items() if k.lower() != "cookie"}
        try:
            reply = transport.get(self.session, url, headers=headers, deadline_s=b.deadline_s,
                                  connect_timeout_s=b.connect_timeout_s, read_timeout_s=b.timeout_s,
                                  max_bytes=max_bytes)
        except transport.Overdue:
            raise FailedAttempt(f"no complete reply within {b.deadline_s:g} s", overdue=True) from None
        except requests.RequestException as exc:
            if transport.is_connect_failure(exc):
                raise FailedAttempt(_connect_reason(exc), unreachable=True) from None
            raise FailedAttempt(type(exc).__name__) from None
        if reply.status == 412:
            kind = _challenge(reply)
            if kind is not None:
                raise Challenged(
                    f"Bilibili answered {urlsplit(url).path} with HTTP 412 and a proof-of-work challenge "
                    f"(X-BILI-SEC-TOKEN, type {kind}), which a browser solves and bilipop does not: waiting out "
                    f"blocks will not lift it; {BLOCK_ADVICE}")
            raise FailedAttempt("HTTP 412 (an HTML block page)", block=True, status=412)
        if reply.status >= 500:
            raise FailedAttempt(f"HTTP {reply.status}")
        return reply

    def _recover(self, problem: FailedAttempt, failures: int, what: str, retries: int | None = None) -> int:
        self.stats.retries += 1
        if problem.block:
            self._blocked(problem, what)
            return failures
        if problem.unreachable:
            now = self._clock()
            if self._unreachable_since is None:
                self._unreachable_since = now
            waited = now - self._unreachable_since
            if waited >= self.backoff.unreachable_s:
                raise CrawlError(f"cannot reach {self.api_origin} ({problem.reason}) for {waited:.0f} s: check the "
                                 f"network connection and --api-base; {RESUME_HINT}")
            failures += 1
            delay = min(self.backoff.delay(failures), self.backoff.unreachable_s - waited)
            log.log(logging.WARNING if failures == 1 else logging.DEBUG, "%s: %s, trying again for up to %.0f s",
                    self.api_origin, problem.reason, self.backoff.unreachable_s - waited)
            self._sleep(max(0.0, delay))
            return failures
        if problem.overdue:
            self._overdue_in_row += 1
            if self._overdue_in_row > self.backoff.overdue_retries:
                raise CrawlError(f"{what}: {problem.reason}, {self._overdue_in_row} times in a row; the site or the "
                                 f"network is too slow now: {RESUME_HINT} later")
        failures += 1
        limit = self.backoff.retries if retries is None else retries
        if failures > limit:
            raise RequestFailed(f"{what} kept failing ({problem.reason}) after {limit} retries; {RESUME_HINT}",
                                f"kept failing: {problem.reason}")
        delay = self.backoff.delay(failures)
        # Said out loud once a fault persists, so that a long wait is never silent.
        level = logging.WARNING if failures == _FAILURES_TO_MENTION else logging.DEBUG
        log.log(level, "%s: %s (%d times in a row), retrying in %.1f s, at most %d times", what, problem.reason,
                failures, delay, limit)
        self._sleep(delay)
        return failures

    def _blocked(self, problem: FailedAttempt, what: str) -> None:
        self.stats.blocks += 1
        self._blocks_in_row += 1
        if self._blocks_in_row < self.backoff.blocks_before_pause:
            delay = self.backoff.delay(self._blocks_in_row, block=True)
            if problem.wait_s is not None:  # Retry-After: the server said how long
                delay = max(delay, min(problem.wait_s, self.backoff.pause_s))
            log.debug("%s: blocked (%s), waiting %.1f s", what, problem.reason, delay)
            self._sleep(delay)
            return
        self._blocks_in_row = 0
        self._pauses_in_row += 1
        if self._pauses_in_row > self.backoff.max_pauses:
            raise CrawlError(
                f"Bilibili keeps refusing this crawl ({what}: {problem.reason}) even after "
                f"{self.backoff.max_pauses} long pauses; {BLOCK_ADVICE}")
        self.stats.pauses += 1
        log.warning("blocked %d times in a row (%s): pausing %.0f s before going on",
                    self.backoff.blocks_before_pause, problem.reason, self.backoff.pause_s)
        if self.on_wait:
            self.on_wait(f"paused {self.backoff.pause_s:.0f} s after repeated blocks")
        self._sleep(self.backoff.pause_s)
        self._mixin = None

    def _succeeded(self) -> None:
        self._blocks_in_row = 0
        self._pauses_in_row = 0
        self._unreachable_since = None
        self._overdue_in_row = 0

    def _mixin_key(self) -> str:
        if self._mixin is None or time.monotonic() - self._mixin_at > WBI_KEY_LIFETIME_S:
            # nav answering does not mean the blocked request would now: its run of blocks goes on counting.
            in_row = self._blocks_in_row, self._pauses_in_row
            envelope = self.get_json(NAV_PATH, signed=False)
            self._blocks_in_row, self._pauses_in_row = in_row
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
        if origin != self.api_origin:
            try:
                reply = self._fetch_cover(origin + "/robots.txt", origin)
            except CoverFailed as exc:
                raise CoverFailed(f"robots.txt of {origin} could not be read ({exc})") from None
        else:
            failures = 0
            while True:
                try:
                    reply = self._send(origin + "/robots.txt", self._api_limit, {}, MAX_API_BYTES)
                    break
                except FailedAttempt as problem:
                    failures = self._recover(problem, failures, f"{origin}/robots.txt")
                except transport.TooLarge as exc:
                    raise CrawlError(f"{origin}/robots.txt is too large ({exc}); check --api-base") from None
            self._succeeded()
        # The usual reading of robots.txt answers: 401/403 forbid everything, other 4xx (and 3xx) allow everything.
        if reply.status in (401, 403):
            parser.disallow_all = True
        elif reply.status >= 300:
            parser.allow_all = True
        else:
            parser.parse(reply.body.decode("utf-8", "replace").splitlines())
        return parser


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _cookie_header(cookies: Mapping[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def _retry_after(reply: transport.Reply) -> float | None:
    value = reply.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


def _connect_reason(exc: BaseException) -> str:
    text = str(exc)
    for key, reason in (("Name or service not known", "the name does not resolve"),
                        ("Temporary failure in name resolution", "the name does not resolve"),
                        ("NameResolution", "the name does not resolve"), ("refused", "connection refused"),
                        ("timed out", "connection timed out"), ("unreachable", "network unreachable")):
        if key in text:
            return reason
    return "cannot connect"


def _challenge(reply: transport.Reply) -> str | None:
    """The type of a 2026 proof-of-work challenge (``Set-Cookie: X-BILI-SEC-TOKEN=<type>,<token>``), or None.
    Only the type is ever shown: the token stays out of logs and errors."""
    found = re.search(r"X-BILI-SEC-TOKEN=([^,;\s]*)", reply.headers.get("Set-Cookie", ""), re.IGNORECASE)
    if found is None:
        return None
    return re.sub(r"[^A-Za-z0-9_.-]", "", found.group(1))[:24] or "unknown"


def _decode(reply: transport.Reply) -> dict:
    """The JSON envelope; an HTML page is a block, broken JSON a passing fault (checked before parsing)."""
    if "html" in reply.content_type:
        raise FailedAttempt("an HTML page instead of JSON", block=True)
    try:
        envelope = json.loads(reply.body)
    except ValueError:
        raise FailedAttempt("a reply that is not valid JSON") from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("code"), int):
        raise FailedAttempt("a JSON reply without a code")
    return envelope
