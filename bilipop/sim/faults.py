"""What can go wrong on the simulated site: per-request faults drawn at a probability, and the ways the 2026 site
refuses a client (docs/crawling.md, "What stops the crawl, and what to do"), each a mode the tests switch
on.

The modes: WBI keys that rotate on a schedule; the HTTP 412 proof-of-work challenge with its ``X-BILI-SEC-TOKEN``
cookie; the HTTP 412 that ``view`` answers to a network outside mainland China while ``nav`` answers; videos whose
``view``/``view/detail`` is redirected to another host; hot lists or upload lists that answer code 0 with nothing.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, fields

from bilipop.errors import InputError

#: The per-request faults, in the order they are drawn (a seed gives the same sequence).
REQUEST_FAULTS = ("drop", "server_error", "slow", "json_block", "malformed_json", "bad_image", "voucher",
                  "risk_control", "unauthorized", "too_many")
_MODES = ("sec_challenge", "region_412", "empty_hot_lists", "empty_uploads")
#: The paths of one video's page data: the ones the region refusal and a redirect apply to.
VIDEO_PATHS = frozenset({"/x/web-interface/view", "/x/web-interface/wbi/view", "/x/web-interface/view/detail",
                         "/x/web-interface/wbi/view/detail"})
HOT_LIST_PATHS = frozenset({"/x/web-interface/popular", "/x/web-interface/ranking/v2",
                            "/x/web-interface/popular/series/one", "/x/web-interface/popular/precious"})
UPLOADS_PATH = "/x/space/wbi/arc/search"
#: Where a redirected video points: the video's web page on the site's main host, as the site does for some
#: videos (an API client must not follow it there).
REDIRECT_HOST = "https://www.bilibili.com"


@dataclass
class FaultConfig:
    """Which faults the server injects; all off by default. Probabilities are drawn per request.

    Args:
        rate_limit_412: API requests per second above which the server answers HTTP 412 (None: never).
        json_block: chance of a 200 reply with code -799 or -412.
        voucher: chance of a 200 reply with code 0 and nothing but ``data.v_voucher`` (a block posing as success).
        risk_control: chance of code -352 with ``data.v_voucher`` and the ``x-bili-gaia-vvoucher`` header.
        unauthorized: chance of code -401.
        too_many: chance of HTTP 429 with ``Retry-After: retry_after_s``.
        server_error: chance of an HTTP 500 or 503.
        slow: chance of a reply delayed by about 0.3 s.
        drop: chance of the connection closing without a reply.
        bad_image: chance of a cover reply that is truncated or garbage.
        malformed_json: chance of a 200 reply that is not valid JSON.
        invisible: share of videos whose ``view`` answers 62002/62004/62012 (fixed per video, not per request).
        key_rotation_s: new WBI keys every this many seconds (None: the keys of the seed for ever).
        sec_challenge: every API request answers HTTP 412 with ``Set-Cookie: X-BILI-SEC-TOKEN=<type>,<token>``.
        region_412: ``view`` and ``view/detail`` answer HTTP 412 (this network is refused); ``nav`` and the
            lists answer as usual.
        redirect: share of visible videos whose ``view``/``view/detail`` answers a redirect to another host
            (fixed per video; ``SimServer.redirected`` lists them).
        empty_hot_lists: the hot lists answer code 0 with empty lists.
        empty_uploads: every upload list answers code 0 with an empty list.
    """

    rate_limit_412: float | None = None
    json_block: float = 0.0
    server_error: float = 0.0
    slow: float = 0.0
    drop: float = 0.0
    bad_image: float = 0.0
    malformed_json: float = 0.0
    invisible: float = 0.0
    voucher: float = 0.0
    risk_control: float = 0.0
    unauthorized: float = 0.0
    too_many: float = 0.0
    retry_after_s: int = 1
    key_rotation_s: float | None = None
    sec_challenge: bool = False
    region_412: bool = False
    redirect: float = 0.0
    empty_hot_lists: bool = False
    empty_uploads: bool = False

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "retry_after_s":
                if not isinstance(value, int) or value < 0:
                    raise InputError(f"retry_after_s must be a whole number of seconds >= 0, got {value!r}.")
            elif f.name in ("rate_limit_412", "key_rotation_s"):
                if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                          or not value > 0):
                    raise InputError(f"{f.name} must be a positive number or None, got {value!r}.")
            elif f.name in _MODES:
                if not isinstance(value, bool):
                    raise InputError(f"{f.name} is a mode: True or False, got {value!r}.")
            elif not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
                raise InputError(f"fault {f.name} must be a probability between 0 and 1, got {value!r}.")

    @classmethod
    def all(cls, p: float = 0.1, rate_limit_412: float = 20.0) -> FaultConfig:
        """Every fault (the 2026 block signals included) at probability ``p`` and a 412 block above
        ``rate_limit_412`` requests/s."""
        return cls(rate_limit_412=rate_limit_412, json_block=p, server_error=p, slow=p, drop=p, bad_image=p,
                   malformed_json=p, invisible=p, voucher=p, risk_control=p, unauthorized=p, too_many=p)

    @classmethod
    def mix(cls, total: float = 0.1, key_rotation_s: float | None = None) -> FaultConfig:
        """``total`` of the API requests faulted, spread evenly over the nine kinds of failed reply (drops, 5xx,
        slow replies, broken JSON, 429, -799/-412, the voucher, -352, -401), ``total`` of the covers broken, and
        keys rotating every ``key_rotation_s`` seconds: "10 % faults" in the tests and benchmarks."""
        kinds = [k for k in REQUEST_FAULTS if k != "bad_image"]
        each = 1.0 - (1.0 - total) ** (1.0 / len(kinds))  # so that P(at least one) == total
        return cls(**{k: each for k in kinds}, bad_image=total, retry_after_s=0, key_rotation_s=key_rotation_s)


class KeySchedule:
    """The WBI keys of a seed, rotating every ``period_s`` seconds from the server's start (never when None)."""

    def __init__(self, seed: int, period_s: float | None) -> None:
        self.seed, self.period_s = seed, period_s
        self._started = time.monotonic()
        self.generation = -1
        self.img_key = self.sub_key = ""
        self.set(0)

    def set(self, generation: int) -> bool:
        """Switch to the keys of ``generation``; returns whether they changed."""
        if generation == self.generation:
            return False
        rnd = random.Random(f"wbi-{self.seed}-{generation}")
        self.img_key, self.sub_key = f"{rnd.getrandbits(128):032x}", f"{rnd.getrandbits(128):032x}"
        self.generation = generation
        return True

    def due(self) -> int:
        """The generation the schedule says is current (the present one when nothing rotates on a schedule)."""
        if self.period_s is None:
            return self.generation
        return max(self.generation, int((time.monotonic() - self._started) / self.period_s))


