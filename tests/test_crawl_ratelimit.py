"""bilipop.crawl.ratelimit: no two requests closer than one over the rate, and no 10-second window above it."""

from __future__ import annotations

import time

import pytest

from bilipop.crawl.ratelimit import RateLimiter


def test_rate_limiter_never_starts_two_requests_closer_than_one_over_rate():
    limiter, starts = RateLimiter(50.0), []
    for _ in range(25):
        limiter.wait()
        starts.append(time.monotonic())
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps) >= 1 / 50 * 0.999
    assert (starts[-1] - starts[0]) / 24 < 1 / 50 * 1.5  # and it does not crawl far below the rate


@pytest.mark.parametrize("rate", [1.25, 0.15, 1.0, 7.7])
def test_rate_limiter_keeps_every_10_second_window_at_or_below_the_rate(rate):
    # Spacing alone (1/rate plus jitter) lets 13 starts into 10 s at rate 1.25, i.e. 1.3 per second.
    clock = [1000.0]

    def sleep(seconds):
        clock[0] += seconds

    limiter, starts = RateLimiter(rate, sleep=sleep, clock=lambda: clock[0]), []
    for _ in range(300):
        limiter.wait()
        starts.append(clock[0])
        clock[0] += 0.001  # the request itself
    worst = max(sum(1 for u in starts if t <= u <= t + 10.0) for t in starts)
    assert worst <= max(1, rate * 10), worst
    assert (len(starts) - 1) / (starts[-1] - starts[0]) >= 0.9 * rate or rate * 10 < 10
