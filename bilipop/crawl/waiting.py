"""Waiting after failed attempts, across the requests of one client: back-off after a fault or a block, a long
pause after blocks in a row, and the point where waiting is over (blocks after long pauses, a host unreachable for
``unreachable_s``, replies overdue again and again, a request out of retries)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from bilipop.crawl.failures import BLOCK_ADVICE, RESUME_HINT, Backoff, FailedAttempt, RequestFailed
from bilipop.errors import CrawlError

if TYPE_CHECKING:
    from bilipop.crawl.ratelimit import HttpStats

log = logging.getLogger(__name__)

_FAILURES_TO_MENTION = 3


class Waits:
    """The runs of failures of one client and the waits they call for.

    Args:
        backoff: how long to wait, and how often.
        stats: where retries, blocks and pauses are counted.
        origin: the API origin, named when it cannot be reached.
        sleep, clock: injectable for tests.
        on_wait: told of a long pause (a progress display shows it).
        after_pause: called after a long pause (the client drops its WBI keys).
    """

    def __init__(self, backoff: Backoff, stats: HttpStats, origin: str, sleep: Callable[[float], None],
                 clock: Callable[[], float], on_wait: Callable[[str], None],
                 after_pause: Callable[[], None]) -> None:
        self.backoff, self.stats, self.origin = backoff, stats, origin
        self._sleep, self._clock = sleep, clock
        self.on_wait, self.after_pause = on_wait, after_pause
        self.blocks_in_row = 0
        self.pauses_in_row = 0
        self._unreachable_since: float | None = None
        self._overdue_in_row = 0

    def recover(self, problem: FailedAttempt, failures: int, what: str, retries: int | None = None) -> int:
        """Wait after one failed attempt (or raise when waiting is over); returns the request's failures so far."""
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
                raise CrawlError(f"cannot reach {self.origin} ({problem.reason}) for {waited:.0f} s: check the "
                                 f"network connection and --api-base; {RESUME_HINT}")
            failures += 1
            delay = min(self.backoff.delay(failures), self.backoff.unreachable_s - waited)
            log.log(logging.WARNING if failures == 1 else logging.DEBUG, "%s: %s, trying again for up to %.0f s",
                    self.origin, problem.reason, self.backoff.unreachable_s - waited)
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
        self.blocks_in_row += 1
        if self.blocks_in_row < self.backoff.blocks_before_pause:
            delay = self.backoff.delay(self.blocks_in_row, block=True)
            if problem.wait_s is not None:  # Retry-After: the server said how long
                delay = max(delay, min(problem.wait_s, self.backoff.pause_s))
            log.debug("%s: blocked (%s), waiting %.1f s", what, problem.reason, delay)
            self._sleep(delay)
            return
        self.blocks_in_row = 0
        self.pauses_in_row += 1
        if self.pauses_in_row > self.backoff.max_pauses:
            raise CrawlError(
                f"Bilibili keeps refusing this crawl ({what}: {problem.reason}) even after "
                f"{self.backoff.max_pauses} long pauses; {BLOCK_ADVICE}")
        self.stats.pauses += 1
        log.warning("blocked %d times in a row (%s): pausing %.0f s before going on",
                    self.backoff.blocks_before_pause, problem.reason, self.backoff.pause_s)
        self.on_wait(f"paused {self.backoff.pause_s:.0f} s after repeated blocks")
        self._sleep(self.backoff.pause_s)
        self.after_pause()

    def succeeded(self) -> None:
        """A request got through: every run of failures ends."""
        self.blocks_in_row = 0
        self.pauses_in_row = 0
        self._unreachable_since = None
        self._overdue_in_row = 0
