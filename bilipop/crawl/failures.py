"""What can go wrong with one request, and how long to wait: the back-off policy, the failures the client
retries (``FailedAttempt``) and those it hands to its caller, and how a reply is told apart from a refusal.

Bilibili answers an impolite client in several ways (docs/reference.md, "Blocks and politeness"): HTTP 412 with an
HTML page, HTTP 429 with ``Retry-After``, or HTTP 200 with a JSON block code (-412, -352, -799, -509, -401) or even
code 0 with nothing but ``data.v_voucher``. Since 2026 a 412 may carry a proof-of-work challenge that waiting does
not lift (docs/crawling.md, "What stops the crawl, and what to do").
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass

from bilipop.crawl import transport
from bilipop.errors import CrawlError

#: JSON codes that mean "you are asking too much" or "prove you are a browser" (-352 also: fetch new WBI keys).
BLOCK_CODES = frozenset({-412, -352, -799, -509, -401})
#: JSON codes for a passing server-side failure.
SERVER_CODES = frozenset({-500, -503, -504})
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


class CoverFailed(CrawlError):
    """One cover could not be fetched (bad URL, robots, unreachable host, too large...): that cover only."""


def retry_after(reply: transport.Reply) -> float | None:
    value = reply.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


def connect_reason(exc: BaseException) -> str:
    text = str(exc)
    for key, reason in (("Name or service not known", "the name does not resolve"),
                        ("Temporary failure in name resolution", "the name does not resolve"),
                        ("NameResolution", "the name does not resolve"), ("refused", "connection refused"),
                        ("timed out", "connection timed out"), ("unreachable", "network unreachable")):
        if key in text:
            return reason
    return "cannot connect"


def challenge_type(reply: transport.Reply) -> str | None:
    """The type of a 2026 proof-of-work challenge (``Set-Cookie: X-BILI-SEC-TOKEN=<type>,<token>``), or None.
    Only the type is ever shown: the token stays out of logs and errors."""
    found = re.search(r"X-BILI-SEC-TOKEN=([^,;\s]*)", reply.headers.get("Set-Cookie", ""), re.IGNORECASE)
    if found is None:
        return None
    return re.sub(r"[^A-Za-z0-9_.-]", "", found.group(1))[:24] or "unknown"


def decode(reply: transport.Reply) -> dict:
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
