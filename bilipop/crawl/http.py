"""The crawl's one HTTP client: rate limits (``ratelimit``), retries and waits (``failures``), robots.txt
(``robots``) and WBI keys, in one session.

A block slows the crawl down; blocks that persist after long pauses stop it with one line, because everything
fetched so far is already committed and a rerun resumes. A refused signature only fetches new keys; the refusals
waiting does not lift (the 412 challenge, the region 412, a site that answers with nothing) stop it at once.

Every request has a whole deadline and a size cap (``transport``); redirects are never followed to another host
for the API, and cookies go to the API host only. A host that cannot be reached fails within ``unreachable_s``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from bilipop.crawl import api, transport, wbi
from bilipop.crawl.failures import (
    BLOCK_ADVICE,
    BLOCK_CODES,
    RESUME_HINT,
    SERVER_CODES,
    Backoff,
    Challenged,
    CoverFailed,
    FailedAttempt,
    ListedNothing,
    OffsiteRedirect,
    RegionRefused,
    ReplyTooLarge,
    RequestFailed,
    challenge_type,
    connect_reason,
    decode,
    retry_after,
)
from bilipop.crawl.ratelimit import HttpStats, RateLimiter
from bilipop.crawl.robots import Robots, origin_of
from bilipop.crawl.waiting import Waits
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
WBI_KEY_LIFETIME_S = 12 * 3600  # keys rotate about daily
MAX_API_BYTES = 8 * 2**20  # the largest real reply (view/detail with 40 Related) is well under 200 KB
MAX_IMAGE_BYTES = 16 * 2**20
MAX_REDIRECTS = 3


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
        self.api_origin = origin_of(self.api_base)
        self.backoff = backoff or Backoff()
        self.ignore_robots = ignore_robots
        self.robots = Robots(USER_AGENT, self._robots_reply, ignore=ignore_robots)
        self.stats = HttpStats()
        self.on_wait: Callable[[str], None] | None = None
        self._sleep, self._clock = sleep, clock
        self._api_limit = RateLimiter(rate, sleep)
        self._cover_limit = RateLimiter(rate if cover_rate is None else cover_rate, sleep)
        self._dead_hosts: dict[str, str] = {}
        self._mixin: str | None = None
        self._mixin_at = 0.0
        self.waits = Waits(self.backoff, self.stats, self.api_origin, sleep, clock,
                           on_wait=lambda note: self.on_wait(note) if self.on_wait else None,
                           after_pause=self._forget_keys)
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
                envelope = decode(self._fetch_api(full, headers))
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
                failures = self.waits.recover(problem, failures, path, retries)
                continue
            self.waits.succeeded()
            if path in VIDEO_PATHS:
                self._region_suspects = 0
            return envelope

    def _api_headers(self, referer: str | None) -> dict[str, str]:
        headers = {"Cookie": _cookie_header(self.cookies)} if self.cookies else {}
        if referer:
            headers.update({"Referer": referer, "Origin": origin_of(referer)})
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
            origin = origin_of(url)
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
            if origin_of(target) != self.api_origin:
                raise OffsiteRedirect(f"{origin_of(url)} redirected an API request to {origin_of(target)}; bilipop "
                                      "does not follow the API to another host (nor send it your cookies): check "
                                      "--api-base", "redirected to another host")
            self.check_robots(target)
            url = target
        else:
            raise RequestFailed(f"{urlsplit(url).path} redirected more than {MAX_REDIRECTS} times; check --api-base",
                                "too many redirects")
        if reply.status == 429:
            raise FailedAttempt("HTTP 429 (too many requests)", block=True, wait_s=retry_after(reply))
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
                    raise FailedAttempt(f"HTTP {reply.status}", wait_s=retry_after(reply))
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
        if origin_of(url) != self.api_origin:
            headers = {k: v for k, v in headers.items() if k.lower() != "cookie"}
        try:
            reply = transport.get(self.session, url, headers=headers, deadline_s=b.deadline_s,
                                  connect_timeout_s=b.connect_timeout_s, read_timeout_s=b.timeout_s,
                                  max_bytes=max_bytes)
        except transport.Overdue:
            raise FailedAttempt(f"no complete reply within {b.deadline_s:g} s", overdue=True) from None
        except requests.RequestException as exc:
            if transport.is_connect_failure(exc):
                raise FailedAttempt(connect_reason(exc), unreachable=True) from None
            raise FailedAttempt(type(exc).__name__) from None
        if reply.status == 412:
            kind = challenge_type(reply)
            if kind is not None:
                raise Challenged(
                    f"Bilibili answered {urlsplit(url).path} with HTTP 412 and a proof-of-work challenge "
                    f"(X-BILI-SEC-TOKEN, type {kind}), which a browser solves and bilipop does not: waiting out "
                    f"blocks will not lift it; {BLOCK_ADVICE}")
            raise FailedAttempt("HTTP 412 (an HTML block page)", block=True, status=412)
        if reply.status >= 500:
            raise FailedAttempt(f"HTTP {reply.status}")
        return reply

    def _forget_keys(self) -> None:
        self._mixin = None

    def _mixin_key(self) -> str:
        if self._mixin is None or time.monotonic() - self._mixin_at > WBI_KEY_LIFETIME_S:
            # nav answering does not mean the blocked request would now: its run of blocks goes on counting.
            in_row = self.waits.blocks_in_row, self.waits.pauses_in_row
            envelope = self.get_json(NAV_PATH, signed=False)
            self.waits.blocks_in_row, self.waits.pauses_in_row = in_row
            self._mixin = api.parse_wbi_keys(envelope)  # answered with -101 when logged out: keys still there
            self._mixin_at = time.monotonic()
        return self._mixin

    def check_robots(self, url: str) -> None:
        """Raise CrawlError if robots.txt of ``url``'s host forbids it (unless ``ignore_robots``)."""
        self.robots.check(url)

    def _robots_reply(self, origin: str) -> transport.Reply:
        """``origin/robots.txt``: an image host's through the cover path (its failure fails that cover only), the
        API's with the API's retries."""
        if origin != self.api_origin:
            try:
                return self._fetch_cover(origin + "/robots.txt", origin)
            except CoverFailed as exc:
                raise CoverFailed(f"robots.txt of {origin} could not be read ({exc})") from None
        failures = 0
        while True:
            try:
                reply = self._send(origin + "/robots.txt", self._api_limit, {}, MAX_API_BYTES)
                break
            except FailedAttempt as problem:
                failures = self.waits.recover(problem, failures, f"{origin}/robots.txt")
            except transport.TooLarge as exc:
                raise CrawlError(f"{origin}/robots.txt is too large ({exc}); check --api-base") from None
        self.waits.succeeded()
        return reply


def _cookie_header(cookies: Mapping[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in cookies.items())