def redirected_videos(bvids: list[str], share: float, seed: int) -> frozenset[str]:
    """The videos whose page data is redirected to another host: ``share`` of ``bvids``, fixed by the seed."""
    if share <= 0:
        return frozenset()
    rnd = random.Random(f"redirect-{seed}")
    return frozenset(b for b in bvids if rnd.random() < share)


def redirect_target(bvid: str) -> str:
    return f"{REDIRECT_HOST}/video/{bvid}"


def challenge_cookie(seed: str) -> str:
    """The ``Set-Cookie`` of the 2026 proof-of-work challenge: ``X-BILI-SEC-TOKEN=<type>,<token>`` (the token is
    a JWT-shaped string here; nothing checks it, since bilipop does not solve the challenge)."""
    token = "eyJhbGciOiJIUzI1NiJ9." + format(random.Random(seed).getrandbits(192), "048x") + ".sim"
    return f"X-BILI-SEC-TOKEN=pow,{token}; Path=/; Domain=.bilibili.com; Max-Age=600"


def emptied(path: str, body: dict, faults: FaultConfig) -> dict:
    """The reply with its list emptied when a mode says so (a code-0 reply that lists nothing)."""
    data = body.get("data")
    if body.get("code") != 0 or not isinstance(data, dict):
        return body
    if faults.empty_hot_lists and path in HOT_LIST_PATHS:
        return {**body, "data": {**data, "list": [], "no_more": True}}
    if faults.empty_uploads and path == UPLOADS_PATH:
        return {**body, "data": {**data, "list": {"vlist": []}, "page": {**data.get("page", {}), "count": 0}}}
    return body
