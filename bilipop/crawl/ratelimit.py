"""Request rates: the limit (at most ``rate`` requests per second over any stretch of time) and the counts of
what a client sent."""

from __future__ import annotations

import collections
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


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
